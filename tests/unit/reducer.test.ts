import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ExactReducer, GROUP, PhaseReducer } from '../../coordinator/reducer.js';
import { compact, FixedSum, type FixedWire, jsFixedKernels, nativeFixedKernels } from '../../shared/fixed.js';
import { jsKernels, nativeKernels } from '../../coordinator/reduce-kernels.js';
import { selectBackend } from '../../worker/backend.js';
import { TrainStep } from '../../worker/train-step.js';
import { loadMnist } from '../../shared/mnist.js';
import { IMAGE_SIZE, MANIFESTS, Z_DIM, initParams } from '../../shared/model.js';
import { gatherImages, pixelTable } from '../../shared/pixels.js';
import { Purpose, epochPermutation, noiseBlock } from '../../shared/random.js';
import type { ResultMessage } from '../../shared/protocol.js';
import { referenceDiscriminator, referenceGenerator, relativeError } from '../support/reference-gan.js';

function result(
  step: number,
  phase: 'gen' | 'dis',
  start: number,
  count: number,
  grad: Float32Array,
  lossSum = 1,
): ResultMessage {
  return {
    t: 'result',
    step,
    phase,
    start,
    count,
    grad: { dtype: 'f32', values: grad },
    lossSum,
    dRealSum: 0.5 * count,
    dFakeSum: 0.25 * count,
    computeMs: 1,
  };
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
      const r =
        phase === 'dis'
          ? step.discriminatorPhase(real.subarray(s.start * IMAGE_SIZE, (s.start + s.count) * IMAGE_SIZE), z, s.count)
          : step.generatorPhase(z, s.count);
      const v = reducer.offer({
        t: 'result',
        step: 4,
        phase,
        start: s.start,
        count: s.count,
        computeMs: 1,
        ...r,
        grad: { dtype: 'f32', values: Float32Array.from(r.grad) },
      });
      assert.equal(v.accepted, true);
    }
    const mean = reducer.mean();
    const zAll = noiseBlock(3, phase === 'dis' ? Purpose.NOISE_DIS : Purpose.NOISE_GEN, 4, 0, B, Z_DIM);
    const ref =
      phase === 'dis' ? referenceDiscriminator(gen, dis, real, zAll, B) : referenceGenerator(gen, dis, zAll, B);
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
  assert.deepEqual(r.offer(result(3, 'dis', 0, 2, g, NaN)), { accepted: false, reason: 'non-finite' });
  assert.deepEqual(r.offer(result(3, 'dis', 2, 1, new Float32Array([2, 1, 0, -1]))), {
    accepted: true,
    complete: false,
  });
  // The last shard in completes the set: its add finds the NaN / Inf, and only it is rejected.
  assert.deepEqual(r.offer(result(3, 'dis', 0, 2, new Float32Array([1, NaN, 0, 0]))), {
    accepted: false,
    reason: 'non-finite',
  });
  assert.deepEqual(r.offer(result(3, 'dis', 0, 2, new Float32Array([1, Infinity, 0, 0]))), {
    accepted: false,
    reason: 'non-finite',
  });
  assert.deepEqual(r.missing(), [{ start: 0, count: 2 }]);
  assert.throws(() => r.mean(), /missing 1 shard/);
  assert.deepEqual(r.offer(result(3, 'dis', 0, 2, g)), { accepted: true, complete: true });
  assert.deepEqual(r.offer(result(3, 'dis', 0, 2, g)), { accepted: false, reason: 'duplicate' });
  const m = r.mean();
  assert.deepEqual([...m.grad], [1, 1, 1, 1]);
  assert.equal(m.loss, 2 / 3);
  assert.equal(m.dReal, 0.5);
  assert.equal(m.dFake, 0.25);
});

/** Σ in shard order, in float64, written out plainly: the reference for every reducer. */
function referenceSum(grads: Float32Array[]): Float64Array {
  const out = new Float64Array(grads[0]!.length);
  for (const g of grads) for (let i = 0; i < out.length; i++) out[i] += g[i]!;
  return out;
}

function randomGrad(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32 - 0.5) * 2 ** (((s >>> 7) % 40) - 20);
  });
}

for (const kernels of [jsKernels, ...(nativeKernels ? [nativeKernels] : [])]) {
  test(`${kernels.name} kernels: a non-finite result is dropped when added, the rest summed exactly`, () => {
    const shards = [0, 1, 2].map((k) => ({ start: k * 4, count: 4 }));
    const grads = [0, 1, 2].map((k) => randomGrad(33, k + 1));
    const nan = grads[0]!.slice();
    nan[17] = NaN;
    const r = new PhaseReducer(0, 'gen', shards, 33, undefined, kernels);
    assert.deepEqual(r.offer(result(0, 'gen', 0, 4, nan)), { accepted: true, complete: false });
    assert.deepEqual(r.offer(result(0, 'gen', 8, 4, grads[2]!)), { accepted: true, complete: false });
    assert.deepEqual(r.offer(result(0, 'gen', 4, 4, grads[1]!)), {
      accepted: true,
      complete: false,
      dropped: [shards[0]],
    });
    assert.deepEqual(r.missing(), [shards[0]]);
    assert.deepEqual(r.offer(result(0, 'gen', 0, 4, grads[0]!)), { accepted: true, complete: true });
    assert.deepEqual([...r.sum().sum], [...referenceSum(grads)]);
  });

  test(`${kernels.name} kernels: 21 shards in any arrival order (groups of ${GROUP}) sum as one pass in order`, () => {
    const n = 1001;
    const shards = Array.from({ length: 21 }, (_, k) => ({ start: k * 3, count: 3 }));
    const grads = shards.map((_, k) => randomGrad(n, 100 + k));
    const want = referenceSum(grads);
    for (const order of [
      shards.map((_, k) => k),
      shards.map((_, k) => 20 - k),
      [5, 0, 1, 2, 3, 4, 9, 8, 7, 6, 20, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19],
    ]) {
      const acc = new Float64Array(n).fill(123); // a lent accumulator: its old contents must not matter
      const r = new PhaseReducer(7, 'dis', shards, n, acc, kernels);
      for (const k of order) assert.equal(r.offer(result(7, 'dis', shards[k]!.start, 3, grads[k]!)).accepted, true);
      assert.equal(r.complete, true);
      assert.deepEqual([...r.sum().sum], [...want], `order ${order.join(',')}`);
    }
  });
}

/** An exact result whose total is `wire`. */
function exactResult(start: number, count: number, total: FixedWire): ResultMessage {
  return {
    t: 'result',
    step: 1,
    phase: 'dis',
    start,
    count,
    grad: { dtype: 'exact', total },
    lossSum: count,
    dRealSum: 0,
    dFakeSum: 0,
    computeMs: 1,
  };
}

test('exact reducer: totals wait for a group, the last shard or settle; the sum is the same for any pattern', () => {
  const n = 64;
  const layout = { segments: Int32Array.from([0, n]), shifts: Int32Array.from([10]) };
  const shards = Array.from({ length: 11 }, (_, i) => ({ start: i * 4, count: 4 }));
  // Totals with some elements beyond 32 bits (they travel as exceptions).
  const wires = shards.map((_, k) => {
    const s = new FixedSum(n);
    for (let i = 0; i < n; i++) {
      const v = (k + 1) * (i - 31) * 1_000_003 + (i === 5 ? 2 ** 40 * (k - 4) : 0);
      s.hi[i] = Math.floor(v / 2 ** 32);
      s.lo[i] = v - s.hi[i]! * 2 ** 32;
    }
    return compact(s);
  });
  const want = new Float64Array(n);
  for (let i = 0; i < n; i++)
    for (let k = 0; k < wires.length; k++)
      want[i] += ((k + 1) * (i - 31) * 1_000_003 + (i === 5 ? 2 ** 40 * (k - 4) : 0)) * 2 ** -10;
  for (const kernels of [jsFixedKernels, ...(nativeFixedKernels ? [nativeFixedKernels] : [])]) {
    for (const settleEvery of [0, 1, 3]) {
      const acc = new FixedSum(n);
      acc.lo.fill(99); // the previous phase's sum: overwritten
      const r = new ExactReducer(1, 'dis', shards, layout, acc, undefined, kernels);
      const order = [7, 2, 9, 0, 4, 10, 1, 3, 8, 6, 5];
      for (const [j, k] of order.entries()) {
        const v = r.offer(exactResult(shards[k]!.start, 4, wires[k]!));
        assert.equal(v.accepted, true);
        const last = j === order.length - 1;
        assert.equal(r.complete, last);
        // Before a group is full, a total is received, not yet added (unless settled).
        if (!last && settleEvery === 0 && j < GROUP - 1) assert.equal(r.status(shards[k]!.start), 'received');
        if (j === GROUP - 1 && settleEvery === 0) assert.equal(r.status(shards[k]!.start), 'added');
        if (settleEvery > 0 && j % settleEvery === 0) {
          r.addReceived();
          assert.equal(r.status(shards[k]!.start), 'added');
        }
      }
      assert.deepEqual([...r.sum().sum], [...want], `${kernels.name}, settle every ${settleEvery}`);
      assert.equal(r.sum().batch, 44);
      assert.deepEqual([...r.sum().largest!], [Math.max(...want.map(Math.abs))]);
    }
  }
});

test('exact reducer: a settled total may be overwritten by its worker without changing the sum', () => {
  const n = 8;
  const layout = { segments: Int32Array.from([0, n]), shifts: Int32Array.from([0]) };
  const shards = [
    { start: 0, count: 2 },
    { start: 2, count: 2 },
  ];
  // The first total lives in a "slot" its worker reuses once it is handed new work.
  const slot = new Int32Array(n).fill(5);
  const r = new ExactReducer(1, 'dis', shards, layout, new FixedSum(n));
  r.offer(exactResult(0, 2, { low: slot, exIndex: new Uint32Array(0), exHigh: new Int32Array(0) }));
  r.addReceived(); // what the dispatcher does before handing out work
  slot.fill(-1000);
  r.offer(
    exactResult(2, 2, { low: new Int32Array(n).fill(1), exIndex: new Uint32Array(0), exHigh: new Int32Array(0) }),
  );
  assert.equal(r.complete, true);
  assert.deepEqual([...r.sum().sum], Array(n).fill(6));
});
