/**
 * The sample-quality statistics: the Jacobi eigen-decomposition and square root, the Fréchet
 * distance against closed forms, the classifier score's bounds, the digit shares; and, with the
 * shipped classifier on real MNIST, the test set against itself (≈ 0), training images (the floor
 * the classifier file records), and noise (large).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readClassifier } from '../../coordinator/eval/classifier-file.js';
import { Evaluator } from '../../coordinator/eval/evaluator.js';
import { chooseGemm, jsGemm } from '../../coordinator/eval/gemm.js';
import {
  classShares,
  classifierScore,
  featureStats,
  frechetDistance,
  softmaxRows,
  sqrtPsd,
  symmetricEigen,
  type FeatureStats,
} from '../../coordinator/eval/stats.js';
import { loadMnist } from '../../shared/mnist.js';
import { Purpose, uniforms } from '../../shared/random.js';

/** A random symmetric positive semi-definite d × d matrix of rank r (B·Bᵀ, B d × r). */
function psd(d: number, r: number, seed: number): Float64Array {
  const b = new Float32Array(d * r);
  uniforms(seed, Purpose.INIT, 7, -1, 1, b);
  const a = new Float64Array(d * d);
  for (let i = 0; i < d; i++)
    for (let j = 0; j < d; j++) {
      let s = 0;
      for (let k = 0; k < r; k++) s += b[i * r + k]! * b[j * r + k]!;
      a[i * d + j] = s;
    }
  return a;
}

test('symmetric eigen-decomposition: A·v = λ·v, orthonormal vectors, trace kept (d = 64)', () => {
  const d = 64;
  const a = psd(d, 64, 1);
  const { values, vectors } = symmetricEigen(a, d);
  let trace = 0;
  let sum = 0;
  for (let i = 0; i < d; i++) trace += a[i * d + i]!;
  for (let k = 0; k < d; k++) {
    sum += values[k]!;
    for (let i = 0; i < d; i++) {
      let av = 0;
      for (let j = 0; j < d; j++) av += a[i * d + j]! * vectors[j * d + k]!;
      assert.ok(Math.abs(av - values[k]! * vectors[i * d + k]!) <= 1e-9 * trace);
    }
    for (let l = 0; l <= k; l++) {
      let dot = 0;
      for (let i = 0; i < d; i++) dot += vectors[i * d + k]! * vectors[i * d + l]!;
      assert.ok(Math.abs(dot - (k === l ? 1 : 0)) <= 1e-12);
    }
  }
  assert.ok(Math.abs(sum - trace) <= 1e-10 * trace);
});

test('square root of a positive semi-definite matrix (also singular): R·R = A, R symmetric', () => {
  const d = 40;
  for (const rank of [40, 12]) {
    const a = psd(d, rank, rank);
    const r = sqrtPsd(a, d);
    let scale = 0;
    for (const v of a) scale = Math.max(scale, Math.abs(v));
    for (let i = 0; i < d; i++)
      for (let j = 0; j < d; j++) {
        let s = 0;
        for (let k = 0; k < d; k++) s += r[i * d + k]! * r[k * d + j]!;
        assert.ok(Math.abs(s - a[i * d + j]!) <= 1e-9 * scale, `rank ${rank}: (R·R)[${i}][${j}]`);
        assert.ok(Math.abs(r[i * d + j]! - r[j * d + i]!) <= 1e-12 * scale);
      }
  }
});

function gaussian(mean: number[], cov: number[][]): FeatureStats {
  const d = mean.length;
  return { n: 1000, d, mean: Float64Array.from(mean), cov: Float64Array.from(cov.flat()) };
}

test('Fréchet distance: 0 for the same Gaussian, closed forms for shifted and diagonal ones', () => {
  const a = gaussian(
    [1, 2, 3],
    [
      [2, 0.5, 0],
      [0.5, 1, 0.2],
      [0, 0.2, 3],
    ],
  );
  assert.ok(frechetDistance(a, a) <= 1e-12);
  // A shift adds ‖Δμ‖².
  const shifted = { ...a, mean: Float64Array.from([1, 4, 3]) };
  assert.ok(Math.abs(frechetDistance(a, shifted) - 4) <= 1e-12);
  // Diagonal covariances: Σ (σ1 − σ2)².
  const p = gaussian(
    [0, 0],
    [
      [4, 0],
      [0, 9],
    ],
  );
  const q = gaussian(
    [0, 0],
    [
      [1, 0],
      [0, 1],
    ],
  );
  assert.ok(Math.abs(frechetDistance(p, q) - ((2 - 1) ** 2 + (3 - 1) ** 2)) <= 1e-12);
  assert.ok(Math.abs(frechetDistance(p, q) - frechetDistance(q, p)) <= 1e-12);
});

test('feature statistics: the sgemm path equals the float64 path (≤ 1e-5 relative), unbiased covariance', () => {
  const n = 1000;
  const d = 16;
  const x = new Float32Array(n * d);
  uniforms(3, Purpose.INIT, 5, 0, 4, x);
  const ref = featureStats(x, n, d);
  for (const g of [jsGemm, chooseGemm().gemm]) {
    const s = featureStats(x, n, d, g);
    for (let i = 0; i < d * d; i++) assert.ok(Math.abs(s.cov[i]! - ref.cov[i]!) <= 1e-5 * ref.cov[0]!);
    assert.deepEqual(s.mean, ref.mean);
  }
  // Uniform on [0, 4): variance 16/12.
  assert.ok(Math.abs(ref.cov[0]! - 16 / 12) < 0.15);
  const two = featureStats(Float32Array.from([0, 2]), 2, 1);
  assert.equal(two.cov[0], 2);
});

test('classifier score: 10 for confident predictions spread evenly over the digits, 1 for one digit', () => {
  const n = 1000;
  const even = new Float32Array(n * 10);
  const one = new Float32Array(n * 10);
  for (let i = 0; i < n; i++) {
    even[i * 10 + (i % 10)] = 60;
    one[i * 10 + 3] = 60;
  }
  const pe = softmaxRows(even, n, 10);
  assert.ok(Math.abs(classifierScore(pe, n, 10) - 10) <= 1e-9);
  assert.deepEqual(classShares(pe, n, 10), new Array(10).fill(0.1));
  const po = softmaxRows(one, n, 10);
  assert.ok(Math.abs(classifierScore(po, n, 10) - 1) <= 1e-12);
  assert.deepEqual(classShares(po, n, 10), [0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
});

test('real MNIST: test set against itself ≈ 0, training images = the recorded floor, noise ≫ floor', async () => {
  const file = await readClassifier();
  assert.ok(file.reference && file.floor, 'the shipped file holds the test-set statistics and the floor');
  const test = await loadMnist(undefined, 'test');
  assert.equal(file.reference.dataHash, test.hash);
  const ev = new Evaluator(chooseGemm().gemm, file.params, file.reference.stats);
  const self = ev.real(test);
  assert.ok(self.fd <= 1e-6, `test against itself: ${self.fd}`);
  assert.equal(self.digits, 10);
  // The shipped statistics are the ones this code fits now.
  const fitted = ev.fitReal(test);
  for (let i = 0; i < fitted.mean.length; i++)
    assert.ok(Math.abs(fitted.mean[i]! - file.reference.stats.mean[i]!) <= 1e-6 * (1 + Math.abs(fitted.mean[i]!)));
  const floor = ev.real(await loadMnist(undefined, 'train'), 10_000);
  assert.ok(Math.abs(floor.fd - file.floor.fd) <= 1e-6 * file.floor.fd, `${floor.fd} vs ${file.floor.fd}`);
  assert.ok(floor.fd > 0 && floor.fd < 5, `floor ${floor.fd}`);
  assert.equal(floor.digits, 10);
  assert.ok(floor.classifier_score > 9);
  // Uniform noise pixels in [-1, 1].
  const n = 2000;
  const noise = new Float32Array(n * 784);
  uniforms(9, Purpose.INIT, 1, -1, 1, noise);
  const scored = ev.scoreImages(noise, n);
  assert.ok(scored.fd > 100 * floor.fd, `noise: FD ${scored.fd}`);
  assert.ok(scored.classifier_score < 2, `noise: classifier score ${scored.classifier_score}`);
});
