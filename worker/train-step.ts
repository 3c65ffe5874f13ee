/**
 * One phase of one training step on a worker's shard, in tfjs.
 *
 * The backward pass is written out by hand rather than taken from autodiff: the MLP is fixed,
 * the hand-written pass needs fewer kernels, and on tfjs's own kernels every matMul in it multiplies
 * plainly. tfjs's matMul gradient sets transposeA/transposeB, which tfjs-wasm runs an order of
 * magnitude slower (≈2.5 vs ≈30 GFLOP/s); here a transposed operand is either kept (Wᵀ, made once
 * per weight update) or materialised (dyᵀ, cheap next to the product).
 *
 * Where ganfleet's OpenBLAS kernels serve the backend (worker/kernels/native-gemm.ts), transposed
 * operands are free: x·Wᵀ and dW = dyᵀ·x are single sgemms with a transpose flag (so no Wᵀ copy is
 * made), bias gradients are 1ᵀ·dy products, and the generator's Tanh is fused into its last product.
 *
 * Worker results are *sums* over the shard's samples (gradients and statistics), so the
 * coordinator can add shards in any split and divide by the global batch once.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ARCHITECTURE, LEAKY_SLOPE, MANIFESTS, Z_DIM, IMAGE_SIZE, type NetName } from '../shared/model.js';
import { nativeGemmActive } from './kernels/native-gemm.js';

/** Sums a worker returns for its shard, besides the gradient. */
export interface PhaseStats {
  /** Σ over the shard of the per-sample loss (D phase: BCE(real,1) + BCE(fake,0); G phase: BCE(D(G(z)),1)). */
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

interface Dense {
  /** [out, in], the PyTorch layout: used as is for dx = dy·W, and as Wᵀ (a transpose flag) by the native kernels. */
  w: tf.Tensor2D;
  /**
   * [in, out]: used for the forward product x·Wᵀ without a transposed matMul where tfjs's own
   * kernels run; made on first use (not at all while the native kernels serve).
   */
  wt: tf.Tensor2D | null;
  b: tf.Tensor1D;
}

const _STATS = 3;

/** Holds the current weights of both networks as backend tensors and runs phases against them. */
export class TrainStep {
  private readonly layers: Record<NetName, Dense[] | undefined> = { gen: undefined, dis: undefined };

  /** True once both networks have weights. */
  get ready(): boolean {
    return this.layers.gen !== undefined && this.layers.dis !== undefined;
  }

  /** Replaces a network's weights (flat, manifest layout); the previous tensors are released. */
  setWeights(net: NetName, flat: Float32Array): void {
    const m = MANIFESTS[net];
    if (flat.length !== m.size) throw new RangeError(`${net}: ${flat.length} weights, manifest needs ${m.size}`);
    const next = ARCHITECTURE[net].map((layer, li) => {
      const pw = m.params[2 * li]!;
      const pb = m.params[2 * li + 1]!;
      const w = tf.tensor2d(flat.subarray(pw.offset, pw.offset + pw.length), [layer.outFeatures, layer.inFeatures]);
      return { w, wt: null, b: tf.tensor1d(flat.subarray(pb.offset, pb.offset + pb.length)) };
    });
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

  /**
   * D phase: real images labelled 1 and G(z) labelled 0 go through D as one batch of 2n rows;
   * returns Σ ∇_D [BCE(D(x),1) + BCE(D(G(z)),0)] over the shard.
   */
  discriminatorPhase(real: Float32Array, z: Float32Array, n: number): PhaseResult {
    checkRows('real', real, n, IMAGE_SIZE);
    checkRows('z', z, n, Z_DIM);
    const G = this.net('gen');
    const D = this.net('dis');
    const native = nativeGemmActive(tf.getBackend());
    const flat = tf.tidy(() => {
      // Generate the fakes; G is not trained in this phase, so its activations are not kept.
      const fake = generatorForward(G, tf.tensor2d(z, [n, Z_DIM]), native).out;
      const x = tf.concat([tf.tensor2d(real, [n, IMAGE_SIZE]), fake]) as tf.Tensor2D;
      const { h1, h2, logit } = discriminatorForward(D, x, native);
      // BCE from the logit: loss = softplus(l) − y·l, ∂loss/∂l = σ(l) − y; labels are 1 then 0.
      const p = tf.sigmoid(logit);
      const pReal = tf.slice(p, [0, 0], [n, 1]);
      const pFake = tf.slice(p, [n, 0], [n, 1]);
      const dl = tf.concat([tf.sub(pReal, 1), pFake]) as tf.Tensor2D;
      const lossSum = tf.sub(tf.sum(tf.softplus(logit)), tf.sum(tf.slice(logit, [0, 0], [n, 1])));
      // Backward through D, keeping the weight gradients (sums over the 2n rows).
      const grads = discriminatorBackward(D, x, h1, h2, dl, true, native).grads;
      return tf.concat([...grads, tf.stack([lossSum, tf.sum(pReal), tf.sum(pFake)])]);
    });
    return readOut(flat, MANIFESTS.dis.size);
  }

  /**
   * G phase: fresh z through G and the updated D, labelled 1; returns Σ ∇_G BCE(D(G(z)),1).
   * D's weight gradients are not formed, only the gradient flowing back into G's output.
   */
  generatorPhase(z: Float32Array, n: number): PhaseResult {
    checkRows('z', z, n, Z_DIM);
    const G = this.net('gen');
    const D = this.net('dis');
    const native = nativeGemmActive(tf.getBackend());
    const flat = tf.tidy(() => {
      const zt = tf.tensor2d(z, [n, Z_DIM]);
      const { a1, a2, out: fake } = generatorForward(G, zt, native);
      const { h1, h2, logit } = discriminatorForward(D, fake, native);
      const p = tf.sigmoid(logit);
      // Label 1: loss = softplus(−l), ∂loss/∂l = σ(l) − 1.
      const dl = tf.sub(p, 1) as tf.Tensor2D;
      const lossSum = tf.sum(tf.softplus(tf.neg(logit)));
      const dFake = discriminatorBackward(D, fake, h1, h2, dl, false, native).dx;
      const grads = generatorBackward(G, zt, a1, a2, fake, dFake, native);
      return tf.concat([...grads, tf.stack([lossSum, tf.scalar(0), tf.sum(p)])]);
    });
    return readOut(flat, MANIFESTS.gen.size);
  }
}

function checkRows(what: string, a: Float32Array, n: number, width: number): void {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`shard size must be a positive integer, got ${n}`);
  if (a.length !== n * width) throw new RangeError(`${what} has ${a.length} values, expected ${n}×${width}`);
}

/** The single host read of a phase: gradient and statistics come back in one buffer. */
function readOut(flat: tf.Tensor, size: number): PhaseResult {
  const data = flat.dataSync() as Float32Array;
  flat.dispose();
  return { grad: data.subarray(0, size), lossSum: data[size]!, dRealSum: data[size + 1]!, dFakeSum: data[size + 2]! };
}

/**
 * y = act(x·Wᵀ + b), fused where the backend has it. With the native kernels the kernel is called
 * directly on the 2-D operands (no reshapes), Wᵀ is sgemm's transpose flag and Tanh is fused too.
 */
function dense(
  layer: Dense,
  x: tf.Tensor2D,
  activation: 'relu' | 'leakyrelu' | 'linear' | 'tanh',
  native: boolean,
): tf.Tensor2D {
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
  if (activation === 'tanh') return tf.tanh(dense(layer, x, 'linear', false));
  // Kept past the phase's tidy: it lives as long as the weights (released with them).
  layer.wt ??= tf.keep(tf.transpose(layer.w));
  return tf.fused.matMul({ a: x, b: layer.wt, bias: layer.b, activation, leakyreluAlpha: LEAKY_SLOPE }) as tf.Tensor2D;
}

function generatorForward(
  G: Dense[],
  z: tf.Tensor2D,
  native: boolean,
): { a1: tf.Tensor2D; a2: tf.Tensor2D; out: tf.Tensor2D } {
  const a1 = dense(G[0]!, z, 'relu', native);
  const a2 = dense(G[1]!, a1, 'relu', native);
  const out = dense(G[2]!, a2, 'tanh', native);
  return { a1, a2, out };
}

function discriminatorForward(
  D: Dense[],
  x: tf.Tensor2D,
  native: boolean,
): { h1: tf.Tensor2D; h2: tf.Tensor2D; logit: tf.Tensor2D } {
  const h1 = dense(D[0]!, x, 'leakyrelu', native);
  const h2 = dense(D[1]!, h1, 'leakyrelu', native);
  const logit = dense(D[2]!, h2, 'linear', native);
  return { h1, h2, logit };
}

/**
 * ∂W = dyᵀ·x flattened in the [out, in] layout; ∂b = Σ dy over rows. With the native kernels
 * dyᵀ is the sgemm's transpose flag and ∂b is the product 1ᵀ·dy; elsewhere dyᵀ is materialised
 * (a plain matMul) and ∂b is a column sum.
 */
function weightGrads(dy: tf.Tensor2D, x: tf.Tensor2D, native: boolean): tf.Tensor1D[] {
  if (native) {
    const ones = tf.ones([1, dy.shape[0]]) as tf.Tensor2D;
    return [tf.reshape(tf.matMul(dy, x, true, false), [-1]), tf.reshape(tf.matMul(ones, dy), [-1])];
  }
  return [tf.reshape(tf.matMul(tf.transpose(dy), x), [-1]), tf.sum(dy, 0)];
}

/**
 * Backward through D from ∂loss/∂logit. The activation derivatives come from the outputs:
 * LeakyReLU′ is 1 where the output is positive and 0.2 elsewhere, which is `step(h, 0.2)`.
 */
function discriminatorBackward(
  D: Dense[],
  x: tf.Tensor2D,
  h1: tf.Tensor2D,
  h2: tf.Tensor2D,
  dl: tf.Tensor2D,
  withWeights: boolean,
  native: boolean,
): { grads: tf.Tensor1D[]; dx: tf.Tensor2D } {
  const dh2 = tf.mul(tf.matMul(dl, D[2]!.w), tf.step(h2, LEAKY_SLOPE)) as tf.Tensor2D;
  const dh1 = tf.mul(tf.matMul(dh2, D[1]!.w), tf.step(h1, LEAKY_SLOPE)) as tf.Tensor2D;
  if (!withWeights) return { grads: [], dx: tf.matMul(dh1, D[0]!.w) };
  const grads = [...weightGrads(dh1, x, native), ...weightGrads(dh2, h1, native), ...weightGrads(dl, h2, native)];
  return { grads, dx: dh1 };
}

/** Backward through G from ∂loss/∂G(z); Tanh′ = 1 − out², ReLU′ = step(a). */
function generatorBackward(
  G: Dense[],
  z: tf.Tensor2D,
  a1: tf.Tensor2D,
  a2: tf.Tensor2D,
  out: tf.Tensor2D,
  dOut: tf.Tensor2D,
  native: boolean,
): tf.Tensor1D[] {
  const dp3 = tf.mul(dOut, tf.sub(1, tf.square(out))) as tf.Tensor2D;
  const dp2 = tf.mul(tf.matMul(dp3, G[2]!.w), tf.step(a2)) as tf.Tensor2D;
  const dp1 = tf.mul(tf.matMul(dp2, G[1]!.w), tf.step(a1)) as tf.Tensor2D;
  return [...weightGrads(dp1, z, native), ...weightGrads(dp2, a1, native), ...weightGrads(dp3, a2, native)];
}
