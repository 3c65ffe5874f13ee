/**
 * Optional native kernel pack: tfjs's `BatchMatMul` and `_FusedMatMul` kernels for the wasm and
 * cpu backends, computed by OpenBLAS's sgemm through ganfleet's N-API addon
 * (native/ganfleet_blas.c, built at install when a C compiler and libopenblas-dev are present).
 *
 * The kernels are registered through tfjs's kernel registry, the official extension point, and
 * produce ordinary tensors of the backend they replace a kernel of: on wasm the inputs are read
 * in place from the wasm heap and the product is written straight into a tensor allocated there;
 * on cpu the backend's own Float32Arrays are used. Transposed operands cost nothing extra (sgemm
 * takes the transpose flags), unlike XNNPACK's slow transposed path. Whatever the addon does not
 * cover (batched products with more than one matrix, non-float32 data, PReLU, odd bias shapes,
 * empty outputs) goes to the kernel the backend registered itself.
 */
import * as tf from '@tensorflow/tfjs-core';
import { activationCode, loadBlas, type ActivationCode, type BlasAddon } from './blas-addon.js';

export type { BlasAddon };

/** Backends the pack has kernels for. */
export type NativeBackend = 'wasm' | 'cpu';
const KERNELS = ['BatchMatMul', '_FusedMatMul'] as const;

/** Loads the addon once; null (with `nativeLoadError()` saying why) where it is not built, stale or cannot load. */
export function loadBlasAddon(): BlasAddon | null {
  return loadBlas().addon;
}

/** Why the addon is not in use ('' when it is): one sentence, for the worker's backend line. */
export function nativeLoadError(): string {
  return loadBlas().error;
}

interface GemmPlan {
  transA: boolean;
  transB: boolean;
  m: number;
  n: number;
  k: number;
  outShape: number[];
  act: ActivationCode;
  alpha: number;
}

/** The single product the kernel call describes, or null when the backend's own kernel must do it. */
function plan(
  a: tf.TensorInfo,
  b: tf.TensorInfo,
  bias: tf.TensorInfo | undefined,
  prelu: tf.TensorInfo | undefined,
  attrs: { transposeA?: boolean; transposeB?: boolean; activation?: string; leakyreluAlpha?: number },
): GemmPlan | null {
  if (a.dtype !== 'float32' || b.dtype !== 'float32' || prelu !== undefined) return null;
  if (a.shape.length < 2 || b.shape.length < 2) return null;
  const outerA = a.shape.slice(0, -2);
  const outerB = b.shape.slice(0, -2);
  if (tf.util.sizeFromShape(outerA) !== 1 || tf.util.sizeFromShape(outerB) !== 1) return null;
  const transA = attrs.transposeA === true;
  const transB = attrs.transposeB === true;
  const ra = a.shape.length;
  const rb = b.shape.length;
  const m = transA ? a.shape[ra - 1]! : a.shape[ra - 2]!;
  const k = transA ? a.shape[ra - 2]! : a.shape[ra - 1]!;
  const kb = transB ? b.shape[rb - 1]! : b.shape[rb - 2]!;
  const n = transB ? b.shape[rb - 2]! : b.shape[rb - 1]!;
  // k = 0 is taken (the product is 0, plus the bias): tfjs-wasm's own kernel leaves it unwritten.
  if (k !== kb || m === 0 || n === 0) return null;
  const act = activationCode(attrs.activation ?? 'linear');
  if (act === undefined) return null;
  if (bias !== undefined) {
    if (bias.dtype !== 'float32') return null;
    const size = tf.util.sizeFromShape(bias.shape);
    // Only a bias broadcast along rows (a vector of n, or a scalar) is fused here.
    if (size !== n && size !== 1) return null;
    if (size === n && n !== 1 && bias.shape[bias.shape.length - 1] !== n) return null;
  }
  const outer = outerA.length >= outerB.length ? outerA : outerB;
  return { transA, transB, m, n, k, outShape: [...outer, m, n], act, alpha: attrs.leakyreluAlpha ?? 0.2 };
}

interface WasmBackendLike {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array;
}

interface CpuBackendLike {
  data: { get(dataId: object): { values?: unknown } | undefined };
  makeTensorInfo(shape: number[], dtype: tf.DataType, values: Float32Array): tf.TensorInfo;
}

type KernelArgs = Parameters<tf.KernelFunc>[0];

function makeKernel(lib: BlasAddon, backendName: NativeBackend, original: tf.KernelFunc): tf.KernelFunc {
  return (args: KernelArgs) => {
    const inputs = args.inputs as Record<string, tf.TensorInfo | undefined>;
    const a = inputs.a!;
    const b = inputs.b!;
    const bias = inputs.bias;
    const p = plan(a, b, bias, inputs.preluActivationWeights, args.attrs as Parameters<typeof plan>[4]);
    if (p === null) return original(args);
    if (backendName === 'wasm') {
      const backend = args.backend as unknown as WasmBackendLike;
      // Allocate first: a malloc may grow the heap, which would detach views made before it.
      const out = backend.makeOutput(p.outShape, 'float32');
      const av = backend.typedArrayFromHeap(a);
      const bv = backend.typedArrayFromHeap(b);
      const biasv = bias === undefined ? null : backend.typedArrayFromHeap(bias);
      lib.gemm(p.transA, p.transB, p.m, p.n, p.k, av, bv, backend.typedArrayFromHeap(out), biasv, p.act, p.alpha);
      return out;
    }
    const backend = args.backend as unknown as CpuBackendLike;
    const values = (t: tf.TensorInfo): Float32Array | null => {
      const v = backend.data.get(t.dataId)?.values;
      return v instanceof Float32Array ? v : null;
    };
    const av = values(a);
    const bv = values(b);
    const biasv = bias === undefined ? null : values(bias);
    if (av === null || bv === null || (bias !== undefined && biasv === null)) return original(args);
    const c = new Float32Array(p.m * p.n);
    lib.gemm(p.transA, p.transB, p.m, p.n, p.k, av, bv, c, biasv, p.act, p.alpha);
    return backend.makeTensorInfo(p.outShape, 'float32', c);
  };
}

const originals = new Map<string, tf.KernelConfig>();

/**
 * Replaces the backend's BatchMatMul and _FusedMatMul kernels with the OpenBLAS ones. Returns
 * false (and changes nothing) when the addon is not available. Idempotent.
 */
export function registerNativeGemm(backendName: NativeBackend, lib: BlasAddon | null = loadBlasAddon()): boolean {
  if (lib === null) return false;
  for (const kernelName of KERNELS) {
    const key = `${backendName}_${kernelName}`;
    if (originals.has(key)) continue;
    const original = tf.getKernel(kernelName, backendName);
    if (original === undefined) throw new Error(`backend ${backendName} has no ${kernelName} kernel to replace`);
    originals.set(key, original);
    tf.unregisterKernel(kernelName, backendName);
    tf.registerKernel({ ...original, kernelFunc: makeKernel(lib, backendName, original.kernelFunc) });
  }
  return true;
}

/** Puts the backend's own kernels back (tests compare against them). */
export function unregisterNativeGemm(backendName: NativeBackend): void {
  for (const kernelName of KERNELS) {
    const key = `${backendName}_${kernelName}`;
    const original = originals.get(key);
    if (original === undefined) continue;
    tf.unregisterKernel(kernelName, backendName);
    tf.registerKernel(original);
    originals.delete(key);
  }
}

/** Whether the OpenBLAS kernels currently serve this backend. */
export function nativeGemmActive(backendName: string): boolean {
  return originals.has(`${backendName}_BatchMatMul`);
}

/** Sets OpenBLAS's thread count (no-op without the addon). */
export function setNativeThreads(threads: number): void {
  loadBlasAddon()?.setThreads(Math.max(1, Math.floor(threads)));
}
