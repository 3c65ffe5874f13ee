import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bf16ToF32, decodeGrad, f16Scale, f16Table, f16ToF32, f32ToBf16, f32ToF16 } from '../../shared/dtype.js';
import { decodeWorkerMessage, encodeLossyResult } from '../../shared/protocol.js';
import { MANIFESTS } from '../../shared/model.js';

test('every f16 value round-trips exactly through float32 (NaN stays NaN)', () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const f = f16ToF32(all);
  const back = f32ToF16(f);
  for (let h = 0; h < 65536; h++) {
    if (Number.isNaN(f[h])) assert.ok(Number.isNaN(f16Table()[back[h]!]!), `NaN ${h}`);
    else assert.equal(back[h], h, `f16 0x${h.toString(16)} → ${f[h]} → 0x${back[h]!.toString(16)}`);
  }
});

test('every bf16 value round-trips exactly through float32', () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const f = bf16ToF32(all);
  const back = f32ToBf16(f);
  for (let h = 0; h < 65536; h++) {
    if (Number.isNaN(f[h])) assert.ok(Number.isNaN(bf16ToF32(new Uint16Array([back[h]!]))[0]));
    else assert.equal(back[h], h);
  }
});

test('f16 and bf16 rounding error stays within the documented bounds; overflow and specials', () => {
  const xs = new Float32Array(200_000);
  let s = 12345;
  const rnd = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32;
  for (let i = 0; i < xs.length; i++) xs[i] = (rnd() - 0.5) * 2 ** (Math.floor(rnd() * 60) - 40);
  const h = f16ToF32(f32ToF16(xs));
  const b = bf16ToF32(f32ToBf16(xs));
  for (let i = 0; i < xs.length; i++) {
    const x = xs[i]!;
    const a = Math.abs(x);
    if (a >= 65520) assert.equal(h[i], Math.sign(x) * Infinity);
    else if (a >= 2 ** -14) assert.ok(Math.abs(h[i]! - x) <= 2 ** -11 * a, `f16 ${x} → ${h[i]}`);
    else assert.ok(Math.abs(h[i]! - x) <= 2 ** -25, `f16 subnormal ${x} → ${h[i]}`);
    assert.ok(Math.abs(b[i]! - x) <= 2 ** -8 * a, `bf16 ${x} → ${b[i]}`);
  }
  // Ties go to even; specials are kept.
  assert.equal(f32ToF16(new Float32Array([1 + 2 ** -11]))[0], 0x3c00);
  assert.equal(f32ToF16(new Float32Array([1 + 3 * 2 ** -11]))[0], 0x3c02);
  assert.deepEqual(
    [...f16ToF32(f32ToF16(new Float32Array([Infinity, -Infinity, 0, -0, 65504, 2 ** -24])))],
    [Infinity, -Infinity, 0, -0, 65504, 2 ** -24],
  );
  assert.ok(Number.isNaN(f16ToF32(f32ToF16(new Float32Array([NaN])))[0]));
  assert.ok(Number.isNaN(bf16ToF32(f32ToBf16(new Float32Array([NaN])))[0]));
  assert.equal(f32ToBf16(new Float32Array([1 + 2 ** -8]))[0], 0x3f80); // tie → even
});

test('f16 scaling keeps large and small sums representable, and is exact for representable values', () => {
  const xs = new Float32Array([3e5, -1e6, 1.5, 0.25, -7]);
  const e = f16Scale(xs);
  assert.ok(Math.abs(1e6 * 2 ** e) < 2 ** 14 && Math.abs(1e6 * 2 ** e) >= 2 ** 13, `scale 2^${e}`);
  const back = f16ToF32(f32ToF16(xs, undefined, e), undefined, e);
  for (let i = 0; i < xs.length; i++) assert.ok(Math.abs(back[i]! - xs[i]!) <= 2 ** -11 * Math.abs(xs[i]!));
  const small = new Float32Array([1e-7, -3e-9, 2 ** -30]);
  const es = f16Scale(small);
  const sb = f16ToF32(f32ToF16(small, undefined, es), undefined, es);
  for (let i = 0; i < small.length; i++)
    assert.ok(Math.abs(sb[i]! - small[i]!) <= 2 ** -11 * Math.abs(small[i]!) + 2 ** (-25 - es));
  assert.equal(sb[2], 2 ** -30);
  assert.equal(f16Scale(new Float32Array(4)), 0);
});

test('result frames in f16 and bf16 decode to the gradient within the bounds', () => {
  const n = MANIFESTS.gen.size;
  const grad = Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 10);
  for (const dtype of ['f32', 'f16', 'bf16'] as const) {
    const frame = encodeLossyResult(
      { step: 1, phase: 'gen', start: 0, count: 8, lossSum: 1, dRealSum: 0, dFakeSum: 2, computeMs: 1 },
      grad,
      dtype,
    );
    const r = decodeWorkerMessage(frame);
    assert.ok(r.t === 'result' && r.grad.dtype === dtype);
    const g = r.grad;
    const out = decodeGrad(dtype, g.values, g.dtype === 'f16' ? g.scaleExp : 0, new Float32Array(n));
    const bound = dtype === 'f32' ? 0 : dtype === 'f16' ? 2 ** -11 : 2 ** -8;
    for (let i = 0; i < n; i += 97)
      assert.ok(Math.abs(out[i]! - grad[i]!) <= bound * Math.abs(grad[i]!) + 2 ** -20, `${dtype} ${i}`);
    const overhead = frame.length - n * (dtype === 'f32' ? 4 : 2);
    assert.ok(overhead < 200, `${dtype} frame overhead ${overhead} bytes`);
    assert.equal(g.values.buffer, frame.buffer, 'the gradient is a view of the frame, not a copy');
  }
});
