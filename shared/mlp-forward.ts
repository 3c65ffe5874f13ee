/**
 * A plain typed-array forward pass of either network, accumulating in float64. The coordinator
 * renders sample grids with it (so it needs no tfjs), and tests use it as an independent
 * reference for the workers' tfjs step.
 */
import { LEAKY_SLOPE, MODEL, layerParams, type Activation, type Model, type NetName } from './model.js';

function activate(a: Activation, v: number): number {
  switch (a) {
    case 'relu':
      return Math.max(v, 0);
    case 'leaky_relu':
      return v > 0 ? v : LEAKY_SLOPE * v;
    case 'tanh':
      return Math.tanh(v);
    case 'none':
      return v;
  }
}

/**
 * Runs `n` rows of `input` through `net` with parameters `flat` (manifest layout). Returns every
 * layer's activations (the last one is the output: images for G, logits for D).
 */
export function mlpForward(
  net: NetName,
  flat: Float32Array | Float64Array,
  input: Float32Array | Float64Array,
  n: number,
  model: Model = MODEL,
): Float64Array[] {
  const layers = layerParams(net, flat, model);
  const inputs = layers[0]!.layer.inFeatures;
  if (input.length !== n * inputs)
    throw new RangeError(`${net}: input has ${input.length} values, expected ${n}×${inputs}`);
  const acts: Float64Array[] = [];
  let x: Float32Array | Float64Array = input;
  for (const { layer, w, b } of layers) {
    const { inFeatures: I, outFeatures: O } = layer;
    const y = new Float64Array(n * O);
    for (let r = 0; r < n; r++) {
      for (let o = 0; o < O; o++) {
        let s = b[o]!;
        for (let i = 0; i < I; i++) s += w[o * I + i]! * x[r * I + i]!;
        y[r * O + o] = activate(layer.activation, s);
      }
    }
    acts.push(y);
    x = y;
  }
  return acts;
}
