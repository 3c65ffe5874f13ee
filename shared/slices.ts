/**
 * How a zone's relays share a network's parameters: relay r sums, of every worker's total, the
 * elements [bounds[r], bounds[r+1]) — contiguous slices of near-equal size (multiples of 16, for
 * the kernels' vectors), so that every relay's links carry about the same bytes. Coordinator and
 * workers compute the bounds from the same two numbers and so agree on them.
 */
/**
 * A relay's slice travels in pieces: a relay sums, and the coordinator steps and sends back, each
 * piece as soon as it is complete, so that the ways up and down overlap instead of following each
 * other. More pieces overlap better but cost a message each on every link: a piece is at least
 * MIN_PIECE_BYTES (so a worker sends about the same number of messages at any relay count), and a
 * slice has at most MAX_PIECES. But a slice has at least MIN_PIECES (while a piece keeps 64
 * elements): the relays' last pieces of a phase complete together, and that last round (a piece
 * per relay) crosses the coordinator's link after everything else, so it must not be the whole
 * phase. Not more: every piece is a message on W links, and past a few dozen workers their count,
 * not the bytes, is what a worker's CPU spends its time on (docs/benchmarks.md).
 */
export const MAX_PIECES = 8;
export const MIN_PIECES = 2;
export const MIN_PIECE_BYTES = 16 * 1024;

/** How many pieces each relay's slice of a network of `n` parameters has, with `relays` relays. */
export function piecesFor(n: number, relays: number): number {
  const bySize = Math.floor((n * 4) / relays / MIN_PIECE_BYTES);
  const atLeast = Math.min(MIN_PIECES, Math.floor(n / relays / 64));
  return Math.max(1, Math.min(MAX_PIECES, Math.max(bySize, atLeast)));
}

/** Bounds of a zone's relays · P pieces (P = piecesFor): relay r's slice is pieces [r·P, (r+1)·P). */
export function pieceBounds(n: number, relays: number): Int32Array {
  return sliceBounds(n, relays * piecesFor(n, relays));
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

/**
 * The order a worker sends its contributions in: piece by piece (so that every relay's first
 * pieces are complete first), and within a piece the relays from the one after `place` (the
 * worker's own slice; a leaf's id) round. Every worker starting elsewhere, the workers send to
 * different relays at any moment: all at one relay would queue on its link while the others idle.
 */
export function sendOrder(relays: number, pieces: number, place: number): Array<{ slice: number; piece: number }> {
  const out: Array<{ slice: number; piece: number }> = [];
  for (let piece = 0; piece < pieces; piece++)
    for (let j = 1; j <= relays; j++) out.push({ slice: (((place + j) % relays) + relays) % relays, piece });
  return out;
}

/** `ids` ascending from the first one above `self`, round: the order a relay passes weights on in. */
export function rotateAfter(ids: readonly number[], self: number): number[] {
  const s = [...ids].sort((a, b) => a - b);
  const from = s.findIndex((id) => id > self);
  return from <= 0 ? s : [...s.slice(from), ...s.slice(0, from)];
}
