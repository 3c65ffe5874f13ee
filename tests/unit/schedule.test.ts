import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BatchSchedule, splitBatch } from '../../coordinator/schedule.js';
import { epochPermutation } from '../../shared/random.js';

test('an epoch of 60000 is 468 batches of 128 and a last one of 96', () => {
  const s = new BatchSchedule(1, 60000, 128);
  assert.equal(s.stepsPerEpoch, 469);
  assert.equal(s.batch(0).length, 128);
  assert.equal(s.batch(467).length, 128);
  assert.equal(s.batch(468).length, 96);
  assert.equal(s.epochOf(468), 0);
  assert.equal(s.epochOf(469), 1);
  assert.deepEqual(s.batch(469), epochPermutation(1, 1, 60000).subarray(0, 128));
  // Every sample appears exactly once per epoch.
  const seen = new Uint8Array(60000);
  for (let i = 0; i < 469; i++) for (const j of s.batch(i)) seen[j]!++;
  assert.ok(seen.every((c) => c === 1));
});

test('splitBatch: contiguous shards, proportional to weights, covering the batch', () => {
  assert.deepEqual(splitBatch(128, [1, 1, 1]), [
    { start: 0, count: 43 },
    { start: 43, count: 43 },
    { start: 86, count: 42 },
  ]);
  assert.deepEqual(splitBatch(128, [3, 1]), [
    { start: 0, count: 96 },
    { start: 96, count: 32 },
  ]);
  // More workers than samples: one sample each for the first ones.
  assert.deepEqual(splitBatch(2, [1, 1, 1]), [
    { start: 0, count: 1 },
    { start: 1, count: 1 },
  ]);
  // A very slow worker still gets at least one sample; bad weights count as 1.
  const s = splitBatch(96, [1000, 0.001, NaN]);
  assert.equal(
    s.reduce((a, b) => a + b.count, 0),
    96,
  );
  assert.ok(s.every((x) => x.count >= 1));
  assert.throws(() => splitBatch(10, []), /at least one/);
});
