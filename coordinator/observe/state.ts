/**
 * What the live dashboard shows, kept up to date by trainer events: a bounded history of the
 * losses, D outputs and throughput (total and per worker), the table of workers, and the latest
 * sample grid, the sample-quality scores. Also the in-memory step history that the end-of-run plot draws.
 */
import { encodePng, renderGrid } from '../../shared/image-grid.js';
import { Z_DIM } from '../../shared/model.js';
import { mlpForward } from '../../shared/mlp-forward.js';
import { Purpose, noiseBlock } from '../../shared/random.js';
import type { ShardEvent, StepEvent, TrainerObserver, WorkerEvent } from '../events.js';
import type { EvalScores } from '../eval/evaluator.js';
import type { EvalListener, EvalRecord } from '../eval/observer.js';

/** One point of the history (one step, or one of every `stride` steps once the history is long). */
export interface HistoryPoint {
  step: number;
  epoch: number;
  /** Milliseconds since the run started (this process). */
  t: number;
  d_loss: number;
  g_loss: number;
  d_real: number;
  d_fake: number;
  images_per_s: number;
  /** Smoothed images/s of each worker that had computed a shard by then, keyed by worker id. */
  workers: Record<string, number>;
}

export interface WorkerRow {
  id: number;
  backend: string;
  device: string;
  state: 'active' | 'left';
  joinedAt: number;
  /** Date.now() of its last result (or of its join). */
  lastSeen: number;
  shardSize: number;
  shards: number;
  imagesPerSecond: number;
  computeMs: number;
  roundTripMs: number;
}

export interface RunInfo {
  seed: number;
  epochs: number;
  totalSteps: number;
  stepsPerEpoch: number;
  batchSize: number;
  outDir: string;
  startedAt: number;
}

/** The history keeps at most this many points; past it, every other point is dropped. */
export const MAX_HISTORY = 2000;
/** The live sample grid is re-rendered at most this often. */
const SAMPLE_EVERY_MS = 2000;
const GRID = 64;

export class DashboardState implements TrainerObserver, EvalListener {
  history: HistoryPoint[] = [];
  /** Sample-quality scores of this process's run (one per evaluated epoch). */
  evals: Array<Pick<EvalRecord, 'step' | 'epoch' | 'fd' | 'classifier_score' | 'digits' | 'digit_shares'>> = [];
  /** The scores of real training images (the best a generator can do). */
  evalFloor: EvalScores | undefined;
  /** Only steps that are multiples of this are recorded (doubles whenever the history is thinned). */
  stride = 1;
  readonly workers = new Map<number, WorkerRow>();
  step = 0;
  epoch = 0;
  totalSteps = 0;
  lastSamples: { epoch: number; path: string } | undefined;
  checkpoints = 0;
  lastCheckpoint: { path: string; step: number; at: number } | undefined;
  private readonly t0 = Date.now();
  private lastStepAt = 0;
  private rate = 0;
  private readonly gridNoise: Float32Array;
  private sample: { step: number; at: number; png: Buffer } | undefined;

  constructor(
    readonly run: RunInfo,
    /** The generator's current weights (read when a grid is asked for). */
    private readonly generator: () => { step: number; params: Float32Array },
  ) {
    this.totalSteps = run.totalSteps;
    this.gridNoise = noiseBlock(run.seed, Purpose.SAMPLE_GRID, 0, 0, GRID, Z_DIM);
  }

  onStep(e: StepEvent): void {
    this.step = e.step;
    this.epoch = e.epoch;
    this.totalSteps = e.totalSteps;
    const now = performance.now();
    const dt = this.lastStepAt > 0 ? now - this.lastStepAt : e.timings.dPhaseMs + e.timings.gPhaseMs;
    this.lastStepAt = now;
    const r = (e.images * 1000) / Math.max(dt, 1e-3);
    this.rate = this.rate === 0 ? r : 0.8 * this.rate + 0.2 * r;
    if (e.step % this.stride !== 0) return;
    const workers: Record<string, number> = {};
    for (const w of this.workers.values())
      if (w.state === 'active' && w.imagesPerSecond > 0) workers[w.id] = w.imagesPerSecond;
    this.history.push({
      step: e.step,
      epoch: e.epoch,
      t: Date.now() - this.t0,
      d_loss: e.d_loss,
      g_loss: e.g_loss,
      d_real: e.d_real,
      d_fake: e.d_fake,
      images_per_s: this.rate,
      workers,
    });
    if (this.history.length > MAX_HISTORY) {
      this.stride *= 2;
      this.history = this.history.filter((p) => p.step % this.stride === 0);
    }
  }

  onShard(e: ShardEvent): void {
    const w = this.workers.get(e.workerId);
    if (!w) return;
    w.lastSeen = Date.now();
    w.shardSize = e.count;
    w.shards++;
    w.computeMs = e.computeMs;
    w.roundTripMs = e.roundTripMs;
    const r = (e.count * 1000) / Math.max(e.computeMs, 1e-3);
    w.imagesPerSecond = w.imagesPerSecond === 0 ? r : 0.7 * w.imagesPerSecond + 0.3 * r;
  }

  onWorker(e: WorkerEvent): void {
    const now = Date.now();
    if (e.kind === 'joined') {
      this.workers.set(e.workerId, {
        id: e.workerId,
        backend: e.backend,
        device: e.device,
        state: 'active',
        joinedAt: now,
        lastSeen: now,
        shardSize: 0,
        shards: 0,
        imagesPerSecond: 0,
        computeMs: 0,
        roundTripMs: 0,
      });
    } else {
      const w = this.workers.get(e.workerId);
      if (w) {
        w.state = 'left';
        w.imagesPerSecond = 0;
      }
      // Keep the last few departed workers in the table; forget older ones.
      const left = [...this.workers.values()].filter((x) => x.state === 'left');
      for (const x of left.slice(0, Math.max(0, left.length - 16))) this.workers.delete(x.id);
    }
  }

  onSamples(e: { epoch: number; path: string }): void {
    this.lastSamples = e;
  }

  onEval(r: EvalRecord): void {
    const { step, epoch, fd, classifier_score, digits, digit_shares } = r;
    this.evals.push({ step, epoch, fd, classifier_score, digits, digit_shares });
  }

  onEvalFloor(floor: EvalScores): void {
    this.evalFloor = floor;
  }

  onCheckpoint(e: { path: string; step: number }): void {
    this.checkpoints++;
    this.lastCheckpoint = { ...e, at: Date.now() };
  }

  /** The JSON the page polls: everything, with only the history points after `since`. */
  snapshot(since = -1, stride?: number): object {
    // A page holding points at another stride gets the whole (thinned) history again.
    const all = stride !== undefined && stride !== this.stride;
    return {
      run: this.run,
      now: Date.now(),
      step: this.step,
      epoch: this.epoch,
      totalSteps: this.totalSteps,
      imagesPerSecond: this.rate,
      stride: this.stride,
      reset: all,
      history: all ? this.history : this.history.filter((p) => p.step > since),
      workers: [...this.workers.values()].sort((a, b) => a.id - b.id),
      samples: {
        step: this.sample?.step ?? null,
        epoch: this.lastSamples?.epoch ?? null,
        path: this.lastSamples?.path ?? null,
      },
      checkpoint: this.lastCheckpoint ?? null,
      evals: this.evals,
      evalFloor: this.evalFloor ?? null,
    };
  }

  /**
   * The generator's current samples on the run's fixed grid noise (the z of samples/epoch-NNN.png),
   * as a PNG. Rendered on the coordinator's CPU at most every SAMPLE_EVERY_MS, and only when the
   * weights changed.
   */
  samplePng(): { step: number; png: Buffer } {
    const g = this.generator();
    const now = Date.now();
    if (this.sample && (this.sample.step === g.step || now - this.sample.at < SAMPLE_EVERY_MS)) return this.sample;
    const images = Float32Array.from(mlpForward('gen', g.params, this.gridNoise, GRID).at(-1)!);
    this.sample = { step: g.step, at: now, png: encodePng(renderGrid(images, GRID)) };
    return this.sample;
  }
}
