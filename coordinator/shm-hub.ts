/**
 * The coordinator's side of shared memory (shared/shm.ts): one weights segment for the run, one
 * result slot per worker on this host, and each worker's link through its states:
 *
 *   offered ──both nonces echoed──▶ ready ──worker leaves / run ends──▶ removed
 *      └──── declined, or the wrong nonces ────▶ declined (that worker uses its socket)
 *
 * Every worker is offered a link, and a link is used only once the worker has shown that it mapped
 * the very segments offered, by echoing the nonces written in them: the worker's word alone is
 * never enough, and a worker on another host (or in a container with its own /dev/shm, or under
 * another user) cannot map them, declines, and uses its socket. Containers that share the
 * coordinator's IPC namespace (Compose `ipc: service:…`, one Kubernetes pod) take shared memory
 * whatever network they reach it through.
 */
import { CloseCode, ProtocolError } from '../shared/errors.js';
import type { LogEvent, Logger } from '../shared/log.js';
import { MANIFESTS, type NetName } from '../shared/model.js';
import type { ResultGrad, ResultMessage, ShmReply, ShmResult } from '../shared/protocol.js';
import { ResultSlot, removeStaleSegments, Segment, shmUnavailable, WeightsSegment } from '../shared/shm.js';
import type { GradDtype } from '../shared/dtype.js';
import type { WorkerSession } from './session.js';

type LinkState = 'offered' | 'ready' | 'declined';

interface Link {
  state: LinkState;
  readonly slot: ResultSlot;
}

/** What a local worker is offered in its welcome: the segments' names. */
export interface ShmOffer {
  weights: string;
  slot: string;
}

export class ShmHub {
  private readonly links = new Map<WorkerSession, Link>();
  private closed = false;

  private constructor(
    private readonly weights: WeightsSegment,
    private readonly log: Logger,
  ) {}

  /**
   * The hub, after removing segments that dead coordinators left behind; undefined (said once in
   * the log) where shared memory cannot be made here.
   */
  static start(log: Logger): ShmHub | undefined {
    const why = shmUnavailable();
    if (why !== '') {
      log.info({ reason: why }, `shared memory off: ${why}; workers on this host use their sockets`);
      return undefined;
    }
    const stale = removeStaleSegments();
    if (stale.length > 0)
      log.info(
        { event: 'shm-stale-removed' satisfies LogEvent, removed: stale },
        `removed ${stale.length} shared-memory segment(s) of dead runs`,
      );
    const hub = new ShmHub(new WeightsSegment(Segment.create('weights')), log);
    // Segments outlive a process that dies outright (the next start removes them); on any exit
    // that runs handlers they go at once.
    process.once('exit', () => hub.close());
    return hub;
  }

  /** A session's offer: a fresh slot for it. */
  offer(session: WorkerSession): ShmOffer | undefined {
    if (this.closed) return undefined;
    const slot = new ResultSlot(Segment.create('slot'));
    this.links.set(session, { state: 'offered', slot });
    return { weights: this.weights.segment.name, slot: slot.segment.name };
  }

  /** The worker's answer to its offer: the link is used only if both nonces are the ones written. */
  answer(session: WorkerSession, reply: ShmReply): void {
    const link = this.links.get(session);
    if (link === undefined || link.state !== 'offered')
      throw new ProtocolError(
        'ERR_UNEXPECTED_MESSAGE',
        'a shared-memory answer without an offer',
        CloseCode.UNEXPECTED_MESSAGE,
      );
    if (!reply.ok) {
      link.state = 'declined';
      link.slot.segment.remove();
      session.log.info(
        { event: 'shm-declined' satisfies LogEvent, reason: reply.reason },
        `shared memory not used for this worker: ${reply.reason}`,
      );
      return;
    }
    if (reply.weightsNonce !== this.weights.segment.nonce || reply.slotNonce !== link.slot.segment.nonce) {
      link.state = 'declined';
      link.slot.segment.remove();
      throw new ProtocolError(
        'ERR_SHM_PROOF',
        'the shared-memory nonces echoed are not the ones written: not the segments offered',
        CloseCode.SHM_REFUSED,
      );
    }
    link.state = 'ready';
    session.log.info(
      { event: 'shm-linked' satisfies LogEvent, slot: link.slot.segment.name },
      'worker on this host: weights and gradients through shared memory',
    );
  }

  /** Whether the session takes weights and gives results through shared memory. */
  ready(session: WorkerSession): boolean {
    return this.links.get(session)?.state === 'ready';
  }

  /**
   * The result a ready worker announced, read from its slot and checked like a frame: the header
   * must name the announced shard and seq, complete, with a payload of the run's dtype and size.
   * Exact totals are views of the slot, valid until the worker computes again (the reducer adds
   * them before the dispatcher hands out any work); lossy values are copied (the reducer keeps them
   * a while).
   */
  result(session: WorkerSession, msg: ShmResult): ResultMessage {
    const link = this.links.get(session);
    const bad = (why: string) =>
      new ProtocolError('ERR_BAD_SLOT', `shared-memory result: ${why}`, CloseCode.BAD_RESULT);
    if (link === undefined || link.state !== 'ready') throw bad('this worker has no shared-memory link');
    const h = link.slot.header();
    if (typeof h === 'string') throw bad(h);
    if (
      h.seq !== msg.seq ||
      h.step !== msg.step ||
      h.phase !== msg.phase ||
      h.start !== msg.start ||
      h.count !== msg.count
    )
      throw bad(
        `the slot holds step ${h.step} ${h.phase} [${h.start}, +${h.count}) seq ${h.seq}, not what was announced`,
      );
    const n = MANIFESTS[h.phase].size;
    const payload = link.slot.payload(h.bytes);
    const grad = gradOf(h.dtype, payload, n, h.exceptions, h.scaleExp);
    if (typeof grad === 'string') throw bad(grad);
    const { lossSum, dRealSum, dFakeSum } = h;
    const id = { step: h.step, phase: h.phase, start: h.start, count: h.count };
    return { t: 'result', ...id, grad, lossSum, dRealSum, dFakeSum, computeMs: msg.computeMs };
  }

  /** Where version `version` of `net` is to be written (marked as being written). */
  beginWeights(net: NetName, version: number): Float32Array {
    this.weights.begin(net, version);
    return this.weights.data(net, version);
  }

  endWeights(net: NetName, version: number): void {
    this.weights.end(net, version);
  }

  /** A session left: its slot goes. */
  drop(session: WorkerSession): void {
    this.links.get(session)?.slot.segment.remove();
    this.links.delete(session);
  }

  /** Removes every segment (idempotent). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const link of this.links.values()) link.slot.segment.remove();
    this.links.clear();
    this.weights.segment.remove();
  }
}

/** A slot's payload as the run's dtype, checked for size; a reason when it does not fit. */
function gradOf(dtype: GradDtype, p: Uint8Array, n: number, exceptions: number, scaleExp: number): ResultGrad | string {
  const view = <T>(ctor: new (b: ArrayBufferLike, o: number, l: number) => T, at: number, length: number): T =>
    new ctor(p.buffer, p.byteOffset + at, length);
  switch (dtype) {
    case 'exact': {
      if (exceptions > n || p.byteLength !== 4 * n + 8 * exceptions)
        return `${p.byteLength} bytes for ${n} values and ${exceptions} wide ones`;
      const exIndex = view(Uint32Array, 4 * n, exceptions);
      for (let k = 0; k < exceptions; k++)
        if (exIndex[k]! >= n || (k > 0 && exIndex[k]! <= exIndex[k - 1]!))
          return 'exception indices must increase strictly';
      return {
        dtype,
        total: { low: view(Int32Array, 0, n), exIndex, exHigh: view(Int32Array, 4 * n + 4 * exceptions, exceptions) },
      };
    }
    case 'f32':
      if (p.byteLength !== 4 * n) return `${p.byteLength} bytes for ${n} float32`;
      return { dtype, values: view(Float32Array, 0, n).slice() };
    case 'f16':
    case 'bf16': {
      if (p.byteLength !== 2 * n) return `${p.byteLength} bytes for ${n} 16-bit values`;
      const values = view(Uint16Array, 0, n).slice();
      if (dtype === 'f16' && !(Math.abs(scaleExp) <= 64)) return `an f16 scale of 2^${scaleExp}`;
      return dtype === 'f16' ? { dtype, values, scaleExp } : { dtype, values };
    }
    default: {
      const never: never = dtype;
      return `unknown dtype ${never}`;
    }
  }
}
