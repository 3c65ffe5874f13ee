import { test } from 'node:test';
import { applySteps, weightSteps } from '../../shared/weight-steps.js';
import assert from 'node:assert/strict';
import { adamState, adamStepFromSum, SEED_ADAM } from '../../coordinator/optimizer.js';
import { StepAhead } from '../../coordinator/step-ahead.js';
import { FixedSum, fixedKernels, layoutOf } from '../../shared/fixed.js';
import { MANIFESTS } from '../../shared/model.js';
import { pieceBounds } from '../../shared/slices.js';
import { paramsDigest } from '../support/cluster.js';

const m = MANIFESTS.dis;
const n = m.size;
// Per-tensor shifts that differ, so pieces crossing tensor boundaries convert with the right quantum.
const layout = layoutOf(
  m,
  Int32Array.from(m.params, (_, t) => 20 + 3 * t),
);

/** A sum with values of both signs, some beyond 32 bits, and params/state after two earlier steps. */
function setup() {
  const acc = new FixedSum(n);
  for (let i = 0; i < n; i++) {
    acc.lo[i] = (i * 2654435761) % 2 ** 32;
    acc.hi[i] = (i % 7) - 3;
  }
  const params = Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 0.05);
  const state = adamState(n);
  state.m.fill(1e-4);
  state.v.fill(1e-6);
  state.step = 2;
  return { acc, params, state };
}

const digest = (x: { params: Float32Array; state: { m: Float32Array; v: Float32Array } }) =>
  paramsDigest({ gen: x.params, dis: Float32Array.from([...x.state.m, ...x.state.v]) });

test('Adam piece by piece (any order), then commit: the bits of one whole Adam step', () => {
  const whole = setup();
  const sum = new Float64Array(n);
  fixedKernels.toFloat64(whole.acc, layout, sum);
  adamStepFromSum(whole.params, sum, 128, whole.state, SEED_ADAM);

  const split = setup();
  const ahead = new StepAhead(split.params, split.state, SEED_ADAM, split.acc, layout, new Float64Array(n), 128);
  const b = pieceBounds(n, 3);
  const order = [...Array(b.length - 1).keys()].reverse();
  const initial = setup().params;
  for (const p of order) {
    const { next, previous } = ahead.step(b[p]!, b[p + 1]!);
    assert.equal(next.length, b[p + 1]! - b[p]!);
    // The weights before the step, and the steps between them give the new bits back.
    assert.deepEqual(previous, initial.subarray(b[p]!, b[p + 1]!));
    const back = new Float32Array(next.length);
    applySteps(previous, weightSteps(previous, next), back);
    assert.deepEqual(new Int32Array(back.buffer), new Int32Array(next.slice().buffer));
  }
  assert.ok(ahead.complete);
  ahead.commit();
  assert.equal(split.state.step, 3);
  assert.equal(digest(split), digest(whole));
});

test('rollback puts every stepped piece back; stepping again gives the same bits', () => {
  const once = setup();
  const ahead = new StepAhead(once.params, once.state, SEED_ADAM, once.acc, layout, new Float64Array(n), 128);
  const before = digest(once);
  const b = pieceBounds(n, 2);
  ahead.step(b[0]!, b[1]!);
  ahead.step(b[5]!, b[6]!);
  assert.ok(ahead.started && !ahead.complete);
  assert.throws(() => ahead.commit(), /stepped/);
  ahead.rollback();
  assert.equal(digest(once), before);
  assert.equal(once.state.step, 2);
  for (let p = 0; p < b.length - 1; p++) ahead.step(b[p]!, b[p + 1]!);
  ahead.commit();
  const ref = setup();
  const sum = new Float64Array(n);
  fixedKernels.toFloat64(ref.acc, layout, sum);
  adamStepFromSum(ref.params, sum, 128, ref.state, SEED_ADAM);
  assert.equal(digest(once), digest(ref));
});
