/**
 * Prometheus metrics of a run (prom-client), served at `GET /metrics`. Each coordinator has its
 * own registry, so several coordinators in one process (tests) do not collide. Values that
 * already live elsewhere (bytes on the wire, connected workers) are read at scrape time.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { CoordinatorServer } from '../server.js';
import type { ShardEvent, StepEvent, TrainerObserver, WorkerEvent } from '../events.js';
import type { EvalScores } from '../eval/evaluator.js';
import type { EvalListener, EvalRecord } from '../eval/observer.js';

/** Seconds buckets for phases and steps: 5 ms … 60 s. */
const PHASE_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** Seconds buckets for one shard: 1 ms … 30 s. */
const SHARD_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export class MetricsObserver implements TrainerObserver, EvalListener {
  readonly registry = new Registry();
  private readonly stepSeconds: Histogram<never>;
  private readonly phaseSeconds: Histogram<'phase'>;
  private readonly coordinatorSeconds: Counter<'part'>;
  private readonly shardCompute: Histogram<'worker' | 'phase'>;
  private readonly shardRoundTrip: Histogram<'worker' | 'phase'>;
  private readonly workerImagesPerSecond: Gauge<'worker' | 'backend' | 'device'>;
  private readonly workerShardSize: Gauge<'worker'>;
  private readonly loss: Gauge<'net'>;
  private readonly dOutput: Gauge<'input'>;
  private readonly step: Gauge<never>;
  private readonly epoch: Gauge<never>;
  private readonly images: Counter<never>;
  private readonly imagesPerSecond: Gauge<never>;
  private readonly checkpoints: Counter<never>;
  private readonly sampleGrids: Counter<never>;
  private readonly workersJoined: Counter<never>;
  private readonly workersLeft: Counter<never>;
  private readonly evalFd: Gauge<'images'>;
  private readonly evalScore: Gauge<'images'>;
  private readonly evalDigits: Gauge<'images'>;
  private readonly evalDigitShare: Gauge<'digit'>;
  private readonly evalEpoch: Gauge<never>;
  private readonly evalSeconds: Histogram<never>;
  /** Per-worker labels, so a departed worker's series can be removed. */
  private readonly workers = new Map<number, { backend: string; device: string; rate: number }>();
  private lastStepAt = 0;
  private rate = 0;

  constructor(server: CoordinatorServer, opts: { defaultMetrics?: boolean } = {}) {
    const r = [this.registry];
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'ganfleet_' });
    this.stepSeconds = new Histogram({
      name: 'ganfleet_step_duration_seconds',
      help: 'Wall time of one training step (D phase + G phase), coordinator view',
      buckets: PHASE_BUCKETS,
      registers: r,
    });
    this.phaseSeconds = new Histogram({
      name: 'ganfleet_phase_duration_seconds',
      help: 'Wall time of one phase: assign to every shard reduced, Adam, broadcast',
      labelNames: ['phase'],
      buckets: PHASE_BUCKETS,
      registers: r,
    });
    this.coordinatorSeconds = new Counter({
      name: 'ganfleet_coordinator_seconds_total',
      help: 'Coordinator time spent per part of a step (reduce, adam, encode, send)',
      labelNames: ['part'],
      registers: r,
    });
    this.shardCompute = new Histogram({
      name: 'ganfleet_shard_compute_seconds',
      help: 'Worker-reported compute time of one shard',
      labelNames: ['worker', 'phase'],
      buckets: SHARD_BUCKETS,
      registers: r,
    });
    this.shardRoundTrip = new Histogram({
      name: 'ganfleet_shard_round_trip_seconds',
      help: 'Assign sent to result received, per shard, as the coordinator saw it',
      labelNames: ['worker', 'phase'],
      buckets: SHARD_BUCKETS,
      registers: r,
    });
    this.workerImagesPerSecond = new Gauge({
      name: 'ganfleet_worker_images_per_second',
      help: 'Smoothed images per second of compute of each connected worker',
      labelNames: ['worker', 'backend', 'device'],
      registers: r,
    });
    this.workerShardSize = new Gauge({
      name: 'ganfleet_worker_shard_size',
      help: 'Samples in the last shard each worker computed',
      labelNames: ['worker'],
      registers: r,
    });
    this.loss = new Gauge({
      name: 'ganfleet_loss',
      help: 'Latest batch-mean loss (net="dis": d_loss, net="gen": g_loss)',
      labelNames: ['net'],
      registers: r,
    });
    this.dOutput = new Gauge({
      name: 'ganfleet_d_output',
      help: 'Latest batch mean of D on real images and on G(z)',
      labelNames: ['input'],
      registers: r,
    });
    this.step = new Gauge({ name: 'ganfleet_step', help: 'Steps completed', registers: r });
    this.epoch = new Gauge({ name: 'ganfleet_epoch', help: 'Epoch of the last step (0-based)', registers: r });
    this.images = new Counter({
      name: 'ganfleet_images_total',
      help: 'Images trained on by this process (both phases count once per sample)',
      registers: r,
    });
    this.imagesPerSecond = new Gauge({
      name: 'ganfleet_images_per_second',
      help: 'Smoothed images per second of the whole run',
      registers: r,
    });
    this.checkpoints = new Counter({
      name: 'ganfleet_checkpoints_written_total',
      help: 'Checkpoints written',
      registers: r,
    });
    this.sampleGrids = new Counter({
      name: 'ganfleet_sample_grids_written_total',
      help: 'Sample grids written',
      registers: r,
    });
    this.workersJoined = new Counter({
      name: 'ganfleet_workers_joined_total',
      help: 'Worker handshakes completed',
      registers: r,
    });
    this.workersLeft = new Counter({
      name: 'ganfleet_workers_left_total',
      help: 'Active workers that disconnected',
      registers: r,
    });
    this.evalFd = new Gauge({
      name: 'ganfleet_eval_frechet_distance',
      help:
        'Frechet distance of classifier features to the MNIST test set ' +
        '(images="generated": the latest evaluation; images="real": training images, the floor)',
      labelNames: ['images'],
      registers: r,
    });
    this.evalScore = new Gauge({
      name: 'ganfleet_eval_classifier_score',
      help: 'exp(E KL(p(y|x) || p(y))) of the MNIST classifier on the samples (1 to 10; images as above)',
      labelNames: ['images'],
      registers: r,
    });
    this.evalDigits = new Gauge({
      name: 'ganfleet_eval_digits',
      help: 'Digits that got at least 5 % of the samples (10: none missing; images as above)',
      labelNames: ['images'],
      registers: r,
    });
    this.evalDigitShare = new Gauge({
      name: 'ganfleet_eval_digit_share',
      help: 'Share of the latest evaluation samples the classifier calls each digit',
      labelNames: ['digit'],
      registers: r,
    });
    this.evalEpoch = new Gauge({
      name: 'ganfleet_eval_epoch',
      help: 'Epochs completed when the latest evaluation drew its samples',
      registers: r,
    });
    this.evalSeconds = new Histogram({
      name: 'ganfleet_eval_duration_seconds',
      help: 'Time of one sample-quality evaluation in its thread (generator, classifier, statistics)',
      buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: r,
    });
    new Gauge({
      name: 'ganfleet_workers_connected',
      help: 'Workers that completed the handshake and can take shards',
      registers: r,
      collect() {
        this.set(server.active().length);
      },
    });
    new Gauge({
      name: 'ganfleet_ready',
      help: '1 while training can proceed (as /readyz)',
      registers: r,
      collect() {
        this.set(server.ready ? 1 : 0);
      },
    });
    // Totals owned by the server; a counter is re-set from them at every scrape.
    new Counter({
      name: 'ganfleet_bytes_received_total',
      help: 'payload bytes received from workers, over their sockets or through shared memory',
      labelNames: ['path'],
      registers: r,
      collect() {
        this.reset();
        this.inc({ path: 'socket' }, server.bytesIn);
        this.inc({ path: 'shm' }, server.bytesShmIn);
      },
    });
    new Counter({
      name: 'ganfleet_bytes_sent_total',
      help: 'payload bytes sent to workers, over their sockets or through shared memory',
      labelNames: ['path'],
      registers: r,
      collect() {
        this.reset();
        this.inc({ path: 'socket' }, server.bytesOut);
        this.inc({ path: 'shm' }, server.bytesShmOut);
      },
    });
  }

  onStep(e: StepEvent): void {
    const t = e.timings;
    this.stepSeconds.observe((t.dPhaseMs + t.gPhaseMs) / 1000);
    this.phaseSeconds.observe({ phase: 'dis' }, t.dPhaseMs / 1000);
    this.phaseSeconds.observe({ phase: 'gen' }, t.gPhaseMs / 1000);
    this.coordinatorSeconds.inc({ part: 'reduce' }, t.reduceMs / 1000);
    this.coordinatorSeconds.inc({ part: 'adam' }, t.adamMs / 1000);
    this.coordinatorSeconds.inc({ part: 'encode' }, t.encodeMs / 1000);
    this.coordinatorSeconds.inc({ part: 'send' }, t.sendMs / 1000);
    this.loss.set({ net: 'dis' }, e.d_loss);
    this.loss.set({ net: 'gen' }, e.g_loss);
    this.dOutput.set({ input: 'real' }, e.d_real);
    this.dOutput.set({ input: 'fake' }, e.d_fake);
    this.step.set(e.step);
    this.epoch.set(e.epoch);
    this.images.inc(e.images);
    const now = performance.now();
    if (this.lastStepAt > 0) {
      const r = (e.images * 1000) / Math.max(now - this.lastStepAt, 1e-3);
      this.rate = this.rate === 0 ? r : 0.9 * this.rate + 0.1 * r;
      this.imagesPerSecond.set(this.rate);
    }
    this.lastStepAt = now;
  }

  onShard(e: ShardEvent): void {
    const worker = String(e.workerId);
    this.shardCompute.observe({ worker, phase: e.phase }, e.computeMs / 1000);
    this.shardRoundTrip.observe({ worker, phase: e.phase }, e.roundTripMs / 1000);
    this.workerShardSize.set({ worker }, e.count);
    const w = this.workers.get(e.workerId);
    if (w) {
      const r = (e.count * 1000) / Math.max(e.computeMs, 1e-3);
      w.rate = w.rate === 0 ? r : 0.7 * w.rate + 0.3 * r;
      this.workerImagesPerSecond.set({ worker, backend: w.backend, device: w.device }, w.rate);
    }
  }

  onWorker(e: WorkerEvent): void {
    const worker = String(e.workerId);
    if (e.kind === 'joined') {
      this.workersJoined.inc();
      this.workers.set(e.workerId, { backend: e.backend, device: e.device, rate: 0 });
      return;
    }
    this.workersLeft.inc();
    const w = this.workers.get(e.workerId);
    this.workers.delete(e.workerId);
    if (w) this.workerImagesPerSecond.remove({ worker, backend: w.backend, device: w.device });
    this.workerShardSize.remove({ worker });
    for (const phase of ['dis', 'gen']) {
      this.shardCompute.remove({ worker, phase });
      this.shardRoundTrip.remove({ worker, phase });
    }
  }

  onSamples(): void {
    this.sampleGrids.inc();
  }

  onCheckpoint(): void {
    this.checkpoints.inc();
  }

  onEval(r: EvalRecord): void {
    this.setScores('generated', r);
    r.digit_shares.forEach((v, d) => {
      this.evalDigitShare.set({ digit: String(d) }, v);
    });
    this.evalEpoch.set(r.epoch);
    this.evalSeconds.observe(r.eval_ms / 1000);
  }

  onEvalFloor(floor: EvalScores): void {
    this.setScores('real', floor);
  }

  private setScores(images: 'generated' | 'real', s: EvalScores): void {
    this.evalFd.set({ images }, s.fd);
    this.evalScore.set({ images }, s.classifier_score);
    this.evalDigits.set({ images }, s.digits);
  }

  /** The exposition text and its content type. */
  async render(): Promise<{ body: string; contentType: string }> {
    return { body: await this.registry.metrics(), contentType: this.registry.contentType };
  }
}
