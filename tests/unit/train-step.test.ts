import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../../worker/backend.js';
import { TrainStep } from '../../worker/train-step.js';
import { initParams, IMAGE_SIZE, Z_DIM } from '../../shared/model.js';
import { noiseBlock, Purpose, uniforms } from '../../shared/random.js';
import { referenceDiscriminator, referenceGenerator, relativeError } from '../support/reference-gan.js';

const backends = ['wasm', 'cpu'] as const;

function fakeImages(n: number, seed: number): Float32Array {
  const x = new Float32Array(n * IMAGE_SIZE);
  uniforms(seed, Purpose.INIT, 99, -1, 1, x);
  return x;
}

for (const backend of backends) {
  test(`${backend}: phase gradients match a float64 reference (n = 7 and 96)`, async () => {
    await selectBackend(backend);
    const gen = initParams('gen', 11);
    const dis = initParams('dis', 11);
    const step = new TrainStep();
    step.setWeights('gen', gen);
    step.setWeights('dis', dis);
    for (const n of [7, 96]) {
      const real = fakeImages(n, n);
      const z = noiseBlock(5, Purpose.NOISE_DIS, 0, 0, n, Z_DIM);
      const d = step.discriminatorPhase(real, z, n);
      const rd = referenceDiscriminator(gen, dis, real, z, n);
      assert.ok(relativeError(d.grad, rd.grad) <= 1e-5, `D grad rel err ${relativeError(d.grad, rd.grad)}`);
      assert.ok(Math.abs(d.lossSum - rd.lossSum) <= 1e-5 * Math.abs(rd.lossSum));
      assert.ok(Math.abs(d.dRealSum - rd.dRealSum) <= 1e-5 * rd.dRealSum);
      assert.ok(Math.abs(d.dFakeSum - rd.dFakeSum) <= 1e-5 * rd.dFakeSum);
      const zg = noiseBlock(5, Purpose.NOISE_GEN, 0, 0, n, Z_DIM);
      const g = step.generatorPhase(zg, n);
      const rg = referenceGenerator(gen, dis, zg, n);
      assert.ok(relativeError(g.grad, rg.grad) <= 1e-5, `G grad rel err ${relativeError(g.grad, rg.grad)}`);
      assert.ok(Math.abs(g.lossSum - rg.lossSum) <= 1e-5 * Math.abs(rg.lossSum));
    }
    step.dispose();
  });

  test(`${backend}: tf.memory().numTensors stays flat across phases and weight updates`, async () => {
    await selectBackend(backend);
    const step = new TrainStep();
    step.setWeights('gen', initParams('gen', 1));
    step.setWeights('dis', initParams('dis', 1));
    const n = 16;
    const real = fakeImages(n, 3);
    const z = noiseBlock(1, Purpose.NOISE_DIS, 0, 0, n, Z_DIM);
    step.discriminatorPhase(real, z, n);
    step.generatorPhase(z, n);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) {
      step.discriminatorPhase(real, z, n);
      step.setWeights('dis', initParams('dis', 2 + i));
      step.generatorPhase(z, n);
      step.setWeights('gen', initParams('gen', 2 + i));
    }
    assert.equal(tf.memory().numTensors, before);
    step.dispose();
    assert.equal(tf.memory().numTensors, before - 18);
  });
}
