/**
 * Seeded, counter-based random streams (Philox4x32-10, Salmon et al. 2011, as in Random123 and
 * PyTorch's CUDA generator). A counter-based generator has no state to carry: the value for a
 * coordinate is a pure function of (seed, purpose, step, sample, block). That is what makes
 * ganfleet exact: a sample's noise is the same whichever worker draws it, and a recovered or
 * re-dispatched shard draws exactly what the lost one would have.
 */

/** What a stream is for; part of the key so that streams never overlap. */
export const Purpose = {
  /** z for the discriminator phase of a step. */
  NOISE_DIS: 0,
  /** z for the generator phase of a step (fresh z, as in the seed). */
  NOISE_GEN: 1,
  /** The per-epoch sample permutation. */
  PERMUTATION: 2,
  /** Initial weights. */
  INIT: 3,
  /** The fixed z of the sample grids, so that epochs compare. */
  SAMPLE_GRID: 4,
  /** The fixed z of the sample-quality evaluation (coordinator/eval/), so that epochs compare. */
  EVAL: 5,
  /** Training the evaluation's MNIST classifier: initial weights, sample order, augmentation. */
  CLASSIFIER: 6,
} as const;
export type PurposeValue = (typeof Purpose)[keyof typeof Purpose];

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

/** High 32 bits of the 64-bit product of two uint32s (JS numbers lose bits past 2^53). */
function mulhi32(a: number, b: number): number {
  const aL = a & 0xffff;
  const aH = a >>> 16;
  const bL = b & 0xffff;
  const bH = b >>> 16;
  const ll = aL * bL;
  const lh = aL * bH;
  const hl = aH * bL;
  const mid = (ll >>> 16) + (lh & 0xffff) + (hl & 0xffff);
  return (aH * bH + (lh >>> 16) + (hl >>> 16) + (mid >>> 16)) >>> 0;
}

/**
 * Philox4x32-10 block function: four uint32 counter words and two key words in, four uint32 out.
 * Writes into `out` (length ≥ 4) to keep hot loops allocation-free.
 */
export function philox4x32(
  c0: number,
  c1: number,
  c2: number,
  c3: number,
  k0: number,
  k1: number,
  out: Uint32Array,
): void {
  for (let r = 0; r < 10; r++) {
    const hi0 = mulhi32(M0, c0);
    const lo0 = Math.imul(M0, c0) >>> 0;
    const hi1 = mulhi32(M1, c2);
    const lo1 = Math.imul(M1, c2) >>> 0;
    c0 = (hi1 ^ c1 ^ k0) >>> 0;
    c1 = lo1;
    c2 = (hi0 ^ c3 ^ k1) >>> 0;
    c3 = lo0;
    k0 = (k0 + W0) >>> 0;
    k1 = (k1 + W1) >>> 0;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

/** Checks that a seed is usable as a Philox key word. */
export function assertSeed(seed: number): void {
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new RangeError(`seed must be an integer in [0, 4294967295], got ${seed}`);
  }
}

const TWO_PI = 2 * Math.PI;
const INV_2_32 = 1 / 4294967296;

/**
 * Standard normals for one sample: `out.length` values keyed by (seed, purpose, step, sample).
 * Box–Muller on pairs of 32-bit uniforms in (0, 1); computed in float64 and rounded once when
 * stored. V8's Math.log/cos/sin are fdlibm ports, so every machine draws the same values.
 */
export function normalsFor(
  seed: number,
  purpose: PurposeValue,
  step: number,
  sample: number,
  out: Float32Array | Float64Array,
): void {
  const words = new Uint32Array(4);
  const n = out.length;
  for (let block = 0, i = 0; i < n; block++) {
    philox4x32(sample >>> 0, block, step >>> 0, purpose, seed >>> 0, 0x67616e66, words);
    for (let p = 0; p < 4 && i < n; p += 2) {
      const u1 = (words[p]! + 0.5) * INV_2_32;
      const u2 = (words[p + 1]! + 0.5) * INV_2_32;
      const r = Math.sqrt(-2 * Math.log(u1));
      out[i++] = r * Math.cos(TWO_PI * u2);
      if (i < n) out[i++] = r * Math.sin(TWO_PI * u2);
    }
  }
}

/**
 * Fills `out` (count × dim, row-major) with the normals of samples `first … first+count-1`.
 * This is the z of one shard: the sample index is the position in the step's global batch.
 */
export function noiseBlock(
  seed: number,
  purpose: PurposeValue,
  step: number,
  first: number,
  count: number,
  dim: number,
  out?: Float32Array,
): Float32Array {
  const z = out ?? new Float32Array(count * dim);
  for (let k = 0; k < count; k++) normalsFor(seed, purpose, step, first + k, z.subarray(k * dim, (k + 1) * dim));
  return z;
}

/**
 * Uniform floats in [lo, hi) for one stream (e.g. one parameter's initial values), keyed by
 * (seed, purpose, id). 32-bit resolution is ample for initialisation.
 */
export function uniforms(
  seed: number,
  purpose: PurposeValue,
  id: number,
  lo: number,
  hi: number,
  out: Float32Array,
): void {
  const words = new Uint32Array(4);
  const span = hi - lo;
  for (let block = 0, i = 0; i < out.length; block++) {
    philox4x32(block, 0, id >>> 0, purpose, seed >>> 0, 0x67616e66, words);
    for (let p = 0; p < 4 && i < out.length; p++) out[i++] = lo + span * (words[p]! * INV_2_32);
  }
}

/**
 * The permutation of `n` sample indices for one epoch (Fisher–Yates driven by Philox keyed by
 * seed and epoch). Every process computes the same order, so the coordinator only sends indices.
 */
export function epochPermutation(seed: number, epoch: number, n: number): Uint32Array {
  const perm = new Uint32Array(n);
  for (let i = 0; i < n; i++) perm[i] = i;
  const words = new Uint32Array(4);
  for (let i = n - 1, block = 0; i > 0; block++) {
    philox4x32(block, 0, epoch >>> 0, Purpose.PERMUTATION, seed >>> 0, 0x67616e66, words);
    for (let p = 0; p < 4 && i > 0; p++, i--) {
      // Multiply-shift maps a uint32 onto [0, i]; its bias (< 2^-16 for MNIST) does not matter here.
      const j = Math.floor(words[p]! * (i + 1) * INV_2_32);
      const t = perm[i]!;
      perm[i] = perm[j]!;
      perm[j] = t;
    }
  }
  return perm;
}
