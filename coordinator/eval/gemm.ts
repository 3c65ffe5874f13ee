/**
 * The one matrix product the sample-quality evaluation needs (row-major C = op(A)·op(B) + bias,
 * then an activation), on OpenBLAS through the workers' N-API addon (native/ganfleet_blas.c) where
 * it was built, and in plain JavaScript otherwise (same results up to float rounding, about 30×
 * slower). The addon is loaded without tfjs: the coordinator process has none.
 */
import { loadBlas } from '../../worker/kernels/blas-addon.js';

/** Activations applied after the product (the addon's codes). */
export const Act = { none: 0, relu: 1, tanh: 6 } as const;
export type ActCode = (typeof Act)[keyof typeof Act];

/**
 * C[m×n] = op(A)·op(B) (+ bias, a row vector of n) then `act`. op(A) is m×k (A stored k×m when
 * transA), op(B) is k×n (B stored n×k when transB). C is overwritten.
 */
export type Gemm = (
  transA: boolean,
  transB: boolean,
  m: number,
  n: number,
  k: number,
  a: Float32Array,
  b: Float32Array,
  c: Float32Array,
  bias: Float32Array | null,
  act: ActCode,
) => void;

/** The product in JavaScript, accumulating each row in float64 before it is stored. */
export const jsGemm: Gemm = (transA, transB, m, n, k, a, b, c, bias, act) => {
  const row = new Float64Array(n);
  for (let i = 0; i < m; i++) {
    if (bias) for (let j = 0; j < n; j++) row[j] = bias[j]!;
    else row.fill(0);
    for (let p = 0; p < k; p++) {
      const av = transA ? a[p * m + i]! : a[i * k + p]!;
      if (av === 0) continue;
      if (transB) for (let j = 0; j < n; j++) row[j]! += av * b[j * k + p]!;
      else {
        const bo = p * n;
        for (let j = 0; j < n; j++) row[j]! += av * b[bo + j]!;
      }
    }
    const co = i * n;
    if (act === Act.relu) for (let j = 0; j < n; j++) c[co + j] = Math.max(row[j]!, 0);
    else if (act === Act.tanh) for (let j = 0; j < n; j++) c[co + j] = Math.tanh(row[j]!);
    else for (let j = 0; j < n; j++) c[co + j] = row[j]!;
  }
};

/** How products run in this process: OpenBLAS (on `threads` threads) or JavaScript. */
export interface GemmChoice {
  gemm: Gemm;
  native: boolean;
  /** Why the addon is not used ('' when it is). */
  note: string;
}

/**
 * OpenBLAS's product where the addon loads (GANFLEET_NATIVE=0 turns it off), else JavaScript.
 * OpenBLAS's thread count is process-wide; the evaluation uses one thread, so that it takes one
 * core beside training and its sums are the same on every call.
 */
export function chooseGemm(opts: { native?: boolean; threads?: number } = {}): GemmChoice {
  if (opts.native === false) return { gemm: jsGemm, native: false, note: 'native kernels turned off' };
  const loaded = loadBlas();
  if (loaded.addon === null) return { gemm: jsGemm, native: false, note: loaded.error };
  const lib = loaded.addon;
  lib.setThreads(Math.max(1, Math.floor(opts.threads ?? 1)));
  return {
    gemm: (transA, transB, m, n, k, a, b, c, bias, act) => lib.gemm(transA, transB, m, n, k, a, b, c, bias, act, 0),
    native: true,
    note: '',
  };
}
