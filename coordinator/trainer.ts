/**
 * The coordinator's training loop. It owns the master weights and Adam states, decides which
 * samples each step uses and how they are sharded, and turns the workers' gradient sums into
 * optimizer steps. Each step, as in the seed: a D phase (real → 1, G(z) → 0, only D updated),
 * then a G phase with fresh z against the updated D (→ 1, only G updated).
 */
import { CloseCode, ProtocolError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { MANIFESTS, initParams, type NetName } from '../shared/model.js';
import type { MnistSet } from '../shared/mnist.js';
import { gatherImages, pixelTable, type Normalization } from '../shared/pixels.js';
import { encode, weightsFrame, type Phase, type ResultMessage, type RunConfig } from '../shared/protocol.js';
import { writeCheckpoint, type CheckpointState } from './checkpoint.js';
import { adamState, adamStepFromSum, type AdamOptions, type AdamState } from './optimizer.js';
import { PhaseReducer, type PhaseSum, type Shard } from './reducer.js';
import type { GradDtype } from '../shared/dtype.js';
import { GRID_SAMPLES, RunOutputs } from './run-outputs.js';
import { FramePool } from './frame-pool.js';
import { BatchSchedule, splitBatch } from './schedule.js';
import type { CoordinatorServer, ServerHooks } from './server.js';
import type { WorkerSession } from './session.js';
import type { StepTimings, TrainerObserver } from './events.js';

export interface TrainerConfig {
  seed: number;
  batchSize: number;
  epochs: number;
  /** Stop after this many steps in all (smoke tests, benchmarks). */
  maxSteps?: number;
  adam: AdamOptions;
  normalize: Normalization;
  outDir: string;
  logEvery: number;
  /** Workers to wait for before the first step. */
  minWorkers: number;
  /** Write a sample grid at the end of every epoch. */
  samples: boolean;
  /** Write a checkpoint every this many steps (0: only at the end and on stop). */
  checkpointEvery?: number;
  /** Wire dtype of the workers' gradients (default f32); the sums stay float64/float32 here. */
  gradDtype?: GradDtype;
  /** Benchmarks: workers answer after this many ms with synthetic gradients instead of computing. */
  syntheticComputeMs?: number;
  /** Use at most this many of the connected workers (benchmarks; default: all). */
  maxWorkers?: number;
}

export interface TrainSummary {
  steps: number;
  epochs: number;
  outDir: string;
  checkpoint: string;
  samples: string[];
  imagesPerSecond: number;
  final: { d_loss: number; g_loss: number; d_real: number; d_fake: number };
  params: Record<NetName, Float32Array>;
  /** True when a stop request ended the run before its last step. */
  stopped: boolean;
  /** Distinct worker sessions whose results were used. */
  contributors: number;
}

/** After this many bad results in a row a worker is disconnected. */
const MAX_STRIKES = 3;
/** How often a wait is logged again while it lasts. */
const WAIT_LOG_MS = 10_000;

/** The dispatch state of the phase in progress. */
interface PhaseRun {
  reducer: PhaseReducer;
  batch: Uint32Array;
  pending: Shard[];
  /** Shards already sent a second time because their worker was late. */
  speculated: Set<number>;
  /** Who sent each accepted result (by shard start): a result dropped later strikes its sender. */
  senders: Map<number, WorkerSession>;
  timers: NodeJS.Timeout[];
  /** Time spent adding shards into the sum so far (most of it while other shards are still out). */
  reduceMs: number;
  done: (sum: PhaseSum) => void;
  /** Ends the phase without a result (a stop with no worker left to finish it). */
  abort: (err: Error) => void;
}

/** A phase given up because the run is stopping; the loop checkpoints what is applied so far. */
class PhaseAborted extends Error {}

/** Shard deadline before any throughput is measured (the first phase includes warm-up). */
const FIRST_DEADLINE_MS = 30_000;

export class Trainer implements ServerHooks {
  readonly params: Record<NetName, Float32Array>;
  readonly adam: Record<NetName, AdamState>;
  private readonly versions: Record<NetName, number> = { gen: 0, dis: 0 };
  private readonly schedule: BatchSchedule;
  private readonly outputs: RunOutputs;
  private readonly log: Logger;
  private phase: PhaseRun | undefined;
  private joinWaiters: Array<() => void> = [];
  private strikes = new Map<number, number>();
  private stopRequested = false;
  private readonly contributors = new Set<number>();
  /** Watchers of the run (progress, metrics, dashboard, benchmarks). */
  readonly observers: TrainerObserver[] = [];
  /** Time spent reducing shards in the phase just finished. */
  private lastReduceMs = 0;
  /** One float64 gradient accumulator per network, reused every phase. */
  private readonly accs: Record<NetName, Float64Array> = {
    gen: new Float64Array(MANIFESTS.gen.size),
    dis: new Float64Array(MANIFESTS.dis.size),
  };
  private step = 0;
  /** Buffers for the weights broadcasts, reused once written out. */
  private readonly frames = new FramePool();

  constructor(
    private readonly cfg: TrainerConfig,
    private readonly data: MnistSet,
    private readonly server: CoordinatorServer,
    logger: Logger,
    resume?: CheckpointState,
  ) {
    this.log = logger.child({ component: 'trainer' });
    if (resume) {
      // Everything else (sample order, noise) is keyed by the step, so these are the whole state.
      this.params = resume.params;
      this.adam = resume.adam;
      this.versions.gen = resume.adam.gen.step;
      this.versions.dis = resume.adam.dis.step;
      this.step = resume.step;
    } else {
      this.params = { gen: initParams('gen', cfg.seed), dis: initParams('dis', cfg.seed) };
      this.adam = { gen: adamState(MANIFESTS.gen.size), dis: adamState(MANIFESTS.dis.size) };
    }
    this.schedule = new BatchSchedule(cfg.seed, data.count, cfg.batchSize);
    this.outputs = new RunOutputs(cfg.outDir, cfg.seed);
  }

  /** The next step to run (equals the steps applied so far). */
  get currentStep(): number {
    return this.step;
  }

  get totalSteps(): number {
    const all = this.cfg.epochs * this.schedule.stepsPerEpoch;
    return this.cfg.maxSteps === undefined ? all : Math.min(all, this.cfg.maxSteps);
  }

  /**
   * Asks the loop to stop after the step in progress (SIGINT/SIGTERM). A phase that no worker is
   * left to finish is abandoned at once instead; the checkpoint then records a half-done step
   * exactly (D's optimizer has one step more than G's) and a resume redoes only the G phase.
   */
  requestStop(): void {
    this.stopRequested = true;
    for (const w of this.joinWaiters.splice(0)) w();
    this.abortIfStranded();
  }

  private abortIfStranded(): void {
    const run = this.phase;
    if (!this.stopRequested || !run || this.workers().length > 0) return;
    this.phase = undefined;
    for (const t of run.timers) clearTimeout(t);
    this.log.warn(
      { step: run.reducer.step, phase: run.reducer.phase },
      'stopping with no worker left: abandoning the phase in progress',
    );
    run.abort(new PhaseAborted(`step ${run.reducer.step} ${run.reducer.phase} phase abandoned`));
  }

  // ---- ServerHooks ------------------------------------------------------------------------

  welcome(session: WorkerSession): Buffer {
    const config: RunConfig = { seed: this.cfg.seed, normalize: this.cfg.normalize, batchSize: this.cfg.batchSize };
    if (this.cfg.gradDtype !== undefined && this.cfg.gradDtype !== 'f32') config.gradDtype = this.cfg.gradDtype;
    if (this.cfg.syntheticComputeMs !== undefined) config.syntheticComputeMs = this.cfg.syntheticComputeMs;
    return encode({
      t: 'welcome',
      workerId: session.id,
      config,
      genVersion: this.versions.gen,
      gen: this.params.gen,
      disVersion: this.versions.dis,
      dis: this.params.dis,
    });
  }

  joined(session: WorkerSession): void {
    this.emit('onWorker', { kind: 'joined', workerId: session.id, backend: session.backend, device: session.device });
    for (const w of this.joinWaiters.splice(0)) w();
    this.dispatch();
  }

  left(session: WorkerSession, code: number, reason: string): void {
    this.emit('onWorker', { kind: 'left', workerId: session.id, backend: session.backend, device: session.device });
    const a = session.assignment;
    session.assignment = undefined;
    if (a && this.phase && a.step === this.phase.reducer.step && a.phase === this.phase.reducer.phase) {
      if (!this.phase.reducer.has(a.shard.start) && !this.phase.pending.includes(a.shard)) {
        this.phase.pending.push(a.shard);
        this.log.warn(
          {
            workerId: session.id,
            step: a.step,
            phase: a.phase,
            start: a.shard.start,
            count: a.shard.count,
            code,
            reason,
          },
          'worker left mid-phase; its shard goes to another worker',
        );
      }
    }
    this.abortIfStranded();
    if (this.phase && this.server.active().length === 0) {
      const { step, phase } = this.phase.reducer;
      this.log.warn(
        { step, phase, pending: this.phase.pending.length },
        `no worker connected: step ${step} ${phase} phase paused until one joins`,
      );
    }
    this.dispatch();
  }

  result(session: WorkerSession, msg: ResultMessage): void {
    const a = session.assignment;
    if (
      !a ||
      a.step !== msg.step ||
      a.phase !== msg.phase ||
      a.shard.start !== msg.start ||
      a.shard.count !== msg.count
    ) {
      throw new ProtocolError(
        'ERR_UNASSIGNED_RESULT',
        `result for step ${msg.step} ${msg.phase} [${msg.start}, +${msg.count}) was not assigned to this worker`,
        CloseCode.BAD_RESULT,
      );
    }
    session.assignment = undefined;
    const run = this.phase;
    if (!run) return;
    const tOffer = performance.now();
    const verdict = run.reducer.offer(msg);
    run.reduceMs += performance.now() - tOffer;
    // Results accepted earlier whose gradients turned out non-finite when added: sent again.
    for (const shard of verdict.dropped ?? []) {
      const sender = run.senders.get(shard.start);
      run.senders.delete(shard.start);
      run.pending.push(shard);
      if (sender !== undefined && this.strike(sender, msg.step, msg.phase, 'non-finite')) {
        const err = new ProtocolError(
          'ERR_BAD_RESULTS',
          `${MAX_STRIKES} rejected results in a row (last: non-finite)`,
          CloseCode.BAD_RESULT,
        );
        // The sender may be this very session (an earlier shard of the phase): the server closes it.
        if (sender === session) throw err;
        this.server.disconnect(sender, err);
      }
    }
    if (!verdict.accepted) {
      if (verdict.reason === 'duplicate' || verdict.reason === 'stale') {
        session.log.debug({ step: msg.step, phase: msg.phase, reason: verdict.reason }, 'late result discarded');
      } else {
        run.pending.push(a.shard);
        if (this.strike(session, msg.step, msg.phase, verdict.reason)) {
          throw new ProtocolError(
            'ERR_BAD_RESULTS',
            `${MAX_STRIKES} rejected results in a row (last: ${verdict.reason})`,
            CloseCode.BAD_RESULT,
          );
        }
      }
    } else {
      run.senders.set(msg.start, session);
      session.shardsDone++;
      session.recordThroughput(msg.count, msg.computeMs);
      this.emit('onShard', {
        workerId: session.id,
        step: msg.step,
        phase: msg.phase,
        count: msg.count,
        computeMs: msg.computeMs,
        roundTripMs: performance.now() - a.sentAt,
      });
      if (verdict.complete) {
        this.phase = undefined;
        for (const t of run.timers) clearTimeout(t);
        // Every result now in the sum counts as good: its sender's strikes start over.
        for (const sender of run.senders.values()) {
          this.strikes.delete(sender.id);
          this.contributors.add(sender.id);
        }
        const t0 = performance.now();
        const sum = run.reducer.sum();
        this.lastReduceMs = run.reduceMs + performance.now() - t0;
        run.done(sum);
        return;
      }
    }
    this.dispatch();
  }

  /**
   * Counts a rejected result against its worker and logs it; true when that makes MAX_STRIKES in a
   * row since its last result that went into a sum (the caller then closes the connection).
   */
  private strike(session: WorkerSession, step: number, phase: Phase, reason: string): boolean {
    const strikes = (this.strikes.get(session.id) ?? 0) + 1;
    this.strikes.set(session.id, strikes);
    session.log.warn({ step, phase, reason, strikes }, 'result rejected; shard sent again');
    return strikes >= MAX_STRIKES;
  }

  // ---- scheduling -------------------------------------------------------------------------

  /** Hands pending shards to idle workers. */
  private dispatch(): void {
    const run = this.phase;
    if (!run) return;
    // A pending copy whose original has meanwhile come in is dropped.
    run.pending = run.pending.filter((p) => !run.reducer.has(p.start));
    for (const s of this.workers()) {
      if (run.pending.length === 0) break;
      if (!s.idle) continue;
      const shard = run.pending.shift()!;
      const { step, phase } = run.reducer;
      s.assignment = { step, phase, shard, sentAt: performance.now() };
      const indices = phase === 'dis' ? run.batch.subarray(shard.start, shard.start + shard.count) : new Uint32Array(0);
      this.server.sendTo(
        s,
        encode({
          t: 'assign',
          step,
          phase,
          start: shard.start,
          count: shard.count,
          indices,
          genVersion: this.versions.gen,
          disVersion: this.versions.dis,
        }),
      );
    }
  }

  /** The active workers that take shards (at most `maxWorkers`, in join order). */
  private workers(): WorkerSession[] {
    const all = this.server.active();
    return this.cfg.maxWorkers === undefined ? all : all.slice(0, this.cfg.maxWorkers);
  }

  /** Resolves once `n` workers are active, logging what it waits for while it waits. */
  private async waitForWorkers(n: number, why: string): Promise<void> {
    let lastLog = -Infinity;
    while (this.server.active().length < n && !this.stopRequested) {
      const now = performance.now();
      if (now - lastLog >= WAIT_LOG_MS) {
        this.log.info({ active: this.server.active().length, needed: n }, `waiting for workers to join (${why})`);
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

  /** Runs one phase across the workers and returns the batch-mean gradient and statistics. */
  private async runPhase(step: number, phase: Phase, batch: Uint32Array): Promise<PhaseSum> {
    await this.waitForWorkers(1, `step ${step} ${phase} phase`);
    const workers = this.workers();
    const known = workers.map((w) => w.throughput).filter((t) => t > 0);
    const fallback = known.length ? known.reduce((a, b) => a + b) / known.length : 1;
    const shards = splitBatch(
      batch.length,
      workers.map((w) => w.throughput || fallback),
    );
    if (this.stopRequested && workers.length === 0)
      throw new PhaseAborted(`step ${step} ${phase} phase not started: stopping`);
    return new Promise<PhaseSum>((resolve, reject) => {
      const reducer = new PhaseReducer(step, phase, shards, MANIFESTS[phase].size, this.accs[phase]);
      const run: PhaseRun = {
        reducer,
        batch,
        pending: [...shards],
        speculated: new Set(),
        senders: new Map(),
        timers: [],
        reduceMs: 0,
        done: resolve,
        abort: reject,
      };
      this.phase = run;
      this.dispatch();
      this.watch(run);
      run.timers.push(setTimeout(() => this.speculate(run), this.deadline(workers, shards)));
    });
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

  /** At the deadline, every shard still missing is offered to the next idle worker too; the first result wins. */
  private speculate(run: PhaseRun): void {
    if (this.phase !== run) return;
    const late = run.reducer.missing().filter((s) => !run.speculated.has(s.start) && !run.pending.includes(s));
    if (late.length === 0) return;
    for (const s of late) run.speculated.add(s.start);
    run.pending.push(...late);
    this.log.warn(
      { step: run.reducer.step, phase: run.reducer.phase, late: late.map((s) => `[${s.start}, +${s.count})`) },
      'shards past their deadline; sending copies to idle workers',
    );
    this.dispatch();
  }

  /** Logs, every WAIT_LOG_MS while a phase is stuck, which shards it still waits for and why. */
  private watch(run: PhaseRun): void {
    const t = setInterval(() => {
      if (this.phase !== run) return clearInterval(t);
      const missing = run.reducer.missing().map((s) => `[${s.start}, +${s.count})`);
      const active = this.server.active().length;
      this.log.warn(
        { step: run.reducer.step, phase: run.reducer.phase, missing, pending: run.pending.length, active },
        active === 0
          ? 'phase paused: no worker connected; waiting for one to join'
          : 'phase still waiting for shard results',
      );
    }, WAIT_LOG_MS);
    t.unref();
  }

  /**
   * One optimizer step on `net`, written into a weights frame as it goes (Adam stores each new
   * weight into the frame's payload too: no separate encode copy), then the same frame to every
   * worker. The frame's buffer is reused once every socket has written it out.
   */
  private stepAndBroadcast(net: NetName, sum: PhaseSum, t: StepTimings): void {
    const t0 = performance.now();
    const { frame, data } = weightsFrame(net, this.versions[net] + 1, MANIFESTS[net].size, this.frames.alloc);
    const t1 = performance.now();
    adamStepFromSum(this.params[net], sum.sum, sum.batch, this.adam[net], this.cfg.adam, { out: data });
    this.versions[net]++;
    const t2 = performance.now();
    this.server.broadcast(frame, () => this.frames.release(frame));
    t.encodeMs += t1 - t0;
    t.adamMs += t2 - t1;
    t.sendMs += performance.now() - t2;
  }

  private emit<K extends keyof TrainerObserver>(kind: K, event: Parameters<NonNullable<TrainerObserver[K]>>[0]): void {
    for (const o of this.observers) {
      try {
        (o[kind] as ((e: typeof event) => void) | undefined)?.call(o, event);
      } catch (err) {
        this.log.warn({ err: (err as Error).message, observer: kind }, 'an observer failed; training goes on');
      }
    }
  }

  private checkpointState(): CheckpointState {
    return {
      step: this.step,
      epoch: this.schedule.epochOf(this.step),
      seed: this.cfg.seed,
      params: this.params,
      adam: this.adam,
      config: { ...this.cfg },
    };
  }

  /**
   * One phase of a step: gradient sums from the workers, Adam on that network, the new weights to
   * every worker. Resolves null when the phase was abandoned because the run is stopping.
   */
  private async trainPhase(
    step: number,
    net: NetName,
    batch: Uint32Array,
    timings: StepTimings,
  ): Promise<PhaseSum | null> {
    let sum: PhaseSum;
    try {
      sum = await this.runPhase(step, net, batch);
    } catch (err) {
      if (err instanceof PhaseAborted) return null;
      throw err;
    }
    timings.reduceMs += this.lastReduceMs;
    this.stepAndBroadcast(net, sum, timings);
    return sum;
  }

  // ---- the loop ---------------------------------------------------------------------------

  /** Trains until the configured number of steps (or a stop request), then writes the checkpoint. */
  async run(): Promise<TrainSummary> {
    const { cfg } = this;
    const startStep = this.step;
    await this.outputs.init(
      { ...cfg, datasetHash: this.data.hash, datasetSize: this.data.count, stepsPerEpoch: this.schedule.stepsPerEpoch },
      startStep,
    );
    const total = this.totalSteps;
    this.log.info(
      {
        steps: total,
        startStep,
        epochs: cfg.epochs,
        stepsPerEpoch: this.schedule.stepsPerEpoch,
        batchSize: cfg.batchSize,
        seed: cfg.seed,
      },
      startStep > 0 ? `resuming at step ${startStep}` : 'training plan',
    );
    this.server.ready = true;
    await this.waitForWorkers(cfg.minWorkers, `need ${cfg.minWorkers} before the first step`);

    // The seed saves a grid of real images; here from the first batch, shown in [-1, 1].
    const first = this.schedule.batch(0).subarray(0, GRID_SAMPLES);
    if (startStep === 0)
      await this.outputs.writeRealImages(gatherImages(this.data.images, first, pixelTable('minus1to1')));

    const samples: string[] = [];
    let windowStart = performance.now();
    let windowImages = 0;
    let totalImages = 0;
    const t0 = performance.now();
    let last = { d_loss: NaN, g_loss: NaN, d_real: NaN, d_fake: NaN };
    for (; this.step < total && !this.stopRequested; ) {
      const step = this.step;
      const epoch = this.schedule.epochOf(step);
      const batch = this.schedule.batch(step);

      const timings: StepTimings = { dPhaseMs: 0, gPhaseMs: 0, reduceMs: 0, adamMs: 0, encodeMs: 0, sendMs: 0 };

      // D phase: Σ∇D over real (label 1) and G(z) (label 0) from every shard; Adam on D; broadcast D.
      // (Skipped when resuming a step whose D update the checkpoint already holds.)
      const tD = performance.now();
      const d = this.versions.dis === step ? await this.trainPhase(step, 'dis', batch, timings) : undefined;
      if (d === null) break;

      // G phase: fresh z against the updated D (label 1); Adam on G; broadcast G.
      const tG = performance.now();
      const g = await this.trainPhase(step, 'gen', batch, timings);
      if (g === null) break;
      const tEnd = performance.now();
      timings.dPhaseMs = tG - tD;
      timings.gPhaseMs = tEnd - tG;

      this.step = step + 1;
      windowImages += batch.length;
      totalImages += batch.length;
      last = {
        d_loss: d ? d.loss / d.batch : NaN,
        g_loss: g.loss / g.batch,
        d_real: d ? d.dReal / d.batch : NaN,
        d_fake: d ? d.dFake / d.batch : NaN,
      };
      this.emit('onStep', {
        step: this.step,
        epoch,
        totalSteps: total,
        stepsPerEpoch: this.schedule.stepsPerEpoch,
        images: batch.length,
        ...last,
        workers: this.workers().length,
        timings,
      });

      // Log the seed's line every logEvery steps (and after the last step).
      if (this.step % cfg.logEvery === 0 || this.step === total) {
        const now = performance.now();
        const rec = {
          step: this.step,
          epoch,
          ...last,
          images_per_s: (windowImages * 1000) / (now - windowStart),
          d_phase_ms: tG - tD,
          g_phase_ms: tEnd - tG,
          workers: this.workers().length,
        };
        await this.outputs.appendMetrics(rec);
        this.log.info(
          rec,
          `Epoch [${epoch}/${cfg.epochs}], d_loss: ${last.d_loss.toFixed(6)}, g_loss: ${last.g_loss.toFixed(6)},D real: ${last.d_real.toFixed(6)}, D fake: ${last.d_fake.toFixed(6)}`,
        );
        windowStart = now;
        windowImages = 0;
      }

      // End of an epoch (or of the run): a sample grid from the fixed noise.
      const epochEnds = this.step % this.schedule.stepsPerEpoch === 0 || this.step === total;
      if (cfg.samples && epochEnds) {
        const path = await this.outputs.writeSamples(this.params.gen, epoch + 1);
        samples.push(path);
        this.log.info({ epoch: epoch + 1, path }, 'sample grid written');
        this.emit('onSamples', { epoch: epoch + 1, path });
      }

      // Periodic checkpoint: the whole state is weights, Adam and the step number.
      if (cfg.checkpointEvery && this.step % cfg.checkpointEvery === 0 && this.step < total) {
        await writeCheckpoint(this.outputs.checkpointPath, this.checkpointState());
        this.log.info({ path: this.outputs.checkpointPath, step: this.step }, 'checkpoint written');
        this.emit('onCheckpoint', { path: this.outputs.checkpointPath, step: this.step });
      }
    }

    await writeCheckpoint(this.outputs.checkpointPath, this.checkpointState());
    this.log.info({ path: this.outputs.checkpointPath, step: this.step }, 'checkpoint written');
    this.emit('onCheckpoint', { path: this.outputs.checkpointPath, step: this.step });
    const seconds = (performance.now() - t0) / 1000;
    return {
      steps: this.step,
      epochs: this.step / this.schedule.stepsPerEpoch,
      outDir: cfg.outDir,
      checkpoint: this.outputs.checkpointPath,
      samples,
      imagesPerSecond: totalImages / seconds,
      final: last,
      params: this.params,
      stopped: this.step < total,
      contributors: this.contributors.size,
    };
  }
}
