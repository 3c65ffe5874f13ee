/**
 * The evaluation classifier's hand-written passes against tfjs (cpu backend) running the same
 * network with its own conv2d and autodiff, on both product paths (OpenBLAS, JavaScript); and the
 * shipped weights' accuracy on the MNIST test set.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
// tfjs-layers registers tfjs-core's gradient functions (tfjs-core alone has none).
import '@tensorflow/tfjs-layers';
import {
  C1,
  C2,
  CLASSES,
  CLASSIFIER_MANIFEST,
  FEATURES,
  activations,
  classifierBackward,
  classifierForward,
  classifierViews,
  fillFromFloats,
  gradientBuffers,
} from '../../coordinator/eval/classifier.js';
import { readClassifier } from '../../coordinator/eval/classifier-file.js';
import { chooseGemm, jsGemm, type Gemm } from '../../coordinator/eval/gemm.js';
import { accuracy, initClassifier } from '../../coordinator/eval/train-classifier.js';
import { loadMnist } from '../../shared/mnist.js';
import { Purpose, uniforms } from '../../shared/random.js';

const native = chooseGemm();
const paths: Array<{ label: string; gemm: Gemm; skip: string | false }> = [
  { label: 'JavaScript products', gemm: jsGemm, skip: false },
  { label: 'OpenBLAS products', gemm: native.gemm, skip: native.native ? false : `addon not built: ${native.note}` },
];

/** The same network in tfjs: NHWC convolutions with tfjs's kernels, weights rearranged from ours. */
function tfModel(params: Float32Array) {
  const w = classifierViews(params);
  const k1 = new Float32Array(25 * C1);
  for (let c = 0; c < C1; c++) for (let t = 0; t < 25; t++) k1[t * C1 + c] = w['conv1.weight']![c * 25 + t]!;
  const k2 = new Float32Array(4 * C1 * C2);
  for (let o = 0; o < C2; o++) for (let i = 0; i < 4 * C1; i++) k2[i * C2 + o] = w['conv2.weight']![o * 4 * C1 + i]!;
  const vars = {
    k1: tf.tensor4d(k1, [5, 5, 1, C1]),
    b1: tf.tensor1d(w['conv1.bias']!),
    k2: tf.tensor4d(k2, [2, 2, C1, C2]),
    b2: tf.tensor1d(w['conv2.bias']!),
    w3: tf.tensor2d(w['fc1.weight']!, [FEATURES, 49 * C2]),
    b3: tf.tensor1d(w['fc1.bias']!),
    w4: tf.tensor2d(w['fc2.weight']!, [CLASSES, FEATURES]),
    b4: tf.tensor1d(w['fc2.bias']!),
  };
  const forward = (x: tf.Tensor, v: typeof vars) => {
    const h1 = tf.relu(
      tf.add(
        tf.conv2d(x as tf.Tensor4D, v.k1, 2, [
          [0, 0],
          [2, 2],
          [2, 2],
          [0, 0],
        ]),
        v.b1,
      ),
    );
    const h2 = tf.relu(tf.add(tf.conv2d(h1 as tf.Tensor4D, v.k2, 2, 'valid'), v.b2));
    const f = tf.relu(tf.add(tf.matMul(tf.reshape(h2, [-1, 49 * C2]), v.w3, false, true), v.b3));
    return { f, logits: tf.add(tf.matMul(f, v.w4, false, true), v.b4) };
  };
  return { vars, forward };
}

function maxRelErr(got: Float32Array, want: Float32Array | Float64Array): number {
  let scale = 0;
  let err = 0;
  for (let i = 0; i < want.length; i++) {
    scale = Math.max(scale, Math.abs(want[i]!));
    err = Math.max(err, Math.abs(got[i]! - want[i]!));
  }
  return err / Math.max(scale, 1e-12);
}

for (const p of paths) {
  test(`classifier, ${p.label}: features, logits and every gradient match tfjs (≤ 1e-4 of the largest)`, {
    skip: p.skip,
  }, async () => {
    await tf.setBackend('cpu');
    const n = 9;
    const params = initClassifier(3);
    // Non-zero biases, so that their paths are tested too.
    for (const q of CLASSIFIER_MANIFEST.params)
      if (q.name.endsWith('.bias'))
        uniforms(3, Purpose.INIT, q.offset, -0.1, 0.1, params.subarray(q.offset, q.offset + q.length));
    const pixels = new Float32Array(n * 784);
    uniforms(4, Purpose.INIT, 1, 0, 1, pixels);
    const labels = Uint8Array.from({ length: n }, (_, i) => (i * 7) % 10);
    const acts = activations(n);
    fillFromFloats(pixels, n, 1, 0, acts.frames);
    classifierForward(p.gemm, params, acts, n);
    const grad = new Float32Array(params.length);
    const loss = classifierBackward(p.gemm, params, acts, labels, n, gradientBuffers(n), grad);

    const m = tfModel(params);
    const x = tf.tensor4d(pixels, [n, 28, 28, 1]);
    const ref = m.forward(x, m.vars);
    assert.ok(maxRelErr(acts.features, ref.f.dataSync() as Float32Array) <= 1e-4, 'features');
    assert.ok(maxRelErr(acts.logits, ref.logits.dataSync() as Float32Array) <= 1e-4, 'logits');
    const onehot = tf.oneHot(tf.tensor1d(Array.from(labels), 'int32'), CLASSES);
    const names = Object.keys(m.vars) as Array<keyof typeof m.vars>;
    const f = (...ts: tf.Tensor[]) => {
      const v = Object.fromEntries(names.map((k, i) => [k, ts[i]!])) as unknown as typeof m.vars;
      return tf.losses.softmaxCrossEntropy(onehot, m.forward(x, v).logits) as tf.Scalar;
    };
    const refLoss = f(...names.map((k) => m.vars[k])).dataSync()[0]!;
    assert.ok(Math.abs(loss - refLoss) <= 1e-5 * Math.max(1, refLoss), `loss ${loss} vs ${refLoss}`);
    const grads = tf.grads(f)(names.map((k) => m.vars[k]));
    const g = classifierViews(grad);
    const mine = tfModel(grad).vars; // our gradient laid out like tfjs's variables
    names.forEach((k, i) => {
      const err = maxRelErr(mine[k].dataSync() as Float32Array, grads[i]!.dataSync() as Float32Array);
      assert.ok(err <= 1e-4, `d ${k}: ${err}`);
    });
    assert.ok(g['fc2.bias']!.some((v) => v !== 0));
  });
}

test('the shipped classifier: ≥ 99 % on the 10,000 MNIST test images, as its file records', async () => {
  const file = await readClassifier();
  const test = await loadMnist(undefined, 'test');
  const acc = accuracy(native.gemm, file.params, test);
  assert.ok(acc >= 0.99, `accuracy ${acc}`);
  // As recorded when it was trained (to 5 images: another CPU's sgemm may round a borderline logit apart).
  assert.ok(Math.abs(acc - Number(file.metadata.test_accuracy)) <= 5e-4, `${acc} vs ${file.metadata.test_accuracy}`);
});
