import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  addAllWires,
  CHUNK_LIMIT,
  compact,
  FixedSum,
  type FixedKernels,
  type FixedLayout,
  INITIAL_SHIFT,
  initialShifts,
  jsFixedKernels,
  layoutOf,
  layoutRange,
  MAX_ADD_WIRES,
  nativeFixedKernels,
  nextShifts,
  roundHalfEven,
  TARGET_BITS,
} from '../../shared/fixed.js';
import { MANIFESTS } from '../../shared/model.js';
import { uniforms, Purpose } from '../../shared/random.js';

const kernels: FixedKernels[] = [jsFixedKernels, ...(nativeFixedKernels ? [nativeFixedKernels] : [])];

/** A small manifest-like layout: three tensors of different scales. */
const N = 1000;
const layout: FixedLayout = {
  segments: Int32Array.from([0, 600, 600, 300, 900, 100]),
  shifts: Int32Array.from([30, 40, 20]),
};

/** Chunk sums with values over many binades (and some exact ties at the quantum's half). */
function chunkGrads(count: number, seed: number): Float32Array {
  const g = new Float32Array(count * N);
  uniforms(seed, Purpose.INIT, 1, -1, 1, g);
  for (let i = 0; i < g.length; i++) g[i] = g[i]! * 2 ** (((i * 7919) % 24) - 12);
  g[3] = 1.5 * 2 ** -30; // exactly half a quantum above 1 quantum: a tie, to even
  return g;
}

function bits(sum: FixedSum, k: FixedKernels): Buffer {
  const out = new Float64Array(sum.length);
  k.toFloat64(sum, layout, out);
  return Buffer.from(out.buffer);
}

test('sums of chunks are the same bits whatever the grouping, order and kernel', () => {
  const chunks = 24;
  const g = chunkGrads(chunks, 3);
  const chunk = (c: number) => g.subarray(c * N, (c + 1) * N);
  const reference = new FixedSum(N);
  assert.deepEqual(jsFixedKernels.accumulate(reference, g, chunks, layout), { ok: true });
  const want = bits(reference, jsFixedKernels);
  for (const k of kernels) {
    for (let trial = 0; trial < 20; trial++) {
      // A random permutation of the chunks, cut into random groups ("workers"); each group's total
      // crosses the wire, and the totals are added in yet another order.
      const order = Array.from({ length: chunks }, (_, i) => i);
      const r = new Float32Array(chunks + 8);
      uniforms(trial, Purpose.INIT, 2, 0, 1, r);
      order.sort((a, b) => r[a]! - r[b]!);
      const totals: ReturnType<typeof compact>[] = [];
      for (let at = 0; at < chunks; ) {
        const size: number = 1 + Math.floor(r[chunks + (totals.length % 8)]! * 6);
        const group = new FixedSum(N);
        for (const c of order.slice(at, at + size)) assert.equal(k.accumulate(group, chunk(c), 1, layout).ok, true);
        totals.push(compact(group, k));
        at += size;
      }
      totals.reverse();
      // Added a few at a time (the kernels' fan-in takes 1 to 8 per pass, more in several).
      const sum = new FixedSum(N);
      for (let at = 0, g = 0; at < totals.length; g++) {
        const size = 1 + ((trial + g * 5) % 11);
        k.addWires(sum, totals.slice(at, at + size), at === 0);
        at += size;
      }
      assert.ok(bits(sum, k).equals(want), `${k.name}, trial ${trial}`);
      const all = new FixedSum(N);
      addAllWires(k, all, totals);
      assert.ok(bits(all, k).equals(want), `${k.name}, trial ${trial}, all at once`);
    }
  }
});

test('a wire total round-trips, with elements beyond 32 bits travelling apart', () => {
  const s = new FixedSum(5);
  const values = [0, -1, 2 ** 31 - 1, -(2 ** 31), 2 ** 40 + 12345];
  for (const [i, v] of values.entries()) {
    s.hi[i] = Math.floor(v / 2 ** 32);
    s.lo[i] = v - s.hi[i]! * 2 ** 32;
  }
  for (const k of kernels) {
    const w = compact(s, k);
    assert.deepEqual([...w.exIndex], [4]);
    const back = new FixedSum(5);
    k.addWires(back, [w], true);
    k.normalize(back);
    assert.deepEqual(
      [...back.hi].map((h, i) => h * 2 ** 32 + back.lo[i]!),
      values,
    );
    // Nine copies in one call (a group of 8, then 1), over a sum that held something else.
    back.hi.fill(7);
    k.addWires(back, Array(9).fill(w), true);
    k.normalize(back);
    assert.deepEqual(
      [...back.hi].map((h, i) => h * 2 ** 32 + back.lo[i]!),
      values.map((v) => 9 * v),
    );
  }
});

test("addWires refuses what is not a list of totals of the sum's length, before touching the sum", () => {
  const w = compact(new FixedSum(5));
  for (const k of kernels) {
    const sum = new FixedSum(5);
    sum.lo.fill(3);
    assert.throws(() => k.addWires(sum, [], false), RangeError);
    assert.throws(() => k.addWires(sum, Array(MAX_ADD_WIRES + 1).fill(w), false), RangeError);
    assert.throws(() => k.addWires(sum, [w, compact(new FixedSum(4))], false), RangeError);
    assert.deepEqual([...sum.lo], [3, 3, 3, 3, 3], k.name);
  }
  if (nativeFixedKernels !== null) {
    const bad = { low: new Int32Array(5), exIndex: Uint32Array.from([2, 2]), exHigh: new Int32Array(2) };
    assert.throws(() => nativeFixedKernels!.addWires(new FixedSum(5), [w, bad], false), RangeError);
  }
});

test('NaN, ±Inf and chunks past the limit are reported with their tensor, never wrapped', () => {
  for (const k of kernels) {
    for (const [bad, reason] of [
      [Number.NaN, 'non-finite'],
      [Number.POSITIVE_INFINITY, 'non-finite'],
      [(CHUNK_LIMIT / 2 ** 40) * 2, 'overflow'],
    ] as const) {
      const g = new Float32Array(N);
      g[650] = bad; // in tensor 1 (shift 40)
      assert.deepEqual(
        k.accumulate(new FixedSum(N), g, 1, layout),
        { ok: false, reason, tensor: 1 },
        `${k.name} ${bad}`,
      );
    }
    // Just below the limit is fine.
    const g = new Float32Array(N);
    g[650] = (CHUNK_LIMIT / 2 ** 40) * 0.999;
    assert.deepEqual(k.accumulate(new FixedSum(N), g, 1, layout), { ok: true });
  }
});

test('quanta round half to even, and the total matches a float64 sum to within the quanta', () => {
  assert.deepEqual([0.5, 1.5, 2.5, -0.5, -1.5].map(roundHalfEven), [0, 2, 2, 0, -2]);
  const chunks = 8;
  const g = chunkGrads(chunks, 9);
  const sum = new FixedSum(N);
  jsFixedKernels.accumulate(sum, g, chunks, layout);
  const out = new Float64Array(N);
  jsFixedKernels.toFloat64(sum, layout, out);
  for (let t = 0; t < 3; t++) {
    const q = 2 ** -layout.shifts[t]!;
    for (let i = layout.segments[2 * t]!; i < layout.segments[2 * t]! + layout.segments[2 * t + 1]!; i++) {
      let exact = 0;
      for (let c = 0; c < chunks; c++) exact += g[c * N + i]!;
      assert.ok(Math.abs(out[i]! - exact) <= (chunks / 2) * q + 1e-15 * Math.abs(exact), `element ${i}`);
    }
  }
});

test('shifts follow the totals: the largest |value| lands just below 2^TARGET_BITS quanta', () => {
  const dis = layoutOf(MANIFESTS.dis, initialShifts(MANIFESTS.dis));
  assert.deepEqual([...dis.shifts], Array(6).fill(INITIAL_SHIFT));
  // Totals in quanta of 2^−INITIAL_SHIFT: tensor 0 holds −3 and 2 (max 3 → 2^1 ≤ 3 < 2^2), tensor 1
  // holds 2^−20, the others 0.
  const at1 = MANIFESTS.dis.params[1]!.offset;
  const largests = kernels.map((k) => {
    const sum = new FixedSum(MANIFESTS.dis.size);
    sum.hi[0] = -1; // −3 · 2^24 = −1 · 2^32 + (2^32 − 3 · 2^24)
    sum.lo[0] = 2 ** 32 - 3 * 2 ** INITIAL_SHIFT;
    sum.lo[1] = 2 * 2 ** INITIAL_SHIFT;
    sum.lo[at1] = 2 ** (INITIAL_SHIFT - 20);
    const largest = new Float64Array(dis.shifts.length);
    k.toFloat64(sum, dis, new Float64Array(sum.length), largest);
    return [...largest];
  });
  for (const l of largests) assert.deepEqual(l, [3, 2 ** -20, 0, 0, 0, 0]);
  const next = nextShifts(Float64Array.from(largests[0]!), dis.shifts);
  assert.equal(next[0], TARGET_BITS - 1 - 1);
  assert.equal(next[1], TARGET_BITS - 1 + 20);
  assert.equal(next[2], INITIAL_SHIFT, 'an all-zero tensor keeps its shift');
  assert.ok(3 * 2 ** next[0]! < 2 ** TARGET_BITS && 3 * 2 ** next[0]! >= 2 ** (TARGET_BITS - 1));
});

test('toFloat64 gives the same bits for a layout that tiles the sum and one that does not', () => {
  const g = chunkGrads(6, 9);
  const reversed: FixedLayout = {
    segments: Int32Array.from([900, 100, 600, 300, 0, 600]),
    shifts: Int32Array.from([20, 40, 30]),
  };
  for (const k of kernels) {
    const a = new FixedSum(N);
    assert.equal(k.accumulate(a, g, 6, layout).ok, true);
    const b = new FixedSum(N, { hi: a.hi.slice(), lo: a.lo.slice() });
    const c = new FixedSum(N, { hi: a.hi.slice(), lo: a.lo.slice() });
    assert.ok(bits(a, k).equals(bits(b, jsFixedKernels)), k.name);
    const out = new Float64Array(N);
    k.toFloat64(c, reversed, out);
    assert.ok(Buffer.from(out.buffer).equals(bits(a, k)), `${k.name}: reversed layout`);
    // A range's layout (a piece of a slice) converts that range alone, normalized the same way.
    const piece = new Float64Array(500);
    const d = new FixedSum(N, { hi: a.hi.slice(), lo: a.lo.slice() });
    k.toFloat64(d.view(400, 900), layoutRange(layout, 400, 900), piece);
    assert.ok(Buffer.from(piece.buffer).equals(bits(a, k).subarray(400 * 8, 900 * 8)), `${k.name}: a range`);
  }
});

test('toFloat64 rounds the integer once, whether or not lo was normalized (and leaves the sum as it was)', () => {
  // Values past 2^53, where the conversion rounds: normalized pairs and the same integers unnormalized.
  const normal = new FixedSum(3, {
    hi: Float64Array.from([2 ** 22, -(2 ** 21) - 1, 5]),
    lo: Float64Array.from([2 ** 32 - 1, 2 ** 31 + 1, 3]),
  });
  const other = new FixedSum(3, {
    hi: Float64Array.from([2 ** 22 + 1, -(2 ** 21), 4]),
    lo: Float64Array.from([-1, 2 ** 31 + 1 - 2 ** 32, 2 ** 32 + 3]),
  });
  const one: FixedLayout = { segments: Int32Array.from([0, 3]), shifts: Int32Array.from([3]) };
  for (const k of kernels) {
    const a = new Float64Array(3);
    const b = new Float64Array(3);
    k.toFloat64(normal, one, a);
    k.toFloat64(other, one, b);
    assert.ok(Buffer.from(a.buffer).equals(Buffer.from(b.buffer)), k.name);
    assert.deepEqual(
      [...a],
      [(2 ** 54 + 2 ** 32 - 1) / 8, (-(2 ** 53) - 2 ** 32 + 2 ** 31 + 1) / 8, (5 * 2 ** 32 + 3) / 8],
    );
    assert.deepEqual([...other.lo], [-1, 2 ** 31 + 1 - 2 ** 32, 2 ** 32 + 3], 'the sum is not written');
  }
});
