/**
 * One assigned shard, computed and answered: the pixels and noise are derived locally from the
 * assignment's coordinates, the step runs, and the answer frame goes out in the run's wire dtype
 * (exact integer totals, or lossy floats) — or, when the sums could not be formed, a `failed` frame
 * saying why.
 */
import { CloseCode, ProtocolError } from '../shared/errors.js';
import type { FixedWire } from '../shared/fixed.js';
import type { MnistSet } from '../shared/mnist.js';
import { IMAGE_SIZE, MANIFESTS, type NetName, Z_DIM } from '../shared/model.js';
import { gatherImages } from '../shared/pixels.js';
import {
  type AssignMessage,
  encode,
  encodeLossyResult,
  type ResultMessage,
  type RunConfig,
} from '../shared/protocol.js';
import { Purpose, noiseBlock } from '../shared/random.js';
import { type ExactEngine, ExactStep } from './exact-step.js';
import { NativeExactStep } from './kernels/native-exact.js';
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
  answer(a: AssignMessage, spoil?: Spoil): Buffer {
    const cfg = this.config;
    const t0 = performance.now();
    const real = a.phase === 'dis' ? this.pixels(a) : undefined;
    const purpose = a.phase === 'dis' ? Purpose.NOISE_DIS : Purpose.NOISE_GEN;
    const z = noiseBlock(cfg.seed, purpose, a.step, a.start, a.count, Z_DIM);
    spoil?.(real ?? z);
    const head = { step: a.step, phase: a.phase, start: a.start, count: a.count };
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
      if (!r.ok) return encode({ t: 'failed', ...head, reason: r.reason, tensor: r.tensor });
      const { total, lossSum, dRealSum, dFakeSum } = r;
      const computeMs = performance.now() - t0;
      return encode({ t: 'result', ...head, grad: { dtype, total }, lossSum, dRealSum, dFakeSum, computeMs });
    }
    const r = real ? this.step.discriminatorPhase(real, z, a.count) : this.step.generatorPhase(z, a.count);
    const { grad, lossSum, dRealSum, dFakeSum } = r;
    return encodeLossyResult({ ...head, lossSum, dRealSum, dFakeSum, computeMs: performance.now() - t0 }, grad, dtype);
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
 * Benchmarks (`syntheticComputeMs`): the answer without tfjs, deterministic sums (count × a fixed
 * small pattern) in the run's wire dtype, so that the coordinator and the wire can be measured with
 * many workers on one machine.
 */
export function syntheticAnswer(a: AssignMessage, config: RunConfig, computeMs: number): Buffer {
  const head = { step: a.step, phase: a.phase, start: a.start, count: a.count, computeMs };
  const stats = { lossSum: 0.7 * a.count, dRealSum: a.phase === 'dis' ? 0.5 * a.count : 0, dFakeSum: 0.5 * a.count };
  if (config.gradDtype === 'exact') {
    const q = (x: number) => Math.round(x * 2 ** 24);
    const result: ResultMessage = {
      t: 'result',
      ...head,
      grad: { dtype: 'exact', total: syntheticTotal(a.phase, a.count) },
      lossSum: q(stats.lossSum),
      dRealSum: q(stats.dRealSum),
      dFakeSum: q(stats.dFakeSum),
    };
    return encode(result);
  }
  return encodeLossyResult({ ...head, ...stats }, syntheticGrad(a.phase, a.count), config.gradDtype);
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

/** The synthetic pattern as exact quanta: small integers, so it never needs the wide elements. */
function syntheticTotal(net: NetName, count: number): FixedWire {
  const n = MANIFESTS[net].size;
  const low = new Int32Array(n);
  for (let i = 0; i < n; i++) low[i] = ((((i * 2654435761) >>> 0) >>> 20) - 2048) * count;
  return { low, exIndex: new Uint32Array(0), exHigh: new Int32Array(0) };
}
