/**
 * The coordinator's two hot loops — adding a shard's gradient into the float64 sum, and Adam —
 * in two implementations with the same arithmetic: native (native/ganfleet_reduce.c, SIMD, built
 * at install where a C compiler is present) and plain JavaScript. Both do the same IEEE
 * operations in the same order, so the weights are bit-identical whichever runs
 * (tests/unit/reduce-kernels.test.ts checks it); the native one is several times faster.
 */
import { loadAddon } from '../shared/native-addon.js';
import type { GradDtype } from '../shared/dtype.js';
import { f16Table } from '../shared/dtype.js';

/** Wire dtype codes shared with the addon. */
const DTYPE_CODE: Record<GradDtype, number> = { f32: 0, f16: 1, bf16: 2 };

/** The constants of one Adam step (see optimizer.ts). */
export interface AdamConstants {
  divisor: number;
  stepSize: number;
  bc2Sqrt: number;
  beta1: number;
  beta2: number;
  c1: number;
  c2: number;
  eps: number;
}

export interface ReduceKernels {
  /** 'native' or 'js'. */
  readonly name: string;
  /**
   * acc[i] = (acc[i] unless first) + x₀[i] + x₁[i] + …, left to right in float64, xⱼ = grads[j][i]
   * as float32 (f16: times 2^−scaleExps[j]); one pass over acc for up to 64 shards. False when a
   * sum is NaN or ±Inf, which is so exactly when some shard holds a NaN or ±Inf (float32 values
   * cannot overflow a float64 sum); acc is then garbage and must be rebuilt by the caller.
   */
  add(
    acc: Float64Array,
    grads: readonly (Float32Array | Uint16Array)[],
    dtype: GradDtype,
    scaleExps: readonly number[],
    first: boolean,
  ): boolean;
  /** False when grad holds a NaN or ±Inf (for f16, whatever its scale). */
  finite(grad: Float32Array | Uint16Array, dtype: GradDtype): boolean;
  /**
   * One Adam step in place on params, m, v: PyTorch's float32 update on the mean gradient
   * fround(sum[i] · (1/divisor)) (a product: a double division costs as much as the rest of the
   * update), every operation rounded to float32 as torch.optim.Adam's kernels do.
   * `out`, when given, receives a copy of the new weights in the same pass.
   */
  adam(
    params: Float32Array,
    m: Float32Array,
    v: Float32Array,
    sum: Float64Array | Float32Array,
    k: AdamConstants,
    out?: Float32Array,
  ): void;
}

interface ReduceAddon {
  setThreads(n: number): void;
  getThreads(): number;
  add(
    acc: Float64Array,
    grads: readonly (Float32Array | Uint16Array)[],
    dtype: number,
    scaleExps: readonly number[],
    first: boolean,
  ): boolean;
  finite(grad: Float32Array | Uint16Array, dtype: number): boolean;
  adam(
    params: Float32Array,
    m: Float32Array,
    v: Float32Array,
    sum: Float64Array | Float32Array,
    out: Float32Array | null,
    divisor: number,
    stepSize: number,
    bc2Sqrt: number,
    beta1: number,
    beta2: number,
    c1: number,
    c2: number,
    eps: number,
  ): void;
}

/** Most shards one `add` takes. */
export const MAX_ADD_SHARDS = 64;

function checkShards(acc: Float64Array, grads: readonly { length: number }[], scaleExps: readonly number[]): void {
  if (grads.length === 0 || grads.length > MAX_ADD_SHARDS || scaleExps.length !== grads.length) {
    throw new RangeError(
      `add: 1 to ${MAX_ADD_SHARDS} gradients with one scale exponent each (got ${grads.length} and ${scaleExps.length})`,
    );
  }
  for (const g of grads)
    if (g.length !== acc.length)
      throw new RangeError(`add: a gradient has ${g.length} elements, the sum ${acc.length}`);
}

/** The JavaScript kernels (the reference the native ones must equal bit for bit). */
export const jsKernels: ReduceKernels = {
  name: 'js',
  add(acc, grads, dtype, scaleExps, first) {
    checkShards(acc, grads, scaleExps);
    const n = acc.length;
    // Shard after shard over the whole array: per element the same additions in the same order
    // as the native kernel's blocks.
    for (let j = 0; j < grads.length; j++) {
      const into = j > 0 || !first;
      if (dtype === 'f32') {
        const g = grads[j] as Float32Array;
        if (into) for (let i = 0; i < n; i++) acc[i] += g[i]!;
        else for (let i = 0; i < n; i++) acc[i] = g[i]!;
      } else {
        const g = grads[j] as Uint16Array;
        const f = new Float32Array(1);
        const u = new Uint32Array(f.buffer);
        const table = dtype === 'f16' ? f16Table() : undefined;
        const scale = 2 ** -scaleExps[j]!;
        for (let i = 0; i < n; i++) {
          if (table) f[0] = table[g[i]!]! * scale;
          else u[0] = g[i]! << 16;
          acc[i] = into ? acc[i]! + f[0]! : f[0]!;
        }
      }
    }
    for (let i = 0; i < n; i++) if (acc[i]! - acc[i]! !== 0) return false;
    return true;
  },
  finite(grad, dtype) {
    if (dtype === 'f32') {
      const g = grad as Float32Array;
      for (let i = 0; i < g.length; i++) if (g[i]! - g[i]! !== 0) return false;
      return true;
    }
    const mask = dtype === 'f16' ? 0x7c00 : 0x7f80;
    for (let i = 0; i < grad.length; i++) if ((grad[i]! & mask) === mask) return false;
    return true;
  },
  adam(params, m, v, sum, k, out) {
    if (out !== undefined && out.length !== params.length)
      throw new RangeError(`adam: out has ${out.length} elements, params ${params.length}`);
    const f = Math.fround;
    const inv = 1 / k.divisor;
    const [stepSize, bc2Sqrt, beta1, beta2, c1, c2, eps] = [
      k.stepSize,
      k.bc2Sqrt,
      k.beta1,
      k.beta2,
      k.c1,
      k.c2,
      k.eps,
    ].map(f) as [number, number, number, number, number, number, number];
    const n = params.length;
    for (let i = 0; i < n; i++) {
      const g = f(sum[i]! * inv);
      const mi = f(f(beta1 * m[i]!) + f(c1 * g));
      const vi = f(f(beta2 * v[i]!) + f(f(c2 * g) * g));
      m[i] = mi;
      v[i] = vi;
      params[i] = f(params[i]! - f(f(stepSize * mi) / f(f(f(Math.sqrt(vi)) / bc2Sqrt) + eps)));
    }
    out?.set(params);
  },
};

const loaded = loadAddon<ReduceAddon>('ganfleet_reduce');

/** The native kernels, or null (see `nativeReduceError`) where the addon is not built. */
export const nativeKernels: ReduceKernels | null =
  loaded.addon === null
    ? null
    : {
        name: 'native',
        add(acc, grads, dtype, scaleExps, first) {
          checkShards(acc, grads, scaleExps);
          return loaded.addon.add(acc, grads, DTYPE_CODE[dtype], scaleExps, first);
        },
        finite(grad, dtype) {
          return loaded.addon.finite(grad, DTYPE_CODE[dtype]);
        },
        adam(params, m, v, sum, k, out) {
          loaded.addon.adam(
            params,
            m,
            v,
            sum,
            out ?? null,
            k.divisor,
            k.stepSize,
            k.bc2Sqrt,
            k.beta1,
            k.beta2,
            k.c1,
            k.c2,
            k.eps,
          );
        },
      };

/** Threads the native kernels split their loops over (1 without them). */
export function reduceThreads(): number {
  return loaded.addon?.getThreads() ?? 1;
}

/** Sets the native kernels' thread count (1–16; results are bit-identical for any count). */
export function setReduceThreads(n: number): void {
  loaded.addon?.setThreads(n);
}

/** Why the native kernels are not in use ('' when they are). */
export const nativeReduceError = loaded.error;

/** The kernels the coordinator uses: native where built, else JavaScript. */
export const reduceKernels: ReduceKernels = nativeKernels ?? jsKernels;
