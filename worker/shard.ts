/**
 * One assigned shard, computed and answered: the pixels and noise are derived locally from the
 * assignment's coordinates, the step runs, and the answer frame goes out in the run's wire dtype
 * (exact integer totals, or lossy floats) — or, when the sums could not be formed, a `failed` frame
 * saying why.
 */
import { CloseCode, ProtocolError } from '../shared/errors.js';
import { type FixedWire, TARGET_BITS } from '../shared/fixed.js';
import type { MnistSet } from '../shared/mnist.js';
import { IMAGE_SIZE, MANIFESTS, type NetName, Z_DIM } from '../shared/model.js';
import { gatherImages } from '../shared/pixels.js';
import {
  type AssignMessage,
  encode,
  encodeLossyResult,
  type Failure,
  lossyGrad,
  type ResultGrad,
  type RunConfig,
  type ShardId,
} from '../shared/protocol.js';
import type { LossyDtype } from '../shared/dtype.js';
import type { ShmLink } from './shm-link.js';
import { Purpose, noiseBlock } from '../shared/random.js';
import type { ExactEngine } from './exact-step.js';
import type { TrainStep } from './train-step.js';

/** Spoils a shard's input (its real images in the D phase, its noise in the G phase): fault injection. */
export type Spoil = (z: Float32Array) => void;

export class ShardComputer {
  private readonly exact: ExactEngine | undefined;

  constructor(
    private readonly data: MnistSet,
    private readonly step: TrainStep,
    private readonly config: RunConfig,
    /** The run's pixel scaling (shared/pixels.ts pixelTable). */
    private readonly table: Float32Array,
    /** Exact runs: how a shard's exact sums are computed (worker/exact-step.ts, worker/kernels/native-exact.ts). */
    exact: ExactEngine | undefined,
  ) {
    if ((config.gradDtype === 'exact') !== (exact !== undefined)) throw new Error('an exact run needs an exact engine');
    this.exact = exact;
  }

  /** Replaces a network's weights in whatever computes the shards. */
  setWeights(net: NetName, flat: Float32Array): void {
    if (this.exact) this.exact.setWeights(net, flat);
    else this.step.setWeights(net, flat);
  }

  /** Computes the shard; `spoil` may change its input first (fault injection). */
  answer(a: AssignMessage, spoil?: Spoil): ShardAnswer {
    const cfg = this.config;
    const t0 = performance.now();
    const real = a.phase === 'dis' ? this.pixels(a) : undefined;
    const purpose = a.phase === 'dis' ? Purpose.NOISE_DIS : Purpose.NOISE_GEN;
    const z = noiseBlock(cfg.seed, purpose, a.step, a.start, a.count, Z_DIM);
    spoil?.(real ?? z);
    const id = { step: a.step, phase: a.phase, start: a.start, count: a.count };
    const dtype = cfg.gradDtype;
    if (dtype === 'exact') {
      const expected = MANIFESTS[a.phase].params.length;
      if (a.shifts.length !== expected)
        throw new ProtocolError(
          'ERR_BAD_FRAME',
          `an exact shard needs ${expected} shifts, got ${a.shifts.length}`,
          CloseCode.BAD_FRAME,
        );
      const r = real
        ? this.exact!.discriminator(real, z, a.count, a.shifts)
        : this.exact!.generator(z, a.count, a.shifts);
      if (!r.ok) return { kind: 'failed', id, reason: r.reason, tensor: r.tensor };
      const { total, lossSum, dRealSum, dFakeSum } = r;
      return { kind: 'exact', id, total, stats: { lossSum, dRealSum, dFakeSum }, computeMs: performance.now() - t0 };
    }
    const r = real ? this.step.discriminatorPhase(real, z, a.count) : this.step.generatorPhase(z, a.count);
    const { grad, lossSum, dRealSum, dFakeSum } = r;
    const stats = { lossSum, dRealSum, dFakeSum };
    return { kind: 'lossy', id, values: grad, dtype, stats, computeMs: performance.now() - t0 };
  }

  /** The shard's real images, scaled as the run says. */
  private pixels(a: AssignMessage): Float32Array {
    const n = this.data.count;
    for (const i of a.indices)
      if (i >= n)
        throw new ProtocolError(
          'ERR_BAD_FRAME',
          `sample index ${i} is outside the dataset (${n} images)`,
          CloseCode.BAD_FRAME,
        );
    return gatherImages(this.data.images, a.indices, this.table, new Float32Array(a.count * IMAGE_SIZE));
  }
}

/**
 * Benchmarks (`syntheticComputeMs`): the answer without tfjs, deterministic sums (a fixed pattern, the
 * shard's share of the batch) in the run's wire dtype, so that the coordinator and the wire can be
 * measured with many workers on one machine.
 */
export function syntheticAnswer(a: AssignMessage, config: RunConfig, computeMs: number): ShardAnswer {
  const id = { step: a.step, phase: a.phase, start: a.start, count: a.count };
  const stats = { lossSum: 0.7 * a.count, dRealSum: a.phase === 'dis' ? 0.5 * a.count : 0, dFakeSum: 0.5 * a.count };
  if (config.gradDtype === 'exact') {
    const q = (x: number) => Math.round(x * 2 ** 24);
    const exact = { lossSum: q(stats.lossSum), dRealSum: q(stats.dRealSum), dFakeSum: q(stats.dFakeSum) };
    return { kind: 'exact', id, total: syntheticTotal(a.phase, a.count, config.batchSize), stats: exact, computeMs };
  }
  return { kind: 'lossy', id, values: syntheticGrad(a.phase, a.count), dtype: config.gradDtype, stats, computeMs };
}

/** A shard's computed answer, before it goes out. */
export type ShardAnswer =
  | { kind: 'exact'; id: ShardId; total: FixedWire; stats: Stats; computeMs: number }
  | { kind: 'lossy'; id: ShardId; values: Float32Array; dtype: LossyDtype; stats: Stats; computeMs: number }
  | { kind: 'failed'; id: ShardId; reason: Failure; tensor: number };

interface Stats {
  lossSum: number;
  dRealSum: number;
  dFakeSum: number;
}

/**
 * The frame that carries an answer: the whole result on the socket, or — for a worker with a
 * shared-memory link — the result written into its slot and a small notice on the socket.
 */
export function answerFrame(ans: ShardAnswer, link?: ShmLink, midWrite?: () => void): Buffer {
  switch (ans.kind) {
    case 'failed':
      return encode({ t: 'failed', ...ans.id, reason: ans.reason, tensor: ans.tensor });
    case 'exact': {
      const grad: ResultGrad = { dtype: 'exact', total: ans.total };
      if (link)
        return encode({
          t: 'shm-result',
          ...ans.id,
          seq: link.writeResult(ans.id, grad, ans.stats, midWrite),
          computeMs: ans.computeMs,
        });
      return encode({ t: 'result', ...ans.id, grad, ...ans.stats, computeMs: ans.computeMs });
    }
    case 'lossy': {
      if (link) {
        const seq = link.writeResult(ans.id, lossyGrad(ans.values, ans.dtype), ans.stats, midWrite);
        return encode({ t: 'shm-result', ...ans.id, seq, computeMs: ans.computeMs });
      }
      return encodeLossyResult({ ...ans.id, ...ans.stats, computeMs: ans.computeMs }, ans.values, ans.dtype);
    }
    default: {
      const never: never = ans;
      throw new Error(`unknown answer ${JSON.stringify(never)}`);
    }
  }
}

const syntheticBase: Partial<Record<NetName, Float32Array>> = {};
const syntheticOut: Partial<Record<NetName, Float32Array>> = {};

/** count × a fixed pattern of small values (the same for every worker and step). */
function syntheticGrad(net: NetName, count: number): Float32Array {
  const n = MANIFESTS[net].size;
  const base = (syntheticBase[net] ??= Float32Array.from(
    { length: n },
    (_, i) => (((i * 2654435761) >>> 0) / 2 ** 32 - 0.5) * 1e-3,
  ));
  const out = (syntheticOut[net] ??= new Float32Array(n));
  for (let i = 0; i < n; i++) out[i] = base[i]! * count;
  return out;
}

const syntheticTotals: Partial<Record<NetName, { count: number; batch: number; total: FixedWire }>> = {};

/** The synthetic total of a whole batch peaks just under 2^TARGET_BITS quanta, as real ones do. */
const SYNTHETIC_BATCH_PEAK = 2 ** TARGET_BITS - 2 ** 16;

/**
 * The synthetic pattern as exact quanta, as wide as real totals: the coordinator sets each tensor's
 * quantum so that the whole batch's largest |total| lands in [2^(TARGET_BITS−1), 2^TARGET_BITS)
 * (shared/fixed.ts nextShifts), and a shard's total is its share of that: 4-byte lanes where few
 * workers share a batch, 3 where many do, as with real workers (docs/benchmarks.md). A pattern that
 * ignored the quanta drove the shifts up every phase, and with them Adam's steps (the weights' bytes)
 * towards nothing. The same for every shard of a size, so made once per network, size and batch
 * (wires are never written to): a benchmark's workers spend their CPU on what real ones do too.
 */
export function syntheticTotal(net: NetName, count: number, batch: number): FixedWire {
  const cached = syntheticTotals[net];
  if (cached?.count === count && cached.batch === batch) return cached.total;
  const n = MANIFESTS[net].size;
  const low = new Int32Array(n);
  // The pattern lies in [−2048, 2048): its share of the batch's peak, in whole quanta.
  const scale = (SYNTHETIC_BATCH_PEAK / 2048) * (count / batch);
  for (let i = 0; i < n; i++) low[i] = Math.round(((((i * 2654435761) >>> 0) >>> 20) - 2048) * scale);
  const total = { low, exIndex: new Uint32Array(0), exHigh: new Int32Array(0) };
  syntheticTotals[net] = { count, batch, total };
  return total;
}
