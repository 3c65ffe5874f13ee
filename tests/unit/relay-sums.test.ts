import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FixedSum, type FixedWire, compact } from '../../shared/fixed.js';
import { MAX_PIECES as PIECES } from '../../shared/slices.js';
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

// Slice 1 of plan 2: in the D network, PIECES pieces of 2 elements from element 4.
const duty = {
  plan: 2,
  slice: 1,
  bounds: {
    dis: Int32Array.from({ length: PIECES + 1 }, (_, i) => 4 + 2 * i),
    gen: Int32Array.from({ length: PIECES + 1 }, (_, i) => 10 + i),
  },
};
const part = (start: number, worker: number, piece: number, vals: number[], over: object = {}) => ({
  plan: 2,
  slice: 1,
  piece,
  step: 5,
  phase: 'dis' as const,
  start,
  count: 8,
  worker,
  total: wire(vals),
  ...over,
});
const flush = { plan: 2, slice: 1, step: 5, phase: 'dis' as const, parts: Int32Array.from([0, 8, 1, 8, 8, 2]) };

test('sliceOf: a slice of a total, exceptions re-indexed from the slice start', () => {
  const big = 3 * 2 ** 33;
  const w = wire([1, -2, big, 4, -big, 6]);
  assert.deepEqual(values(sliceOf(w, 2, 5)), [big, 4, -big]);
  assert.deepEqual(Array.from(sliceOf(w, 2, 5).exIndex), [0, 2]);
  assert.deepEqual(values(sliceOf(w, 0, 2)), [1, -2]);
});

test('a piece goes up as soon as every part has sent it; each part counts once; exact beyond 32 bits', () => {
  const r = new RelaySums();
  r.setDuty(duty);
  assert.deepEqual(r.add(part(0, 1, 0, [1, 2 ** 40])).ready, []);
  assert.equal(r.add(part(0, 1, 0, [100, 100])).refused, '', 'a copy of a part is taken and ignored');
  assert.deepEqual(r.flush(flush).ready, []);
  const first = r.add(part(8, 2, 0, [-1, 2 ** 40])).ready;
  assert.equal(first.length, 1);
  assert.deepEqual([first[0]!.piece, first[0]!.start], [0, 4]);
  assert.deepEqual(values(first[0]!.total), [0, 2 ** 41]);
  assert.deepEqual(Array.from(first[0]!.parts), Array.from(flush.parts));
  // The later pieces: worker 2's come first this time; each piece is summed once both are in.
  for (let p = 1; p < PIECES; p++) assert.deepEqual(r.add(part(8, 2, p, [p, 1])).ready, []);
  assert.deepEqual(r.missing(), ['0:8:1']);
  for (let p = 1; p < PIECES; p++) {
    const ready = r.add(part(0, 1, p, [10 * p, 1])).ready;
    assert.deepEqual(
      ready.map((x) => [x.piece, x.start, values(x.total)]),
      [[p, 4 + 2 * p, [11 * p, 2]]],
    );
  }
  assert.deepEqual(r.missing(), []);
});

test('refused: another plan or slice, a wrong length, a flush not for this relay', () => {
  const r = new RelaySums();
  r.setDuty(duty);
  // Another plan's contribution is not refused but kept aside (it may be a new run's: see below).
  assert.deepEqual(r.add(part(0, 1, 0, [1, 2], { plan: 1 })), { refused: '', ready: [] });
  assert.deepEqual(r.flush({ ...flush, parts: Int32Array.from([0, 8, 1]) }).ready, []);
  assert.match(r.add(part(0, 1, 0, [1, 2], { slice: 0 })).refused, /slice 0/);
  assert.match(r.add(part(0, 1, 0, [1, 2, 3])).refused, /3 values for a piece of 2/);
  assert.notEqual(r.flush({ ...flush, slice: 0 }).refused, '');
});

test('contributions for a plan the relay has not heard of yet wait for it (its plan message is on the way)', () => {
  const r = new RelaySums();
  // At most two plans wait: a third pushes out the first (here plan 9, a previous run's).
  assert.deepEqual(r.add(part(0, 1, 0, [7, 7], { plan: 9 })), { refused: '', ready: [] });
  assert.deepEqual(r.add(part(0, 1, 0, [1, 2])), { refused: '', ready: [] });
  assert.deepEqual(r.add(part(0, 1, 0, [5, 5], { plan: 3 })), { refused: '', ready: [] });
  r.setDuty(duty);
  const parts = Int32Array.from([0, 8, 1]);
  const ready = r.flush({ ...flush, parts }).ready;
  assert.deepEqual(
    ready.map((x) => values(x.total)),
    [[1, 2]],
  );
  // Plan 3's contribution is still kept; plan 2's (older) go at plan 3.
  r.setDuty({ ...duty, plan: 3 });
  assert.deepEqual(
    r.flush({ ...flush, plan: 3, parts }).ready.map((x) => values(x.total)),
    [[5, 5]],
  );
});

test('a new plan drops what the old one held; parts of an earlier phase go when a later one starts', () => {
  const r = new RelaySums();
  r.setDuty(duty);
  r.add(part(0, 1, 0, [1, 1]));
  r.setDuty({ ...duty, plan: 3 });
  const parts = Int32Array.from([0, 8, 1]);
  assert.deepEqual(r.flush({ ...flush, plan: 3, parts }).ready, []);
  r.add(part(0, 1, 0, [9], { plan: 3, step: 4, phase: 'gen' }));
  const ready = r.add(part(0, 1, 0, [3, 3], { plan: 3 })).ready;
  assert.deepEqual(values(ready[0]!.total), [3, 3]);
});

test("a new run's contributions wait even when its plan id is below the old run's (ids start anywhere)", () => {
  const r = new RelaySums();
  r.setDuty({ ...duty, plan: 900 });
  // The new run's peers reach this relay before its welcome: plan 2 < 900.
  assert.deepEqual(r.add(part(0, 1, 0, [4, 5])), { refused: '', ready: [] });
  r.reset();
  r.setDuty(duty);
  assert.deepEqual(
    r.flush({ ...flush, parts: Int32Array.from([0, 8, 1]) }).ready.map((x) => values(x.total)),
    [[4, 5]],
  );
});

test("reset (a new run) keeps early contributions: the new run's peers may come before its welcome", () => {
  const r = new RelaySums();
  r.setDuty({ ...duty, plan: 1 });
  assert.deepEqual(r.add(part(0, 1, 0, [1, 2])), { refused: '', ready: [] });
  r.reset();
  assert.equal(r.current, undefined);
  r.setDuty(duty);
  assert.deepEqual(
    r.flush({ ...flush, parts: Int32Array.from([0, 8, 1]) }).ready.map((x) => values(x.total)),
    [[1, 2]],
  );
});
