/**
 * The exact step in C (native/ganfleet_blas.c, `exactPhase`): a whole phase chunk by chunk, every
 * chunk on its own products with OpenBLAS on one thread, chunks spread over `threads` threads of
 * the addon's own, quanta added in C. The same answers as worker/exact-step.ts's definition of a
 * chunk (the tfjs path), computed without tfjs, in a fraction of its time.
 */
import { type FixedLayout, layoutOf } from '../../shared/fixed.js';
import { type Activation, LEAKY_SLOPE, type Model, type NetName } from '../../shared/model.js';
import type { ExactEngine, ExactOutcome } from '../exact-step.js';
import { ACTIVATION, type BlasAddon, loadBlas } from './blas-addon.js';

const CODE: Record<Activation, number> = {
  relu: ACTIVATION.relu,
  leaky_relu: ACTIVATION.leakyrelu,
  tanh: ACTIVATION.tanh,
  none: ACTIVATION.linear,
};

export class NativeExactStep implements ExactEngine {
  readonly name = 'native';
  private readonly weights: Record<NetName, Float32Array>;
  private readonly dims: Int32Array;
  /** Σ loss, Σ D(real), Σ D(G(z)) in quanta, and how many elements need their high word. */
  private readonly stats = new Float64Array(4);
  /** Room for the wide elements' indices and high words (every element at worst). */
  private readonly exIndex: Record<NetName, Uint32Array>;
  private readonly exHigh: Record<NetName, Int32Array>;

  constructor(
    private readonly lib: BlasAddon,
    readonly model: Model,
    readonly chunk: number,
    readonly threads: number,
  ) {
    const m = model.manifests;
    this.weights = { gen: new Float32Array(m.gen.size), dis: new Float32Array(m.dis.size) };
    this.exIndex = { gen: new Uint32Array(m.gen.size), dis: new Uint32Array(m.dis.size) };
    this.exHigh = { gen: new Int32Array(m.gen.size), dis: new Int32Array(m.dis.size) };
    const layers = [...model.architecture.gen, ...model.architecture.dis];
    this.dims = Int32Array.from([
      0,
      0,
      chunk,
      threads,
      model.architecture.gen.length,
      model.architecture.dis.length,
      ...layers.flatMap((l) => [l.inFeatures, l.outFeatures, CODE[l.activation]]),
    ]);
  }

  /** The engine where the addon is built (null elsewhere). */
  static load(model: Model, chunk: number, threads: number): NativeExactStep | null {
    const lib = loadBlas().addon;
    return lib === null ? null : new NativeExactStep(lib, model, chunk, Math.max(1, Math.min(16, threads)));
  }

  setWeights(net: NetName, flat: Float32Array): void {
    this.weights[net].set(flat);
  }

  discriminator(real: Float32Array, z: Float32Array, n: number, shifts: Int32Array): ExactOutcome {
    return this.run('dis', real, z, n, shifts);
  }

  generator(z: Float32Array, n: number, shifts: Int32Array): ExactOutcome {
    return this.run('gen', null, z, n, shifts);
  }

  private run(net: NetName, real: Float32Array | null, z: Float32Array, n: number, shifts: Int32Array): ExactOutcome {
    const layout: FixedLayout = layoutOf(this.model.manifests[net], shifts);
    // A fresh low-word array each phase: it becomes the result frame's payload source.
    const low = new Int32Array(this.model.manifests[net].size);
    this.dims[0] = net === 'dis' ? 0 : 1;
    this.dims[1] = n;
    const status = this.lib.exactPhase(
      this.dims,
      this.weights.gen,
      this.weights.dis,
      real,
      z,
      layout.segments,
      layout.shifts,
      low,
      this.exIndex[net],
      this.exHigh[net],
      this.stats,
      LEAKY_SLOPE,
    );
    if (status >= 0) return { ok: false, reason: status & 1 ? 'overflow' : 'non-finite', tensor: status >> 1 };
    const [lossSum, dRealSum, dFakeSum, wide] = this.stats as unknown as [number, number, number, number];
    const total = { low, exIndex: this.exIndex[net].slice(0, wide), exHigh: this.exHigh[net].slice(0, wide) };
    return { ok: true, total, lossSum, dRealSum, dFakeSum };
  }
}
