/**
 * The worker's side of shared memory (shared/shm.ts): the segments the coordinator offered,
 * mapped; the weights read from them and the results written into this worker's slot. Anything
 * wrong — a segment that cannot be mapped, is not ganfleet's, or was torn — is reported, and the
 * socket carries on.
 */
import type { GradDtype } from '../shared/dtype.js';
import type { NetName } from '../shared/model.js';
import type { ResultGrad, ShardId, ShmReply } from '../shared/protocol.js';
import { ResultSlot, Segment, WeightsSegment } from '../shared/shm.js';

export class ShmLink {
  private constructor(
    private readonly weights: WeightsSegment,
    private readonly slot: ResultSlot,
  ) {}

  /** Maps the offered segments; the answer for the coordinator either way. */
  static open(offer: { weights: string; slot: string }): { link?: ShmLink; reply: ShmReply } {
    try {
      const weights = new WeightsSegment(Segment.open('weights', offer.weights));
      const slot = new ResultSlot(Segment.open('slot', offer.slot));
      const reply: ShmReply = {
        t: 'shm',
        ok: true,
        weightsNonce: weights.segment.nonce,
        slotNonce: slot.segment.nonce,
      };
      return { link: new ShmLink(weights, slot), reply };
    } catch (err) {
      return { reply: { t: 'shm', ok: false, reason: (err as Error).message.slice(0, 280) } };
    }
  }

  /** Copies version `version` of `net` into `into`; '' or why it could not (torn, stale). */
  readWeights(net: NetName, version: number, into: Float32Array): string {
    return this.weights.read(net, version, into);
  }

  /**
   * Writes a shard's result into the slot (between its seq marks); returns the seq that the
   * coordinator is told, over the socket, to find there.
   */
  writeResult(
    id: ShardId,
    grad: ResultGrad,
    stats: { lossSum: number; dRealSum: number; dFakeSum: number },
    midWrite?: () => void,
  ): number {
    const seq = this.slot.begin();
    let bytes = 0;
    let exceptions = 0;
    let scaleExp = 0;
    const put = (a: ArrayBufferView) => {
      const src = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
      this.slot.payload(bytes + a.byteLength).set(src, bytes);
      bytes += a.byteLength;
    };
    switch (grad.dtype) {
      case 'exact':
        put(grad.total.low);
        put(grad.total.exIndex);
        put(grad.total.exHigh);
        exceptions = grad.total.exIndex.length;
        break;
      case 'f16':
        scaleExp = grad.scaleExp;
        put(grad.values);
        break;
      case 'f32':
      case 'bf16':
        put(grad.values);
        break;
      default: {
        const never: never = grad;
        throw new Error(`unknown dtype ${JSON.stringify(never)}`);
      }
    }
    midWrite?.();
    const dtype: GradDtype = grad.dtype;
    this.slot.end({ ...id, bytes, exceptions, scaleExp, dtype, ...stats }, seq);
    return seq;
  }
}
