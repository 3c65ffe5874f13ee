/**
 * The shape gradients and weights travel in (pure: no I/O). A star sends everything through the
 * coordinator's link: W·g each way a phase (g = one network's bytes), which bounds a cluster by one
 * link. Slices keep every link near 2g whatever W: in each zone, relay r sums slice r of all the
 * zone's totals (each worker sends g(R−1)/R to the relays and relay r receives g/R from each), the
 * coordinator gets one slice total per relay (g per zone in all) and sends each relay its slice of
 * the new weights (g per zone), which the relay passes to its zone's workers. Exact sums make the
 * shape invisible in the weights: integers add the same in any grouping (shared/fixed.ts).
 *
 * Workers that take shared memory (on the coordinator's host) stay out of the slices: their bulk
 * data never touches a link.
 */
import { pieceBounds } from '../shared/slices.js';
import { MAX_RELAYS } from '../shared/protocol.js';
import type { GradDtype } from '../shared/dtype.js';

export const TOPOLOGIES = ['auto', 'star', 'slices'] as const;
export type Topology = (typeof TOPOLOGIES)[number];

/** What the planner knows of a worker. */
export interface Member {
  id: number;
  zone: string;
  /** Where it takes contributions, if it can relay. */
  relay: string | undefined;
  /** It uses shared memory: never part of a slice plan. */
  shm: boolean;
  /**
   * It is on the coordinator's host (loopback or a Unix socket): it shares the coordinator's CPU and
   * has no link of its own to spare, so `auto` leaves it out of slices.
   */
  local: boolean;
}

/** One zone's slices: its relays in slice order, and who sends to them. */
export interface ZonePlan {
  readonly zone: string;
  readonly relays: readonly { worker: number; url: string }[];
  readonly members: readonly number[];
}

/** A plan: the zones whose workers relay (the others send straight to the coordinator). */
export interface Plan {
  /** 0: everything straight to the coordinator. */
  readonly id: number;
  readonly zones: readonly ZonePlan[];
}

/** A zone of fewer workers than this is cheaper as a star (measured: docs/benchmarks.md). */
export const AUTO_MIN_WORKERS = 4;

/** Why no slices: the reason a star was chosen (for the log), or '' when slices were. */
export function starReason(choice: Topology, dtype: GradDtype): string {
  if (choice === 'star') return '--topology star';
  if (dtype !== 'exact')
    return `relays need exact sums (--grad-dtype ${dtype} is lossy: its sums depend on the grouping)`;
  return '';
}

/**
 * The plan for these members: per zone, every worker that can relay takes a slice, when the zone
 * has enough workers (`auto`) or at least two relays (`slices`); elsewhere the star. `previous` keeps
 * the id (and so the workers' connections) when nothing changed.
 */
export function planFor(
  members: readonly Member[],
  choice: Topology,
  dtype: GradDtype,
  previous: Plan,
  nextId: () => number,
  /** A new id even if nothing changed (a phase redone with other quanta: relays drop what they hold). */
  fresh = false,
): Plan {
  if (starReason(choice, dtype) !== '') return STAR;
  const byZone = new Map<string, Member[]>();
  for (const m of members)
    if (!m.shm && !(m.local && choice === 'auto')) byZone.set(m.zone, [...(byZone.get(m.zone) ?? []), m]);
  const zones: ZonePlan[] = [];
  for (const [zone, ms] of [...byZone].sort(([a], [b]) => a.localeCompare(b))) {
    const relays = ms.filter((m) => m.relay !== undefined).map((m) => ({ worker: m.id, url: m.relay! }));
    const enough = choice === 'slices' ? relays.length >= 2 : ms.length >= AUTO_MIN_WORKERS && relays.length >= 2;
    if (!enough) continue;
    zones.push({ zone, relays: relays.slice(0, MAX_RELAYS), members: ms.map((m) => m.id) });
  }
  if (zones.length === 0) return STAR;
  const same =
    !fresh &&
    previous.zones.length === zones.length &&
    previous.zones.every((z, i) => JSON.stringify(z) === JSON.stringify(zones[i]));
  return same ? previous : { id: nextId(), zones };
}

export const STAR: Plan = { id: 0, zones: [] };

/** The zone plan a worker belongs to, if any. */
export function zoneOf(plan: Plan, worker: number): ZonePlan | undefined {
  return plan.zones.find((z) => z.members.includes(worker));
}

/** The relays a worker's weights came through under `plan` ('' for none: straight from the coordinator). */
export function feedOf(plan: Plan, worker: number): string {
  return (zoneOf(plan, worker)?.relays ?? []).map((r) => r.worker).join(',');
}

/** A zone's piece bounds for a network of `n` parameters (shared/slices.ts pieceBounds). */
export function boundsOf(zone: ZonePlan, n: number): Int32Array {
  return pieceBounds(n, zone.relays.length);
}
