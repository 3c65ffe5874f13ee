/** The trainer's config and the observability options of `coordinator` and `local`, from their flags. */
import { SEED_ADAM } from '../coordinator/optimizer.js';
import type { TrainerConfig } from '../coordinator/trainer.js';
import type { ProgressMode } from '../coordinator/observe/progress.js';
import type { Options } from './flags.js';

/** The trainer's config (checked values; `local` waits for all of its own workers). */
export function trainerConfig(o: Options): TrainerConfig {
  return {
    seed: o.get('seed'),
    epochs: o.get('epochs'),
    maxSteps: o.get('maxSteps'),
    batchSize: o.get('batchSize'),
    adam: { ...SEED_ADAM, lr: o.get('lr'), beta1: o.get('beta1'), beta2: o.get('beta2') },
    normalize: o.get('normalize'),
    outDir: o.get('out'),
    logEvery: o.get('logEvery'),
    minWorkers: o.command === 'local' ? o.get('workers') : o.get('minWorkers'),
    samples: !o.get('noSamples'),
    checkpointEvery: o.get('checkpointEvery'),
    gradDtype: o.get('gradDtype'),
    topology: o.get('topology'),
  };
}

/** Sample-quality evaluation options of `coordinator` and `local`. */
export function evalOptions(o: Options): { evalEvery: number; evalSamples: number } {
  return { evalEvery: o.get('evalEvery'), evalSamples: o.get('evalSamples') };
}

export function observeOptions(o: Options): {
  progress: ProgressMode;
  progressEveryMs: number;
  dashboard: boolean;
  plots: boolean;
} {
  return {
    progress: o.get('progress'),
    progressEveryMs: 1000 * o.get('progressEvery'),
    dashboard: !o.get('noDashboard'),
    plots: !o.get('noPlots'),
  };
}
