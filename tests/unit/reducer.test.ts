import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PhaseReducer } from '../../coordinator/reducer.js';
import { selectBackend } from '../../worker/backend.js';
import { TrainStep } from '../../worker/train-step.js';
import { loadMnist } from '../../shared/mnist.js';
import { IMAGE_SIZE, MANIFESTS, Z_DIM, initParams } from '../../shared/model.js';
import { gatherImages, pixelTable } from '../../shared/pixels.js';
import { Purpose, epochPermutation, noiseBlock } from '../../shared/random.js';
import type { ResultMessage } from '../../shared/protocol.js';
import { referenceDiscriminator, referenceGenerator, relativeError } from '../support/reference-gan.js';

function result(step: number, phase: 'gen' | 'dis', start: number, count: number, grad: Float32Array, lossSum = 1): ResultMessage {
  return { t: 'result', step, phase, start, count, grad, lossSum, dRealSum: 0.5 * count, dFakeSum: 0.25 * count, computeMs: 1 };
}

test('sums of 3 unequal shards ÷ batch equal the full-batch mean gradient (both networks, ≤ 1e-5)', async () => {
  await selectBackend('wasm');
  const data = await loadMnist();
  const B = 96; // the odd last batch of an epoch
  const idx = epochPermutation(3, 0, data.count).subarray(0, B);
  const real = gatherImages(data.images, idx, pixelTable('minus1to1'));
  const gen = initParams('gen', 3);
  const dis = initParams('dis', 3);
  const step = new TrainStep();
  step.setWeights('gen', gen);
  step.setWeights('dis', dis);
  const shards = [
    { start: 0, count: 50 },
    { start: 50, count: 11 },
    { start: 61, count: 35 },
  ];
  for (const phase of ['dis', 'gen'] as const) {
    const reducer = new PhaseReducer(4, phase, shards, MANIFESTS[phase].size);
    // Offer shards out of order: the sum must not depend on arrival order.
    for (const s of [shards[2]!, shards[0]!, shards[1]!]) {
      const purpose = phase === 'dis' ? Purpose.NOISE_DIS : Purpose.NOISE_GEN;
      const z = noiseBlock(3, purpose, 4, s.start, s.count, Z_DIM);
      const r = phase === 'dis' ? step.discriminatorPhase(real.subarray(s.start * IMAGE_SIZE, (s.start + s.count) * IMAGE_SIZE), z, s.count) : step.generatorPhase(z, s.count);
      const v = reducer.offer({ t: 'result', step: 4, phase, start: s.start, count: s.count, computeMs: 1, ...r, grad: Float32Array.from(r.grad) });
      assert.equal(v.accepted, true);
    }
    const mean = reducer.mean();
    const zAll = noiseBlock(3, phase === 'dis' ? Purpose.NOISE_DIS : Purpose.NOISE_GEN, 4, 0, B, Z_DIM);
    const ref = phase === 'dis' ? referenceDiscriminator(gen, dis, real, zAll, B) : referenceGenerator(gen, dis, zAll, B);
    const refMean = ref.grad.map((g) => g / B);
    const err = relativeError(mean.grad, refMean);
    assert.ok(err <= 1e-5, `${phase}: relative error ${err}`);
    assert.ok(Math.abs(mean.loss - ref.lossSum / B) <= 1e-5 * Math.abs(ref.lossSum / B));
  }
  step.dispose();
});

test('reducer rejects stale, unknown, duplicate, wrong-length and non-finite results', () => {
  const shards = [
    { start: 0, count: 2 },
    { start: 2, count: 1 },
  ];
  const r = new PhaseReducer(3, 'dis', shards, 4);
  const g = new Float32Array([1, 2, 3, 4]);
  assert.deepEqual(r.offer(result(2, 'dis', 0, 2, g)), { accepted: false, reason: 'stale' });
  assert.deepEqual(r.offer(result(3, 'gen', 0, 2, g)), { accepted: false, reason: 'stale' });
  assert.deepEqual(r.offer(result(3, 'dis', 1, 2, g)), { accepted: false, reason: 'unknown-shard' });
  assert.deepEqual(r.offer(result(3, 'dis', 0, 1, g)), { accepted: false, reason: 'unknown-shard' });
  assert.deepEqual(r.offer(result(3, 'dis', 0, 2, new Float32Array(3))), { accepted: false, reason: 'wrong-length' });
  assert.deepEqual(r.offer(result(3, 'dis', 0, 2, new Float32Array([1, NaN, 0, 0]))), { accepted: false, reason: 'non-finite' });
  assert.deepEqual(r.offer(result(3, 'dis', 0, 2, new Float32Array([1, Infinity, 0, 0]))), { accepted: false, reason: 'non-finite' });
  assert.deepEqual(r.offer(result(3, 'dis', 0, 2, g, NaN)), { accepted: false, reason: 'non-finite' });
  assert.deepEqual(r.offer(result(3, 'dis', 0, 2, g)), { accepted: true, complete: false });
  assert.deepEqual(r.offer(result(3, 'dis', 0, 2, g)), { accepted: false, reason: 'duplicate' });
  assert.throws(() => r.mean(), /missing 1 shard/);
  assert.deepEqual(r.missing(), [{ start: 2, count: 1 }]);
  assert.deepEqual(r.offer(result(3, 'dis', 2, 1, new Float32Array([2, 1, 0, -1]))), { accepted: true, complete: true });
  const m = r.mean();
  assert.deepEqual([...m.grad], [1, 1, 1, 1]);
  assert.equal(m.loss, 2 / 3);
  assert.equal(m.dReal, 0.5);
  assert.equal(m.dFake, 0.25);
});
