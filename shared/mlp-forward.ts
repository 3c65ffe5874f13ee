/**
 * A plain typed-array forward pass of either network, accumulating in float64. The coordinator
 * renders sample grids with it (so it needs no tfjs), and tests use it as an independent
 * reference for the workers' tfjs step.
 */
import { ARCHITECTURE, LEAKY_SLOPE, MANIFESTS, type Activation, type NetName } from './model.js';

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
): Float64Array[] {
  const m = MANIFESTS[net];
  if (flat.length !== m.size) throw new RangeError(`${net}: ${flat.length} parameters, manifest needs ${m.size}`);
  const layers = ARCHITECTURE[net];
  if (input.length !== n * layers[0]!.inFeatures)
    throw new RangeError(`${net}: input has ${input.length} values, expected ${n}×${layers[0]!.inFeatures}`);
  const acts: Float64Array[] = [];
  let x: Float32Array | Float64Array = input;
  layers.forEach((layer, li) => {
    const w = m.params[2 * li]!.offset;
    const b = m.params[2 * li + 1]!.offset;
    const { inFeatures: I, outFeatures: O } = layer;
    const y = new Float64Array(n * O);
    for (let r = 0; r < n; r++) {
      for (let o = 0; o < O; o++) {
        let s = flat[b + o]!;
        const wo = w + o * I;
        const xr = r * I;
        for (let i = 0; i < I; i++) s += flat[wo + i]! * x[xr + i]!;
        y[r * O + o] = activate(layer.activation, s);
      }
    }
    acts.push(y);
    x = y;
  });
  return acts;
}
