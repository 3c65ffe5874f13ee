/**
 * The interface of native/ganfleet_blas.c (the workers' OpenBLAS products), mirrored value for
 * value by native/ganfleet_blas.h: the ABI number and the fused activation codes. Change both
 * together and raise BLAS_ABI in both, so that a .node built from the old interface is refused.
 */
import { loadAddon, type AddonSpec, type Loaded } from '../../shared/native-addon.js';

/** GANFLEET_BLAS_ABI in native/ganfleet_blas.h. */
export const BLAS_ABI = 3;

export const BLAS_ADDON: AddonSpec = { name: 'ganfleet_blas', abi: BLAS_ABI, fallback: "tfjs's own kernels" };

/**
 * Activations fused into the product, by tfjs's names (gf_activation). `tanh` is not one of tfjs's
 * fused activations (tf.fused.matMul rejects it); ganfleet's train step asks for it through
 * `runKernel` only while these kernels serve.
 */
export const ACTIVATION = { linear: 0, relu: 1, leakyrelu: 2, relu6: 3, sigmoid: 4, elu: 5, tanh: 6 } as const;
export type ActivationCode = (typeof ACTIVATION)[keyof typeof ACTIVATION];

/** The code of a tfjs activation name, or undefined where the addon has none (tfjs's kernel then serves). */
export function activationCode(name: string): ActivationCode | undefined {
  return Object.hasOwn(ACTIVATION, name) ? ACTIVATION[name as keyof typeof ACTIVATION] : undefined;
}

/** The addon's exports (native/ganfleet_blas.c). */
export interface BlasAddon {
  readonly ABI: number;
  gemm(
    transA: boolean,
    transB: boolean,
    m: number,
    n: number,
    k: number,
    a: Float32Array,
    b: Float32Array,
    c: Float32Array,
    bias: Float32Array | null,
    act: ActivationCode,
    alpha: number,
  ): void;
  setThreads(n: number): void;
  getThreads(): number;
  config(): string;
  /**
   * A whole exact phase, chunk by chunk (worker/kernels/native-exact.ts): -1, or
   * (tensor << 1) | (1 overflow, 0 non-finite).
   */
  exactPhase(
    dims: Int32Array,
    genW: Float32Array,
    disW: Float32Array,
    real: Float32Array | null,
    z: Float32Array,
    segments: Int32Array,
    shifts: Int32Array,
    low: Int32Array,
    exIndex: Uint32Array,
    exHigh: Int32Array,
    stats: Float64Array,
    slope: number,
  ): number;
}

/** The addon once per process, or null with the reason (an ABI mismatch among them). */
export function loadBlas(spec: AddonSpec = BLAS_ADDON): Loaded<BlasAddon> {
  return loadAddon<BlasAddon>(spec);
}
