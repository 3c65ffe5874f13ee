/**
 * An independent float64 reference of the seed's losses and gradients, written with plain loops
 * (no tfjs). Tests compare the workers' tfjs step and the coordinator's reduction against it.
 */
import { type Activation, LEAKY_SLOPE, layerParams, MODEL, type Model, type NetName } from '../../shared/model.js';
import { mlpForward } from '../../shared/mlp-forward.js';

const softplus = (x: number): number => (x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x)));
const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));

/** The activation's derivative at the input that gave output `y`. */
function activationSlope(a: Activation, y: number): number {
  switch (a) {
    case 'relu':
      return y > 0 ? 1 : 0;
    case 'leaky_relu':
      return y > 0 ? 1 : LEAKY_SLOPE;
    case 'tanh':
      return 1 - y * y;
    case 'none':
      return 1;
    default: {
      const never: never = a;
      throw new Error(`unknown activation ${never}`);
    }
  }
}

/** Backprop through `net`: accumulates ∂params into `grad` (when given) and returns ∂input. */
function backward(
  net: NetName,
  flat: Float32Array,
  input: ArrayLike<number>,
  acts: Float64Array[],
  dOut: Float64Array,
  n: number,
  grad: Float64Array | null,
  model: Model,
): Float64Array {
  const layers = layerParams(net, flat, model);
  const gradViews = grad === null ? null : layerParams(net, grad, model);
  let dy = dOut;
  for (let li = layers.length - 1; li >= 0; li--) {
    const { layer, w } = layers[li]!;
    const { inFeatures: I, outFeatures: O, activation } = layer;
    const out = acts[li]!;
    const x: ArrayLike<number> = li === 0 ? input : acts[li - 1]!;
    const dpre = new Float64Array(n * O);
    for (let k = 0; k < n * O; k++) dpre[k] = dy[k]! * activationSlope(activation, out[k]!);
    if (gradViews) {
      const { w: gw, b: gb } = gradViews[li]!;
      for (let r = 0; r < n; r++)
        for (let o = 0; o < O; o++) {
          const g = dpre[r * O + o]!;
          gb[o]! += g;
          for (let i = 0; i < I; i++) gw[o * I + i]! += g * x[r * I + i]!;
        }
    }
    const dx = new Float64Array(n * I);
    for (let r = 0; r < n; r++)
      for (let o = 0; o < O; o++) {
        const g = dpre[r * O + o]!;
        for (let i = 0; i < I; i++) dx[r * I + i]! += g * w[o * I + i]!;
      }
    dy = dx;
  }
  return dy;
}

export interface ReferenceResult {
  grad: Float64Array;
  lossSum: number;
  dRealSum: number;
  dFakeSum: number;
}

/** Σ over samples of ∇_D [BCE(D(real),1) + BCE(D(G(z)),0)], in float64. */
export function referenceDiscriminator(
  gen: Float32Array,
  dis: Float32Array,
  real: Float32Array,
  z: Float32Array,
  n: number,
  model: Model = MODEL,
): ReferenceResult {
  const fake = mlpForward('gen', gen, z, n, model).at(-1)!;
  const grad = new Float64Array(model.manifests.dis.size);
  let lossSum = 0;
  let dRealSum = 0;
  let dFakeSum = 0;
  for (const [x, label] of [
    [real, 1],
    [fake, 0],
  ] as const) {
    const acts = mlpForward('dis', dis, x, n, model);
    const logit = acts.at(-1)!;
    const dl = new Float64Array(n);
    for (let r = 0; r < n; r++) {
      const l = logit[r]!;
      lossSum += softplus(l) - label * l;
      dl[r] = sigmoid(l) - label;
      if (label === 1) dRealSum += sigmoid(l);
      else dFakeSum += sigmoid(l);
    }
    backward('dis', dis, x, acts, dl, n, grad, model);
  }
  return { grad, lossSum, dRealSum, dFakeSum };
}

/** Σ over samples of ∇_G BCE(D(G(z)),1), in float64. */
export function referenceGenerator(
  gen: Float32Array,
  dis: Float32Array,
  z: Float32Array,
  n: number,
  model: Model = MODEL,
): ReferenceResult {
  const gActs = mlpForward('gen', gen, z, n, model);
  const fake = gActs.at(-1)!;
  const dActs = mlpForward('dis', dis, fake, n, model);
  const logit = dActs.at(-1)!;
  const dl = new Float64Array(n);
  let lossSum = 0;
  let dFakeSum = 0;
  for (let r = 0; r < n; r++) {
    const l = logit[r]!;
    lossSum += softplus(-l);
    dl[r] = sigmoid(l) - 1;
    dFakeSum += sigmoid(l);
  }
  const dFake = backward('dis', dis, fake, dActs, dl, n, null, model);
  const grad = new Float64Array(model.manifests.gen.size);
  backward('gen', gen, z, gActs, dFake, n, grad, model);
  return { grad, lossSum, dRealSum: 0, dFakeSum };
}

/** max |a − b| / max |b|: the relative error that tests bound. */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`length ${a.length} vs ${b.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i]! - b[i]!));
    den = Math.max(den, Math.abs(b[i]!));
  }
  return den === 0 ? num : num / den;
}
