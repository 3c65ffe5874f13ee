import { test } from 'node:test';
import assert from 'node:assert/strict';
import { adamState, adamStep, SEED_ADAM } from '../../coordinator/optimizer.js';
import { Purpose, uniforms } from '../../shared/random.js';

/** torch.optim.Adam (single-tensor path, no weight decay, no amsgrad) in float64, written from PyTorch's docs. */
function torchAdamReference(
  p0: Float64Array,
  grads: Float64Array[],
  lr: number,
  b1: number,
  b2: number,
  eps: number,
): Float64Array {
  const p = Float64Array.from(p0);
  const m = new Float64Array(p.length);
  const v = new Float64Array(p.length);
  grads.forEach((g, k) => {
    const t = k + 1;
    for (let i = 0; i < p.length; i++) {
      m[i] = b1 * m[i]! + (1 - b1) * g[i]!;
      v[i] = b2 * v[i]! + (1 - b2) * g[i]! * g[i]!;
      const mHat = m[i]! / (1 - b1 ** t);
      const vHat = v[i]! / (1 - b2 ** t);
      p[i] = p[i]! - (lr * mHat) / (Math.sqrt(vHat) + eps);
    }
  });
  return p;
}

test('Adam matches a float64 torch.optim.Adam reference over several steps (≤ 1e-6 relative)', () => {
  const n = 4096;
  const p32 = new Float32Array(n);
  uniforms(1, Purpose.INIT, 0, -0.1, 0.1, p32);
  const p0 = Float64Array.from(p32);
  const grads: Float64Array[] = [];
  const state = adamState(n);
  for (let k = 0; k < 10; k++) {
    const g32 = new Float32Array(n);
    // Gradients over six orders of magnitude, including exact zeros.
    uniforms(2, Purpose.INIT, k, -1, 1, g32);
    for (let i = 0; i < n; i++) g32[i] = i % 97 === 0 ? 0 : g32[i]! * 10 ** -(i % 7);
    grads.push(Float64Array.from(g32));
    adamStep(p32, g32, state, SEED_ADAM);
  }
  assert.equal(state.step, 10);
  const ref = torchAdamReference(p0, grads, SEED_ADAM.lr, SEED_ADAM.beta1, SEED_ADAM.beta2, SEED_ADAM.eps);
  let worst = 0;
  for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(p32[i]! - ref[i]!) / Math.max(Math.abs(ref[i]!), 1e-3));
  assert.ok(worst <= 1e-6, `worst relative error ${worst}`);
});

test('Adam refuses mismatched lengths', () => {
  assert.throws(() => adamStep(new Float32Array(3), new Float32Array(2), adamState(3), SEED_ADAM), /equal lengths/);
});
