/**
 * The interface of native/ganfleet_reduce.c (the coordinator's sum and Adam kernels, and the
 * allocator setting both sides use), mirrored value for value by native/ganfleet_reduce.h: the
 * ABI number, the dtype codes and the layout of Adam's constants. Change both together and raise
 * REDUCE_ABI in both, so that a .node built from the old interface is refused, not misread.
 */
import type { LossyDtype } from './dtype.js';
import { loadAddon, type AddonSpec, type Loaded } from './native-addon.js';

/** GANFLEET_REDUCE_ABI in native/ganfleet_reduce.h. */
export const REDUCE_ABI = 7;

export const REDUCE_ADDON: AddonSpec = { name: 'ganfleet_reduce', abi: REDUCE_ABI, fallback: 'the JavaScript kernels' };

/** Wire dtype codes of `add` and `finite` (gf_dtype). */
export const DTYPE_CODE = { f32: 0, f16: 1, bf16: 2 } as const satisfies Record<LossyDtype, number>;
export type DtypeCode = (typeof DTYPE_CODE)[LossyDtype];

/** The constants of one Adam step (see coordinator/optimizer.ts). */
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

/** Indices into `adam`'s constants, one Float64Array of ADAM_LENGTH numbers (gf_adam_constant). */
export const ADAM = {
  divisor: 0,
  stepSize: 1,
  bc2Sqrt: 2,
  beta1: 3,
  beta2: 4,
  c1: 5,
  c2: 6,
  eps: 7,
} as const satisfies Record<keyof AdamConstants, number>;
export const ADAM_LENGTH = 8;

const ADAM_KEYS = Object.keys(ADAM) as (keyof AdamConstants)[];

/** k laid out by ADAM, into `out` (reused by the caller: Adam runs twice a step). */
export function packAdam(k: AdamConstants, out: Float64Array = new Float64Array(ADAM_LENGTH)): Float64Array {
  for (const key of ADAM_KEYS) out[ADAM[key]] = k[key];
  return out;
}

/** Most shards one `add` takes (GF_MAX_SHARDS). */
export const MAX_ADD_SHARDS = 64;

/** The addon's exports (native/ganfleet_reduce.c). */
export interface ReduceAddon {
  readonly ABI: number;
  setThreads(n: number): void;
  getThreads(): number;
  keepFreedMemory(): boolean;
  add(
    acc: Float64Array,
    grads: readonly (Float32Array | Uint16Array)[],
    dtype: DtypeCode,
    scaleExps: readonly number[],
    first: boolean,
  ): boolean;
  finite(grad: Float32Array | Uint16Array, dtype: DtypeCode): boolean;
  /** The exact reduction's kernels (shared/fixed.ts): -1, or (tensor << 1) | (1 overflow, 0 non-finite). */
  fxAccumulate(
    hi: Float64Array,
    lo: Float64Array,
    grads: Float32Array,
    chunks: number,
    segments: Int32Array,
    shifts: Int32Array,
  ): number;
  /** Adds 1 to MAX_ADD_SHARDS wire totals (three lists of one length; sets the sum with `first`). */
  fxAddWires(
    hi: Float64Array,
    lo: Float64Array,
    lows: readonly Int32Array[],
    exIndexes: readonly Uint32Array[],
    exHighs: readonly Int32Array[],
    first: boolean,
  ): void;
  fxNormalize(hi: Float64Array, lo: Float64Array): void;
  /** Shared memory (shared/shm.ts): a new 0600 segment, an existing one of this user, removal. */
  shmCreate(name: string, bytes: number): ArrayBuffer;
  shmOpen(name: string, bytes: number): ArrayBuffer;
  shmUnlink(name: string): boolean;
  /** Sets a TCP socket's TCP_NOTSENT_LOWAT (bytes > 0; 0 leaves it) and returns its value. */
  tcpNotsentLowat(fd: number, bytes: number): number;
  /** Bytes written to TCP socket `fd` and not yet acknowledged (SIOCOUTQ). */
  tcpUnacked(fd: number): number;
  /** `largest` (one per tensor, or null): each tensor's largest |value| of `out`. */
  fxToFloat64(
    hi: Float64Array,
    lo: Float64Array,
    segments: Int32Array,
    shifts: Int32Array,
    out: Float64Array,
    largest: Float64Array | null,
  ): void;
  /** `constants`: ADAM_LENGTH numbers laid out by ADAM (packAdam). */
  adam(
    params: Float32Array,
    m: Float32Array,
    v: Float32Array,
    sum: Float64Array | Float32Array,
    out: Float32Array | null,
    constants: Float64Array,
  ): void;
}

/** The addon once per process, or null with the reason (an ABI mismatch among them). */
export function loadReduceAddon(spec: AddonSpec = REDUCE_ADDON): Loaded<ReduceAddon> {
  return loadAddon<ReduceAddon>(spec);
}

/**
 * glibc: large allocations (model-sized messages, ≈ 1.1 MB each) are served from the heap and
 * freed memory is kept for reuse, instead of a fresh mapping (and its page faults) each time
 * (native/ganfleet_reduce.c). Process-wide; false where the addon is not built or off glibc.
 */
export function keepFreedMemory(): boolean {
  return loadReduceAddon().addon?.keepFreedMemory() ?? false;
}
