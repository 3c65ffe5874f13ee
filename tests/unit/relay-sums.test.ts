import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FixedSum, type FixedWire, compact } from '../../shared/fixed.js';
import { RelaySums, sliceOf } from '../../worker/relay-sums.js';

/** A wire total of these integer values (beyond 32 bits where they are large). */
function wire(values: number[]): FixedWire {
  const s = new FixedSum(values.length);
  for (const [i, v] of values.entries()) {
    s.hi[i] = Math.floor(v / 2 ** 32);
    s.lo[i] = v - s.hi[i]! * 2 ** 32;
  }
  return compact(s);
}

/** The integer values of a wire total. */
function values(w: FixedWire): number[] {
  const out = Array.from(w.low, (x) => x);
  for (const [k, i] of w.exIndex.entries()) out[i] = w.exHigh[k]! * 2 ** 32 + (w.low[i]! >>> 0);
  return out;
}

const duty = { plan: 2, slice: 1, range: { dis: [4, 7] as [number, number], gen: [10, 12] as [number, number] } };
const part = (start: number, worker: number, vals: number[], over: object = {}) => ({
  plan: 2,
  slice: 1,
  step: 5,
  phase: 'dis' as const,
  start,
  count: 8,
  worker,
  total: wire(vals),
  ...over,
});

test('sliceOf: a slice of a total, exceptions re-indexed from the slice start', () => {
  const big = 3 * 2 ** 33;
  const w = wire([1, -2, big, 4, -big, 6]);
  assert.deepEqual(values(sliceOf(w, 2, 5)), [big, 4, -big]);
  assert.deepEqual(Array.from(sliceOf(w, 2, 5).exIndex), [0, 2]);
  assert.deepEqual(values(sliceOf(w, 0, 2)), [1, -2]);
});

test('a flush waits for its last part, adds each part once, and the sum is exact beyond 32 bits', () => {
  const r = new RelaySums();
  r.setDuty(duty);
  assert.equal(r.add(part(0, 1, [1, 2, 2 ** 40])).refused, '');
  assert.equal(r.add(part(0, 1, [100, 100, 100])).refused, '', 'a copy of a part is taken and ignored');
  const parts = Int32Array.from([0, 8, 1, 8, 8, 2]);
  const early = r.flush({ plan: 2, slice: 1, step: 5, phase: 'dis', parts });
  assert.equal(early.refused, '');
  assert.equal(early.ready, undefined);
  assert.deepEqual(r.missing(), ['8:8:2']);
  const done = r.add(part(8, 2, [-1, 5, 2 ** 40]));
  assert.ok(done.ready);
  assert.deepEqual(values(done.ready.total), [0, 7, 2 ** 41]);
  assert.equal(done.ready.start, 4);
  assert.deepEqual(Array.from(done.ready.parts), Array.from(parts));
});

test('refused: another plan or slice, a wrong length, a flush not for this relay', () => {
  const r = new RelaySums();
  assert.match(r.add(part(0, 1, [1, 2, 3])).refused, /plan 2 is not this relay's \(none\)/);
  r.setDuty(duty);
  assert.match(r.add(part(0, 1, [1, 2, 3], { plan: 3 })).refused, /plan 3/);
  assert.match(r.add(part(0, 1, [1, 2, 3], { slice: 0 })).refused, /slice 0/);
  assert.match(r.add(part(0, 1, [1, 2])).refused, /2 values for a slice of 3/);
  assert.notEqual(r.flush({ plan: 2, slice: 0, step: 5, phase: 'dis', parts: new Int32Array(0) }).refused, '');
});

test('a new plan drops what the old one held; parts of an earlier phase go when a later one starts', () => {
  const r = new RelaySums();
  r.setDuty(duty);
  r.add(part(0, 1, [1, 1, 1]));
  r.setDuty({ ...duty, plan: 3 });
  const parts = Int32Array.from([0, 8, 1]);
  assert.equal(r.flush({ plan: 3, slice: 1, step: 5, phase: 'dis', parts }).ready, undefined);
  r.add(part(0, 1, [2, 2, 2], { plan: 3, step: 4, phase: 'gen', total: wire([9, 9]) }));
  const ready = r.add(part(0, 1, [3, 3, 3], { plan: 3 })).ready;
  assert.deepEqual(values(ready!.total), [3, 3, 3]);
});
