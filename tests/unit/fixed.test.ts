import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CHUNK_LIMIT,
  compact,
  FixedSum,
  type FixedKernels,
  type FixedLayout,
  INITIAL_SHIFT,
  initialShifts,
  jsFixedKernels,
  layoutOf,
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
      const sum = new FixedSum(N);
      for (const [i, w] of totals.entries()) k.addWire(sum, w, i === 0);
      assert.ok(bits(sum, k).equals(want), `${k.name}, trial ${trial}`);
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
    k.addWire(back, w, true);
    k.normalize(back);
    assert.deepEqual(
      [...back.hi].map((h, i) => h * 2 ** 32 + back.lo[i]!),
      values,
    );
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
  const total = new Float64Array(MANIFESTS.dis.size);
  total[0] = -3; // tensor 0: max 3 → 2^1 ≤ 3 < 2^2
  total[MANIFESTS.dis.params[1]!.offset] = 2 ** -20; // tensor 1
  const next = nextShifts(total, dis);
  assert.equal(next[0], TARGET_BITS - 1 - 1);
  assert.equal(next[1], TARGET_BITS - 1 + 20);
  assert.equal(next[2], INITIAL_SHIFT, 'an all-zero tensor keeps its shift');
  assert.ok(3 * 2 ** next[0]! < 2 ** TARGET_BITS && 3 * 2 ** next[0]! >= 2 ** (TARGET_BITS - 1));
});
