/**
 * The small MNIST classifier whose features the sample-quality scores use: a strided CNN that runs
 * as three matrix products and one gather, so that 10,000 images cost well under a second on one
 * core. Its weights are trained by ganfleet itself (coordinator/eval/train-classifier.ts) and ship
 * in assets/mnist-classifier.safetensors.
 *
 *   input 28×28 pixel intensities in [0, 1] (0 = background)
 *   conv1  5×5, stride 2, zero padding 2, 1 → C1 channels, ReLU       → 14×14×C1   (im2col + sgemm)
 *   conv2  2×2, stride 2, C1 → C2 channels, ReLU                     → 7×7×C2     (sgemm, no copy)
 *   fc1    7·7·C2 → FEATURES, ReLU: the penultimate layer, the features of the Fréchet distance
 *   fc2    FEATURES → 10 logits
 *
 * conv1's output positions are ordered block by block ((by, bx) of the 7×7 grid of 2×2 blocks, then
 * (dy, dx) inside the block), so its product's output, read as rows of 4·C1 values, is already the
 * input of conv2 (a 2×2, stride-2 convolution sees exactly one block), and conv2's output, read as
 * rows of 49·C2 values, is fc1's input. Weights are [out, in] like nn.Linear; conv2's and fc1's
 * inputs are in that order ((dy, dx, channel) and (block, channel)).
 */
import { Act, type Gemm } from './gemm.js';

/** Channels and widths of the layers. */
export const C1 = 8;
export const C2 = 32;
/** Width of the penultimate layer (the feature dimension of the Fréchet distance). */
export const FEATURES = 64;
export const CLASSES = 10;
const K1 = 25;
const POS1 = 196;
const BLOCKS = 49;
const PIXELS = 784;

/** One parameter of the flat buffer. */
export interface ClassifierParam {
  name: string;
  shape: number[];
  offset: number;
  length: number;
  /** Inputs per output (initialisation scale). */
  fanIn: number;
}

function manifest(): { params: ClassifierParam[]; size: number } {
  const shapes: Array<[string, number[], number]> = [
    ['conv1.weight', [C1, K1], K1],
    ['conv1.bias', [C1], K1],
    ['conv2.weight', [C2, 4 * C1], 4 * C1],
    ['conv2.bias', [C2], 4 * C1],
    ['fc1.weight', [FEATURES, BLOCKS * C2], BLOCKS * C2],
    ['fc1.bias', [FEATURES], BLOCKS * C2],
    ['fc2.weight', [CLASSES, FEATURES], FEATURES],
    ['fc2.bias', [CLASSES], FEATURES],
  ];
  const params: ClassifierParam[] = [];
  let offset = 0;
  for (const [name, shape, fanIn] of shapes) {
    const length = shape.reduce((a, b) => a * b, 1);
    params.push({ name, shape, offset, length, fanIn });
    offset += length;
  }
  return { params, size: offset };
}

/** The classifier's parameters, in this order, over one flat Float32Array. */
export const CLASSIFIER_MANIFEST = manifest();

/** A human-readable description, stored in the weights file. */
export const CLASSIFIER_ARCHITECTURE =
  `Conv(1→${C1}, 5×5, stride 2, pad 2)-ReLU, Conv(${C1}→${C2}, 2×2, stride 2)-ReLU, ` +
  `Linear(${BLOCKS * C2}→${FEATURES})-ReLU [features], Linear(${FEATURES}→${CLASSES})`;

/** Named views of a flat parameter buffer. */
export function classifierViews(flat: Float32Array): Record<string, Float32Array> {
  if (flat.length !== CLASSIFIER_MANIFEST.size)
    throw new RangeError(`classifier: ${flat.length} parameters, expected ${CLASSIFIER_MANIFEST.size}`);
  const out: Record<string, Float32Array> = {};
  for (const p of CLASSIFIER_MANIFEST.params) out[p.name] = flat.subarray(p.offset, p.offset + p.length);
  return out;
}

/** Side of the zero-padded frame an image is copied into (28 + 2 on each side). */
export const FRAME_SIDE = 32;
/** Values per padded image. */
export const FRAME = FRAME_SIDE * FRAME_SIDE;

/** For each of conv1's 196 output positions, in block order, the frame offset of its 5×5 patch's corner. */
const CORNERS: Int32Array = (() => {
  const t = new Int32Array(POS1);
  let r = 0;
  for (let by = 0; by < 7; by++)
    for (let bx = 0; bx < 7; bx++)
      for (let dy = 0; dy < 2; dy++)
        for (let dx = 0; dx < 2; dx++) t[r++] = 2 * (2 * by + dy) * FRAME_SIDE + 2 * (2 * bx + dx);
  return t;
})();

/**
 * conv1's patches (n·196 rows of 25 taps, row-major in (ky, kx)) of `n` images in zero-padded
 * 32×32 frames (the image at rows and columns 2 … 29; see `frames`).
 */
export function im2col(frames: Float32Array, n: number, out: Float32Array): void {
  const W = FRAME_SIDE;
  let d = 0;
  for (let i = 0; i < n; i++) {
    const base = i * FRAME;
    for (let r = 0; r < POS1; r++) {
      let s = base + CORNERS[r]!;
      for (let ky = 0; ky < 5; ky++, s += W) {
        out[d] = frames[s]!;
        out[d + 1] = frames[s + 1]!;
        out[d + 2] = frames[s + 2]!;
        out[d + 3] = frames[s + 3]!;
        out[d + 4] = frames[s + 4]!;
        d += 5;
      }
    }
  }
}

/** Frame offset of pixel (y, x) of an image. */
export function framePixel(y: number, x: number): number {
  return (y + 2) * FRAME_SIDE + x + 2;
}

/** Every layer's output for a batch (the buffers are reused from call to call). */
export interface Activations {
  n: number;
  /** Images in zero-padded 32×32 frames, n × 1024 (only the 28×28 inside is ever written). */
  frames: Float32Array;
  /** conv1's patches, n·196 × 25. */
  patches: Float32Array;
  /** n·196 × C1 (= n·49 × 4·C1). */
  h1: Float32Array;
  /** n·49 × C2 (= n × 49·C2). */
  h2: Float32Array;
  /** n × FEATURES: the penultimate layer. */
  features: Float32Array;
  /** n × 10. */
  logits: Float32Array;
}

/** Buffers for batches of up to `n` images. */
export function activations(n: number): Activations {
  return {
    n,
    frames: new Float32Array(n * FRAME),
    patches: new Float32Array(n * POS1 * K1),
    h1: new Float32Array(n * POS1 * C1),
    h2: new Float32Array(n * BLOCKS * C2),
    features: new Float32Array(n * FEATURES),
    logits: new Float32Array(n * CLASSES),
  };
}

/**
 * Runs `n` images (already in `acts.frames`: pixel intensities in [0, 1]) through the classifier.
 * Outputs are in `acts` (the first n rows of each buffer).
 */
export function classifierForward(gemm: Gemm, params: Float32Array, acts: Activations, n: number): void {
  if (n > acts.n) throw new RangeError(`classifier: batch of ${n} in buffers for ${acts.n}`);
  const w = classifierViews(params);
  im2col(acts.frames, n, acts.patches);
  gemm(false, true, n * POS1, C1, K1, acts.patches, w['conv1.weight']!, acts.h1, w['conv1.bias']!, Act.relu);
  gemm(false, true, n * BLOCKS, C2, 4 * C1, acts.h1, w['conv2.weight']!, acts.h2, w['conv2.bias']!, Act.relu);
  gemm(false, true, n, FEATURES, BLOCKS * C2, acts.h2, w['fc1.weight']!, acts.features, w['fc1.bias']!, Act.relu);
  gemm(false, true, n, CLASSES, FEATURES, acts.features, w['fc2.weight']!, acts.logits, w['fc2.bias']!, Act.none);
}

/** Scratch buffers of the backward pass. */
export interface Gradients {
  n: number;
  dLogits: Float32Array;
  dFeatures: Float32Array;
  dH2: Float32Array;
  dH1: Float32Array;
}

export function gradientBuffers(n: number): Gradients {
  return {
    n,
    dLogits: new Float32Array(n * CLASSES),
    dFeatures: new Float32Array(n * FEATURES),
    dH2: new Float32Array(n * BLOCKS * C2),
    dH1: new Float32Array(n * POS1 * C1),
  };
}

/** Zeroes `d` where the ReLU output `y` is 0. */
function reluBackward(d: Float32Array, y: Float32Array, len: number): void {
  for (let i = 0; i < len; i++) if (y[i]! <= 0) d[i] = 0;
}

/** Adds the column sums of rows×cols `d` into `out`. */
function columnSums(d: Float32Array, rows: number, cols: number, out: Float32Array): void {
  const s = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let c = 0; c < cols; c++) s[c]! += d[o + c]!;
  }
  for (let c = 0; c < cols; c++) out[c] = s[c]!;
}

/**
 * Mean softmax cross-entropy of the batch in `acts` against `labels`, and its gradient with
 * respect to every parameter written into `grad` (same layout as the parameters).
 */
export function classifierBackward(
  gemm: Gemm,
  params: Float32Array,
  acts: Activations,
  labels: ArrayLike<number>,
  n: number,
  g: Gradients,
  grad: Float32Array,
): number {
  const w = classifierViews(params);
  const dw = classifierViews(grad);
  let loss = 0;
  for (let i = 0; i < n; i++) {
    const o = i * CLASSES;
    let max = -Infinity;
    for (let c = 0; c < CLASSES; c++) max = Math.max(max, acts.logits[o + c]!);
    let sum = 0;
    for (let c = 0; c < CLASSES; c++) sum += Math.exp(acts.logits[o + c]! - max);
    const y = labels[i]!;
    loss += Math.log(sum) + max - acts.logits[o + y]!;
    for (let c = 0; c < CLASSES; c++)
      g.dLogits[o + c] = (Math.exp(acts.logits[o + c]! - max) / sum - (c === y ? 1 : 0)) / n;
  }
  // fc2
  gemm(true, false, CLASSES, FEATURES, n, g.dLogits, acts.features, dw['fc2.weight']!, null, Act.none);
  columnSums(g.dLogits, n, CLASSES, dw['fc2.bias']!);
  gemm(false, false, n, FEATURES, CLASSES, g.dLogits, w['fc2.weight']!, g.dFeatures, null, Act.none);
  reluBackward(g.dFeatures, acts.features, n * FEATURES);
  // fc1
  gemm(true, false, FEATURES, BLOCKS * C2, n, g.dFeatures, acts.h2, dw['fc1.weight']!, null, Act.none);
  columnSums(g.dFeatures, n, FEATURES, dw['fc1.bias']!);
  gemm(false, false, n, BLOCKS * C2, FEATURES, g.dFeatures, w['fc1.weight']!, g.dH2, null, Act.none);
  reluBackward(g.dH2, acts.h2, n * BLOCKS * C2);
  // conv2
  gemm(true, false, C2, 4 * C1, n * BLOCKS, g.dH2, acts.h1, dw['conv2.weight']!, null, Act.none);
  columnSums(g.dH2, n * BLOCKS, C2, dw['conv2.bias']!);
  gemm(false, false, n * BLOCKS, 4 * C1, C2, g.dH2, w['conv2.weight']!, g.dH1, null, Act.none);
  reluBackward(g.dH1, acts.h1, n * POS1 * C1);
  // conv1
  gemm(true, false, C1, K1, n * POS1, g.dH1, acts.patches, dw['conv1.weight']!, null, Act.none);
  columnSums(g.dH1, n * POS1, C1, dw['conv1.bias']!);
  return loss / n;
}

/** Index of the largest of each row's 10 logits. */
export function predictions(logits: Float32Array, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let c = 1; c < CLASSES; c++) if (logits[i * CLASSES + c]! > logits[i * CLASSES + best]!) best = c;
    out[i] = best;
  }
  return out;
}

/** Copies MNIST bytes (images `first … first+n−1`) into `frames` as intensities v/255. */
export function fillFromBytes(images: Uint8Array, first: number, n: number, frames: Float32Array): void {
  for (let i = 0; i < n; i++) {
    const src = (first + i) * PIXELS;
    const dst = i * FRAME + framePixel(0, 0);
    for (let y = 0; y < 28; y++)
      for (let x = 0; x < 28; x++) frames[dst + y * FRAME_SIDE + x] = images[src + y * 28 + x]! / 255;
  }
}

/** Copies `n` images of 784 floats v into `frames` as intensities scale·v + offset. */
export function fillFromFloats(
  images: Float32Array,
  n: number,
  scale: number,
  offset: number,
  frames: Float32Array,
): void {
  for (let i = 0; i < n; i++) {
    const src = i * PIXELS;
    const dst = i * FRAME + framePixel(0, 0);
    for (let y = 0; y < 28; y++)
      for (let x = 0; x < 28; x++) frames[dst + y * FRAME_SIDE + x] = scale * images[src + y * 28 + x]! + offset;
  }
}
