/**
 * Wire dtypes for gradients: float32, IEEE 754 half (f16) and bfloat16 (bf16), converted on plain
 * typed arrays (no tfjs). Conversions to 16 bits round to nearest, ties to even; NaN stays NaN
 * (quiet) and ±Inf stays ±Inf.
 *
 * Error bounds of one f32 → 16-bit → f32 round trip (u = unit roundoff):
 *   - f16: |x̂ − x| ≤ 2⁻¹¹·|x| for 2⁻¹⁴ ≤ |x| ≤ 65504 (normal range); |x̂ − x| ≤ 2⁻²⁵ below it
 *     (subnormals, spacing 2⁻²⁴); |x| ≥ 65520 becomes ±Inf. Every f16 value round-trips exactly.
 *   - bf16: |x̂ − x| ≤ 2⁻⁸·|x| over float32's whole normal range (same exponent range as f32);
 *     float32 values with the low 16 bits zero round-trip exactly. Float32 subnormals keep an
 *     absolute error ≤ 2⁻¹³⁴; values within half an ulp of FLT_MAX's bf16 neighbour overflow to ±Inf.
 *
 * f16's range is narrow, so gradient sums travel with a power-of-two scale (`f16Scale`): the
 * sender multiplies by 2^e before rounding and the receiver by 2^−e after (both exact), which keeps
 * the largest |g| near 2¹⁴ and so away from both overflow and the subnormals.
 */

/** How results carry gradient sums: `exact` integers (shared/fixed.ts), or a lossy float. */
export const GRAD_DTYPES = ['exact', 'f32', 'f16', 'bf16'] as const;
export type GradDtype = (typeof GRAD_DTYPES)[number];
/** The default: every split of a batch gives the same weights. */
export const DEFAULT_GRAD_DTYPE: GradDtype = 'exact';
export const LOSSY_DTYPES = ['f32', 'f16', 'bf16'] as const;
export type LossyDtype = (typeof LOSSY_DTYPES)[number];

/** Bytes per element on the wire (exact: a total's usual size, its rare wide elements aside). */
export function dtypeBytes(d: GradDtype): number {
  switch (d) {
    case 'exact':
    case 'f32':
      return 4;
    case 'f16':
    case 'bf16':
      return 2;
    default: {
      const never: never = d;
      throw new Error(`unknown dtype ${never}`);
    }
  }
}

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

/** Rounds one float32 bit pattern to IEEE half bits (nearest, ties to even). */
function halfBits(u: number): number {
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  const mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 112; // exp − 127 + 15
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - e;
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1) !== 0)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) !== 0)) h++; // a carry into the exponent is right (up to Inf)
  return sign | h;
}

/** float32 → f16 bits, optionally times 2^scaleExp first (exact). `out` may be a view into a frame. */
export function f32ToF16(src: Float32Array, out: Uint16Array = new Uint16Array(src.length), scaleExp = 0): Uint16Array {
  if (out.length !== src.length) throw new RangeError(`f32ToF16: out has ${out.length} elements, src ${src.length}`);
  const s = 2 ** scaleExp;
  for (let i = 0; i < src.length; i++) {
    f32buf[0] = src[i]! * s;
    out[i] = halfBits(u32buf[0]!);
  }
  return out;
}

let halfTable: Float32Array | undefined;

/** All 65536 f16 values as float32 (256 KiB, made on first use). */
export function f16Table(): Float32Array {
  if (halfTable) return halfTable;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const e = (h >>> 10) & 0x1f;
    const m = h & 0x3ff;
    t[h] =
      e === 0
        ? sign * m * 2 ** -24
        : e === 31
          ? m === 0
            ? sign * Infinity
            : NaN
          : sign * (1 + m / 1024) * 2 ** (e - 15);
  }
  return (halfTable = t);
}

/** f16 bits → float32, times 2^−scaleExp (exact). */
export function f16ToF32(
  src: Uint16Array,
  out: Float32Array = new Float32Array(src.length),
  scaleExp = 0,
): Float32Array {
  if (out.length !== src.length) throw new RangeError(`f16ToF32: out has ${out.length} elements, src ${src.length}`);
  const t = f16Table();
  if (scaleExp === 0) {
    for (let i = 0; i < src.length; i++) out[i] = t[src[i]!]!;
  } else {
    const s = 2 ** -scaleExp;
    for (let i = 0; i < src.length; i++) out[i] = t[src[i]!]! * s;
  }
  return out;
}

/** float32 → bfloat16 bits (nearest, ties to even; NaN stays a quiet NaN). */
export function f32ToBf16(src: Float32Array, out: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  if (out.length !== src.length) throw new RangeError(`f32ToBf16: out has ${out.length} elements, src ${src.length}`);
  const u = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < u.length; i++) {
    const x = u[i]!;
    if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) out[i] = (x >>> 16) | 0x40;
    else out[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
  }
  return out;
}

/** bfloat16 bits → float32 (exact). */
export function bf16ToF32(src: Uint16Array, out: Float32Array = new Float32Array(src.length)): Float32Array {
  if (out.length !== src.length) throw new RangeError(`bf16ToF32: out has ${out.length} elements, src ${src.length}`);
  const u = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < src.length; i++) u[i] = src[i]! << 16;
  return out;
}

/** Largest |x| that f16Scale aims for: leaves 2 binades of headroom below f16's max (65504). */
const F16_TARGET_EXP = 14;

/**
 * The power-of-two exponent e such that max|x|·2^e lies in [2¹³, 2¹⁴): sums are sent as x·2^e.
 * 0 for an all-zero (or non-finite) array; clamped to [−60, 60].
 */
export function f16Scale(src: Float32Array): number {
  let max = 0;
  for (let i = 0; i < src.length; i++) {
    const a = Math.abs(src[i]!);
    if (a > max) max = a;
  }
  if (max === 0 || !Number.isFinite(max)) return 0;
  const e = F16_TARGET_EXP - 1 - Math.floor(Math.log2(max));
  return Math.max(-60, Math.min(60, e));
}

/** Decodes a gradient of `dtype` (raw little-endian elements) to float32, into `out`. */
export function decodeGrad(
  dtype: GradDtype,
  grad: Float32Array | Uint16Array,
  scaleExp: number,
  out: Float32Array,
): Float32Array {
  if (dtype === 'f32') {
    out.set(grad as Float32Array);
    return out;
  }
  return dtype === 'f16' ? f16ToF32(grad as Uint16Array, out, scaleExp) : bf16ToF32(grad as Uint16Array, out);
}
