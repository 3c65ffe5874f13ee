/**
 * A shard's sums for the exact reduction (shared/fixed.ts): the shard is cut into chunks of
 * `chunk` samples, each chunk's float32 gradient sum is turned into integer quanta, and the
 * integers are added. A chunk's sum must not depend on the shard around it: where the backend's
 * products give every row the same bits whatever rows surround it (checked once, `rowsIndependent`),
 * the activations are computed for the whole shard and only the weight gradients per chunk;
 * elsewhere every chunk is computed on its own.
 */
import {
  compact,
  type FixedKernels,
  fixedKernels,
  FixedSum,
  layoutOf,
  STATS_SHIFT,
  statQuanta,
} from '../shared/fixed.js';
import { IMAGE_SIZE, initParams, type NetName, Z_DIM } from '../shared/model.js';
import type { Failure } from '../shared/protocol.js';
import type { FixedWire } from '../shared/fixed.js';
import { Purpose, noiseBlock, uniforms } from '../shared/random.js';
import { type ChunkedResult, STATS, type TrainStep } from './train-step.js';

/** A shard's exact sums, or why they could not be formed. */
export type ExactOutcome =
  | {
      readonly ok: true;
      readonly total: FixedWire;
      /** Σ loss, Σ D(real), Σ D(G(z)) in quanta of 2^−STATS_SHIFT. */
      readonly lossSum: number;
      readonly dRealSum: number;
      readonly dFakeSum: number;
    }
  | { readonly ok: false; readonly reason: Failure; readonly tensor: number };

/** What computes a shard's exact sums: tfjs (ExactStep), or the C engine (worker/kernels/native-exact.ts). */
export interface ExactEngine {
  readonly name: string;
  /** Replaces a network's weights (flat, manifest layout). */
  setWeights(net: NetName, flat: Float32Array): void;
  discriminator(real: Float32Array, z: Float32Array, n: number, shifts: Int32Array): ExactOutcome;
  generator(z: Float32Array, n: number, shifts: Int32Array): ExactOutcome;
}

/** The exact sums through tfjs: any backend, the chunk's products as tfjs computes them. */
export class ExactStep implements ExactEngine {
  readonly name = 'tfjs';
  private readonly sums: Record<NetName, FixedSum>;

  constructor(
    private readonly step: TrainStep,
    /** Every row's result is the same whatever rows surround it (else: chunk by chunk). */
    readonly rowsIndependent: boolean,
    readonly chunk: number,
    private readonly kernels: FixedKernels = fixedKernels,
  ) {
    const m = step.model.manifests;
    this.sums = { gen: new FixedSum(m.gen.size), dis: new FixedSum(m.dis.size) };
  }

  setWeights(net: NetName, flat: Float32Array): void {
    this.step.setWeights(net, flat);
  }

  /** The D phase's exact sums for `n` samples. */
  discriminator(real: Float32Array, z: Float32Array, n: number, shifts: Int32Array): ExactOutcome {
    return this.run('dis', n, shifts, (s, c) =>
      this.step.discriminatorChunks(
        real.subarray(s * IMAGE_SIZE, (s + c) * IMAGE_SIZE),
        z.subarray(s * Z_DIM, (s + c) * Z_DIM),
        c,
        this.chunk,
      ),
    );
  }

  /** The G phase's exact sums for `n` samples. */
  generator(z: Float32Array, n: number, shifts: Int32Array): ExactOutcome {
    return this.run('gen', n, shifts, (s, c) =>
      this.step.generatorChunks(z.subarray(s * Z_DIM, (s + c) * Z_DIM), c, this.chunk),
    );
  }

  private run(
    net: NetName,
    n: number,
    shifts: Int32Array,
    compute: (start: number, count: number) => ChunkedResult,
  ): ExactOutcome {
    const layout = layoutOf(this.step.model.manifests[net], shifts);
    const sum = this.sums[net];
    sum.clear();
    const stats = [0, 0, 0];
    // Whole shard at once where rows are independent, else one chunk per call.
    const span = this.rowsIndependent ? n : this.chunk;
    for (let s = 0; s < n; s += span) {
      const r = compute(s, Math.min(span, n - s));
      const status = this.kernels.accumulate(sum, r.grads, r.chunks, layout);
      if (!status.ok) return status;
      for (let k = 0; k < r.chunks * STATS; k++) {
        const x = r.stats[k]!;
        if (!(Math.abs(x) < 2 ** (51 - STATS_SHIFT))) return { ok: false, reason: 'non-finite', tensor: 0 };
        stats[k % STATS]! += statQuanta(x);
      }
    }
    return {
      ok: true,
      total: compact(sum, this.kernels),
      lossSum: stats[0]!,
      dRealSum: stats[1]!,
      dFakeSum: stats[2]!,
    };
  }
}

/**
 * Whether the backend gives a chunk the same bits inside a larger shard as alone: computes a few
 * chunks both ways on made-up weights and data and compares (a few milliseconds, once). The step's
 * weights are replaced; set the real ones afterwards.
 */
export function rowsIndependent(step: TrainStep, chunk: number): boolean {
  const n = 3 * chunk;
  step.setWeights('gen', initParams('gen', 1, step.model));
  step.setWeights('dis', initParams('dis', 1, step.model));
  const real = new Float32Array(n * IMAGE_SIZE);
  uniforms(1, Purpose.INIT, 4242, -1, 1, real);
  const z = noiseBlock(1, Purpose.NOISE_DIS, 0, 0, n, Z_DIM);
  const same = (a: Float32Array, b: Float32Array) =>
    Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
  const d = step.discriminatorChunks(real, z, n, chunk);
  const g = step.generatorChunks(z, n, chunk);
  const size = { dis: d.grads.length / 3, gen: g.grads.length / 3 };
  for (const k of [1, 2]) {
    const dk = step.discriminatorChunks(
      real.subarray(k * chunk * IMAGE_SIZE, (k + 1) * chunk * IMAGE_SIZE),
      z.subarray(k * chunk * Z_DIM, (k + 1) * chunk * Z_DIM),
      chunk,
      chunk,
    );
    if (!same(dk.grads, d.grads.subarray(k * size.dis, (k + 1) * size.dis))) return false;
    const gk = step.generatorChunks(z.subarray(k * chunk * Z_DIM, (k + 1) * chunk * Z_DIM), chunk, chunk);
    if (!same(gk.grads, g.grads.subarray(k * size.gen, (k + 1) * size.gen))) return false;
  }
  return true;
}
