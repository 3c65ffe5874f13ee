/**
 * Compiles the training step's GPU programs before a worker joins a run.
 *
 * tfjs-webgpu makes a compute pipeline the first time it meets each program variant (the variant
 * depends on the operands' shapes, e.g. whether a width is a multiple of 4), and a worker's
 * event loop is blocked while a phase runs. On a GPU the ~35 pipelines of a phase take a moment;
 * on SwiftShader (CPU emulation, as in CI) several seconds each phase, long enough for the first
 * shard to miss the coordinator's heartbeat. Running both phases on small shards first moves that
 * cost before the hello, where nothing waits on the worker. Larger shards may still need a few
 * variants of their own (multiple-of-4 widths), which cost less than a first phase.
 */
import * as tf from '@tensorflow/tfjs-core';
import { IMAGE_SIZE, MANIFESTS, Z_DIM } from '../../shared/model.js';
import { TrainStep } from '../train-step.js';

/** Shard sizes run once each: 1 (the smallest share a slow worker gets) and 2. */
export const WARM_UP_SHARDS: readonly number[] = [1, 2];

/** Runs a D and a G phase per size on zero weights and inputs; leaves no tensors behind. */
export function warmUpTrainStep(sizes: readonly number[] = WARM_UP_SHARDS): void {
  const before = tf.memory().numTensors;
  const step = new TrainStep();
  try {
    step.setWeights('gen', new Float32Array(MANIFESTS.gen.size));
    step.setWeights('dis', new Float32Array(MANIFESTS.dis.size));
    for (const n of sizes) {
      step.discriminatorPhase(new Float32Array(n * IMAGE_SIZE), new Float32Array(n * Z_DIM), n);
      step.generatorPhase(new Float32Array(n * Z_DIM), n);
    }
  } finally {
    step.dispose();
  }
  if (tf.memory().numTensors !== before) throw new Error('webgpu warm-up left tensors behind');
}
