/**
 * The sample-quality statistics, in float64:
 *
 * - Fréchet distance between two Gaussians fitted to feature sets (the FID formula of Heusel et al.
 *   2017, here on the penultimate layer of ganfleet's MNIST classifier):
 *   ‖μ₁ − μ₂‖² + Tr(Σ₁) + Tr(Σ₂) − 2·Tr((Σ₁^½ Σ₂ Σ₁^½)^½). Both square roots are of symmetric
 *   positive semi-definite matrices, taken through a Jacobi eigen-decomposition (eigenvalues below 0
 *   from rounding count as 0).
 * - The classifier score exp(E_x KL(p(y|x) ‖ p(y))) (the "Inception score" with this classifier):
 *   1 when every sample gets the same class distribution, 10 at most.
 * - The share of samples predicted as each digit.
 */
import { Act, type Gemm } from './gemm.js';

/** Mean and covariance (unbiased, n − 1) of n feature vectors of dimension d. */
export interface FeatureStats {
  n: number;
  d: number;
  mean: Float64Array;
  /** d × d, row-major. */
  cov: Float64Array;
}

/** Rows per sgemm block of the covariance: float32 sums over this many rows, float64 across blocks. */
const COV_BLOCK = 128;

/**
 * Fits mean and covariance to `n` rows of `d` values. The mean is summed in float64. With `gemm`,
 * the products of the centred rows are summed by sgemm in blocks of 128 rows (float32 within a
 * block, relative error ~1e-6) and the blocks in float64; without it, all in float64.
 */
export function featureStats(x: Float32Array, n: number, d: number, gemm?: Gemm): FeatureStats {
  if (n < 2) throw new RangeError(`feature statistics need at least 2 samples, got ${n}`);
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j]! += x[i * d + j]!;
  for (let j = 0; j < d; j++) mean[j]! /= n;
  const cov = new Float64Array(d * d);
  if (gemm) {
    const centred = new Float32Array(COV_BLOCK * d);
    const block = new Float32Array(d * d);
    for (let first = 0; first < n; first += COV_BLOCK) {
      const rows = Math.min(COV_BLOCK, n - first);
      for (let i = 0; i < rows; i++)
        for (let j = 0; j < d; j++) centred[i * d + j] = x[(first + i) * d + j]! - mean[j]!;
      gemm(true, false, d, d, rows, centred, centred, block, null, Act.none);
      for (let k = 0; k < d * d; k++) cov[k]! += block[k]!;
    }
    for (let j = 0; j < d; j++)
      for (let k = j; k < d; k++) {
        const v = (0.5 * (cov[j * d + k]! + cov[k * d + j]!)) / (n - 1);
        cov[j * d + k] = v;
        cov[k * d + j] = v;
      }
    return { n, d, mean, cov };
  }
  const c = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) c[j] = x[i * d + j]! - mean[j]!;
    for (let j = 0; j < d; j++) {
      const cj = c[j]!;
      if (cj === 0) continue;
      const row = j * d;
      for (let k = j; k < d; k++) cov[row + k]! += cj * c[k]!;
    }
  }
  for (let j = 0; j < d; j++)
    for (let k = j; k < d; k++) {
      const v = cov[j * d + k]! / (n - 1);
      cov[j * d + k] = v;
      cov[k * d + j] = v;
    }
  return { n, d, mean, cov };
}

/**
 * Eigen-decomposition of a symmetric d × d matrix by cyclic Jacobi rotations: returns the
 * eigenvalues and the eigenvectors as the columns of a d × d row-major matrix. `a` is not changed.
 */
export function symmetricEigen(a: Float64Array, d: number): { values: Float64Array; vectors: Float64Array } {
  const m = Float64Array.from(a);
  const v = new Float64Array(d * d);
  for (let i = 0; i < d; i++) v[i * d + i] = 1;
  let norm = 0;
  for (let i = 0; i < d * d; i++) norm += m[i]! * m[i]!;
  const tol = 1e-30 * norm;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < d; p++) for (let q = p + 1; q < d; q++) off += m[p * d + q]! * m[p * d + q]!;
    if (off <= tol) break;
    for (let p = 0; p < d; p++) {
      for (let q = p + 1; q < d; q++) {
        const apq = m[p * d + q]!;
        if (apq === 0) continue;
        const app = m[p * d + p]!;
        const aqq = m[q * d + q]!;
        // The rotation that zeroes m[p][q] (Numerical Recipes' stable form).
        const theta = (aqq - app) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < d; k++) {
          const mkp = m[k * d + p]!;
          const mkq = m[k * d + q]!;
          m[k * d + p] = c * mkp - s * mkq;
          m[k * d + q] = s * mkp + c * mkq;
        }
        for (let k = 0; k < d; k++) {
          const mpk = m[p * d + k]!;
          const mqk = m[q * d + k]!;
          m[p * d + k] = c * mpk - s * mqk;
          m[q * d + k] = s * mpk + c * mqk;
        }
        m[p * d + q] = 0;
        m[q * d + p] = 0;
        for (let k = 0; k < d; k++) {
          const vkp = v[k * d + p]!;
          const vkq = v[k * d + q]!;
          v[k * d + p] = c * vkp - s * vkq;
          v[k * d + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const values = new Float64Array(d);
  for (let i = 0; i < d; i++) values[i] = m[i * d + i]!;
  return { values, vectors: v };
}

/** The principal square root of a symmetric positive semi-definite matrix (negative eigenvalues → 0). */
export function sqrtPsd(a: Float64Array, d: number): Float64Array {
  const { values, vectors } = symmetricEigen(a, d);
  const out = new Float64Array(d * d);
  for (let k = 0; k < d; k++) {
    const s = Math.sqrt(Math.max(values[k]!, 0));
    if (s === 0) continue;
    for (let i = 0; i < d; i++) {
      const vik = vectors[i * d + k]! * s;
      if (vik === 0) continue;
      for (let j = 0; j < d; j++) out[i * d + j]! += vik * vectors[j * d + k]!;
    }
  }
  return out;
}

function matMul(a: Float64Array, b: Float64Array, d: number): Float64Array {
  const out = new Float64Array(d * d);
  for (let i = 0; i < d; i++)
    for (let k = 0; k < d; k++) {
      const aik = a[i * d + k]!;
      if (aik === 0) continue;
      for (let j = 0; j < d; j++) out[i * d + j]! += aik * b[k * d + j]!;
    }
  return out;
}

/** Fréchet distance between the Gaussians of two feature sets (see the module comment). */
export function frechetDistance(s1: FeatureStats, s2: FeatureStats): number {
  const d = s1.d;
  if (s2.d !== d) throw new RangeError(`feature dimensions differ: ${d} and ${s2.d}`);
  let meanTerm = 0;
  for (let j = 0; j < d; j++) meanTerm += (s1.mean[j]! - s2.mean[j]!) ** 2;
  let traces = 0;
  for (let j = 0; j < d; j++) traces += s1.cov[j * d + j]! + s2.cov[j * d + j]!;
  const r = sqrtPsd(s1.cov, d);
  const inner = matMul(matMul(r, s2.cov, d), r, d);
  // Symmetrise away rounding before the second decomposition.
  for (let i = 0; i < d; i++)
    for (let j = i + 1; j < d; j++) {
      const v = 0.5 * (inner[i * d + j]! + inner[j * d + i]!);
      inner[i * d + j] = v;
      inner[j * d + i] = v;
    }
  const { values } = symmetricEigen(inner, d);
  let cross = 0;
  for (let k = 0; k < d; k++) cross += Math.sqrt(Math.max(values[k]!, 0));
  return Math.max(meanTerm + traces - 2 * cross, 0);
}

/** Class probabilities of `n` rows of `classes` logits (softmax in float64). */
export function softmaxRows(logits: Float32Array, n: number, classes: number): Float64Array {
  const p = new Float64Array(n * classes);
  for (let i = 0; i < n; i++) {
    const o = i * classes;
    let max = -Infinity;
    for (let c = 0; c < classes; c++) max = Math.max(max, logits[o + c]!);
    let sum = 0;
    for (let c = 0; c < classes; c++) sum += p[o + c] = Math.exp(logits[o + c]! - max);
    for (let c = 0; c < classes; c++) p[o + c]! /= sum;
  }
  return p;
}

/** exp(E_x KL(p(y|x) ‖ p(y))) from rows of class probabilities. */
export function classifierScore(p: Float64Array, n: number, classes: number): number {
  const marginal = new Float64Array(classes);
  for (let i = 0; i < n; i++) for (let c = 0; c < classes; c++) marginal[c]! += p[i * classes + c]! / n;
  let kl = 0;
  for (let i = 0; i < n; i++)
    for (let c = 0; c < classes; c++) {
      const q = p[i * classes + c]!;
      if (q > 0) kl += q * (Math.log(q) - Math.log(marginal[c]!));
    }
  return Math.exp(kl / n);
}

/** The share of rows whose most probable class is each class (ties: the lower class). */
export function classShares(p: Float64Array, n: number, classes: number): number[] {
  const counts = new Array<number>(classes).fill(0);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (p[i * classes + c]! > p[i * classes + best]!) best = c;
    counts[best]!++;
  }
  return counts.map((k) => k / n);
}

/** A class counts as produced when it gets at least this share of the samples. */
export const DIGIT_SHARE_MIN = 0.05;
