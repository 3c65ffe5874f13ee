/**
 * `--topology auto` measures instead of guessing which shape is faster. Slices win when the
 * coordinator's link is no faster than the workers' (it then carries one network instead of W);
 * a star wins when the coordinator's link is much faster, or relaying costs the workers more CPU
 * than their links save. Neither link rate is known to the coordinator, so whenever the members
 * that could form slices change, it runs a few steps as a star and a few as slices, and keeps the
 * faster shape until they change again. The weights do not depend on it: exact sums are the same
 * in any shape.
 *
 *   probing star ──PROBE_STEPS timed──▶ probing slices ──PROBE_STEPS timed──▶ settled
 *        ▲                                                                      │
 *        └──────────────────────── the members change ◀─────────────────────────┘
 *
 * The first WARM_STEPS steps of a probe are not timed (a run's first steps are slow: compilation,
 * TCP's slow start), nor is the first step after the switch (a new plan's links open during it).
 */
export type Shape = 'star' | 'slices';

/** Timed steps per shape. */
export const PROBE_STEPS = 3;
/** Untimed star steps before a probe's first timed one. */
export const WARM_STEPS = 3;
/** Steps a probe takes: warm-up, timed star, the untimed switch, timed slices. */
export const PROBE_LENGTH = WARM_STEPS + PROBE_STEPS + 1 + PROBE_STEPS;

type ProbeState =
  | { kind: 'none' }
  | { kind: 'probing'; key: string; shape: Shape; untimed: number; times: Record<Shape, number[]> }
  | { kind: 'settled'; key: string; shape: Shape };

/** What the probe concluded (for the log). */
export interface ShapeVerdict {
  shape: Shape;
  starMs: number;
  slicesMs: number;
}

export class ShapeProbe {
  private state: ProbeState = { kind: 'none' };

  /**
   * The shape for the next step; `key` names the slices the members could form now ('' when none:
   * too few workers or relays, so a star without probing).
   */
  shapeFor(key: string): Shape {
    if (key === '') {
      this.state = { kind: 'none' };
      return 'star';
    }
    const s = this.state;
    if (s.kind === 'none' || s.key !== key)
      this.state = { kind: 'probing', key, shape: 'star', untimed: WARM_STEPS, times: { star: [], slices: [] } };
    return (this.state as Exclude<ProbeState, { kind: 'none' }>).shape;
  }

  /** A step ran in `shape` and took `ms`; the verdict when the probe settles on this step. */
  observe(shape: Shape, ms: number): ShapeVerdict | undefined {
    const s = this.state;
    if (s.kind !== 'probing' || s.shape !== shape) return undefined;
    if (s.untimed > 0) {
      s.untimed--;
      return undefined;
    }
    s.times[shape].push(ms);
    if (s.times[shape].length < PROBE_STEPS) return undefined;
    if (shape === 'star') {
      this.state = { ...s, shape: 'slices', untimed: 1 };
      return undefined;
    }
    const starMs = median(s.times.star);
    const slicesMs = median(s.times.slices);
    // A tie keeps the star: fewer connections, nothing for the workers to relay.
    const verdict: ShapeVerdict = { shape: slicesMs < starMs ? 'slices' : 'star', starMs, slicesMs };
    this.state = { kind: 'settled', key: s.key, shape: verdict.shape };
    return verdict;
  }

  /** Whether the probe is still measuring. */
  get probing(): boolean {
    return this.state.kind === 'probing';
  }
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
