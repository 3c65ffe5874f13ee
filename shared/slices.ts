/**
 * How a zone's relays share a network's parameters: relay r sums, of every worker's total, the
 * elements [bounds[r], bounds[r+1]) — contiguous slices of near-equal size (multiples of 16, for
 * the kernels' vectors), so that every relay's links carry about the same bytes. Coordinator and
 * workers compute the bounds from the same two numbers and so agree on them.
 */
/**
 * Pieces a relay's slice travels in: a relay sums, and the coordinator steps and sends back, each
 * piece as soon as it is complete, so the ways up and down overlap instead of following each other.
 */
export const PIECES = 8;

/** Bounds of a zone's relays · PIECES pieces: relay r's slice is pieces [r·PIECES, (r+1)·PIECES). */
export function pieceBounds(n: number, relays: number): Int32Array {
  return sliceBounds(n, relays * PIECES);
}

export function sliceBounds(n: number, relays: number): Int32Array {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`sliceBounds: ${n} elements`);
  if (!Number.isInteger(relays) || relays < 1 || relays > n)
    throw new RangeError(`sliceBounds: ${relays} relays for ${n} elements`);
  const b = new Int32Array(relays + 1);
  for (let r = 1; r < relays; r++) b[r] = Math.max(b[r - 1]!, Math.floor((r * n) / relays / 16) * 16);
  b[relays] = n;
  return b;
}
