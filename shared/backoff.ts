/**
 * Capped exponential backoff with full jitter (as AWS's architecture blog recommends): the n-th
 * retry waits a uniform time in [0, min(cap, base·2ⁿ)], so a fleet of workers that lost their
 * coordinator does not reconnect in lockstep.
 */
export function backoffDelay(
  attempt: number,
  baseMs: number,
  capMs: number,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling * (0.5 + 0.5 * random()));
}
