/**
 * The training step on tfjs's WebGPU backend (Dawn from npm `webgpu`), run on SwiftShader, the CPU
 * implementation of Vulkan that CI has (tests/support/swiftshader.ts). SwiftShader is slow (a
 * shader's first use compiles it, ~0.5 s each), so shards are small; it checks correctness, not speed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { releaseBackends, selectBackend } from '../../worker/backend.js';
import { BackendError } from '../../shared/errors.js';
import { TrainStep } from '../../worker/train-step.js';
import { initParams, IMAGE_SIZE, Z_DIM } from '../../shared/model.js';
import { noiseBlock, Purpose, uniforms } from '../../shared/random.js';
import { referenceDiscriminator, referenceGenerator, relativeError } from '../support/reference-gan.js';
import { useSwiftShader } from '../support/swiftshader.js';

useSwiftShader();

/**
 * Float32 on a GPU, against the float64 reference: max |Δ| / max |reference| ≤ 1e-4, ten times the
 * CPU backends' 1e-5. A GPU sums the 784-long dot products in tiles and reduces the batch in a
 * tree, in another order than a CPU, and may contract a·b+c into one FMA; the worst case of float32
 * summation over K = 784 terms is K·2⁻²⁴ ≈ 4.7e-5 of Σ|terms|, and three layers forward and back
 * chain such sums. WGSL also allows exp and log (in sigmoid, softplus, tanh) errors of several ULP
 * (exp: 3 + 2·|x| ULP) where a CPU libm is within one. A real bug (a transposed operand, a wrong
 * slope, a missing bias) is off by 1e-2 or more. SwiftShader itself lands near 1e-6.
 */
const GPU_TOLERANCE = 1e-4;

function fakeImages(n: number, seed: number): Float32Array {
  const x = new Float32Array(n * IMAGE_SIZE);
  uniforms(seed, Purpose.INIT, 99, -1, 1, x);
  return x;
}

const close = (a: number, b: number): boolean => Math.abs(a - b) <= GPU_TOLERANCE * Math.abs(b);

test('auto passes over a CPU-emulated adapter; webgpu by name takes it and names it', async () => {
  const auto = await selectBackend('auto', { native: false });
  assert.notEqual(auto.name, 'webgpu');
  assert.ok(
    auto.skipped.some((s) => s.startsWith('webgpu: ')),
    `auto should say why it skipped webgpu: ${auto.skipped.join('; ')}`,
  );
  const info = await selectBackend('webgpu');
  assert.equal(info.name, 'webgpu');
  assert.equal(tf.getBackend(), 'webgpu');
  assert.equal(info.device, 'google swiftshader (SwiftShader driver 5.0.0), cpu emulation');
});

test('webgpu: phase gradients and statistics match the float64 reference (n = 7)', async () => {
  await selectBackend('webgpu');
  const gen = initParams('gen', 11);
  const dis = initParams('dis', 11);
  const step = new TrainStep();
  step.setWeights('gen', gen);
  step.setWeights('dis', dis);
  for (const n of [7]) {
    const real = fakeImages(n, n);
    const z = noiseBlock(5, Purpose.NOISE_DIS, 0, 0, n, Z_DIM);
    const d = step.discriminatorPhase(real, z, n);
    const rd = referenceDiscriminator(gen, dis, real, z, n);
    const dErr = relativeError(d.grad, rd.grad);
    assert.ok(dErr <= GPU_TOLERANCE, `n = ${n}: D grad rel err ${dErr}`);
    assert.ok(close(d.lossSum, rd.lossSum), `n = ${n}: D loss ${d.lossSum} vs ${rd.lossSum}`);
    assert.ok(close(d.dRealSum, rd.dRealSum), `n = ${n}: ΣD(x) ${d.dRealSum} vs ${rd.dRealSum}`);
    assert.ok(close(d.dFakeSum, rd.dFakeSum), `n = ${n}: ΣD(G(z)) ${d.dFakeSum} vs ${rd.dFakeSum}`);
    const zg = noiseBlock(5, Purpose.NOISE_GEN, 0, 0, n, Z_DIM);
    const g = step.generatorPhase(zg, n);
    const rg = referenceGenerator(gen, dis, zg, n);
    const gErr = relativeError(g.grad, rg.grad);
    assert.ok(gErr <= GPU_TOLERANCE, `n = ${n}: G grad rel err ${gErr}`);
    assert.ok(close(g.lossSum, rg.lossSum), `n = ${n}: G loss ${g.lossSum} vs ${rg.lossSum}`);
    assert.equal(g.dRealSum, 0);
    assert.ok(close(g.dFakeSum, rg.dFakeSum), `n = ${n}: ΣD(G(z)) ${g.dFakeSum} vs ${rg.dFakeSum}`);
  }
  step.dispose();
});

test('webgpu: per-chunk sums (exact reduction: 33 samples in chunks of 16) match the float64 reference', async () => {
  await selectBackend('webgpu');
  const gen = initParams('gen', 12);
  const dis = initParams('dis', 12);
  const step = new TrainStep();
  step.setWeights('gen', gen);
  step.setWeights('dis', dis);
  const n = 33;
  const real = fakeImages(n, 5);
  const z = noiseBlock(6, Purpose.NOISE_DIS, 0, 0, n, Z_DIM);
  const zg = noiseBlock(6, Purpose.NOISE_GEN, 0, 0, n, Z_DIM);
  const d = step.discriminatorChunks(real, z, n, 16);
  const g = step.generatorChunks(zg, n, 16);
  assert.deepEqual([d.chunks, g.chunks], [3, 3]);
  const sizes = { dis: d.grads.length / 3, gen: g.grads.length / 3 };
  for (const [c, [s, k]] of [
    [0, 16],
    [16, 16],
    [32, 1],
  ].entries()) {
    const rd = referenceDiscriminator(
      gen,
      dis,
      real.subarray(s * IMAGE_SIZE, (s + k) * IMAGE_SIZE),
      z.subarray(s * Z_DIM, (s + k) * Z_DIM),
      k,
    );
    const dErr = relativeError(d.grads.subarray(c * sizes.dis, (c + 1) * sizes.dis), rd.grad);
    assert.ok(dErr <= GPU_TOLERANCE, `chunk ${c}: D grad rel err ${dErr}`);
    assert.ok(close(d.stats[3 * c]!, rd.lossSum), `chunk ${c}: D loss ${d.stats[3 * c]} vs ${rd.lossSum}`);
    assert.ok(close(d.stats[3 * c + 1]!, rd.dRealSum), `chunk ${c}: ΣD(x)`);
    assert.ok(close(d.stats[3 * c + 2]!, rd.dFakeSum), `chunk ${c}: ΣD(G(z))`);
    const rg = referenceGenerator(gen, dis, zg.subarray(s * Z_DIM, (s + k) * Z_DIM), k);
    const gErr = relativeError(g.grads.subarray(c * sizes.gen, (c + 1) * sizes.gen), rg.grad);
    assert.ok(gErr <= GPU_TOLERANCE, `chunk ${c}: G grad rel err ${gErr}`);
    assert.ok(close(g.stats[3 * c]!, rg.lossSum), `chunk ${c}: G loss ${g.stats[3 * c]} vs ${rg.lossSum}`);
    assert.ok(close(g.stats[3 * c + 2]!, rg.dFakeSum), `chunk ${c}: ΣD(G(z))`);
  }
  step.dispose();
});

/** tfjs-webgpu's buffer pool, as far as the test reads it. */
interface BufferPool {
  getNumUsedBuffers(): number;
  getNumFreeBuffers(): number;
  numBytesAllocated: number;
}

test('webgpu: tensors, GPU buffers and GPU bytes stay flat over 100 steps with new weights each step', async () => {
  await selectBackend('webgpu');
  const pool = (tf.backend() as unknown as { bufferManager: BufferPool }).bufferManager;
  const snapshot = () => ({
    tensors: tf.memory().numTensors,
    usedBuffers: pool.getNumUsedBuffers(),
    freeBuffers: pool.getNumFreeBuffers(),
    bytesAllocated: pool.numBytesAllocated,
  });
  const base = tf.memory().numTensors;
  const weights = [1, 2].map((s) => ({ gen: initParams('gen', s), dis: initParams('dis', s) }));
  const n = 2;
  const real = fakeImages(n, 3);
  const zd = noiseBlock(1, Purpose.NOISE_DIS, 0, 0, n, Z_DIM);
  const zg = noiseBlock(1, Purpose.NOISE_GEN, 0, 0, n, Z_DIM);
  const step = new TrainStep();
  // What a worker does per step: D's new weights, the D phase, G's new weights, the G phase.
  const once = (i: number): void => {
    const w = weights[i % 2]!;
    step.setWeights('dis', w.dis);
    step.discriminatorPhase(real, zd, n);
    step.setWeights('gen', w.gen);
    step.generatorPhase(zg, n);
  };
  step.setWeights('gen', weights[0]!.gen);
  // Warm-up: the pool grows to what a step needs.
  for (let i = 0; i < 3; i++) once(i);
  const before = snapshot();
  for (let i = 0; i < 100; i++) once(i);
  assert.deepEqual(snapshot(), before);
  step.dispose();
  assert.equal(tf.memory().numTensors, base);
});

test('webgpu: an error the device reports fails the next read instead of returning its garbage', async () => {
  await selectBackend('webgpu');
  const { device } = tf.backend() as unknown as { device: { createBuffer(d: { size: number; usage: number }): void } };
  const x = tf.add(tf.ones([4096]), 1); // large enough to run on the GPU (tfjs does small ops on the CPU)
  device.createBuffer({ size: 4, usage: 0 }); // a validation error: WebGPU reports it as an event
  assert.throws(
    () => x.dataSync(),
    (e: unknown) => e instanceof BackendError,
  );
  const y = tf.add(tf.ones([4096]), 2);
  assert.equal(y.dataSync()[0], 3, 'the next read, with no error since, is used');
  tf.dispose([x, y]);
});

test('releaseBackends destroys the webgpu device and unregisters the backend', async () => {
  await selectBackend('webgpu');
  releaseBackends();
  assert.equal(tf.findBackendFactory('webgpu'), null);
  assert.equal(tf.findBackend('webgpu'), null);
});
