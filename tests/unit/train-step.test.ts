import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../../worker/backend.js';
import { TrainStep } from '../../worker/train-step.js';
import { loadBlasAddon } from '../../worker/kernels/native-gemm.js';
import { initParams, IMAGE_SIZE, Z_DIM } from '../../shared/model.js';
import { noiseBlock, Purpose, uniforms } from '../../shared/random.js';
import { referenceDiscriminator, referenceGenerator, relativeError } from '../support/reference-gan.js';

const backends = ['wasm', 'cpu'] as const;
const haveNative = loadBlasAddon() !== null;
/** Each backend with tfjs's own kernels, and with ganfleet's OpenBLAS kernels where they are built. */
const modes = [
  { native: false, label: 'tfjs kernels' },
  { native: true, label: 'native OpenBLAS kernels' },
] as const;

function fakeImages(n: number, seed: number): Float32Array {
  const x = new Float32Array(n * IMAGE_SIZE);
  uniforms(seed, Purpose.INIT, 99, -1, 1, x);
  return x;
}

for (const backend of backends) {
  for (const mode of modes) {
    const skip = mode.native && !haveNative ? 'native kernel pack not built (optional)' : false;

    test(`${backend}, ${mode.label}: phase gradients match a float64 reference (n = 7 and 96)`, { skip }, async () => {
      const info = await selectBackend(backend, { native: mode.native });
      assert.equal(info.native, mode.native);
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
        assert.ok(Math.abs(g.dFakeSum - rg.dFakeSum) <= 1e-5 * rg.dFakeSum);
      }
      step.dispose();
    });

    test(`${backend}, ${mode.label}: tf.memory().numTensors stays flat across phases and weight updates`, {
      skip,
    }, async () => {
      await selectBackend(backend, { native: mode.native });
      const base = tf.memory().numTensors;
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
      // The odd last batch too.
      step.discriminatorPhase(fakeImages(96, 4), noiseBlock(1, Purpose.NOISE_DIS, 1, 0, 96, Z_DIM), 96);
      step.generatorPhase(noiseBlock(1, Purpose.NOISE_GEN, 1, 0, 96, Z_DIM), 96);
      assert.equal(tf.memory().numTensors, before);
      step.dispose();
      assert.equal(tf.memory().numTensors, base);
    });
  }

  test(`${backend}: OpenBLAS and tfjs kernels give the same phase results; switching mid-run leaks nothing`, {
    skip: haveNative ? false : 'native kernel pack not built (optional)',
  }, async () => {
    const base = tf.memory().numTensors;
    await selectBackend(backend, { native: true });
    const step = new TrainStep();
    const gen = initParams('gen', 21);
    const dis = initParams('dis', 21);
    step.setWeights('gen', gen);
    step.setWeights('dis', dis);
    const n = 96;
    const real = fakeImages(n, 9);
    const z = noiseBlock(2, Purpose.NOISE_DIS, 0, 0, n, Z_DIM);
    const dNative = step.discriminatorPhase(real, z, n);
    const gNative = step.generatorPhase(z, n);
    // Same TrainStep, weights set while native: the tfjs path makes its Wᵀ on first use.
    await selectBackend(backend, { native: false });
    const dTfjs = step.discriminatorPhase(real, z, n);
    const gTfjs = step.generatorPhase(z, n);
    assert.ok(relativeError(dNative.grad, dTfjs.grad) <= 1e-5, `D rel err ${relativeError(dNative.grad, dTfjs.grad)}`);
    assert.ok(relativeError(gNative.grad, gTfjs.grad) <= 1e-5, `G rel err ${relativeError(gNative.grad, gTfjs.grad)}`);
    assert.ok(Math.abs(dNative.lossSum - dTfjs.lossSum) <= 1e-5 * Math.abs(dTfjs.lossSum));
    assert.ok(Math.abs(gNative.lossSum - gTfjs.lossSum) <= 1e-5 * Math.abs(gTfjs.lossSum));
    await selectBackend(backend, { native: true });
    step.discriminatorPhase(real, z, n);
    step.dispose();
    assert.equal(tf.memory().numTensors, base);
  });
}
