import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  jsKernels,
  nativeKernels,
  nativeReduceError,
  reduceThreads,
  setReduceThreads,
  type AdamConstants,
} from '../../coordinator/reduce-kernels.js';
import { f32ToBf16, f32ToF16, f16Scale } from '../../shared/dtype.js';
import { NativeErrorCode } from '../../shared/native-addon.js';
import { keepFreedMemory } from '../../shared/reduce-addon.js';

const skip = nativeKernels === null ? `native coordinator kernels not built (optional): ${nativeReduceError}` : false;

/** Deterministic pseudo-random float32s spanning many binades, with signs. */
function randoms(n: number, seed: number, spread = 30): Float32Array {
  let s = seed >>> 0;
  const next = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (next() - 0.5) * 2 ** Math.floor((next() - 0.5) * spread);
  return out;
}

function sameBits(a: Float32Array | Float64Array, b: Float32Array | Float64Array, what: string): void {
  assert.equal(a.length, b.length);
  const ua = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const ub = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  for (let i = 0; i < ua.length; i++) {
    const at = Math.floor(i / a.BYTES_PER_ELEMENT);
    if (ua[i] !== ub[i]) assert.fail(`${what}: element ${at} differs: ${a[at]} vs ${b[at]}`);
  }
}

test('JS add: the float64 sum of float32 shards, in order; f16 (scaled) and bf16 decoded exactly', () => {
  const g1 = Float32Array.of(1, 2 ** -30, -3.5, 1e30);
  const g2 = Float32Array.of(2 ** -30, 1, 0.25, -1e30);
  const acc = new Float64Array(4);
  assert.equal(jsKernels.add(acc, [g1], 'f32', [0], true), true);
  assert.equal(jsKernels.add(acc, [g2], 'f32', [0], false), true);
  // Worked out by hand in float64: no float32 rounding of the sum.
  assert.deepEqual([...acc], [1 + 2 ** -30, 2 ** -30 + 1, -3.25, Math.fround(1e30) - Math.fround(1e30)]);
  // f16 bits of 1.5 (0x3e00) and −2 (0xc000), sent with scale 2^3: received as 1.5/8 and −2/8.
  acc.fill(7);
  assert.equal(jsKernels.add(acc, [Uint16Array.of(0x3e00, 0xc000, 0, 0)], 'f16', [3], true), true);
  assert.deepEqual([...acc], [0.1875, -0.25, 0, 0]);
  // bf16 bits 0x3fc0 = 1.5, 0xbf80 = −1.
  assert.equal(jsKernels.add(acc, [Uint16Array.of(0x3fc0, 0xbf80, 0, 0)], 'bf16', [0], false), true);
  assert.deepEqual([...acc], [1.6875, -1.25, 0, 0]);
});

const fine37 = () => new Float32Array(37).fill(0.25);

test('add and finite report NaN and ±Inf in every dtype (JS and native)', { skip: false }, () => {
  for (const k of [jsKernels, ...(nativeKernels ? [nativeKernels] : [])]) {
    for (const bad of [NaN, Infinity, -Infinity]) {
      const g = new Float32Array(37).fill(0.5);
      g[29] = bad;
      assert.equal(k.add(new Float64Array(37), [fine37(), g], 'f32', [0, 0], true), false, `${k.name} f32 add ${bad}`);
      assert.equal(k.finite(g, 'f32'), false, `${k.name} f32 finite ${bad}`);
      assert.equal(k.add(new Float64Array(37), [f32ToF16(g)], 'f16', [0], false), false, `${k.name} f16 ${bad}`);
      assert.equal(k.finite(f32ToF16(g), 'f16'), false);
      assert.equal(
        k.add(new Float64Array(37), [f32ToBf16(fine37()), f32ToBf16(g)], 'bf16', [0, 0], true),
        false,
        `${k.name} bf16 ${bad}`,
      );
      assert.equal(k.finite(f32ToBf16(g), 'bf16'), false);
    }
    const fine = randoms(37, 5);
    assert.equal(k.finite(fine, 'f32'), true);
    assert.equal(k.finite(f32ToBf16(fine), 'bf16'), true);
    assert.throws(() => k.add(new Float64Array(3), [new Float32Array(4)], 'f32', [0], true), RangeError);
    assert.throws(() => k.add(new Float64Array(3), [], 'f32', [], true), RangeError);
    assert.throws(() => k.add(new Float64Array(3), [new Float32Array(3)], 'f32', [], true), RangeError);
  }
});

test('native add equals the JS add bit for bit (f32, f16 with scales, bf16; odd lengths; 1, 3 and 8 shards per call)', {
  skip,
}, () => {
  for (const n of [1, 7, 33, 1025, 267009]) {
    for (const dtype of ['f32', 'f16', 'bf16'] as const) {
      const grads: (Float32Array | Uint16Array)[] = [];
      const exps: number[] = [];
      for (let w = 0; w < 12; w++) {
        const g32 = randoms(n, 100 * n + w);
        const e = f16Scale(g32);
        grads.push(dtype === 'f32' ? g32 : dtype === 'f16' ? f32ToF16(g32, undefined, e) : f32ToBf16(g32));
        exps.push(dtype === 'f16' ? e : 0);
      }
      const a = new Float64Array(n);
      const b = new Float64Array(n);
      let at = 0;
      for (const size of [1, 3, 8]) {
        assert.equal(jsKernels.add(a, grads.slice(at, at + size), dtype, exps.slice(at, at + size), at === 0), true);
        assert.equal(
          nativeKernels!.add(b, grads.slice(at, at + size), dtype, exps.slice(at, at + size), at === 0),
          true,
        );
        at += size;
      }
      sameBits(a, b, `${dtype} n=${n}`);
    }
  }
});

test('native Adam equals the JS Adam bit for bit over 50 steps (float64 and float32 sums)', { skip }, () => {
  for (const n of [1, 13, 4101, 293136]) {
    for (const sumType of ['f64', 'f32'] as const) {
      const p1 = randoms(n, 7, 8);
      const p2 = p1.slice();
      const m1 = new Float32Array(n),
        v1 = new Float32Array(n),
        m2 = new Float32Array(n),
        v2 = new Float32Array(n);
      for (let t = 1; t <= 50; t++) {
        const g = randoms(n, 1000 + t, 40);
        const sum = sumType === 'f64' ? Float64Array.from(g, (x) => x * 3.000001) : g;
        const k: AdamConstants = {
          divisor: sumType === 'f64' ? 128 : 1,
          stepSize: 3e-4 / (1 - 0.9 ** t),
          bc2Sqrt: Math.sqrt(1 - 0.999 ** t),
          beta1: 0.9,
          beta2: 0.999,
          c1: 1 - 0.9,
          c2: 1 - 0.999,
          eps: 1e-8,
        };
        jsKernels.adam(p1, m1, v1, sum, k);
        nativeKernels!.adam(p2, m2, v2, sum, k);
      }
      sameBits(p1, p2, `params n=${n} ${sumType}`);
      sameBits(m1, m2, `m n=${n} ${sumType}`);
      sameBits(v1, v2, `v n=${n} ${sumType}`);
    }
  }
});

test('native kernels reject wrong argument types and lengths with a typed error code', { skip }, () => {
  const k = nativeKernels!;
  const argError = { name: 'TypeError', code: NativeErrorCode.ARG };
  const rangeError = { name: 'RangeError', code: NativeErrorCode.RANGE };
  assert.throws(
    () => k.add(new Float64Array(4), [new Float64Array(4) as unknown as Float32Array], 'f32', [0], true),
    argError,
  );
  assert.throws(() => k.add(new Float64Array(4), [new Uint16Array(4)], 'f32', [0], true), rangeError);
  assert.throws(() => k.finite(new Uint16Array(4), 'f32'), rangeError);
  assert.throws(
    () =>
      k.adam(new Float32Array(4), new Float32Array(3), new Float32Array(4), new Float64Array(4), {
        divisor: 1,
        stepSize: 1,
        bc2Sqrt: 1,
        beta1: 0.9,
        beta2: 0.999,
        c1: 0.1,
        c2: 0.001,
        eps: 1e-8,
      }),
    rangeError,
  );
});

test('keepFreedMemory takes effect on glibc where the addon is built', { skip }, () => {
  // glibc's mallopt accepts both settings; elsewhere (musl, macOS) the call says false.
  const glibc =
    (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header
      ?.glibcVersionRuntime !== undefined;
  assert.equal(keepFreedMemory(), glibc);
});

test('native kernels give the same bits with 1, 2 and 4 threads (sums over 8 shards, Adam)', { skip }, () => {
  const n = 300_001;
  const grads = Array.from({ length: 8 }, (_, w) => randoms(n, 900 + w));
  const was = reduceThreads();
  const runs: Float32Array[] = [];
  try {
    for (const t of [1, 2, 4]) {
      setReduceThreads(t);
      assert.equal(reduceThreads(), t);
      const acc = new Float64Array(n);
      assert.equal(
        nativeKernels!.add(
          acc,
          grads,
          'f32',
          grads.map(() => 0),
          true,
        ),
        true,
      );
      const p = randoms(n, 3, 8);
      const m = new Float32Array(n);
      const v = new Float32Array(n);
      const out = new Float32Array(n);
      nativeKernels!.adam(
        p,
        m,
        v,
        acc,
        {
          divisor: 96,
          stepSize: 3e-4,
          bc2Sqrt: Math.sqrt(0.001),
          beta1: 0.9,
          beta2: 0.999,
          c1: 0.1,
          c2: 0.001,
          eps: 1e-8,
        },
        out,
      );
      sameBits(p, out, `threads ${t}: the frame copy`);
      runs.push(p, m, v);
    }
  } finally {
    setReduceThreads(was);
  }
  for (let r = 3; r < runs.length; r++) sameBits(runs[r % 3]!, runs[r]!, `threads run ${Math.floor(r / 3)} vs 1`);
  assert.throws(() => setReduceThreads(0), { name: 'RangeError', code: NativeErrorCode.RANGE });
});

test('native f16 decode equals the table for every half but NaN (both signs, subnormals, ±Inf), scaled or not', {
  skip,
}, () => {
  const halves = Uint16Array.from({ length: 65536 }, (_, h) => h).filter(
    (h) => (h & 0x7c00) !== 0x7c00 || (h & 0x3ff) === 0,
  );
  for (const e of [0, 7, -3]) {
    const a = new Float64Array(halves.length);
    const b = new Float64Array(halves.length);
    // ±Inf make both sums non-finite; every element is still written, and must agree.
    assert.equal(jsKernels.add(a, [halves], 'f16', [e], true), false);
    assert.equal(nativeKernels!.add(b, [halves], 'f16', [e], true), false);
    sameBits(a, b, `f16 scale 2^${-e}`);
  }
});

test('native finite equals the JS finite for every f16 and bf16 bit pattern, one at a time', { skip }, () => {
  const one = new Uint16Array(1);
  for (const dtype of ['f16', 'bf16'] as const) {
    for (let h = 0; h < 65536; h++) {
      one[0] = h;
      const js = jsKernels.finite(one, dtype);
      if (nativeKernels!.finite(one, dtype) !== js) assert.fail(`${dtype} 0x${h.toString(16)}: JS says ${js}`);
    }
  }
});

test("the JS kernels refuse a wire dtype they have no case for (a new dtype cannot take another one's path)", () => {
  const unknown = 'f8' as never;
  assert.throws(() => jsKernels.add(new Float64Array(1), [new Uint16Array(1)], unknown, [0], true), RangeError);
  assert.throws(() => jsKernels.finite(new Uint16Array(1), unknown), RangeError);
});
