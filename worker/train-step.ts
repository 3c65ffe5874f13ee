/**
 * One phase of one training step on a worker's shard, in tfjs, for the networks the model
 * defines (shared/model.ts: layers, widths and activations come from its architecture).
 *
 * The backward pass is written out by hand rather than taken from autodiff: the MLP is fixed,
 * the hand-written pass needs fewer kernels, and on tfjs's own kernels every matMul in it multiplies
 * plainly. tfjs's matMul gradient sets transposeA/transposeB, which tfjs-wasm runs an order of
 * magnitude slower; here a transposed operand is either kept (Wᵀ, made once per weight update) or
 * materialised (dyᵀ, cheap next to the product).
 *
 * Where ganfleet's OpenBLAS kernels serve the backend (worker/kernels/native-gemm.ts), transposed
 * operands are free: x·Wᵀ and dW = dyᵀ·x are single sgemms with a transpose flag (so no Wᵀ copy is
 * made), bias gradients are 1ᵀ·dy products, and a Tanh is fused into its product.
 *
 * Results are *sums* over samples (gradients and statistics), so the coordinator can add shards in
 * any split and divide by the global batch once. A phase may be cut into chunks of consecutive
 * samples: the activations are computed for the whole shard at once (every row on its own), and
 * the weight gradients and statistics once per chunk, so that a chunk's sums are the same whatever
 * shard it sits in (the exact reduction, worker/exact.ts, relies on that).
 */
import * as tf from '@tensorflow/tfjs-core';
import {
  type Activation,
  IMAGE_SIZE,
  LEAKY_SLOPE,
  type LayerSpec,
  layerParams,
  MODEL,
  type Model,
  type NetName,
  Z_DIM,
} from '../shared/model.js';
import { nativeGemmActive } from './kernels/native-gemm.js';

/** Sums over a shard (or a chunk) besides the gradient. */
export interface PhaseStats {
  /** Σ of the per-sample loss (D phase: BCE(real,1) + BCE(fake,0); G phase: BCE(D(G(z)),1)). */
  lossSum: number;
  /** Σ D(real) (D phase only; 0 in the G phase). */
  dRealSum: number;
  /** Σ D(G(z)). */
  dFakeSum: number;
}

export interface PhaseResult extends PhaseStats {
  /** Σ of per-sample gradients of the network being trained, in manifest order. */
  grad: Float32Array;
}

/** A phase cut into chunks of consecutive samples (the last one may be shorter). */
export interface ChunkedResult {
  readonly chunks: number;
  /** chunks × gradient size: chunk c's Σ of per-sample gradients (manifest order). */
  readonly grads: Float32Array;
  /** chunks × 3: chunk c's Σ loss, Σ D(real), Σ D(G(z)) (in float64, from the logits). */
  readonly stats: Float64Array;
}

/** Per-chunk statistics: [loss, D(real), D(fake)] sums. */
export const STATS = 3;

interface Dense {
  readonly spec: LayerSpec;
  /** [out, in], the PyTorch layout: used as is for dx = dy·W, and as Wᵀ (a transpose flag) by the native kernels. */
  readonly w: tf.Tensor2D;
  /**
   * [in, out]: used for the forward product x·Wᵀ without a transposed matMul where tfjs's own
   * kernels run; made on first use (not at all while the native kernels serve).
   */
  wt: tf.Tensor2D | null;
  readonly b: tf.Tensor1D;
}

/** tfjs's name of each activation, as a fused matMul takes it (Tanh only through the native kernels). */
const FUSED: Record<Activation, 'relu' | 'leakyrelu' | 'tanh' | 'linear'> = {
  relu: 'relu',
  leaky_relu: 'leakyrelu',
  tanh: 'tanh',
  none: 'linear',
};

/** Holds the current weights of both networks as backend tensors and runs phases against them. */
export class TrainStep {
  private readonly layers: Record<NetName, Dense[] | undefined> = { gen: undefined, dis: undefined };

  constructor(readonly model: Model = MODEL) {}

  /** True once both networks have weights. */
  get ready(): boolean {
    return this.layers.gen !== undefined && this.layers.dis !== undefined;
  }

  /** Replaces a network's weights (flat, manifest layout); the previous tensors are released. */
  setWeights(net: NetName, flat: Float32Array): void {
    const next = layerParams(net, flat, this.model).map(({ layer, w, b }) => ({
      spec: layer,
      w: tf.tensor2d(w, [layer.outFeatures, layer.inFeatures]),
      wt: null,
      b: tf.tensor1d(b),
    }));
    this.disposeNet(net);
    this.layers[net] = next;
  }

  /** Releases every tensor this step holds. */
  dispose(): void {
    this.disposeNet('gen');
    this.disposeNet('dis');
  }

  private disposeNet(net: NetName): void {
    for (const d of this.layers[net] ?? []) tf.dispose(d.wt === null ? [d.w, d.b] : [d.w, d.wt, d.b]);
    this.layers[net] = undefined;
  }

  private net(net: NetName): Dense[] {
    const l = this.layers[net];
    if (l === undefined) throw new Error(`no ${net} weights yet`);
    return l;
  }

  /** The D phase over the whole shard: Σ ∇_D [BCE(D(x),1) + BCE(D(G(z)),0)]. */
  discriminatorPhase(real: Float32Array, z: Float32Array, n: number): PhaseResult {
    return whole(this.discriminatorChunks(real, z, n, n));
  }

  /** The G phase over the whole shard: Σ ∇_G BCE(D(G(z)),1). */
  generatorPhase(z: Float32Array, n: number): PhaseResult {
    return whole(this.generatorChunks(z, n, n));
  }

  /**
   * D phase, chunk by chunk: each chunk's real images (label 1) and G(z) (label 0) go through D
   * as one block of rows, [real_c; fake_c], so a chunk's gradient is one product over its own rows.
   */
  discriminatorChunks(real: Float32Array, z: Float32Array, n: number, chunk: number): ChunkedResult {
    checkRows('real', real, n, IMAGE_SIZE);
    checkRows('z', z, n, Z_DIM);
    const G = this.net('gen');
    const D = this.net('dis');
    const native = nativeGemmActive(tf.getBackend());
    const spans = chunkSpans(n, chunk);
    const flat = tf.tidy(() => {
      // G is not trained in this phase: only its output is kept.
      const fake = forward(G, tf.tensor2d(z, [n, Z_DIM]), native).at(-1)!;
      const realT = tf.tensor2d(real, [n, IMAGE_SIZE]);
      const blocks = spans.flatMap(([s, c]) =>
        spans.length === 1 ? [realT, fake] : [tf.slice(realT, [s, 0], [c, -1]), tf.slice(fake, [s, 0], [c, -1])],
      );
      const x = tf.concat(blocks) as tf.Tensor2D;
      const acts = forward(D, x, native);
      const logit = acts.at(-1)!;
      // BCE from the logit: ∂loss/∂l = σ(l) − y, y = 1 for each block's real rows, 0 for its fakes.
      const labels = tf.tensor2d(labelColumn(spans), [2 * n, 1]);
      const dl = tf.sub(tf.sigmoid(logit), labels) as tf.Tensor2D;
      const grads = backward(D, x, acts, dl, native, rowSpans(spans, 2)).grads;
      return tf.concat([...grads, tf.reshape(logit, [-1])]);
    });
    return readOut(flat, spans, this.model.manifests.dis.size, (logits, at, c) => dStats(logits, at, c));
  }

  /**
   * G phase, chunk by chunk: fresh z through G and the updated D, labelled 1. D's weight gradients
   * are not formed, only the gradient flowing back into G's output.
   */
  generatorChunks(z: Float32Array, n: number, chunk: number): ChunkedResult {
    checkRows('z', z, n, Z_DIM);
    const G = this.net('gen');
    const D = this.net('dis');
    const native = nativeGemmActive(tf.getBackend());
    const spans = chunkSpans(n, chunk);
    const flat = tf.tidy(() => {
      const zt = tf.tensor2d(z, [n, Z_DIM]);
      const gActs = forward(G, zt, native);
      const fake = gActs.at(-1)!;
      const dActs = forward(D, fake, native);
      const logit = dActs.at(-1)!;
      // Label 1: ∂loss/∂l = σ(l) − 1.
      const dl = tf.sub(tf.sigmoid(logit), 1) as tf.Tensor2D;
      const dFake = backward(D, fake, dActs, dl, native, null).dx!;
      const grads = backward(G, zt, gActs, dFake, native, rowSpans(spans, 1)).grads;
      return tf.concat([...grads, tf.reshape(logit, [-1])]);
    });
    return readOut(flat, spans, this.model.manifests.gen.size, gStats);
  }
}

/** [start, count] of each chunk of `n` samples. */
function chunkSpans(n: number, chunk: number): Array<[number, number]> {
  if (!Number.isInteger(chunk) || chunk < 1)
    throw new RangeError(`chunk size must be a positive integer, got ${chunk}`);
  const spans: Array<[number, number]> = [];
  for (let s = 0; s < n; s += chunk) spans.push([s, Math.min(chunk, n - s)]);
  return spans;
}

/** Row spans of each chunk in a phase's batch of rows: `perSample` rows per sample (D: a real and a fake). */
function rowSpans(spans: Array<[number, number]>, perSample: number): Array<[number, number]> {
  return spans.map(([s, c]) => [s * perSample, c * perSample]);
}

/** D's labels in row order: each chunk's block is its real rows (1) then its fake rows (0). */
function labelColumn(spans: Array<[number, number]>): Float32Array {
  const y = new Float32Array(2 * spans.reduce((a, [, c]) => a + c, 0));
  for (const [s, c] of spans) y.fill(1, 2 * s, 2 * s + c);
  return y;
}

const softplus = (x: number): number => (x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x)));
const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));

/** A D-phase chunk's statistics from its block of logits (c real rows, then c fake rows). */
function dStats(logits: Float32Array, at: number, c: number): [number, number, number] {
  let loss = 0;
  let dReal = 0;
  let dFake = 0;
  for (let r = 0; r < c; r++) {
    const lr = logits[at + r]!;
    const lf = logits[at + c + r]!;
    loss += softplus(-lr) + softplus(lf);
    dReal += sigmoid(lr);
    dFake += sigmoid(lf);
  }
  return [loss, dReal, dFake];
}

/** A G-phase chunk's statistics from its logits (label 1). */
function gStats(logits: Float32Array, at: number, c: number): [number, number, number] {
  let loss = 0;
  let dFake = 0;
  for (let r = 0; r < c; r++) {
    const l = logits[at + r]!;
    loss += softplus(-l);
    dFake += sigmoid(l);
  }
  return [loss, 0, dFake];
}

function checkRows(what: string, a: Float32Array, n: number, width: number): void {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`shard size must be a positive integer, got ${n}`);
  if (a.length !== n * width) throw new RangeError(`${what} has ${a.length} values, expected ${n}×${width}`);
}

/**
 * The single host read of a phase: every chunk's gradient then the logits come back in one buffer;
 * the statistics are formed from the logits here.
 */
function readOut(
  flat: tf.Tensor,
  spans: Array<[number, number]>,
  size: number,
  stats: (logits: Float32Array, at: number, count: number) => [number, number, number],
): ChunkedResult {
  const data = flat.dataSync() as Float32Array;
  flat.dispose();
  const chunks = spans.length;
  const logits = data.subarray(chunks * size);
  const perSample = logits.length / spans.reduce((a, [, c]) => a + c, 0);
  const out = new Float64Array(chunks * STATS);
  for (const [k, [s, c]] of spans.entries()) out.set(stats(logits, s * perSample, c), k * STATS);
  return { chunks, grads: data.subarray(0, chunks * size), stats: out };
}

/** A one-chunk result as the whole shard's sums. */
function whole(r: ChunkedResult): PhaseResult {
  return { grad: r.grads, lossSum: r.stats[0]!, dRealSum: r.stats[1]!, dFakeSum: r.stats[2]! };
}

/**
 * y = act(x·Wᵀ + b), fused where the backend has it. With the native kernels the kernel is called
 * directly on the 2-D operands (no reshapes), Wᵀ is sgemm's transpose flag and Tanh is fused too.
 */
function dense(layer: Dense, x: tf.Tensor2D, native: boolean): tf.Tensor2D {
  const activation = FUSED[layer.spec.activation];
  if (native) {
    const attrs = { transposeA: false, transposeB: true, activation, leakyreluAlpha: LEAKY_SLOPE };
    return tf
      .engine()
      .runKernel(
        '_FusedMatMul',
        { a: x, b: layer.w, bias: layer.b },
        attrs as unknown as tf.NamedAttrMap,
      ) as tf.Tensor2D;
  }
  // Kept past the phase's tidy: it lives as long as the weights (released with them).
  layer.wt ??= tf.keep(tf.transpose(layer.w));
  if (activation === 'tanh') return tf.tanh(tf.fused.matMul({ a: x, b: layer.wt, bias: layer.b })) as tf.Tensor2D;
  return tf.fused.matMul({ a: x, b: layer.wt, bias: layer.b, activation, leakyreluAlpha: LEAKY_SLOPE }) as tf.Tensor2D;
}

/** Every layer's output for input `x` (the last is the network's output). */
function forward(layers: Dense[], x: tf.Tensor2D, native: boolean): tf.Tensor2D[] {
  const acts: tf.Tensor2D[] = [];
  for (const layer of layers) acts.push(dense(layer, acts.at(-1) ?? x, native));
  return acts;
}

/**
 * ∂loss/∂(pre-activation) from ∂loss/∂output `dy`, using the output `y`: ReLU′ = step(y),
 * LeakyReLU′ = 1 where y > 0 and the slope elsewhere (`step(y, slope)`), Tanh′ = 1 − y².
 */
function throughActivation(a: Activation, dy: tf.Tensor2D, y: tf.Tensor2D): tf.Tensor2D {
  switch (a) {
    case 'relu':
      return tf.mul(dy, tf.step(y));
    case 'leaky_relu':
      return tf.mul(dy, tf.step(y, LEAKY_SLOPE));
    case 'tanh':
      return tf.mul(dy, tf.sub(1, tf.square(y)));
    case 'none':
      return dy;
    default: {
      const never: never = a;
      throw new Error(`unknown activation ${never}`);
    }
  }
}

/**
 * ∂W = dyᵀ·x flattened in the [out, in] layout; ∂b = Σ dy over rows. With the native kernels
 * dyᵀ is the sgemm's transpose flag and ∂b is the product 1ᵀ·dy; elsewhere dyᵀ is materialised
 * (a plain matMul) and ∂b is a column sum.
 */
function weightGrads(dy: tf.Tensor2D, x: tf.Tensor2D, native: boolean): [tf.Tensor1D, tf.Tensor1D] {
  if (native) {
    const ones = tf.ones([1, dy.shape[0]]) as tf.Tensor2D;
    return [tf.reshape(tf.matMul(dy, x, true, false), [-1]), tf.reshape(tf.matMul(ones, dy), [-1])];
  }
  return [tf.reshape(tf.matMul(tf.transpose(dy), x), [-1]), tf.sum(dy, 0)];
}

/**
 * Backward through `layers` from ∂loss/∂output `dOut`, given the input and every layer's output.
 * With `rows` (the chunks' row spans) it returns each chunk's weight gradients, chunk after chunk,
 * each in manifest order; with null only ∂loss/∂input.
 */
function backward(
  layers: Dense[],
  input: tf.Tensor2D,
  acts: tf.Tensor2D[],
  dOut: tf.Tensor2D,
  native: boolean,
  rows: Array<[number, number]> | null,
): { grads: tf.Tensor1D[]; dx: tf.Tensor2D | null } {
  const perLayer: Array<[tf.Tensor1D, tf.Tensor1D][]> = [];
  let dy = dOut;
  let dx: tf.Tensor2D | null = null;
  for (let li = layers.length - 1; li >= 0; li--) {
    const layer = layers[li]!;
    const dpre = throughActivation(layer.spec.activation, dy, acts[li]!);
    const x = li === 0 ? input : acts[li - 1]!;
    if (rows !== null) {
      perLayer[li] =
        rows.length === 1
          ? [weightGrads(dpre, x, native)]
          : rows.map(([s, c]) => weightGrads(tf.slice(dpre, [s, 0], [c, -1]), tf.slice(x, [s, 0], [c, -1]), native));
    }
    if (li > 0 || rows === null) dy = tf.matMul(dpre, layer.w);
    if (li === 0 && rows === null) dx = dy;
  }
  const grads: tf.Tensor1D[] = [];
  for (let c = 0; c < (rows?.length ?? 0); c++) for (const l of perLayer) grads.push(...l[c]!);
  return { grads, dx };
}
