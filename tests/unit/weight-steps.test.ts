import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lanesWithExceptions } from '../../shared/lanes.js';
import { initParams } from '../../shared/model.js';
import { applySteps, weightSteps } from '../../shared/weight-steps.js';

const bitsOf = (f: Float32Array) => [...new Int32Array(f.slice().buffer)];

test('weight steps: the new bits back exactly, whatever the values', () => {
  const nan = new Float32Array(new Int32Array([0x7fc00001, 0xffa00000 | 0]).buffer);
  const prev = Float32Array.from([0, -0, 1, -1, 1e-45, 3.4e38, Infinity, 0.05, -0.05, nan[0]!, 2]);
  const next = Float32Array.from([-0, 0, -1, 1, -1e-45, -Infinity, 3.4e38, 0.0498, -0.0502, 5, nan[1]!]);
  const steps = weightSteps(prev, next);
  const back = new Float32Array(next.length);
  applySteps(prev, steps, back);
  assert.deepEqual(bitsOf(back), bitsOf(next));
  // In place too.
  applySteps(prev, steps, prev);
  assert.deepEqual(bitsOf(prev), bitsOf(next));
  assert.throws(() => weightSteps(prev, next.subarray(1)), RangeError);
  assert.throws(() => applySteps(prev, steps.subarray(1), back), RangeError);
});

test('weight steps: an Adam-sized step of the initial weights mostly fits 3 bytes', () => {
  const prev = initParams('dis', 1);
  // Every weight moved by the learning rate, the way Adam's first steps move them.
  const next = prev.map((w, i) => w + (i % 2 === 0 ? 2e-4 : -2e-4));
  const { lanes, exceptions } = lanesWithExceptions(weightSteps(prev, next));
  assert.equal(lanes, 3);
  assert.ok(exceptions < prev.length / 100, `${exceptions} exceptions of ${prev.length}`);
});
