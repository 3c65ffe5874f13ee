/**
 * Integers in narrow lanes: each value in the fewest bytes (1–4, little-endian, sign-extended back)
 * that its group needs, so that the wire carries no byte it need not. Two uses:
 *
 *   - exact totals between relays (shared/fixed.ts, `contrib` and `slice-total`): the lane width
 *     holds every low word of the piece (a worker's share lies far below the 2^26 quanta a phase's
 *     sum aims at, so mostly 3 bytes);
 *   - new weights as steps from the previous version (shared/weight-steps.ts): most steps are small,
 *     a few are not (a weight crossing zero, one smaller than its step), so the width is the one
 *     that makes lanes plus exceptions (index and whole value, 8 bytes each) fewest.
 *
 * Lossless either way: the same integers come out.
 */
/**
 * Bytes per element (1–4) that hold every one of `low`'s words as a signed integer: a total's low
 * words travel in that many (a worker's share of a phase is far below the 2^TARGET_BITS its sum
 * aims at, so mostly 3), sign-extended back to int32 on arrival. Lossless: the same integers.
 */
export function laneBytes(low: Int32Array): 1 | 2 | 3 | 4 {
  let min = 0;
  let max = 0;
  for (let i = 0; i < low.length; i++) {
    const v = low[i]!;
    if (v < min) min = v;
    else if (v > max) max = v;
  }
  return max < 0x80 && min >= -0x80
    ? 1
    : max < 0x8000 && min >= -0x8000
      ? 2
      : max < 0x800000 && min >= -0x800000
        ? 3
        : 4;
}

/** `low`'s words, `bytes` each, little-endian, into `out` (bytes · low.length long). */
export function packLanes(low: Int32Array, bytes: number, out: Uint8Array): void {
  const n = low.length;
  if (out.length !== bytes * n) throw new RangeError(`packLanes: ${out.length} bytes for ${n} lanes of ${bytes}`);
  if (bytes === 4) {
    out.set(new Uint8Array(low.buffer, low.byteOffset, low.byteLength));
    return;
  }
  for (let i = 0, j = 0; i < n; i++) {
    const v = low[i]!;
    out[j++] = v;
    if (bytes > 1) out[j++] = v >> 8;
    if (bytes > 2) out[j++] = v >> 16;
  }
}

/** The int32 words of `n` lanes of `bytes` each (sign-extended; a fresh array). */
export function unpackLanes(src: Uint8Array, bytes: number, n: number): Int32Array {
  if (src.length !== bytes * n) throw new RangeError(`unpackLanes: ${src.length} bytes for ${n} lanes of ${bytes}`);
  const out = new Int32Array(n);
  const shift = 32 - 8 * bytes;
  for (let i = 0, j = 0; i < n; i++) {
    let v = src[j++]!;
    if (bytes > 1) v |= src[j++]! << 8;
    if (bytes > 2) v |= src[j++]! << 16;
    if (bytes > 3) v |= src[j++]! << 24;
    out[i] = (v << shift) >> shift;
  }
  return out;
}

/** Bytes a value needs as a signed lane (1–4). */
function need(v: number): number {
  return v >= -0x80 && v < 0x80 ? 1 : v >= -0x8000 && v < 0x8000 ? 2 : v >= -0x800000 && v < 0x800000 ? 3 : 4;
}

/** The lane width that makes `values` fewest bytes with the values that do not fit as exceptions. */
export function lanesWithExceptions(values: Int32Array): { lanes: 1 | 2 | 3 | 4; exceptions: number } {
  // over[w]: values needing more than w bytes.
  const over = [0, 0, 0, 0, 0];
  for (let i = 0; i < values.length; i++) {
    const b = need(values[i]!);
    for (let w = 1; w < b; w++) over[w]!++;
  }
  let best: 1 | 2 | 3 | 4 = 4;
  for (const w of [3, 2, 1] as const)
    if (w * values.length + 8 * over[w]! <= best * values.length + 8 * (best === 4 ? 0 : over[best]!)) best = w;
  return { lanes: best, exceptions: best === 4 ? 0 : over[best]! };
}

/**
 * `values` in `lanes` bytes each into `out` after their exceptions: exception indices (uint32),
 * then their values (int32), then the lanes (an exception's lane is 0). `out` is 8·k + lanes·n long.
 */
export function packWithExceptions(values: Int32Array, lanes: number, exceptions: number, out: Uint8Array): void {
  const n = values.length;
  if (out.length !== 8 * exceptions + lanes * n)
    throw new RangeError(
      `packWithExceptions: ${out.length} bytes for ${n} lanes of ${lanes}, ${exceptions} exceptions`,
    );
  const head = new DataView(out.buffer, out.byteOffset, 8 * exceptions);
  const lo = -(2 ** (8 * lanes - 1));
  const hi = 2 ** (8 * lanes - 1);
  const narrow = lanes === 4 ? values : new Int32Array(n);
  let k = 0;
  if (lanes < 4)
    for (let i = 0; i < n; i++) {
      const v = values[i]!;
      if (v >= lo && v < hi) narrow[i] = v;
      else {
        if (k === exceptions) throw new RangeError(`packWithExceptions: more than ${exceptions} exceptions`);
        head.setUint32(4 * k, i, true);
        head.setInt32(4 * (exceptions + k), v, true);
        k++;
      }
    }
  if (k !== exceptions) throw new RangeError(`packWithExceptions: ${k} exceptions, not ${exceptions}`);
  packLanes(narrow, lanes, out.subarray(8 * exceptions));
}

/** The values packWithExceptions wrote (a fresh array); indices must increase strictly below n. */
export function unpackWithExceptions(src: Uint8Array, lanes: number, exceptions: number, n: number): Int32Array {
  if (src.length !== 8 * exceptions + lanes * n)
    throw new RangeError(
      `unpackWithExceptions: ${src.length} bytes for ${n} lanes of ${lanes}, ${exceptions} exceptions`,
    );
  const out = unpackLanes(src.subarray(8 * exceptions), lanes, n);
  const head = new DataView(src.buffer, src.byteOffset, 8 * exceptions);
  let last = -1;
  for (let k = 0; k < exceptions; k++) {
    const i = head.getUint32(4 * k, true);
    if (i >= n || i <= last) throw new RangeError(`unpackWithExceptions: exception index ${i} after ${last} of ${n}`);
    out[i] = head.getInt32(4 * (exceptions + k), true);
    last = i;
  }
  return out;
}
