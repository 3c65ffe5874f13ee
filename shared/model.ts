/**
 * The seed's two MLPs and their parameter manifests: the one source of the model.
 *
 * `ARCHITECTURE` lists each network's layers; everything else (the manifests, the workers' step,
 * checkpoints, export, the reference forward pass) is derived from a `Model` built from it, so a
 * changed width or an extra layer changes all of them together. Each network's parameters live in
 * one flat Float32Array. The manifest fixes the order, the names (the seed's PyTorch `state_dict`
 * names: `gen.0.weight`, …) and the layout (weights as [out, in], like `nn.Linear`), so that
 * coordinator, workers, checkpoints and PyTorch agree byte for byte.
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
export const ACTIVATIONS = ['relu', 'leaky_relu', 'tanh', 'none'] as const;
export type Activation = (typeof ACTIVATIONS)[number];

/** One `nn.Linear` followed by its activation. */
export interface LayerSpec {
  /** Index in the seed's `nn.Sequential` (0, 2, 4): the number in the PyTorch name. */
  readonly index: number;
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly activation: Activation;
}

export type Architecture = Readonly<Record<NetName, readonly LayerSpec[]>>;

/**
 * The seed's networks. D's last layer has no activation here: the Sigmoid is folded into the
 * loss (BCE from the logit), which has the same value and is stable where Sigmoid+BCELoss is not.
 */
export const ARCHITECTURE: Architecture = {
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

/** An architecture with everything derived from it. */
export interface Model {
  readonly architecture: Architecture;
  readonly manifests: Readonly<Record<NetName, Manifest>>;
}

/** Builds a network's manifest: for each layer its weight [out, in] then its bias [out]. */
export function buildManifest(net: NetName, architecture: Architecture = ARCHITECTURE): Manifest {
  const params: ParamSpec[] = [];
  let offset = 0;
  for (const layer of architecture[net]) {
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

/** Checks that layers chain (each input width is the previous output width) and builds the manifests. */
export function defineModel(architecture: Architecture): Model {
  for (const net of NETS) {
    const layers = architecture[net];
    if (layers.length === 0) throw new RangeError(`${net}: no layers`);
    layers.forEach((l, li) => {
      if (li > 0 && l.inFeatures !== layers[li - 1]!.outFeatures)
        throw new RangeError(`${net} layer ${li}: ${l.inFeatures} inputs after ${layers[li - 1]!.outFeatures} outputs`);
      if (!(ACTIVATIONS as readonly string[]).includes(l.activation))
        throw new RangeError(`${net} layer ${li}: unknown activation ${l.activation}`);
    });
  }
  if (architecture.gen[0]!.inFeatures !== Z_DIM) throw new RangeError(`gen must take ${Z_DIM} noise values`);
  if (architecture.gen.at(-1)!.outFeatures !== IMAGE_SIZE || architecture.dis[0]!.inFeatures !== IMAGE_SIZE)
    throw new RangeError(`gen must output and dis take ${IMAGE_SIZE} pixels`);
  if (architecture.dis.at(-1)!.outFeatures !== 1) throw new RangeError('dis must output one logit');
  return {
    architecture,
    manifests: { gen: buildManifest('gen', architecture), dis: buildManifest('dis', architecture) },
  };
}

/** The seed's model. */
export const MODEL: Model = defineModel(ARCHITECTURE);
export const MANIFESTS: Readonly<Record<NetName, Manifest>> = MODEL.manifests;

/**
 * A digest of both manifests (names, shapes, offsets, activations). Coordinator and workers
 * compare it in the handshake, so a worker built for another model is refused before it computes.
 */
export function manifestHash(model: Model = MODEL): string {
  const h = createHash('sha256');
  h.update(
    JSON.stringify({ manifests: model.manifests, architecture: model.architecture, zDim: Z_DIM, leaky: LEAKY_SLOPE }),
  );
  return h.digest('hex');
}

/** One layer's weight and bias: their specs and their views inside a flat buffer (no copies). */
export interface LayerParams<T> {
  readonly layer: LayerSpec;
  readonly weight: ParamSpec;
  readonly bias: ParamSpec;
  /** [out, in], row-major. */
  readonly w: T;
  readonly b: T;
}

/** Every layer of `net` with its parameter views inside `flat` (manifest layout). */
export function layerParams<T extends Float32Array | Float64Array>(
  net: NetName,
  flat: T,
  model: Model = MODEL,
): LayerParams<T>[] {
  const m = model.manifests[net];
  if (flat.length !== m.size) throw new RangeError(`${net}: ${flat.length} values, manifest needs ${m.size}`);
  return model.architecture[net].map((layer, li) => {
    const weight = m.params[2 * li]!;
    const bias = m.params[2 * li + 1]!;
    const w = flat.subarray(weight.offset, weight.offset + weight.length) as T;
    const b = flat.subarray(bias.offset, bias.offset + bias.length) as T;
    return { layer, weight, bias, w, b };
  });
}

/** Splits a flat buffer into named views (no copies), in manifest order. */
export function unflatten(net: NetName, flat: Float32Array, model: Model = MODEL): Map<string, Float32Array> {
  const m = model.manifests[net];
  if (flat.length !== m.size)
    throw new RangeError(`${net}: flat buffer has ${flat.length} values, manifest needs ${m.size}`);
  const out = new Map<string, Float32Array>();
  for (const p of m.params) out.set(p.name, flat.subarray(p.offset, p.offset + p.length));
  return out;
}

/** Gathers named parameters into a new flat buffer in manifest order; each name present with its exact length. */
export function flatten(
  net: NetName,
  named: ReadonlyMap<string, ArrayLike<number>>,
  model: Model = MODEL,
): Float32Array {
  const m = model.manifests[net];
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
export function initParams(net: NetName, seed: number, model: Model = MODEL): Float32Array {
  const flat = new Float32Array(model.manifests[net].size);
  let i = 0;
  for (const { layer, w, b } of layerParams(net, flat, model)) {
    const bound = 1 / Math.sqrt(layer.inFeatures);
    for (const view of [w, b]) uniforms(seed, Purpose.INIT, (net === 'gen' ? 0 : 1000) + i++, -bound, bound, view);
  }
  return flat;
}
