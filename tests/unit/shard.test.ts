/**
 * Synthetic shard totals (worker/shard.ts, `--synthetic-compute-ms`) are sized as real ones: a whole
 * batch's total peaks where the coordinator's quanta put real ones (so its shifts stay put from phase
 * to phase), and a shard carries its share, in as many bytes a value as real shards of that share.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nextShifts, TARGET_BITS } from '../../shared/fixed.js';
import { laneBytes } from '../../shared/lanes.js';
import { MANIFESTS } from '../../shared/model.js';
import { syntheticTotal } from '../../worker/shard.js';

/** The whole batch's total over `workers` shards of 128, in quanta (exact in float64). */
function batchTotal(workers: number): Float64Array {
  const n = MANIFESTS.dis.size;
  const sum = new Float64Array(n);
  for (let w = 0; w < workers; w++) {
    const low = syntheticTotal('dis', 128, 128 * workers).low;
    for (let i = 0; i < n; i++) sum[i]! += low[i]!;
  }
  return sum;
}

for (const workers of [1, 3, 4, 32])
  test(`synthetic totals: ${workers} shard(s) of a batch peak just under 2^TARGET_BITS, so the shifts stay`, () => {
    const sum = batchTotal(workers);
    const peak = sum.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    assert.ok(peak >= 2 ** (TARGET_BITS - 1) && peak < 2 ** TARGET_BITS, `peak ${peak}`);
    // The coordinator's next shift for a tensor whose largest real value is peak · 2^−s: s again.
    const s = 30;
    assert.deepEqual([...nextShifts(Float64Array.of(peak * 2 ** -s), Int32Array.of(s))], [s]);
  });

test('synthetic totals: a shard of a batch shared by few workers needs 4-byte lanes, by many 3', () => {
  assert.equal(laneBytes(syntheticTotal('dis', 128, 128).low), 4);
  assert.equal(laneBytes(syntheticTotal('dis', 128, 4 * 128).low), 4);
  assert.equal(laneBytes(syntheticTotal('dis', 128, 8 * 128).low), 3);
  assert.equal(laneBytes(syntheticTotal('dis', 128, 32 * 128).low), 3);
});
