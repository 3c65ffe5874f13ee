/**
 * The reducer: collects the shard results of one phase and adds them into the batch-mean
 * gradient. Pure (no I/O, no clocks): it only decides what a result is worth.
 *
 * Shards are added in shard order (by `start`), whatever order they arrive in, so the sum is the
 * same for every arrival order. The sum is kept in float64 and divided by the global batch once.
 *
 * Adding is batched: results wait until GROUP shards in a row (in shard order) are in, or until
 * the phase's last result arrives, and are then added in one pass over the float64 accumulator
 * (reduce-kernels.ts: native where built, bit-identical JavaScript otherwise). With many workers
 * most of the adding still overlaps the wait for the last results; with few, each element of the
 * sum is read and written once per phase instead of once per shard. f16/bf16 gradients are
 * decoded on the way; the sum is rounded once, to float32, when Adam takes its mean.
 *
 * A NaN or ±Inf in a gradient shows in the sum it is added to (float32 values cannot overflow a
 * float64 sum), so finiteness is checked there, once per element: a result found non-finite then
 * is dropped (the verdict lists it under `dropped`; it must be sent again), and the sum is rebuilt
 * from the others. The float64 accumulator can be lent by the caller and reused phase after phase.
 */
import type { Phase, RelayedMessage, ResultGrad, ResultMessage, ShardId } from '../shared/protocol.js';
import { MAX_ADD_SHARDS, reduceKernels, type ReduceKernels } from './reduce-kernels.js';
import type { LossyDtype } from '../shared/dtype.js';
import {
  type FixedKernels,
  type FixedLayout,
  type FixedSum,
  type FixedWire,
  fixedKernels,
  STATS_SHIFT,
} from '../shared/fixed.js';

/** Shards in a row that are added together before the phase is complete. */
export const GROUP = 8;

/** One contiguous piece of a phase's global batch. */
export interface Shard {
  readonly start: number;
  readonly count: number;
}

/** Why a result was not accepted. */
export type Rejection =
  | 'stale' // for another step or phase than the one being reduced
  | 'unknown-shard' // no shard starts there with that count
  | 'duplicate' // that shard is already in (e.g. a late speculative copy)
  | 'wrong-length' // gradient length differs from the manifest
  | 'wrong-dtype' // not the run's wire dtype (exact and lossy results do not mix)
  | 'non-finite'; // NaN or ±Inf in the gradient or the sums

/**
 * What became of a result. `dropped`: results accepted earlier (or this one's group-mates) found
 * holding a NaN or ±Inf when they were added; they are missing again and must be sent again.
 */
export type Verdict = (
  | {
      accepted: true;
      complete: boolean;
      /** A relay's piece: the elements [a, b) whose sum is now final (the coordinator may step them). */
      range?: readonly [number, number];
    }
  | { accepted: false; reason: Rejection }
) & {
  dropped?: Shard[];
};

/** The averaged outcome of a phase. */
export interface PhaseMean {
  /** Mean gradient over the global batch (float32, manifest order). */
  grad: Float32Array;
  /** Mean per-sample loss (D phase: BCE real + BCE fake, as the seed's d_loss). */
  loss: number;
  dReal: number;
  dFake: number;
}

/** The sums of a complete phase: the float64 gradient sum and the statistics' sums. */
export interface PhaseSum {
  /** Σ of every shard's gradient (float64, manifest order); owned by the reducer's accumulator. */
  sum: Float64Array;
  batch: number;
  loss: number;
  dReal: number;
  dFake: number;
  /** Exact sums: each tensor's largest |value| of `sum` (what the next shifts follow). */
  largest?: Float64Array;
}

/** Accumulates one phase's shard results. */
export class PhaseReducer {
  private readonly results = new Map<number, ResultMessage>();
  private readonly byStart = new Map<number, Shard>();
  /** Shards in the order they are added. */
  private readonly ordered: Shard[];
  /** Shards of `ordered` already added into `acc`. */
  private added = 0;
  private readonly acc: Float64Array;

  constructor(
    readonly step: number,
    readonly phase: Phase,
    readonly shards: readonly Shard[],
    readonly gradLength: number,
    /** A float64 accumulator of `gradLength` to reuse (its contents are overwritten). */
    acc?: Float64Array,
    private readonly kernels: ReduceKernels = reduceKernels,
  ) {
    for (const s of shards) this.byStart.set(s.start, s);
    this.ordered = [...shards].sort((a, b) => a.start - b.start);
    if (acc !== undefined && acc.length !== gradLength)
      throw new RangeError(`accumulator has ${acc.length} elements, expected ${gradLength}`);
    this.acc = acc ?? new Float64Array(gradLength);
  }

  /** Every shard is in and added. */
  get complete(): boolean {
    return this.added === this.ordered.length;
  }

  /** Whether the shard starting at `start` has its result. */
  has(start: number): boolean {
    return this.results.has(start);
  }

  /** Whether the shard's result is in the sum yet, or only received (waiting for its group). */
  status(start: number): 'missing' | 'received' | 'added' {
    if (!this.results.has(start)) return 'missing';
    const k = this.ordered.findIndex((s) => s.start === start);
    return k < this.added ? 'added' : 'received';
  }

  /** Shards still without a result. */
  missing(): Shard[] {
    return this.shards.filter((s) => !this.results.has(s.start));
  }

  /** Offers a result; it counts only if it is for this phase, a known shard not yet filled, and finite. */
  offer(r: ResultMessage): Verdict {
    if (r.step !== this.step || r.phase !== this.phase) return { accepted: false, reason: 'stale' };
    const shard = this.byStart.get(r.start);
    if (shard === undefined || shard.count !== r.count) return { accepted: false, reason: 'unknown-shard' };
    if (this.results.has(r.start)) return { accepted: false, reason: 'duplicate' };
    if (r.grad.dtype === 'exact') return { accepted: false, reason: 'wrong-dtype' };
    if (r.grad.values.length !== this.gradLength) return { accepted: false, reason: 'wrong-length' };
    if (!Number.isFinite(r.lossSum + r.dRealSum + r.dFakeSum)) return { accepted: false, reason: 'non-finite' };
    this.results.set(r.start, r);
    const bad = this.advance();
    const others = bad.filter((s) => s !== shard);
    const dropped = others.length > 0 ? { dropped: others } : {};
    if (others.length < bad.length) return { accepted: false, reason: 'non-finite', ...dropped };
    return { accepted: true, complete: this.complete, ...dropped };
  }

  /** Nothing to do: lossy results are copies, added in groups as they come (see `advance`). */
  addReceived(): void {}

  /** The float64 sums, once every shard is in (the gradient sum is the reducer's accumulator). */
  sum(): PhaseSum {
    if (!this.complete)
      throw new Error(`phase ${this.phase} of step ${this.step} is missing ${this.missing().length} shard(s)`);
    let batch = 0;
    let loss = 0;
    let dReal = 0;
    let dFake = 0;
    for (const s of this.ordered) {
      const r = this.results.get(s.start)!;
      batch += s.count;
      loss += r.lossSum;
      dReal += r.dRealSum;
      dFake += r.dFakeSum;
    }
    return { sum: this.acc, batch, loss, dReal, dFake };
  }

  /** The batch mean, once every shard is in. */
  mean(): PhaseMean {
    const { sum, batch, loss, dReal, dFake } = this.sum();
    const grad = new Float32Array(this.gradLength);
    for (let i = 0; i < grad.length; i++) grad[i] = sum[i]! / batch;
    return { grad, loss: loss / batch, dReal: dReal / batch, dFake: dFake / batch };
  }

  /**
   * Adds the shards in a row from the first not yet added whose results are in, once there are
   * GROUP of them or no other shard is missing. Returns the shards found non-finite (their results
   * removed, the sum reset to be rebuilt from the rest).
   */
  private advance(): Shard[] {
    const ready: Shard[] = [];
    for (let k = this.added; k < this.ordered.length && this.results.has(this.ordered[k]!.start); k++)
      ready.push(this.ordered[k]!);
    if (ready.length === 0 || (ready.length < GROUP && this.results.size < this.ordered.length)) return [];
    // One add per run of equal dtypes, at most MAX_ADD_SHARDS at a time (the dtype is the worker's
    // to choose, so a phase may mix them).
    for (let i = 0; i < ready.length; ) {
      const dtype = this.dtypeOf(ready[i]!);
      let j = i + 1;
      while (j < ready.length && j - i < MAX_ADD_SHARDS && this.dtypeOf(ready[j]!) === dtype) j++;
      const rs = ready.slice(i, j).map((s) => this.results.get(s.start)!);
      const ok = this.kernels.add(
        this.acc,
        rs.map((r) => lossy(r).values),
        dtype,
        rs.map((r) => {
          const g = lossy(r);
          return g.dtype === 'f16' ? g.scaleExp : 0;
        }),
        this.added === 0,
      );
      if (!ok) return this.dropNonFinite();
      this.added += j - i;
      i = j;
    }
    return [];
  }

  /** Removes every result holding a NaN or ±Inf and resets the sum; returns their shards. */
  private dropNonFinite(): Shard[] {
    const bad: Shard[] = [];
    for (const s of this.ordered) {
      const r = this.results.get(s.start);
      if (r !== undefined && !this.kernels.finite(lossy(r).values, this.dtypeOf(s))) {
        this.results.delete(s.start);
        bad.push(s);
      }
    }
    this.added = 0;
    // The rest is added again as soon as its turn comes (all at once if nothing else is missing).
    if (bad.length > 0) bad.push(...this.advance());
    return bad;
  }

  private dtypeOf(s: Shard): LossyDtype {
    return lossy(this.results.get(s.start)!).dtype;
  }
}

/** A lossy result's gradient (offer refuses the others). */
function lossy(r: ResultMessage): Exclude<ResultGrad, { dtype: 'exact' }> {
  if (r.grad.dtype === 'exact') throw new Error('an exact result in the float reducer');
  return r.grad;
}

/**
 * The exact reducer: every result is an integer total (shared/fixed.ts), and integer addition gives
 * the same bits in any order. Accepted totals wait until GROUP of them are in, the phase's last one
 * is, or `addReceived` is called, and are then added in one pass over the sum (each element of it
 * read and written once per group, not once per total). A total may be a view of a worker's
 * shared-memory slot, valid until that worker computes again: the dispatcher calls `addReceived`
 * before it hands out any work. The sum becomes floats once, when the phase is complete (T · 2^−s
 * per tensor), and the statistics are integers too (quanta of 2^−STATS_SHIFT).
 *
 * With relays (coordinator/topology.ts), a shard's total does not come here: its worker sends its
 * slices to its zone's relays and only its statistics here (`offerRelayed`). Once every shard is in,
 * each relay is told which parts to sum (`flushes`) and its slice total is added over the slice's
 * range (`offerSlice`); the phase is complete when every zone's every slice is in.
 */
export class ExactReducer {
  /** Accepted shards (by start), and for relayed ones the worker and zone whose relays hold them. */
  private readonly results = new Map<number, { worker: number; zone: string } | undefined>();
  private readonly byStart = new Map<number, Shard>();
  private readonly stats = [0, 0, 0];
  private batch = 0;
  private readonly sumOut: Float64Array;
  /** Slices flushed and not yet in: "zone/slice" → the parts their totals must cover. */
  private readonly pending = new Map<string, Int32Array>();
  private flushed = false;
  /** The accumulator still holds the previous phase's sum: the next whole totals overwrite it. */
  private fresh = false;
  /** Accepted totals not yet added, and their shards' starts. */
  private readonly waiting: FixedWire[] = [];
  private readonly waitingStarts = new Set<number>();

  constructor(
    readonly step: number,
    readonly phase: Phase,
    readonly shards: readonly Shard[],
    /** The tensors and their shifts for this phase's network. */
    readonly layout: FixedLayout,
    /** The integer accumulator, reused phase after phase (overwritten), and the float64 sum's buffer. */
    private readonly acc: FixedSum,
    out?: Float64Array,
    private readonly kernels: FixedKernels = fixedKernels,
    /** Each zone's piece bounds and pieces per slice, where relays sum (empty: every total comes here). */
    private readonly zones: ReadonlyMap<string, { bounds: Int32Array; pieces: number }> = new Map(),
  ) {
    for (const s of shards) this.byStart.set(s.start, s);
    if (out !== undefined && out.length !== acc.length)
      throw new RangeError(`out has ${out.length} elements, the sum ${acc.length}`);
    this.sumOut = out ?? new Float64Array(acc.length);
    // Without relays every total is added whole: the first one overwrites instead of a clear first.
    if (zones.size > 0) acc.clear();
    else this.fresh = true;
  }

  /** Every shard is in (its total added, or its slices at its zone's relays). */
  get shardsIn(): boolean {
    return this.results.size === this.byStart.size;
  }

  get complete(): boolean {
    return (
      this.shardsIn &&
      this.waiting.length === 0 &&
      (this.flushed || this.relayedParts().size === 0) &&
      this.pending.size === 0
    );
  }

  status(start: number): 'missing' | 'received' | 'added' {
    const r = this.results.get(start);
    if (!this.results.has(start)) return 'missing';
    if (this.waitingStarts.has(start)) return 'received';
    return r === undefined || (this.flushed && this.pending.size === 0) ? 'added' : 'received';
  }

  /** A result whose total came here. */
  offer(r: ResultMessage): Verdict {
    const bad = this.check(r);
    if (bad !== undefined) return bad;
    if (r.grad.dtype !== 'exact') return { accepted: false, reason: 'wrong-dtype' };
    if (r.grad.total.low.length !== this.acc.length) return { accepted: false, reason: 'wrong-length' };
    this.waiting.push(r.grad.total);
    this.waitingStarts.add(r.start);
    return this.take(r, undefined);
  }

  /** Adds the totals accepted and not yet added (before their workers compute again). */
  addReceived(): void {
    if (this.waiting.length === 0) return;
    this.kernels.addWires(this.acc, this.waiting, this.fresh);
    this.fresh = false;
    this.waiting.length = 0;
    this.waitingStarts.clear();
  }

  /** A result whose total went to the relays of `zone` (this worker's plan). */
  offerRelayed(r: RelayedMessage, zone: string): Verdict {
    const bad = this.check(r);
    if (bad !== undefined) return bad;
    if (!this.zones.has(zone)) return { accepted: false, reason: 'unknown-shard' };
    return this.take(r, { worker: -1, zone });
  }

  /**
   * Once every shard is in: for each zone and each of its slices, the parts (start, count, worker)
   * its relay must sum. Called once; the slices are then awaited.
   */
  flushes(workerOf: (start: number) => number): Map<string, { slices: number; parts: Int32Array }> {
    if (!this.shardsIn || this.flushed) throw new Error('flushes: not every shard is in, or already flushed');
    this.flushed = true;
    const out = new Map<string, { slices: number; parts: Int32Array }>();
    for (const [zone, starts] of this.relayedParts()) {
      const parts = Int32Array.from(starts.flatMap((s) => [s, this.byStart.get(s)!.count, workerOf(s)]));
      const { bounds, pieces } = this.zones.get(zone)!;
      const slices = (bounds.length - 1) / pieces;
      out.set(zone, { slices, parts });
      for (let k = 0; k < bounds.length - 1; k++) this.pending.set(`${zone}/${k}`, parts);
    }
    return out;
  }

  /** A relay's piece total: added over the piece's range when it covers exactly the parts flushed. */
  offerSlice(zone: string, slice: number, piece: number, start: number, parts: Int32Array, total: FixedWire): Verdict {
    const { bounds, pieces } = this.zones.get(zone)!;
    if (piece >= pieces) return { accepted: false, reason: 'wrong-length' };
    const p = slice * pieces + piece;
    const key = `${zone}/${p}`;
    const want = this.pending.get(key);
    if (want === undefined) return { accepted: false, reason: 'duplicate' };
    const [a, b] = [bounds[p]!, bounds[p + 1]!];
    if (start !== a || total.low.length !== b - a) return { accepted: false, reason: 'wrong-length' };
    if (parts.length !== want.length || parts.some((x, i) => x !== want[i]))
      return { accepted: false, reason: 'unknown-shard' };
    this.kernels.addWires(this.acc.view(a, b), [total], false);
    this.pending.delete(key);
    return { accepted: true, complete: this.complete, range: [a, b] };
  }

  /** Whether a piece of slice `slice` of `zone` was flushed and its total has not come yet. */
  awaiting(zone: string, slice: number): boolean {
    const pieces = this.zones.get(zone)?.pieces ?? 0;
    for (let k = 0; k < pieces; k++) if (this.pending.has(`${zone}/${slice * pieces + k}`)) return true;
    return false;
  }

  /** The sum as floats (T · 2^−s), once every shard is in; its buffer is reused phase after phase. */
  sum(): PhaseSum {
    if (!this.complete) throw new Error(`phase ${this.phase} of step ${this.step} is missing shards`);
    const largest = new Float64Array(this.layout.shifts.length);
    this.kernels.toFloat64(this.acc, this.layout, this.sumOut, largest);
    const q = 2 ** -STATS_SHIFT;
    return {
      sum: this.sumOut,
      largest,
      batch: this.batch,
      loss: this.stats[0]! * q,
      dReal: this.stats[1]! * q,
      dFake: this.stats[2]! * q,
    };
  }

  private check(r: ShardId): Verdict | undefined {
    if (r.step !== this.step || r.phase !== this.phase) return { accepted: false, reason: 'stale' };
    const shard = this.byStart.get(r.start);
    if (shard === undefined || shard.count !== r.count) return { accepted: false, reason: 'unknown-shard' };
    if (this.results.has(r.start)) return { accepted: false, reason: 'duplicate' };
    return undefined;
  }

  private take(
    r: ShardId & { lossSum: number; dRealSum: number; dFakeSum: number },
    relayed: { worker: number; zone: string } | undefined,
  ): Verdict {
    this.results.set(r.start, relayed);
    this.batch += r.count;
    this.stats[0]! += r.lossSum;
    this.stats[1]! += r.dRealSum;
    this.stats[2]! += r.dFakeSum;
    if (this.waiting.length >= GROUP || this.shardsIn) this.addReceived();
    return { accepted: true, complete: this.complete };
  }

  /** Relayed shards' starts by zone, in shard order. */
  private relayedParts(): Map<string, number[]> {
    const out = new Map<string, number[]>();
    for (const s of [...this.byStart.keys()].sort((x, y) => x - y)) {
      const r = this.results.get(s);
      if (r !== undefined) out.set(r.zone, [...(out.get(r.zone) ?? []), s]);
    }
    return out;
  }
}
