/**
 * Adam on flat Float32Arrays, with exactly `torch.optim.Adam`'s update (no weight decay, no
 * amsgrad): m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²; p ← p − (lr/(1−β1ᵗ)) · m / (√v/√(1−β2ᵗ) + ε).
 * Plain typed-array arithmetic (reduce-kernels.ts: native where built, bit-identical JavaScript
 * otherwise): the coordinator needs no tfjs and no GPU to own the weights.
 */
import { reduceKernels, type ReduceKernels } from './reduce-kernels.js';

export interface AdamOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
}

/** The seed's settings: lr 3e-4 and PyTorch's defaults for the rest. */
export const SEED_ADAM: AdamOptions = { lr: 3e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8 };

/** One network's optimizer state, as PyTorch keeps it per parameter (here over the flat buffer). */
export interface AdamState {
  /** exp_avg */
  m: Float32Array;
  /** exp_avg_sq */
  v: Float32Array;
  /** Steps taken so far (PyTorch's `step`). */
  step: number;
}

/** Fresh state for a network of `size` parameters. */
export function adamState(size: number): AdamState {
  return { m: new Float32Array(size), v: new Float32Array(size), step: 0 };
}

/**
 * Applies one Adam step in place to `params` from the averaged gradient `grad`, in float32
 * arithmetic operation for operation as PyTorch's single-tensor Adam on float32 parameters (which
 * may differ from it in the last bit where PyTorch's vectorized kernels fuse a multiply-add).
 */
export function adamStep(params: Float32Array, grad: Float32Array, state: AdamState, opts: AdamOptions): void {
  // Multiplying a float32 by 1 and rounding to float32 gives it back unchanged: the same arithmetic.
  adamStepFromSum(params, grad, 1, state, opts);
}

/**
 * `adamStep` on the mean gradient fround(sum[i] · (1/divisor)), formed on the fly from the reducer's
 * float64 sum: the same arithmetic, element for element, without a separate mean array and pass.
 */
export function adamStepFromSum(
  params: Float32Array,
  sum: Float64Array | Float32Array,
  divisor: number,
  state: AdamState,
  opts: AdamOptions,
  extra: {
    /** Also receives the new weights (an outgoing frame's payload). */ out?: Float32Array;
    kernels?: ReduceKernels;
  } = {},
): void {
  const n = params.length;
  if (sum.length !== n || state.m.length !== n || state.v.length !== n) {
    throw new RangeError(
      `adam: params ${n}, grad ${sum.length}, m ${state.m.length}, v ${state.v.length} must have equal lengths`,
    );
  }
  state.step += 1;
  const { lr, beta1, beta2, eps } = opts;
  const stepSize = lr / (1 - beta1 ** state.step);
  const bc2Sqrt = Math.sqrt(1 - beta2 ** state.step);
  (extra.kernels ?? reduceKernels).adam(
    params,
    state.m,
    state.v,
    sum,
    { divisor, stepSize, bc2Sqrt, beta1, beta2, c1: 1 - beta1, c2: 1 - beta2, eps },
    extra.out,
  );
}
