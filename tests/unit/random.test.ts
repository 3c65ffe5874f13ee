import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Purpose, epochPermutation, noiseBlock, normalsFor, philox4x32 } from '../../shared/random.js';

test('Philox4x32-10 matches the Random123 known-answer vectors', () => {
  const out = new Uint32Array(4);
  philox4x32(0, 0, 0, 0, 0, 0, out);
  assert.deepEqual([...out], [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
  philox4x32(0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, out);
  assert.deepEqual([...out], [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]);
  philox4x32(0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, out);
  assert.deepEqual([...out], [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]);
});

test("a sample's noise depends only on (seed, purpose, step, sample), not on the shard it is drawn in", () => {
  const whole = noiseBlock(9, Purpose.NOISE_DIS, 17, 0, 128, 100);
  const part = noiseBlock(9, Purpose.NOISE_DIS, 17, 43, 42, 100);
  assert.deepEqual(part, whole.subarray(43 * 100, 85 * 100));
  const single = new Float32Array(100);
  normalsFor(9, Purpose.NOISE_DIS, 17, 127, single);
  assert.deepEqual(single, whole.subarray(127 * 100));
  assert.notDeepEqual(noiseBlock(9, Purpose.NOISE_GEN, 17, 0, 1, 100), whole.subarray(0, 100));
  assert.notDeepEqual(noiseBlock(9, Purpose.NOISE_DIS, 18, 0, 1, 100), whole.subarray(0, 100));
  assert.notDeepEqual(noiseBlock(10, Purpose.NOISE_DIS, 17, 0, 1, 100), whole.subarray(0, 100));
});

test('noise is standard normal', () => {
  const z = noiseBlock(1, Purpose.NOISE_GEN, 0, 0, 2000, 100);
  let s = 0;
  let s2 = 0;
  let within1 = 0;
  for (const v of z) {
    s += v;
    s2 += v * v;
    if (Math.abs(v) < 1) within1++;
  }
  const n = z.length;
  assert.ok(Math.abs(s / n) < 0.01, `mean ${s / n}`);
  assert.ok(Math.abs(s2 / n - 1) < 0.02, `variance ${s2 / n}`);
  assert.ok(Math.abs(within1 / n - 0.6827) < 0.005, `P(|z|<1) ${within1 / n}`);
});

test('epoch permutations are permutations, seeded and different per epoch', () => {
  const p = epochPermutation(5, 0, 60000);
  const seen = new Uint8Array(60000);
  for (const i of p) seen[i]!++;
  assert.ok(seen.every((c) => c === 1));
  assert.deepEqual(p, epochPermutation(5, 0, 60000));
  assert.notDeepEqual(p.subarray(0, 128), epochPermutation(5, 1, 60000).subarray(0, 128));
  assert.notDeepEqual(p.subarray(0, 128), epochPermutation(6, 0, 60000).subarray(0, 128));
});
