/**
 * The exact reduction's number format: gradient sums as integers of a fixed quantum per tensor,
 * so that adding them is exact, hence associative: any split of a batch, any grouping and any order
 * of the additions gives the same bits.
 *
 * A batch is cut into chunks of CHUNK consecutive samples, whatever the number of workers. A
 * worker forms each chunk's float32 gradient sum on its own (worker/exact-step.ts), then turns it
 * into quanta: q = round(v · 2^s), s the tensor's shift, rounding half to even. That rounding is a
 * property of the chunk alone. From there on everything is integer addition: a worker adds its
 * chunks, the coordinator (or a relay) adds workers' totals, and only the final total becomes a
 * float again (T · 2^−s, then Adam's mean).
 *
 * Integers are held as two float64 arrays, value = hi · 2^32 + lo, both parts exact integers: the
 * same representation in JavaScript and in C (native/ganfleet_reduce.c), so the two kernels agree
 * bit for bit by construction. A chunk's value must stay below CHUNK_LIMIT quanta, so that any sum
 * of up to MAX_CHUNKS of them fits in 63 bits; a larger one is reported as an overflow (never
 * wrapped), and the coordinator redoes the phase with a coarser quantum.
 *
 * The shifts follow the gradients: after each phase the coordinator sets a tensor's next shift so
 * that its largest |total| lands near 2^TARGET_BITS quanta (derived from the exact total, so the
 * same in every run), which keeps workers' totals within 32 bits on the wire (`FixedWire`) and
 * leaves every element far more than float32's 24 bits of its tensor's largest value.
 */
import type { Manifest } from './model.js';
import { loadReduceAddon } from './reduce-addon.js';

/** Samples per chunk: the fixed unit of work. */
export const CHUNK = 16;
/** The statistics (loss, D outputs) travel as integers of 2^−STATS_SHIFT. */
export const STATS_SHIFT = 24;
/** Most chunks in one phase (MAX_BATCH / CHUNK). */
export const MAX_CHUNKS = 4096;
/** A chunk's |value| in quanta must be below this (2^51: MAX_CHUNKS of them still fit in 63 bits). */
export const CHUNK_LIMIT = 2 ** 51;
/** Where a tensor's largest |total| lands after a shift update: 2^TARGET_BITS quanta. */
export const TARGET_BITS = 26;
/** Every tensor's shift before any total is known. */
export const INITIAL_SHIFT = 24;
/** Shifts stay within these bounds. */
export const MIN_SHIFT = -20;
export const MAX_SHIFT = 100;
/** Bits a shift drops by when a chunk overflowed, before the phase is tried again. */
export const OVERFLOW_BACKOFF = 16;

const TWO32 = 4294967296;
/** Adding and subtracting 1.5 · 2^52 rounds a double below 2^51 in magnitude to an integer, half to even. */
const ROUNDER = 6755399441055744;

/** Which elements belong to which tensor: the manifest's parameters, with one shift each. */
export interface FixedLayout {
  /** [offset, length] of every tensor, flattened. */
  readonly segments: Int32Array;
  /** Each tensor's shift s (quantum 2^−s). */
  readonly shifts: Int32Array;
}

/** The part of a layout over elements [a, b), its offsets from a (for a sum's `view(a, b)`). */
export function layoutRange(layout: FixedLayout, a: number, b: number): FixedLayout {
  const segments: number[] = [];
  const shifts: number[] = [];
  for (let t = 0; t < layout.shifts.length; t++) {
    const start = Math.max(a, layout.segments[2 * t]!);
    const end = Math.min(b, layout.segments[2 * t]! + layout.segments[2 * t + 1]!);
    if (end <= start) continue;
    segments.push(start - a, end - start);
    shifts.push(layout.shifts[t]!);
  }
  return { segments: Int32Array.from(segments), shifts: Int32Array.from(shifts) };
}

export function layoutOf(manifest: Manifest, shifts: Int32Array): FixedLayout {
  if (shifts.length !== manifest.params.length)
    throw new RangeError(`${manifest.net}: ${shifts.length} shifts for ${manifest.params.length} tensors`);
  const segments = new Int32Array(2 * manifest.params.length);
  manifest.params.forEach((p, t) => {
    segments[2 * t] = p.offset;
    segments[2 * t + 1] = p.length;
  });
  return { segments, shifts };
}

/** The first shifts of a network: INITIAL_SHIFT for every tensor. */
export function initialShifts(manifest: Manifest): Int32Array {
  return new Int32Array(manifest.params.length).fill(INITIAL_SHIFT);
}

/** An exact sum over `length` elements: value = hi · 2^32 + lo. */
export class FixedSum {
  readonly hi: Float64Array;
  readonly lo: Float64Array;

  constructor(
    readonly length: number,
    parts?: { hi: Float64Array; lo: Float64Array },
  ) {
    this.hi = parts?.hi ?? new Float64Array(length);
    this.lo = parts?.lo ?? new Float64Array(length);
  }

  clear(): void {
    this.hi.fill(0);
    this.lo.fill(0);
  }

  /** Elements [a, b) as a sum of their own (the same memory). */
  view(a: number, b: number): FixedSum {
    return new FixedSum(b - a, { hi: this.hi.subarray(a, b), lo: this.lo.subarray(a, b) });
  }
}

/**
 * A sum on the wire: every element as a signed 32-bit integer, except those that do not fit, whose
 * high 32 bits travel apart (value = exHigh · 2^32 + low as unsigned). Totals of a few chunks almost
 * always fit, so this costs what float32 costs.
 */
export interface FixedWire {
  readonly low: Int32Array;
  /** Strictly increasing element indices. */
  readonly exIndex: Uint32Array;
  readonly exHigh: Int32Array;
}

/** Why a chunk could not be turned into quanta. */
export type FixedStatus =
  | { readonly ok: true }
  | { readonly ok: false; readonly reason: 'non-finite' | 'overflow'; readonly tensor: number };

/** round(x) half to even, for |x| < 2^51. */
export function roundHalfEven(x: number): number {
  return x + ROUNDER - ROUNDER;
}

/** A statistic's value in quanta of 2^−STATS_SHIFT (an exact integer in a float64). */
export function statQuanta(x: number): number {
  return roundHalfEven(x * 2 ** STATS_SHIFT);
}

/** The kernels of the format: JavaScript here, native in reduce-kernels' addon; the same bits. */
export interface FixedKernels {
  readonly name: string;
  /**
   * Adds `chunks` chunk gradients (float32, chunk after chunk, `sum.length` each) into `sum` as
   * quanta. On a NaN/±Inf or an overflow it stops and says which tensor; `sum` is then garbage.
   */
  accumulate(sum: FixedSum, grads: Float32Array, chunks: number, layout: FixedLayout): FixedStatus;
  /**
   * Adds wire totals into `sum` (or sets it to theirs, with `first`): up to MAX_ADD_WIRES at once,
   * in one pass over the sum.
   */
  addWires(sum: FixedSum, wires: readonly FixedWire[], first: boolean): void;
  /** Carries lo's overflow into hi, so that 0 ≤ lo < 2^32. */
  normalize(sum: FixedSum): void;
  /**
   * The float64 values T · 2^−s (one rounding each: hi · 2^32 and lo are exact, so their sum rounds
   * T once, normalized or not; the sum is not written); and, given `largest` (one per tensor), each
   * tensor's largest |value| there (what `nextShifts` takes).
   */
  toFloat64(sum: FixedSum, layout: FixedLayout, out: Float64Array, largest?: Float64Array): void;
}

/** Most wire totals one `addWires` takes (MAX_ADD_SHARDS of the native kernels). */
export const MAX_ADD_WIRES = 64;

function checkSums(what: string, sum: FixedSum, n: number): void {
  if (sum.hi.length !== n || sum.lo.length !== n)
    throw new RangeError(`${what}: the sum has ${sum.length} elements, ${n} expected`);
}

export const jsFixedKernels: FixedKernels = {
  name: 'js',
  accumulate(sum, grads, chunks, layout) {
    const n = sum.length;
    if (grads.length !== chunks * n) throw new RangeError(`accumulate: ${grads.length} values for ${chunks} × ${n}`);
    const { hi, lo } = sum;
    const { segments, shifts } = layout;
    for (let c = 0; c < chunks; c++) {
      const base = c * n;
      for (let t = 0; t < shifts.length; t++) {
        const scale = 2 ** shifts[t]!;
        const end = segments[2 * t]! + segments[2 * t + 1]!;
        for (let i = segments[2 * t]!; i < end; i++) {
          const x = grads[base + i]! * scale;
          if (!(Math.abs(x) < CHUNK_LIMIT))
            return { ok: false, reason: Number.isFinite(x) ? 'overflow' : 'non-finite', tensor: t };
          const r = x + ROUNDER - ROUNDER;
          const h = Math.floor(r / TWO32);
          hi[i] += h;
          lo[i] += r - h * TWO32;
        }
      }
    }
    return { ok: true };
  },
  addWires(sum, wires, first) {
    const n = sum.length;
    if (wires.length === 0 || wires.length > MAX_ADD_WIRES)
      throw new RangeError(`addWires: takes 1 to ${MAX_ADD_WIRES} totals, not ${wires.length}`);
    for (const w of wires)
      if (w.low.length !== n) throw new RangeError(`addWires: ${w.low.length} values, the sum has ${n}`);
    const { hi, lo } = sum;
    if (first) hi.fill(0);
    for (const [k, { low, exIndex, exHigh }] of wires.entries()) {
      if (first && k === 0) for (let i = 0; i < n; i++) lo[i] = low[i]!;
      else for (let i = 0; i < n; i++) lo[i] += low[i]!;
      // An exception's low word is its unsigned low half, not a signed value: correct what was added.
      for (let x = 0; x < exIndex.length; x++) {
        const i = exIndex[x]!;
        hi[i] += exHigh[x]!;
        lo[i] += (low[i]! >>> 0) - low[i]!;
      }
    }
  },
  normalize(sum) {
    const { hi, lo } = sum;
    for (let i = 0; i < sum.length; i++) {
      const c = Math.floor(lo[i]! / TWO32);
      hi[i] += c;
      lo[i] -= c * TWO32;
    }
  },
  toFloat64(sum, layout, out, largest) {
    checkSums('toFloat64', sum, out.length);
    const { segments, shifts } = layout;
    if (largest !== undefined && largest.length !== shifts.length)
      throw new RangeError(`toFloat64: largest holds ${largest.length} values for ${shifts.length} tensors`);
    const { hi, lo } = sum;
    for (let t = 0; t < shifts.length; t++) {
      const scale = 2 ** -shifts[t]!;
      const end = segments[2 * t]! + segments[2 * t + 1]!;
      let m = 0;
      for (let i = segments[2 * t]!; i < end; i++) {
        const x = (hi[i]! * TWO32 + lo[i]!) * scale;
        out[i] = x;
        if (x > m) m = x;
        else if (-x > m) m = -x;
      }
      if (largest !== undefined) largest[t] = m;
    }
  },
};

/** Sets `sum` to the total of any number of wire totals, MAX_ADD_WIRES at a time. */
export function addAllWires(kernels: FixedKernels, sum: FixedSum, wires: readonly FixedWire[]): void {
  if (wires.length === 0) sum.clear();
  for (let k = 0; k < wires.length; k += MAX_ADD_WIRES)
    kernels.addWires(sum, wires.slice(k, k + MAX_ADD_WIRES), k === 0);
}

/** A normalized sum as a wire total (a fresh FixedWire). */
export function compact(sum: FixedSum, kernels: FixedKernels = jsFixedKernels): FixedWire {
  kernels.normalize(sum);
  const { hi, lo } = sum;
  const low = new Int32Array(sum.length);
  const ex: number[] = [];
  for (let i = 0; i < sum.length; i++) {
    const h = hi[i]!;
    const l = lo[i]!;
    // |0 reinterprets the unsigned low word as signed: the value itself when it fits in 32 bits.
    low[i] = l | 0;
    if (!((h === 0 && l < 2147483648) || (h === -1 && l >= 2147483648))) ex.push(i);
  }
  const exIndex = Uint32Array.from(ex);
  const exHigh = Int32Array.from(ex, (i) => hi[i]!);
  return { low, exIndex, exHigh };
}

/** floor(log2 |x|) for a finite x ≠ 0, read from its bits (no libm: the same on every machine). */
function exponentOf(x: number): number {
  const v = new DataView(new ArrayBuffer(8));
  v.setFloat64(0, Math.abs(x));
  const e = (v.getUint16(0) >> 4) & 0x7ff;
  if (e !== 0) return e - 1023;
  // Subnormal: scale into the normal range first.
  return exponentOf(x * 2 ** 64) - 64;
}

/**
 * The shifts for the next phase of a network from this phase's total: given each tensor's largest
 * |value| (real units, from `toFloat64`), each tensor's largest lands in
 * [2^(TARGET_BITS−1), 2^TARGET_BITS) quanta. An all-zero tensor keeps its shift.
 */
export function nextShifts(largest: Float64Array, shifts: Int32Array): Int32Array {
  if (largest.length !== shifts.length)
    throw new RangeError(`nextShifts: ${largest.length} maxima for ${shifts.length} tensors`);
  const next = new Int32Array(shifts);
  for (let t = 0; t < shifts.length; t++) {
    const m = largest[t]!;
    if (m === 0) continue;
    next[t] = Math.min(MAX_SHIFT, Math.max(MIN_SHIFT, TARGET_BITS - 1 - exponentOf(m)));
  }
  return next;
}

const loaded = loadReduceAddon();

/** The native kernels (native/ganfleet_reduce.c), or null where the addon is not built. */
export const nativeFixedKernels: FixedKernels | null =
  loaded.addon === null
    ? null
    : {
        name: 'native',
        accumulate(sum, grads, chunks, layout) {
          const r = loaded.addon.fxAccumulate(sum.hi, sum.lo, grads, chunks, layout.segments, layout.shifts);
          return r < 0 ? { ok: true } : { ok: false, reason: r & 1 ? 'overflow' : 'non-finite', tensor: r >> 1 };
        },
        addWires(sum, wires, first) {
          const ws = [...wires];
          loaded.addon.fxAddWires(
            sum.hi,
            sum.lo,
            ws.map((w) => w.low),
            ws.map((w) => w.exIndex),
            ws.map((w) => w.exHigh),
            first,
          );
        },
        normalize(sum) {
          loaded.addon.fxNormalize(sum.hi, sum.lo);
        },
        toFloat64(sum, layout, out, largest) {
          loaded.addon.fxToFloat64(sum.hi, sum.lo, layout.segments, layout.shifts, out, largest ?? null);
        },
      };

/** Native where built, else JavaScript: the same bits either way. */
export const fixedKernels: FixedKernels = nativeFixedKernels ?? jsFixedKernels;
