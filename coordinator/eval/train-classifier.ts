/**
 * Trains the sample-quality classifier on MNIST's 60,000 training images and writes its weights
 * (assets/mnist-classifier.safetensors is this script's output with the defaults):
 *
 *   node dist/coordinator/eval/train-classifier.js [--epochs 20] [--seed 7] [--out PATH] [--data DIR] [--threads N]
 *   npm run train:classifier
 *
 * Hand-written forward and backward passes (classifier.ts) on OpenBLAS's sgemm (plain JavaScript
 * without it: much slower), Adam with a cosine learning-rate decay, batches of 128, each image
 * shifted by a random −2 … 2 pixels in x and y. Sample order, shifts and initial weights come from
 * Philox streams of --seed, so a run repeats (up to the float rounding of the machine's sgemm). The
 * test-set accuracy is printed each epoch and stored in the file; nothing is selected on it.
 */
import { availableParallelism } from 'node:os';
import { mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { writeFileAtomic } from '../../shared/atomic-file.js';
import { loadMnist, type MnistSet } from '../../shared/mnist.js';
import { Purpose, epochPermutation, uniforms } from '../../shared/random.js';
import {
  CLASSIFIER_MANIFEST,
  FRAME,
  activations,
  classifierBackward,
  classifierForward,
  fillFromBytes,
  framePixel,
  gradientBuffers,
  predictions,
  type Activations,
} from './classifier.js';
import { defaultClassifierPath, encodeClassifier } from './classifier-file.js';
import { EVAL_SAMPLES, Evaluator } from './evaluator.js';
import { chooseGemm, type Gemm } from './gemm.js';

export interface TrainClassifierOptions {
  epochs: number;
  seed: number;
  batch: number;
  lr: number;
  /** Largest random shift, pixels. */
  shift: number;
}

export const CLASSIFIER_DEFAULTS: TrainClassifierOptions = { epochs: 20, seed: 7, batch: 128, lr: 2e-3, shift: 2 };

/** He-uniform weights (±√(6/fan_in)) and zero biases, from the seed's CLASSIFIER stream. */
export function initClassifier(seed: number): Float32Array {
  const flat = new Float32Array(CLASSIFIER_MANIFEST.size);
  CLASSIFIER_MANIFEST.params.forEach((p, i) => {
    if (p.name.endsWith('.bias')) return;
    const bound = Math.sqrt(6 / p.fanIn);
    uniforms(seed, Purpose.CLASSIFIER, i, -bound, bound, flat.subarray(p.offset, p.offset + p.length));
  });
  return flat;
}

/** Copies images `idx` into `frames`, each shifted by (sx, sy) pixels (zeros come in at the edges). */
function fillShifted(
  images: Uint8Array,
  idx: ArrayLike<number>,
  shifts: Float32Array,
  at: number,
  frames: Float32Array,
) {
  for (let i = 0; i < idx.length; i++) {
    const src = idx[i]! * 784;
    const dst = i * FRAME;
    const sx = shifts[2 * (at + i)]!;
    const sy = shifts[2 * (at + i) + 1]!;
    for (let y = 0; y < 28; y++) {
      const yy = y - sy;
      for (let x = 0; x < 28; x++) {
        const xx = x - sx;
        frames[dst + framePixel(y, x)] =
          yy < 0 || yy >= 28 || xx < 0 || xx >= 28 ? 0 : images[src + yy * 28 + xx]! / 255;
      }
    }
  }
}

/** Accuracy of `params` on a whole MNIST split. */
export function accuracy(
  gemm: Gemm,
  params: Float32Array,
  set: MnistSet,
  acts: Activations = activations(500),
): number {
  let right = 0;
  for (let first = 0; first < set.count; first += acts.n) {
    const n = Math.min(acts.n, set.count - first);
    fillFromBytes(set.images, first, n, acts.frames);
    classifierForward(gemm, params, acts, n);
    const pred = predictions(acts.logits, n);
    for (let i = 0; i < n; i++) if (pred[i] === set.labels[first + i]) right++;
  }
  return right / set.count;
}

/** Trains from scratch; returns the weights and the test accuracy after each epoch. */
export function trainClassifier(
  gemm: Gemm,
  train: MnistSet,
  test: MnistSet,
  o: TrainClassifierOptions,
  onEpoch: (e: { epoch: number; loss: number; testAccuracy: number; seconds: number }) => void = () => {},
): { params: Float32Array; testAccuracy: number } {
  const params = initClassifier(o.seed);
  const grad = new Float32Array(params.length);
  const m = new Float64Array(params.length);
  const v = new Float64Array(params.length);
  const acts = activations(o.batch);
  const g = gradientBuffers(o.batch);
  const labels = new Uint8Array(o.batch);
  const idx = new Uint32Array(o.batch);
  const shifts = new Float32Array(2 * train.count);
  const perEpoch = Math.ceil(train.count / o.batch);
  const total = perEpoch * o.epochs;
  const [b1, b2, eps] = [0.9, 0.999, 1e-8];
  let t = 0;
  let testAccuracy = 0;
  for (let epoch = 0; epoch < o.epochs; epoch++) {
    const t0 = performance.now();
    const perm = epochPermutation(o.seed, epoch, train.count);
    uniforms(o.seed, Purpose.CLASSIFIER, 1000 + epoch, 0, 2 * o.shift + 1, shifts);
    for (let i = 0; i < shifts.length; i++) shifts[i] = Math.floor(shifts[i]!) - o.shift;
    let lossSum = 0;
    for (let s = 0; s < perEpoch; s++) {
      const first = s * o.batch;
      const n = Math.min(o.batch, train.count - first);
      for (let i = 0; i < n; i++) {
        idx[i] = perm[first + i]!;
        labels[i] = train.labels[idx[i]!]!;
      }
      fillShifted(train.images, idx.subarray(0, n), shifts, first, acts.frames);
      classifierForward(gemm, params, acts, n);
      lossSum += classifierBackward(gemm, params, acts, labels, n, g, grad) * n;
      t++;
      const lr = 0.5 * o.lr * (1 + Math.cos((Math.PI * (t - 1)) / total));
      const c1 = 1 - b1 ** t;
      const c2 = 1 - b2 ** t;
      for (let i = 0; i < params.length; i++) {
        const gi = grad[i]!;
        m[i] = b1 * m[i]! + (1 - b1) * gi;
        v[i] = b2 * v[i]! + (1 - b2) * gi * gi;
        params[i] = params[i]! - (lr * m[i]!) / c1 / (Math.sqrt(v[i]! / c2) + eps);
      }
    }
    testAccuracy = accuracy(gemm, params, test);
    onEpoch({ epoch: epoch + 1, loss: lossSum / train.count, testAccuracy, seconds: (performance.now() - t0) / 1000 });
  }
  return { params, testAccuracy };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      epochs: { type: 'string' },
      seed: { type: 'string' },
      out: { type: 'string' },
      data: { type: 'string' },
      threads: { type: 'string' },
    },
  });
  const o: TrainClassifierOptions = {
    ...CLASSIFIER_DEFAULTS,
    epochs: Number(values.epochs ?? CLASSIFIER_DEFAULTS.epochs),
    seed: Number(values.seed ?? CLASSIFIER_DEFAULTS.seed),
  };
  const out = values.out ?? defaultClassifierPath();
  const { gemm, native, note } = chooseGemm({ threads: Number(values.threads ?? availableParallelism()) });
  const train = await loadMnist(values.data, 'train');
  const test = await loadMnist(values.data, 'test');
  process.stdout.write(`training the MNIST classifier (${native ? 'OpenBLAS' : `JavaScript products: ${note}`})\n`);
  const t0 = performance.now();
  const r = trainClassifier(gemm, train, test, o, (e) =>
    process.stdout.write(
      `epoch ${e.epoch}/${o.epochs}: loss ${e.loss.toFixed(4)}, test accuracy ${(100 * e.testAccuracy).toFixed(2)} %` +
        ` (${e.seconds.toFixed(1)} s)\n`,
    ),
  );
  const seconds = (performance.now() - t0) / 1000;
  await mkdir(dirname(out), { recursive: true });
  // The test set's feature statistics (what every score is against) and the floor, once, into the file.
  const ev = new Evaluator(gemm, r.params, undefined);
  ev.reference = ev.fitReal(test);
  const floor = ev.real(train, EVAL_SAMPLES);
  await writeFileAtomic(
    out,
    encodeClassifier({
      params: r.params,
      metadata: {
        test_accuracy: r.testAccuracy.toFixed(4),
        train: JSON.stringify(o),
        train_data_hash: train.hash,
        made_by: 'node dist/coordinator/eval/train-classifier.js',
      },
      reference: { stats: ev.reference, dataHash: test.hash },
      floor,
    }),
  );
  process.stdout.write(
    `wrote ${out}: test accuracy ${(100 * r.testAccuracy).toFixed(2)} %, ${r.params.length} parameters, ` +
      `${seconds.toFixed(0)} s; floor (training images against the test set): FD ${floor.fd.toFixed(3)}\n`,
  );
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`train-classifier: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  });
}
