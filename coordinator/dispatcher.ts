/**
 * Dispatch: who computes which shard of the phase in progress. It consumes the sessions' events
 * (joined, left, result) one at a time, from the server's queue, and owns every shard's state:
 *
 *   pending ──assign──▶ assigned ──result accepted──▶ received ──added to the sum──▶ added
 *      ▲                  │  ▲                            │
 *      └── holder left ───┘  └─ deadline: copy wanted      └── found non-finite (dropped) ──▶ pending
 *
 * `assigned` holds the workers computing the shard; past the phase's deadline it also wants a
 * copy, which the next idle worker takes (the first result wins, a late duplicate is discarded).
 * Whether an accepted result is added yet is the reducer's to say (it adds in groups), so that part
 * of the state is read from it, not stored twice.
 */
import { CloseCode, type GanfleetError, ProtocolError } from '../shared/errors.js';
import type { LogEvent, Logger } from '../shared/log.js';
import {
  type AssignMessage,
  encode,
  type FailedMessage,
  type Phase,
  type RelayedMessage,
  type ResultMessage,
  type SliceTotalMessage,
} from '../shared/protocol.js';
import type { FixedWire } from '../shared/fixed.js';
import { type Plan, zoneOf } from './topology.js';
import type { EventBus, SessionEvent } from './events.js';
import type { PhaseSum, Shard, Verdict } from './reducer.js';
import { splitBatch } from './schedule.js';
import type { WorkerSession } from './session.js';

/** What dispatch needs of the reducer of a phase. */
export interface PhaseReduction {
  readonly complete: boolean;
  offer(r: ResultMessage): Verdict;
  status(start: number): 'missing' | 'received' | 'added';
  /** Adds whatever was accepted and not yet added: called before any worker is handed work. */
  addReceived(): void;
  sum(): PhaseSum;
}

/** A reduction that also takes totals summed by relays (coordinator/reducer.ts ExactReducer). */
export interface RelayReduction extends PhaseReduction {
  readonly shardsIn: boolean;
  offerRelayed(r: RelayedMessage, zone: string): Verdict;
  flushes(workerOf: (start: number) => number): Map<string, { slices: number; parts: Int32Array }>;
  awaiting(zone: string, slice: number): boolean;
  offerSlice(zone: string, slice: number, piece: number, start: number, parts: Int32Array, total: FixedWire): Verdict;
}

function relaying(r: PhaseReduction): r is RelayReduction {
  return 'offerRelayed' in r;
}

/** What dispatch needs of the network edge. */
export interface Workers {
  /** Active sessions, in join order. */
  active(): WorkerSession[];
  /** Sends one frame to one worker. */
  sendTo(session: WorkerSession, frame: Buffer): void;
  /** Closes a worker's connection for `err`; its 'left' event follows through the queue. */
  disconnect(session: WorkerSession, err: GanfleetError): void;
}

/** One phase to run. */
export interface PhasePlan {
  step: number;
  phase: Phase;
  /** The step's global batch (dataset indices); the D phase sends each shard its slice. */
  batch: Uint32Array;
  /** Weight versions the shards are computed with. */
  versions: { gen: number; dis: number };
  /** Shards are whole multiples of this many samples (the last may be shorter). */
  unit: number;
  /** The reducer for these shards. */
  reducer: (shards: Shard[]) => PhaseReduction;
  /** Extra fields of every assign message of the phase (the exact reduction's scales). */
  assignExtra?: Partial<AssignMessage>;
  /** Where totals go: the relays of a worker's zone, or straight here (coordinator/topology.ts). */
  topology: Plan;
  /** A relay's piece total came in: elements [a, b) of `zone`'s sum are final before the phase is. */
  onPiece?: (zone: string, slice: number, a: number, b: number) => void;
}

export type PhaseOutcome =
  | { readonly kind: 'done'; readonly sum: PhaseSum; readonly reduceMs: number }
  /** Exact: a chunk of `tensor` overflowed its quantum: run the phase again with a coarser one. */
  | { readonly kind: 'rescale'; readonly tensor: number }
  /** A relay left, straggled or sent a bad total: run the phase again without it (`relay`: its worker). */
  | { readonly kind: 'replan'; readonly relay: number }
  /** Given up because the run is stopping with no worker left to finish it. */
  | { readonly kind: 'aborted' };

export type ShardState =
  | { readonly kind: 'pending' }
  | { readonly kind: 'assigned'; readonly holders: ReadonlySet<WorkerSession>; readonly copyWanted: boolean }
  | { readonly kind: 'accepted'; readonly from: WorkerSession };

interface Slot {
  readonly shard: Shard;
  state: ShardState;
  /** A copy was asked for once already (a shard is speculated at most once). */
  speculated: boolean;
}

const NO_SHIFTS = new Int32Array(0);

/** A log record's `event` (shared/log.ts). */
const ev = (e: LogEvent): LogEvent => e;

/** How often a wait is logged again while it lasts. */
const WAIT_LOG_MS = 10_000;
/** Shard deadline before any throughput is measured (the first phase includes warm-up). */
const FIRST_DEADLINE_MS = 30_000;

/** The phase in progress: its shards' states and how it ends. */
class PhaseRun {
  readonly slots: Slot[];
  reduceMs = 0;
  readonly timers: NodeJS.Timeout[] = [];
  /** When the relays were flushed (performance.now()), under a relay plan. */
  flushedAt: number | undefined;
  /** When the phase was handed out (performance.now()). */
  readonly startedAt = performance.now();

  constructor(
    readonly attempt: number,
    readonly plan: PhasePlan,
    readonly reducer: PhaseReduction,
    shards: Shard[],
    readonly settle: (o: PhaseOutcome) => void,
  ) {
    this.slots = shards.map((shard) => ({ shard, state: { kind: 'pending' }, speculated: false }));
  }

  slot(start: number, count: number): Slot | undefined {
    return this.slots.find((s) => s.shard.start === start && s.shard.count === count);
  }

  /** Shards still without an accepted result. */
  missing(): Slot[] {
    return this.slots.filter((s) => s.state.kind !== 'accepted');
  }

  /** The next shard for `session`: a pending one, else one that wants a copy and is not already its. */
  next(session: WorkerSession): Slot | undefined {
    return (
      this.slots.find((s) => s.state.kind === 'pending') ??
      this.slots.find((s) => s.state.kind === 'assigned' && s.state.copyWanted && !s.state.holders.has(session))
    );
  }

  assign(slot: Slot, session: WorkerSession): void {
    const holders = new Set(slot.state.kind === 'assigned' ? slot.state.holders : []);
    holders.add(session);
    // A copy has now been handed out; more copies are not wanted.
    slot.state = { kind: 'assigned', holders, copyWanted: false };
  }

  /** `session` no longer computes `slot` (it left, or its result was refused): pending if nobody else does. */
  release(slot: Slot, session: WorkerSession): boolean {
    if (slot.state.kind !== 'assigned') return false;
    const holders = new Set(slot.state.holders);
    holders.delete(session);
    slot.state = holders.size > 0 ? { ...slot.state, holders } : { kind: 'pending' };
    return slot.state.kind === 'pending';
  }
}

const rangeOf = (shard: Shard): string => `[${shard.start}, +${shard.count})`;

/**
 * A missing shard as the wait log names it: its range and state and, while assigned, the workers
 * computing it with the bytes sent to each that have not reached it yet (megabytes there mean the
 * coordinator's link, not the worker, is what the phase waits for).
 */
export function describeWait(shard: Shard, state: ShardState): string {
  const range = rangeOf(shard);
  if (state.kind !== 'assigned') return `${range} ${state.kind}`;
  const holders = [...state.holders].map((h) => {
    const bytes = h.inFlightBytes;
    return bytes > 0 ? `worker ${h.id} (${(bytes / 1e6).toFixed(2)} MB on its way to it)` : `worker ${h.id}`;
  });
  return `${range} assigned to ${holders.join(', ')}`;
}

export interface DispatcherOptions {
  workers: Workers;
  bus: EventBus;
  log: Logger;
  /** Use at most this many of the connected workers (benchmarks; default: all). */
  maxWorkers?: number;
  /** Send copies of shards past their deadline to idle workers. */
  speculate: boolean;
}

/** Phases a relay that left one unfinished stays out of plans. */
export const EXCLUDED_PHASES = 20;

export class Dispatcher {
  private run: PhaseRun | undefined;
  private attempts = 0;
  /**
   * Relays that left a phase unfinished (late, a bad total): left out of plans for the next
   * EXCLUDED_PHASES phases, then tried again (as a straggling worker gets shards again).
   */
  private readonly excluded = new Map<number, number>();
  /** Phases run so far (attempts included), the clock of `excluded`. */
  private phases = 0;
  /**
   * How long relays took from the flush to their last slice total, a moving average over phases: a
   * loaded cluster (or slow links) stretches it, and the deadline with it.
   */
  private flushMs = 0;
  /** How long the last completed phase took, from handing out to its sum. */
  private phaseMs = 0;
  /** The plan of the last flush (a plan's first flush gets a longer deadline). */
  private lastFlushedPlan = 0;
  private joinWaiters: Array<() => void> = [];
  private stopping = false;
  /** Distinct worker sessions whose results went into a completed sum. */
  readonly contributors = new Set<number>();

  constructor(private readonly opts: DispatcherOptions) {}

  /** The workers that take shards (at most `maxWorkers`, in join order). */
  workers(): WorkerSession[] {
    const all = this.opts.workers.active();
    return this.opts.maxWorkers === undefined ? all : all.slice(0, this.opts.maxWorkers);
  }

  /** Handles one session event (the server's queue calls this, one event at a time). */
  handle(e: SessionEvent): void {
    switch (e.kind) {
      case 'joined':
        this.joined(e.session);
        return;
      case 'left':
        this.left(e.session, e.code, e.reason);
        return;
      case 'result':
        this.result(e.session, e.msg);
        return;
      default: {
        const never: never = e;
        throw new Error(`unknown session event ${JSON.stringify(never)}`);
      }
    }
  }

  /**
   * The run is stopping: waits end, and a phase that no worker is left to finish is abandoned (the
   * checkpoint then records a half-done step exactly and a resume redoes the rest).
   */
  stop(): void {
    this.stopping = true;
    for (const w of this.joinWaiters.splice(0)) w();
    this.abortIfStranded();
  }

  /** Resolves once `n` workers are active (or the run is stopping), logging what it waits for. */
  async waitForWorkers(n: number, why: string): Promise<void> {
    let lastLog = -Infinity;
    while (this.opts.workers.active().length < n && !this.stopping) {
      const now = performance.now();
      if (now - lastLog >= WAIT_LOG_MS) {
        this.opts.log.info(
          { active: this.opts.workers.active().length, needed: n },
          `waiting for workers to join (${why})`,
        );
        lastLog = now;
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, WAIT_LOG_MS);
        this.joinWaiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Whether worker `id` is out of relay plans for now (it left a phase unfinished as a relay). */
  isExcluded(id: number): boolean {
    return (this.excluded.get(id) ?? -1) > this.phases;
  }

  /** Runs one phase across the workers: shards sized by measured throughput, until every one is added. */
  async runPhase(plan: PhasePlan): Promise<PhaseOutcome> {
    this.phases++;
    await this.waitForWorkers(1, `step ${plan.step} ${plan.phase} phase`);
    const workers = this.workers();
    if (workers.length === 0) return { kind: 'aborted' };
    const known = workers.map((w) => w.throughput).filter((t) => t > 0);
    const fallback = known.length ? known.reduce((a, b) => a + b) / known.length : 1;
    const shards = splitBatch(
      plan.batch.length,
      workers.map((w) => w.throughput || fallback),
      plan.unit,
    );
    return new Promise<PhaseOutcome>((resolve) => {
      const run = new PhaseRun(++this.attempts, plan, plan.reducer(shards), shards, resolve);
      this.run = run;
      this.dispatch();
      this.watch(run);
      if (this.opts.speculate) run.timers.push(setTimeout(() => this.speculate(run), this.deadline(workers, shards)));
    });
  }

  // ---- events ---------------------------------------------------------------------------

  private joined(session: WorkerSession): void {
    this.opts.bus.notify('onWorker', {
      kind: 'joined',
      workerId: session.id,
      backend: session.backend,
      device: session.device,
    });
    for (const w of this.joinWaiters.splice(0)) w();
    this.dispatch();
  }

  private left(session: WorkerSession, code: number, reason: string): void {
    const a = session.finish();
    this.opts.bus.notify('onWorker', {
      kind: 'left',
      workerId: session.id,
      backend: session.backend,
      device: session.device,
      ...(a === undefined ? {} : { held: { step: a.step, phase: a.phase, start: a.start, count: a.count } }),
    });
    const run = this.run;
    const slot = a && run && a.attempt === run.attempt ? run.slot(a.start, a.count) : undefined;
    if (slot && run!.release(slot, session)) {
      this.opts.log.warn(
        { event: ev('shard-released'), workerId: session.id, ...a, code, reason },
        'worker left mid-phase; its shard goes to another worker',
      );
    }
    // A relay of the phase's plan takes the slices it held with it, and a worker whose total was
    // on its way to the relays may not have sent all of it: the phase runs again without it.
    if (run?.plan.topology.zones.some((z) => z.relays.some((r) => r.worker === session.id))) {
      this.replan(run, session.id, 'left');
    } else if (
      run &&
      relaying(run.reducer) &&
      run.slots.some((s) => s.state.kind === 'accepted' && s.state.from === session)
    ) {
      this.replan(run, session.id, 'left with its total on the way to the relays', false);
    }
    this.abortIfStranded();
    if (this.run && this.opts.workers.active().length === 0) {
      const { step, phase } = this.run.plan;
      this.opts.log.warn(
        { event: ev('phase-paused'), step, phase, pending: this.run.missing().length },
        `no worker connected: step ${step} ${phase} phase paused until one joins`,
      );
    }
    this.dispatch();
  }

  private result(
    session: WorkerSession,
    msg: ResultMessage | FailedMessage | RelayedMessage | SliceTotalMessage,
  ): void {
    if (msg.t === 'slice-total') {
      this.sliceTotal(session, msg);
      return;
    }
    const a = session.assignment;
    if (!a || a.step !== msg.step || a.phase !== msg.phase || a.start !== msg.start || a.count !== msg.count) {
      this.opts.workers.disconnect(
        session,
        new ProtocolError(
          'ERR_UNASSIGNED_RESULT',
          `result for step ${msg.step} ${msg.phase} [${msg.start}, +${msg.count}) was not assigned to this worker`,
          CloseCode.BAD_RESULT,
        ),
      );
      return;
    }
    session.finish();
    const run = this.run;
    const slot = run && a.attempt === run.attempt ? run.slot(msg.start, msg.count) : undefined;
    if (!run || !slot || slot.state.kind === 'accepted') {
      // A copy that lost the race, or a shard of a phase already complete (or redone).
      session.log.debug({ step: msg.step, phase: msg.phase }, 'late result discarded');
      this.dispatch();
      return;
    }
    if (msg.t === 'failed') {
      this.failed(run, slot, session, msg);
      return;
    }
    const t0 = performance.now();
    const verdict = msg.t === 'relayed' ? this.offerRelayed(run, session, msg) : run.reducer.offer(msg);
    run.reduceMs += performance.now() - t0;
    // Results accepted earlier whose gradients turned out non-finite when added: sent again.
    for (const shard of verdict.dropped ?? []) {
      const dropped = run.slot(shard.start, shard.count)!;
      const sender = dropped.state.kind === 'accepted' ? dropped.state.from : undefined;
      dropped.state = { kind: 'pending' };
      if (sender !== undefined) this.strike(sender, msg.step, msg.phase, 'non-finite');
    }
    if (!verdict.accepted) {
      run.release(slot, session);
      this.strike(session, msg.step, msg.phase, verdict.reason);
    } else {
      slot.state = { kind: 'accepted', from: session };
      session.recordThroughput(msg.count, msg.computeMs);
      this.opts.bus.notify('onShard', {
        workerId: session.id,
        step: msg.step,
        phase: msg.phase,
        count: msg.count,
        computeMs: msg.computeMs,
        roundTripMs: performance.now() - a.sentAt,
      });
      if (verdict.complete) {
        this.complete(run);
        return;
      }
      if (relaying(run.reducer) && run.reducer.shardsIn) this.flush(run, run.reducer);
    }
    this.dispatch();
  }

  /** A result whose total went to the worker's zone relays: only under the plan it was assigned with. */
  private offerRelayed(run: PhaseRun, session: WorkerSession, msg: RelayedMessage): Verdict {
    const zone = zoneOf(run.plan.topology, session.id);
    if (!relaying(run.reducer) || zone === undefined || msg.plan !== run.plan.topology.id)
      return { accepted: false, reason: 'unknown-shard' };
    return run.reducer.offerRelayed(msg, zone.zone);
  }

  /**
   * Every shard is in: each relay is told which parts its slice total must cover, and has until the
   * deadline to send it; one that does not is passed over (the phase runs again without it).
   */
  private flush(run: PhaseRun, reducer: RelayReduction): void {
    const { step, phase, topology } = run.plan;
    const workerOf = (start: number) => {
      const s = run.slots.find((x) => x.shard.start === start)!.state;
      return s.kind === 'accepted' ? s.from.id : -1;
    };
    for (const [zone, { slices, parts }] of reducer.flushes(workerOf)) {
      const relays = topology.zones.find((z) => z.zone === zone)!.relays;
      for (let slice = 0; slice < slices; slice++) {
        const relay = this.opts.workers.active().find((s) => s.id === relays[slice]!.worker);
        if (relay === undefined) {
          this.replan(run, relays[slice]!.worker, 'is gone');
          return;
        }
        this.opts.workers.sendTo(relay, encode({ t: 'flush', plan: topology.id, step, phase, slice, parts }));
      }
    }
    run.flushedAt = performance.now();
    run.timers.push(
      setTimeout(() => {
        if (this.run !== run) return;
        const late = this.lateRelay(run);
        if (late !== undefined) this.replan(run, late, 'did not send its slice total in time');
      }, this.flushDeadlineMs(run)),
    );
  }

  /** A relay's slice total: checked like a result (plan, phase, slice, parts, range), then added. */
  private sliceTotal(session: WorkerSession, msg: SliceTotalMessage): void {
    const run = this.run;
    if (
      !run ||
      !relaying(run.reducer) ||
      msg.plan !== run.plan.topology.id ||
      msg.step !== run.plan.step ||
      msg.phase !== run.plan.phase
    ) {
      session.log.debug({ step: msg.step, phase: msg.phase }, 'late slice total discarded');
      return;
    }
    const zone = zoneOf(run.plan.topology, session.id);
    if (zone === undefined || zone.relays[msg.slice]?.worker !== session.id) {
      this.opts.workers.disconnect(
        session,
        new ProtocolError(
          'ERR_UNASSIGNED_RESULT',
          `slice ${msg.slice} is not this worker's to sum`,
          CloseCode.BAD_RESULT,
        ),
      );
      return;
    }
    const t0 = performance.now();
    const verdict = run.reducer.offerSlice(zone.zone, msg.slice, msg.piece, msg.start, msg.parts, msg.total);
    run.reduceMs += performance.now() - t0;
    if (!verdict.accepted) {
      if (verdict.reason === 'duplicate') return;
      this.strike(session, msg.step, msg.phase, `slice total: ${verdict.reason}`);
      this.replan(run, session.id, `sent a bad slice total (${verdict.reason})`);
      return;
    }
    if (verdict.range !== undefined) run.plan.onPiece?.(zone.zone, msg.slice, verdict.range[0], verdict.range[1]);
    if (verdict.complete) {
      if (run.flushedAt !== undefined) {
        const ms = performance.now() - run.flushedAt;
        this.flushMs = this.flushMs === 0 ? ms : 0.8 * this.flushMs + 0.2 * ms;
      }
      this.complete(run);
    }
  }

  /** A relay that cannot finish this phase: it is left out of the next plan, and the phase runs again. */
  private replan(run: PhaseRun, worker: number, why: string, isRelay = true): void {
    this.end(run);
    if (isRelay) this.excluded.set(worker, this.phases + EXCLUDED_PHASES);
    this.opts.log.warn(
      { event: ev('phase-replanned'), step: run.plan.step, phase: run.plan.phase, relay: worker },
      `${isRelay ? 'relay' : 'worker'} ${worker} ${why}; the phase runs again without it`,
    );
    run.settle({ kind: 'replan', relay: worker });
  }

  /** The first relay of the plan whose slice total is still missing. */
  private lateRelay(run: PhaseRun): number | undefined {
    for (const z of run.plan.topology.zones)
      for (const [k, r] of z.relays.entries())
        if (relaying(run.reducer) && run.reducer.awaiting(z.zone, k)) return r.worker;
    return undefined;
  }

  /** How long relays have for their slice totals: generous next to a transfer of the slice. */
  private flushDeadlineMs(run: PhaseRun): number {
    // A new plan's first phase also waits for its links to open (handshakes, TLS).
    const first = run.plan.topology.id !== this.lastFlushedPlan;
    this.lastFlushedPlan = run.plan.topology.id;
    // On slow links a slice total may take most of a phase (its contributions queue behind the
    // phase's other bytes): a relay is late only well past the last phase's length.
    return Math.max(
      first ? 10_000 : 2_000,
      3 * this.deadline(this.workers(), [...run.slots.map((s) => s.shard)]),
      4 * this.flushMs,
      2 * this.phaseMs,
    );
  }

  /**
   * A worker could not form its shard's sums: a NaN/±Inf (a rejected result), or an overflow (the
   * phase is redone with coarser quanta).
   */
  private failed(run: PhaseRun, slot: Slot, session: WorkerSession, msg: FailedMessage): void {
    if (msg.reason === 'overflow') {
      this.end(run);
      this.opts.log.warn(
        { event: ev('phase-rescaled'), step: msg.step, phase: msg.phase, tensor: msg.tensor },
        'a chunk overflowed its quantum; the phase is redone with a coarser one',
      );
      run.settle({ kind: 'rescale', tensor: msg.tensor });
      return;
    }
    run.release(slot, session);
    this.strike(session, msg.step, msg.phase, msg.reason);
    this.dispatch();
  }

  /**
   * Counts a rejected result against its worker and logs it; at MAX_STRIKES in a row since its
   * last result that went into a sum, the worker is disconnected.
   */
  private strike(session: WorkerSession, step: number, phase: Phase, reason: string): void {
    const out = session.strike();
    session.log.warn(
      { event: ev('result-rejected'), step, phase, reason, strikes: session.strikes },
      'result rejected; shard sent again',
    );
    if (out) {
      this.opts.workers.disconnect(
        session,
        new ProtocolError(
          'ERR_BAD_RESULTS',
          `${session.strikes} rejected results in a row (last: ${reason})`,
          CloseCode.BAD_RESULT,
        ),
      );
    }
  }

  private complete(run: PhaseRun): void {
    this.end(run);
    this.phaseMs = performance.now() - run.startedAt;
    // Every result now in the sum counts as good: its sender's strikes start over.
    for (const s of run.slots) {
      if (s.state.kind !== 'accepted') continue;
      s.state.from.clearStrikes();
      this.contributors.add(s.state.from.id);
    }
    const t0 = performance.now();
    const sum = run.reducer.sum();
    run.settle({ kind: 'done', sum, reduceMs: run.reduceMs + performance.now() - t0 });
  }

  private end(run: PhaseRun): void {
    if (this.run === run) this.run = undefined;
    for (const t of run.timers) clearTimeout(t);
  }

  private abortIfStranded(): void {
    const run = this.run;
    if (!this.stopping || !run || this.workers().length > 0) return;
    this.end(run);
    this.opts.log.warn(
      { event: ev('phase-abandoned'), step: run.plan.step, phase: run.plan.phase },
      'stopping with no worker left: abandoning the phase in progress',
    );
    run.settle({ kind: 'aborted' });
  }

  // ---- scheduling -------------------------------------------------------------------------

  /** Hands shards that need a worker to idle workers. */
  private dispatch(): void {
    const run = this.run;
    if (!run) return;
    const { step, phase, batch, versions, assignExtra } = run.plan;
    let added = false;
    for (const s of this.workers()) {
      if (!s.idle) continue;
      const slot = run.next(s);
      if (slot === undefined) break;
      // A total the reducer holds may be a view of a worker's shared-memory slot, which that worker
      // overwrites with its next result.
      if (!added) run.reducer.addReceived();
      added = true;
      const { start, count } = slot.shard;
      run.assign(slot, s);
      s.take({ step, phase, start, count, attempt: run.attempt, sentAt: performance.now() });
      const indices = phase === 'dis' ? batch.subarray(start, start + count) : new Uint32Array(0);
      const msg: AssignMessage = {
        t: 'assign',
        step,
        phase,
        start,
        count,
        indices,
        genVersion: versions.gen,
        disVersion: versions.dis,
        shifts: NO_SHIFTS,
        ...assignExtra,
        plan: zoneOf(run.plan.topology, s.id) === undefined ? 0 : run.plan.topology.id,
      };
      this.opts.workers.sendTo(s, encode(msg));
    }
  }

  /**
   * The phase's deadline: three times the slowest predicted shard time (shard size ÷ that worker's
   * measured throughput), at least 250 ms; generous before anything is measured.
   */
  private deadline(workers: WorkerSession[], shards: Shard[]): number {
    let worst = 0;
    for (let i = 0; i < shards.length; i++) {
      const t = workers[i]?.throughput ?? 0;
      if (t <= 0) return FIRST_DEADLINE_MS;
      worst = Math.max(worst, shards[i]!.count / t);
    }
    return Math.max(250, 3 * worst);
  }

  /** At the deadline, every shard still being computed is offered to the next idle worker too. */
  private speculate(run: PhaseRun): void {
    if (this.run !== run) return;
    const late = run.slots.filter((s) => s.state.kind === 'assigned' && !s.speculated);
    if (late.length === 0) return;
    for (const s of late) {
      s.speculated = true;
      if (s.state.kind === 'assigned') s.state = { ...s.state, copyWanted: true };
    }
    this.opts.log.warn(
      {
        event: ev('shards-speculated'),
        step: run.plan.step,
        phase: run.plan.phase,
        late: late.map((s) => rangeOf(s.shard)),
      },
      'shards past their deadline; sending copies to idle workers',
    );
    this.dispatch();
  }

  /** Logs, every WAIT_LOG_MS while a phase is stuck, which shards it still waits for and why. */
  private watch(run: PhaseRun): void {
    const t = setInterval(() => {
      if (this.run !== run) {
        clearInterval(t);
        return;
      }
      const missing = run.missing().map((s) => describeWait(s.shard, s.state));
      const active = this.opts.workers.active().length;
      this.opts.log.warn(
        { step: run.plan.step, phase: run.plan.phase, missing, active },
        active === 0
          ? 'phase paused: no worker connected; waiting for one to join'
          : 'phase still waiting for shard results',
      );
    }, WAIT_LOG_MS);
    t.unref();
    run.timers.push(t);
  }
}
