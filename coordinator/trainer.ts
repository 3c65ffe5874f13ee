/**
 * The coordinator's training loop. It owns the master weights and Adam states and decides which
 * samples each step uses; dispatch (coordinator/dispatcher.ts) turns a phase into the workers'
 * gradient sums. Each step, as in the seed: a D phase (real → 1, G(z) → 0, only D updated), then a
 * G phase with fresh z against the updated D (→ 1, only G updated). Files, logs, metrics and the
 * dashboard are observers of the loop's events (coordinator/events.ts).
 */
import { randomInt } from 'node:crypto';
import { type Shape, ShapeProbe } from './shape-probe.js';
import { DEFAULT_GRAD_DTYPE, type GradDtype } from '../shared/dtype.js';
import { CHUNK, FixedSum, initialShifts, layoutOf, nextShifts, OVERFLOW_BACKOFF } from '../shared/fixed.js';
import type { Logger } from '../shared/log.js';
import type { MnistSet } from '../shared/mnist.js';
import { initParams, MANIFESTS, type NetName, NETS } from '../shared/model.js';
import type { Normalization } from '../shared/pixels.js';
import { encode, type RunConfig } from '../shared/protocol.js';
import type { CheckpointState } from './checkpoint.js';
import { Dispatcher, type PhaseOutcome, type PhasePlan } from './dispatcher.js';
import { boundsOf, feedOf, type Plan, planFor, STAR, type Topology } from './topology.js';
import { piecesFor } from '../shared/slices.js';
import type { LogEvent } from '../shared/log.js';
import { EventBus, type StepTimings } from './events.js';
import { FramePool } from './frame-pool.js';
import { StepAhead } from './step-ahead.js';
import { RunFiles } from './observe/run-files.js';
import { type AdamOptions, type AdamState, adamState, adamStepFromSum } from './optimizer.js';
import { ExactReducer, type PhaseSum, PhaseReducer } from './reducer.js';
import { BatchSchedule } from './schedule.js';
import type { CoordinatorServer } from './server.js';
import type { ShmOffer } from './shm-hub.js';
import type { WorkerSession } from './session.js';

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
  /**
   * How workers' gradient sums travel and add up: `exact` (default: integers of a per-tensor
   * quantum, the same bits for any split; shared/fixed.ts) or a lossy float (f32, f16, bf16).
   */
  gradDtype?: GradDtype;
  /** Benchmarks: workers answer after this many ms with synthetic gradients instead of computing. */
  syntheticComputeMs?: number;
  /** Use at most this many of the connected workers (benchmarks; default: all). */
  maxWorkers?: number;
  /** Send copies of shards past their deadline to idle workers (default true; benchmarks turn it off). */
  speculate?: boolean;
  /** How totals travel: auto (default), star (all to the coordinator), slices (relays; exact sums only). */
  topology?: Topology;
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

export class Trainer {
  readonly params: Record<NetName, Float32Array>;
  readonly adam: Record<NetName, AdamState>;
  readonly bus: EventBus;
  readonly dispatcher: Dispatcher;
  private readonly schedule: BatchSchedule;
  private readonly files: RunFiles;
  private readonly log: Logger;
  private step = 0;
  private stopRequested = false;
  /** The exact reduction's quantum per tensor (shifts), per network: derived from the previous total. */
  readonly shifts: Record<NetName, Int32Array>;
  /** One float64 gradient sum per network, reused every phase (and the exact reduction's integers). */
  private readonly accs: Record<NetName, Float64Array> = {
    gen: new Float64Array(MANIFESTS.gen.size),
    dis: new Float64Array(MANIFESTS.dis.size),
  };
  private readonly fixed: Record<NetName, FixedSum> = {
    gen: new FixedSum(MANIFESTS.gen.size),
    dis: new FixedSum(MANIFESTS.dis.size),
  };
  /** The relay plan of the phases now (coordinator/topology.ts), and the last plan id handed out. */
  private topology: Plan = STAR;
  /**
   * Plan ids start at a random point per run: a worker that stays up across runs (bench segments,
   * a restarted coordinator) keeps relay links and pieces of the old run, which must never pass
   * for this run's.
   */
  private planIds = randomInt(1, 2 ** 30);
  /** `--topology auto`: the slices the members could form, the probe, and this step's shape. */
  private candidate: Plan = STAR;
  private readonly probe = new ShapeProbe();
  private stepShape: Shape = 'star';
  /** The next phase needs a new plan id even if nobody changed (relays must drop what they hold). */
  private freshPlan = false;
  /** Adam piece by piece during the phase in progress, under a one-zone relay plan. */
  private ahead: StepAhead | undefined;
  /** Buffers for the weights broadcasts, reused once written out. */
  private readonly frames = new FramePool();

  constructor(
    private readonly cfg: TrainerConfig,
    data: MnistSet,
    private readonly server: CoordinatorServer,
    logger: Logger,
    resume?: CheckpointState,
  ) {
    this.log = logger.child({ component: 'trainer' });
    // Everything else (sample order, noise) is keyed by the step, so these are the whole state.
    this.params = resume?.params ?? { gen: initParams('gen', cfg.seed), dis: initParams('dis', cfg.seed) };
    this.adam = resume?.adam ?? { gen: adamState(MANIFESTS.gen.size), dis: adamState(MANIFESTS.dis.size) };
    this.step = resume?.step ?? 0;
    this.shifts = resume?.shifts ?? { gen: initialShifts(MANIFESTS.gen), dis: initialShifts(MANIFESTS.dis) };
    this.schedule = new BatchSchedule(cfg.seed, data.count, cfg.batchSize);
    this.bus = new EventBus(this.log);
    this.dispatcher = new Dispatcher({
      workers: server,
      bus: this.bus,
      log: this.log,
      maxWorkers: cfg.maxWorkers,
      speculate: cfg.speculate ?? true,
    });
    this.files = new RunFiles({
      ...cfg,
      config: { ...cfg, datasetHash: data.hash, datasetSize: data.count, stepsPerEpoch: this.schedule.stepsPerEpoch },
      firstBatch: () => ({ images: data.images, indices: this.schedule.batch(0) }),
      state: () => this.checkpointState(),
      log: this.log,
      bus: this.bus,
    });
    this.bus.add(this.files);
  }

  /** The next step to run (equals the steps applied so far). */
  get currentStep(): number {
    return this.step;
  }

  get totalSteps(): number {
    const all = this.cfg.epochs * this.schedule.stepsPerEpoch;
    return this.cfg.maxSteps === undefined ? all : Math.min(all, this.cfg.maxSteps);
  }

  get dtype(): GradDtype {
    return this.cfg.gradDtype ?? DEFAULT_GRAD_DTYPE;
  }

  /** A network's weight version: the optimizer steps applied to it. */
  version(net: NetName): number {
    return this.adam[net].step;
  }

  /**
   * Asks the loop to stop after the step in progress (SIGINT/SIGTERM). A phase that no worker is
   * left to finish is abandoned at once instead; the checkpoint then records a half-done step
   * exactly (D's optimizer has one step more than G's) and a resume redoes only the G phase.
   */
  requestStop(): void {
    this.stopRequested = true;
    this.dispatcher.stop();
  }

  /** The welcome frame of a worker that completed its handshake: the run's config and both networks. */
  welcome(session: WorkerSession, shm: ShmOffer | undefined): Buffer {
    const config: RunConfig = {
      seed: this.cfg.seed,
      normalize: this.cfg.normalize,
      batchSize: this.cfg.batchSize,
      gradDtype: this.dtype,
      chunk: CHUNK,
    };
    if (this.cfg.syntheticComputeMs !== undefined) config.syntheticComputeMs = this.cfg.syntheticComputeMs;
    return encode({
      t: 'welcome',
      workerId: session.id,
      config,
      genVersion: this.version('gen'),
      gen: this.params.gen,
      disVersion: this.version('dis'),
      dis: this.params.dis,
      ...(shm === undefined ? {} : { shm }),
    });
  }

  /** Trains until the configured number of steps (or a stop request), then writes the checkpoint. */
  async run(): Promise<TrainSummary> {
    const total = this.totalSteps;
    const perEpoch = this.schedule.stepsPerEpoch;
    const startStep = this.step;
    await this.bus.emit('onRunStart', { startStep, totalSteps: total, stepsPerEpoch: perEpoch });
    this.log.info(
      { steps: total, startStep, epochs: this.cfg.epochs, stepsPerEpoch: perEpoch, batchSize: this.cfg.batchSize },
      startStep > 0 ? `resuming at step ${startStep}` : 'training plan',
    );
    this.server.ready = true;
    await this.dispatcher.waitForWorkers(this.cfg.minWorkers, `need ${this.cfg.minWorkers} before the first step`);

    const t0 = performance.now();
    let images = 0;
    let last = { d_loss: NaN, g_loss: NaN, d_real: NaN, d_fake: NaN };
    while (this.step < total && !this.stopRequested) {
      const step = this.step;
      const batch = this.schedule.batch(step);
      const timings: StepTimings = { dPhaseMs: 0, gPhaseMs: 0, reduceMs: 0, adamMs: 0, encodeMs: 0, sendMs: 0 };

      // D phase: Σ∇D over real (label 1) and G(z) (label 0) from every shard; Adam on D; broadcast D.
      // (Skipped when resuming a step whose D update the checkpoint already holds.)
      const tD = performance.now();
      const d = this.version('dis') === step ? await this.trainPhase(step, 'dis', batch, timings) : 'skipped';
      if (d === 'aborted') break;

      // G phase: fresh z against the updated D (label 1); Adam on G; broadcast G.
      const tG = performance.now();
      const g = await this.trainPhase(step, 'gen', batch, timings);
      if (g === 'aborted') break;
      timings.dPhaseMs = tG - tD;
      timings.gPhaseMs = performance.now() - tG;

      // --topology auto: the probe times the shape this step ran in.
      const verdict = this.probe.observe(this.stepShape, timings.dPhaseMs + timings.gPhaseMs);
      if (verdict !== undefined)
        this.log.info(
          { event: 'shape-chosen' satisfies LogEvent, ...verdict },
          `topology: ${verdict.shape} (a step took ${verdict.starMs.toFixed(1)} ms as a star, ` +
            `${verdict.slicesMs.toFixed(1)} ms as slices)`,
        );

      // The step is applied: tell the observers (loss line, metrics, checkpoints, grids, dashboard).
      this.step = step + 1;
      images += batch.length;
      const mean = (s: PhaseSum | 'skipped', k: 'loss' | 'dReal' | 'dFake') => (s === 'skipped' ? NaN : s[k] / s.batch);
      last = { d_loss: mean(d, 'loss'), g_loss: mean(g, 'loss'), d_real: mean(d, 'dReal'), d_fake: mean(d, 'dFake') };
      const epoch = this.schedule.epochOf(step);
      const workers = this.dispatcher.workers().length;
      await this.bus.emit('onStep', {
        step: this.step,
        epoch,
        totalSteps: total,
        stepsPerEpoch: perEpoch,
        images: batch.length,
        ...last,
        workers,
        timings,
      });
      const epochEnds = this.step % perEpoch === 0;
      if (epochEnds || this.step === total)
        await this.bus.emit('onEpochEnd', {
          epoch: epoch + 1,
          step: this.step,
          gen: this.params.gen,
          partial: !epochEnds,
        });
    }

    await this.bus.emit('onRunEnd', { step: this.step, stopped: this.step < total });
    const seconds = (performance.now() - t0) / 1000;
    return {
      steps: this.step,
      epochs: this.step / perEpoch,
      outDir: this.cfg.outDir,
      checkpoint: this.files.checkpointPath,
      samples: this.files.samples,
      imagesPerSecond: images / seconds,
      final: last,
      params: this.params,
      stopped: this.step < total,
      contributors: this.dispatcher.contributors.size,
    };
  }

  /**
   * One phase of a step: the workers' gradient sums for `net`, one Adam step on it written straight
   * into a weights frame, and that frame to every worker. 'aborted' when the run stops with no
   * worker left to finish the phase.
   */
  private async trainPhase(
    step: number,
    net: NetName,
    batch: Uint32Array,
    t: StepTimings,
  ): Promise<PhaseSum | 'aborted'> {
    let outcome: PhaseOutcome;
    // Exact: a chunk beyond its tensor's quantum range makes the phase run again, coarser; a relay
    // that could not finish its slices makes it run again without that relay. Either way the same bits.
    for (;;) {
      outcome = await this.dispatcher.runPhase(this.phasePlan(step, net, batch));
      if (outcome.kind !== 'done') this.ahead?.rollback();
      if (outcome.kind === 'rescale') {
        this.shifts[net][outcome.tensor]! -= OVERFLOW_BACKOFF;
        this.freshPlan = true;
      } else if (outcome.kind !== 'replan') break;
    }
    if (outcome.kind === 'aborted') return 'aborted';
    const { sum } = outcome;
    t.reduceMs += outcome.reduceMs;
    if (sum.largest !== undefined) this.shifts[net] = nextShifts(sum.largest, this.shifts[net]);
    // Under relays, Adam may have stepped every piece already (and the relays have them).
    const ahead = this.ahead?.complete === true ? this.ahead : undefined;
    ahead?.commit();
    t.adamMs += this.ahead?.adamMs ?? 0;
    this.ahead = undefined;
    // Adam writes the new weights straight into what goes out (the frame, or shared memory).
    const t0 = performance.now();
    let t1 = t0;
    this.server.broadcastWeights(
      net,
      this.version(net) + 1,
      (out) => {
        const ta = performance.now();
        t.encodeMs += ta - t0;
        if (ahead === undefined)
          adamStepFromSum(this.params[net], sum.sum, sum.batch, this.adam[net], this.cfg.adam, { out });
        else if (out !== this.params[net]) out.set(this.params[net]);
        t1 = performance.now();
        t.adamMs += t1 - ta;
      },
      this.frames,
      this.topology,
      ahead !== undefined,
    );
    t.sendMs += performance.now() - t1;
    return sum;
  }

  /** The relay plan of the phases now (star: id 0, no zones). */
  get plan(): Plan {
    return this.topology;
  }

  /**
   * The relay plan for the next phase, from who is connected now (coordinator/topology.ts). When it
   * changes, every worker of the new plan's zones is told, and the workers that got their weights
   * slice by slice from the old relays get both networks whole, so that none waits for a slice
   * from a relay that is gone.
   */
  private replan(): Plan {
    const members = this.server.active().map((s) => ({
      id: s.id,
      zone: s.zone,
      relay: this.dispatcher.isExcluded(s.id) ? undefined : s.relayUrl,
      shm: this.server.usesShm(s),
      local: s.remote === 'unix' || /^(127\.|::1$|::ffff:127\.)/.test(s.remote.replace(/:\d+$/, '')),
    }));
    const previous = this.topology;
    const choice = this.cfg.topology ?? 'auto';
    let next: Plan;
    if (choice === 'auto') {
      // The slices the members could form, kept apart from the plan in use so that steps probed
      // as a star do not churn its id; the probe says which of the two this step runs.
      this.candidate = planFor(members, 'auto', this.dtype, this.candidate, () => ++this.planIds, this.freshPlan);
      this.stepShape = this.probe.shapeFor(this.candidate.id === 0 ? '' : JSON.stringify(this.candidate.zones));
      next = this.stepShape === 'star' ? STAR : this.candidate;
    } else next = planFor(members, choice, this.dtype, previous, () => ++this.planIds, this.freshPlan);
    this.freshPlan = false;
    if (next === previous) return next;
    this.topology = next;
    this.log.info(
      {
        event: 'plan-changed' satisfies LogEvent,
        plan: next.id,
        zones: next.zones.map((z) => ({ zone: z.zone, relays: z.relays.length, workers: z.members.length })),
      },
      next.id === 0
        ? 'topology: star (every total straight to the coordinator)'
        : `topology: slices over ${next.zones.map((z) => z.relays.length).join(' + ')} relays`,
    );
    for (const z of next.zones) {
      const msg = encode({ t: 'plan', id: next.id, relays: [...z.relays] });
      for (const s of this.server.active()) if (z.members.includes(s.id)) this.server.sendTo(s, msg);
    }
    // Whoever got weights through relays that are not its relays now gets them whole.
    const refeed = this.server
      .active()
      .filter((s) => feedOf(previous, s.id) !== '' && feedOf(previous, s.id) !== feedOf(next, s.id));
    for (const net of NETS) {
      if (refeed.length === 0) break;
      const whole = encode({ t: 'weights', net, version: this.version(net), data: this.params[net] });
      for (const s of refeed) this.server.sendTo(s, whole);
    }
    return next;
  }

  /** What dispatch needs for one phase: shards in whole chunks and the exact reducer, or the float one. */
  private phasePlan(step: number, net: NetName, batch: Uint32Array): PhasePlan {
    const versions = { gen: this.version('gen'), dis: this.version('dis') };
    const topology = this.replan();
    if (this.dtype !== 'exact') {
      const acc = this.accs[net];
      return {
        step,
        phase: net,
        batch,
        versions,
        unit: 1,
        reducer: (shards) => new PhaseReducer(step, net, shards, MANIFESTS[net].size, acc),
        topology,
      };
    }
    const shifts = new Int32Array(this.shifts[net]);
    const layout = layoutOf(MANIFESTS[net], shifts);
    // One zone: a piece's sum is final when its relay's total is in; Adam steps it and it goes back down.
    const ahead =
      topology.zones.length === 1
        ? new StepAhead(
            this.params[net],
            this.adam[net],
            this.cfg.adam,
            this.fixed[net],
            layout,
            this.accs[net],
            batch.length,
          )
        : undefined;
    this.ahead = ahead;
    const version = this.version(net) + 1;
    const onPiece = (_zone: string, slice: number, a: number, b: number) => {
      const relay = this.server.active().find((s) => s.id === topology.zones[0]!.relays[slice]!.worker);
      const { next, previous } = ahead!.step(a, b);
      // As steps from the version every worker of the zone holds: most need 2–3 bytes, not 4.
      if (relay !== undefined) this.server.sendPiece(relay, topology.id, net, version, a, next, previous);
    };
    return {
      step,
      phase: net,
      batch,
      versions,
      unit: CHUNK,
      reducer: (shards) => {
        const n = MANIFESTS[net].size;
        const zones = new Map(
          topology.zones.map((z) => [z.zone, { bounds: boundsOf(z, n), pieces: piecesFor(n, z.relays.length) }]),
        );
        return new ExactReducer(step, net, shards, layout, this.fixed[net], this.accs[net], undefined, zones);
      },
      assignExtra: { shifts },
      topology,
      ...(ahead === undefined ? {} : { onPiece }),
    };
  }

  private checkpointState(): CheckpointState {
    return {
      step: this.step,
      epoch: this.schedule.epochOf(this.step),
      seed: this.cfg.seed,
      params: this.params,
      adam: this.adam,
      shifts: this.shifts,
      config: { ...this.cfg, gradDtype: this.dtype },
    };
  }
}
