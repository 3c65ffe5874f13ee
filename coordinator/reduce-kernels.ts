/**
 * The coordinator's two hot loops — adding a shard's gradient into the float64 sum, and Adam —
 * in two implementations with the same arithmetic: native (native/ganfleet_reduce.c, SIMD, built
 * at install where a C compiler is present) and plain JavaScript. Both do the same IEEE
 * operations in the same order, so the weights are bit-identical whichever runs
 * (tests/unit/reduce-kernels.test.ts checks it); the native one is several times faster.
 */
import type { LossyDtype } from '../shared/dtype.js';
import { f16Table } from '../shared/dtype.js';
import { AddonErrorCode, type AddonFailure, type Loaded } from '../shared/native-addon.js';
import {
  DTYPE_CODE,
  MAX_ADD_SHARDS,
  loadReduceAddon,
  ADAM_LENGTH,
  packAdam,
  type AdamConstants,
  type ReduceAddon,
} from '../shared/reduce-addon.js';

export { MAX_ADD_SHARDS, type AdamConstants };

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
    dtype: LossyDtype,
    scaleExps: readonly number[],
    first: boolean,
  ): boolean;
  /** False when grad holds a NaN or ±Inf (for f16, whatever its scale). */
  finite(grad: Float32Array | Uint16Array, dtype: LossyDtype): boolean;
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

function checkShards(acc: Float64Array, grads: readonly { length: number }[], scaleExps: readonly number[]): void {
  if (grads.length === 0 || grads.length > MAX_ADD_SHARDS || scaleExps.length !== grads.length) {
    throw new RangeError(
      `add: 1 to ${MAX_ADD_SHARDS} gradients with one scale exponent each ` +
        `(got ${grads.length} and ${scaleExps.length})`,
    );
  }
  for (const g of grads)
    if (g.length !== acc.length)
      throw new RangeError(`add: a gradient has ${g.length} elements, the sum ${acc.length}`);
}

/** A dtype the switches below do not know: a new wire dtype needs a case here and in C. */
function unknownDtype(dtype: never): never {
  throw new RangeError(`no reduce kernel for wire dtype ${String(dtype)}`);
}

function addF32(acc: Float64Array, g: Float32Array, into: boolean): void {
  const n = acc.length;
  if (into) for (let i = 0; i < n; i++) acc[i] += g[i]!;
  else for (let i = 0; i < n; i++) acc[i] = g[i]!;
}

/** Each f16 element is the table's value times 2^−e rounded to float32, as the C kernel takes it. */
function addF16(acc: Float64Array, g: Uint16Array, into: boolean, scale: number): void {
  const table = f16Table();
  const f = new Float32Array(1);
  for (let i = 0; i < acc.length; i++) {
    f[0] = table[g[i]!]! * scale;
    acc[i] = into ? acc[i]! + f[0]! : f[0]!;
  }
}

function addBf16(acc: Float64Array, g: Uint16Array, into: boolean): void {
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < acc.length; i++) {
    u[0] = g[i]! << 16;
    acc[i] = into ? acc[i]! + f[0]! : f[0]!;
  }
}

/** 16-bit floats: non-finite ⇔ all exponent bits set. */
function noneAllOnes(g: Uint16Array, expMask: number): boolean {
  for (let i = 0; i < g.length; i++) if ((g[i]! & expMask) === expMask) return false;
  return true;
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
      switch (dtype) {
        case 'f32':
          addF32(acc, grads[j] as Float32Array, into);
          break;
        case 'f16':
          addF16(acc, grads[j] as Uint16Array, into, 2 ** -scaleExps[j]!);
          break;
        case 'bf16':
          addBf16(acc, grads[j] as Uint16Array, into);
          break;
        default:
          return unknownDtype(dtype);
      }
    }
    for (let i = 0; i < n; i++) if (acc[i]! - acc[i]! !== 0) return false;
    return true;
  },
  finite(grad, dtype) {
    switch (dtype) {
      case 'f32': {
        const g = grad as Float32Array;
        for (let i = 0; i < g.length; i++) if (g[i]! - g[i]! !== 0) return false;
        return true;
      }
      case 'f16':
        return noneAllOnes(grad as Uint16Array, 0x7c00);
      case 'bf16':
        return noneAllOnes(grad as Uint16Array, 0x7f80);
      default:
        return unknownDtype(dtype);
    }
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

const loaded = loadReduceAddon();

/** Adam's constants as the addon takes them, packed afresh at each call. */
const adamConstants = new Float64Array(ADAM_LENGTH);

/** The native kernels, or null (see `nativeReduceFailure`) where the addon is not built or stale. */
export const nativeKernels: ReduceKernels | null = loaded.addon === null ? null : native(loaded.addon);

function native(addon: ReduceAddon): ReduceKernels {
  return {
    name: 'native',
    add(acc, grads, dtype, scaleExps, first) {
      checkShards(acc, grads, scaleExps);
      return addon.add(acc, grads, DTYPE_CODE[dtype], scaleExps, first);
    },
    finite(grad, dtype) {
      return addon.finite(grad, DTYPE_CODE[dtype]);
    },
    adam(params, m, v, sum, k, out) {
      addon.adam(params, m, v, sum, out ?? null, packAdam(k, adamConstants));
    },
  };
}

/** Threads the native kernels split their loops over (1 without them). */
export function reduceThreads(): number {
  return loaded.addon?.getThreads() ?? 1;
}

/** Sets the native kernels' thread count (1–16; results are bit-identical for any count). */
export function setReduceThreads(n: number): void {
  loaded.addon?.setThreads(n);
}

/** Why the native kernels are not in use (null when they are): a code to match, a sentence to log. */
export const nativeReduceFailure: AddonFailure | null = loaded.addon === null ? loaded : null;

/**
 * The failure worth a warning at start: a .node that is there but stale (ABI) or broken. One never
 * built, or turned off, is the documented optional case and stays quiet.
 */
export function nativeReduceWarning(): AddonFailure | null {
  const f = nativeReduceFailure;
  return f !== null && (f.code === AddonErrorCode.ABI || f.code === AddonErrorCode.LOAD) ? f : null;
}

/** Why the native kernels are not in use ('' when they are). */
export const nativeReduceError = loaded.error;

/** The kernels a load result gives: native where the addon loaded with the right ABI, else JavaScript. */
export function reduceKernelsFrom(load: Loaded<ReduceAddon>): ReduceKernels {
  return load.addon === null ? jsKernels : native(load.addon);
}

/** The kernels the coordinator uses: native where built, else JavaScript. */
export const reduceKernels: ReduceKernels = nativeKernels ?? jsKernels;
