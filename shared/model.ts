/**
 * The seed's two MLPs and their parameter manifests.
 *
 * Each network's parameters live in one flat Float32Array. The manifest fixes the order, the
 * names (the seed's PyTorch `state_dict` names: `gen.0.weight`, …) and the layout (weights as
 * [out, in], like `nn.Linear`), so that coordinator, workers, checkpoints and PyTorch agree
 * byte for byte.
 */
import { createHash } from 'node:crypto';
import { Purpose, uniforms } from './random.js';

/** Noise dimension (the seed's `z_dimension`). */
export const Z_DIM = 100;
/** Pixels per MNIST image. */
export const IMAGE_SIZE = 784;
/** Slope of D's LeakyReLU. */
export const LEAKY_SLOPE = 0.2;

export type NetName = 'gen' | 'dis';
export const NETS: readonly NetName[] = ['gen', 'dis'];
export type Activation = 'relu' | 'leaky_relu' | 'tanh' | 'none';

/** One `nn.Linear` followed by its activation. */
export interface LayerSpec {
  /** Index in the seed's `nn.Sequential` (0, 2, 4): the number in the PyTorch name. */
  readonly index: number;
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly activation: Activation;
}

/**
 * The seed's networks. D's last layer has no activation here: the Sigmoid is folded into the
 * loss (BCE from the logit), which has the same value and is stable where Sigmoid+BCELoss is not.
 */
export const ARCHITECTURE: Readonly<Record<NetName, readonly LayerSpec[]>> = {
  gen: [
    { index: 0, inFeatures: Z_DIM, outFeatures: 256, activation: 'relu' },
    { index: 2, inFeatures: 256, outFeatures: 256, activation: 'relu' },
    { index: 4, inFeatures: 256, outFeatures: IMAGE_SIZE, activation: 'tanh' },
  ],
  dis: [
    { index: 0, inFeatures: IMAGE_SIZE, outFeatures: 256, activation: 'leaky_relu' },
    { index: 2, inFeatures: 256, outFeatures: 256, activation: 'leaky_relu' },
    { index: 4, inFeatures: 256, outFeatures: 1, activation: 'none' },
  ],
};

/** Where one parameter lives inside its network's flat buffer. */
export interface ParamSpec {
  readonly name: string;
  readonly shape: readonly number[];
  readonly offset: number;
  readonly length: number;
}

/** A network's parameters in their fixed order over one flat Float32Array. */
export interface Manifest {
  readonly net: NetName;
  readonly params: readonly ParamSpec[];
  /** Total number of float parameters (the flat buffer's length). */
  readonly size: number;
}

/** Builds a network's manifest: for each layer its weight [out, in] then its bias [out]. */
export function buildManifest(net: NetName): Manifest {
  const params: ParamSpec[] = [];
  let offset = 0;
  for (const layer of ARCHITECTURE[net]) {
    const w = layer.outFeatures * layer.inFeatures;
    params.push({
      name: `${net}.${layer.index}.weight`,
      shape: [layer.outFeatures, layer.inFeatures],
      offset,
      length: w,
    });
    offset += w;
    params.push({ name: `${net}.${layer.index}.bias`, shape: [layer.outFeatures], offset, length: layer.outFeatures });
    offset += layer.outFeatures;
  }
  return { net, params, size: offset };
}

export const MANIFESTS: Readonly<Record<NetName, Manifest>> = { gen: buildManifest('gen'), dis: buildManifest('dis') };

/**
 * A digest of both manifests (names, shapes, offsets, activations). Coordinator and workers
 * compare it in the handshake, so a worker built for another model is refused before it computes.
 */
export function manifestHash(): string {
  const h = createHash('sha256');
  h.update(JSON.stringify({ manifests: MANIFESTS, architecture: ARCHITECTURE, zDim: Z_DIM, leaky: LEAKY_SLOPE }));
  return h.digest('hex');
}

/** The views of one layer's weight and bias inside a flat buffer. */
export function layerViews<T extends Float32Array | Float64Array>(
  net: NetName,
  flat: T,
  layer: number,
): { w: T; b: T } {
  const m = MANIFESTS[net];
  const w = m.params[2 * layer]!;
  const b = m.params[2 * layer + 1]!;
  return { w: flat.subarray(w.offset, w.offset + w.length) as T, b: flat.subarray(b.offset, b.offset + b.length) as T };
}

/** Splits a flat buffer into named views (no copies), in manifest order. */
export function unflatten(net: NetName, flat: Float32Array): Map<string, Float32Array> {
  const m = MANIFESTS[net];
  if (flat.length !== m.size)
    throw new RangeError(`${net}: flat buffer has ${flat.length} values, manifest needs ${m.size}`);
  const out = new Map<string, Float32Array>();
  for (const p of m.params) out.set(p.name, flat.subarray(p.offset, p.offset + p.length));
  return out;
}

/** Gathers named parameters into a new flat buffer in manifest order; every name must be present with its exact length. */
export function flatten(net: NetName, named: ReadonlyMap<string, ArrayLike<number>>): Float32Array {
  const m = MANIFESTS[net];
  const flat = new Float32Array(m.size);
  for (const p of m.params) {
    const v = named.get(p.name);
    if (v === undefined) throw new RangeError(`${net}: parameter ${p.name} is missing`);
    if (v.length !== p.length)
      throw new RangeError(`${net}: parameter ${p.name} has ${v.length} values, expected ${p.length}`);
    flat.set(v, p.offset);
  }
  return flat;
}

/**
 * Initial weights like PyTorch's `nn.Linear.reset_parameters`: kaiming_uniform(a=√5) for the
 * weight, which is uniform in ±1/√fan_in, and uniform in ±1/√fan_in for the bias. The values come
 * from the seeded INIT stream, keyed by network and parameter index.
 */
export function initParams(net: NetName, seed: number): Float32Array {
  const m = MANIFESTS[net];
  const flat = new Float32Array(m.size);
  const layers = ARCHITECTURE[net];
  m.params.forEach((p, i) => {
    const bound = 1 / Math.sqrt(layers[i >> 1]!.inFeatures);
    const streamId = (net === 'gen' ? 0 : 1000) + i;
    uniforms(seed, Purpose.INIT, streamId, -bound, bound, flat.subarray(p.offset, p.offset + p.length));
  });
  return flat;
}
