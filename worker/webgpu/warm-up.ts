/**
 * Compiles the training step's GPU programs before a worker joins a run.
 *
 * tfjs-webgpu makes a compute pipeline the first time it meets each program variant (the variant
 * depends on the operands' shapes, e.g. whether a width is a multiple of 4), and a worker's event
 * loop is blocked while a phase runs. On a GPU the pipelines of a phase take a moment; on SwiftShader
 * (CPU emulation, as in CI) about a second each, long enough for a first shard to miss the
 * coordinator's heartbeat or deadline. Running the shapes a worker meets first moves that cost before
 * the hello, where nothing waits on the worker:
 *
 * - the exact reduction's probe (worker/exact-step.ts `rowsIndependent`), which a worker runs when
 *   it joins an exact run (the default): a shard of one chunk and one of three;
 * - whole phases on shards of 1 and 2 samples, the smallest a lossy run (f32/f16/bf16) sends.
 *
 * Other shard sizes may still need a few variants of their own, which cost less than a first phase.
 */
import * as tf from '@tensorflow/tfjs-core';
import { CHUNK } from '../../shared/fixed.js';
import { IMAGE_SIZE, Z_DIM } from '../../shared/model.js';
import { rowsIndependent } from '../exact-step.js';
import { TrainStep } from '../train-step.js';

/** Whole-phase shard sizes run once each. */
export const WARM_UP_SHARDS: readonly number[] = [1, 2];

/** Runs the probe and a D and a G phase per size; leaves no tensors behind. */
export function warmUpTrainStep(sizes: readonly number[] = WARM_UP_SHARDS): void {
  const before = tf.memory().numTensors;
  const step = new TrainStep();
  try {
    rowsIndependent(step, CHUNK); // sets made-up weights of its own
    for (const n of sizes) {
      step.discriminatorPhase(new Float32Array(n * IMAGE_SIZE), new Float32Array(n * Z_DIM), n);
      step.generatorPhase(new Float32Array(n * Z_DIM), n);
    }
  } finally {
    step.dispose();
  }
  if (tf.memory().numTensors !== before) throw new Error('webgpu warm-up left tensors behind');
}
