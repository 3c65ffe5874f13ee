/**
 * The trained generator in formats other tools load:
 *
 * - safetensors: G's weights alone under the seed's PyTorch names and [out, in] layout
 *   (`gen.0.weight`, …), so the seed's `generator()` module takes them with `load_state_dict`.
 * - TensorFlow.js LayersModel: `model.json` (a Sequential of three Dense layers, named gen_0,
 *   gen_2, gen_4 after the PyTorch indices) and `weights.bin` (kernels transposed to Keras'
 *   [in, out]), which `tf.loadLayersModel` loads in a browser or in Node.
 *
 * Both are written from plain typed arrays; no tfjs is needed to export.
 */
import { LEAKY_SLOPE, MODEL, Z_DIM, layerParams, type Activation, type Model } from '../model.js';
import { encodeSafetensors, f32Tensor, type SafeTensor } from '../safetensors.js';

export const EXPORT_FORMATS = ['tfjs', 'safetensors'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

const TORCH_ACTIVATION: Record<Activation, string | null> = {
  relu: 'ReLU',
  leaky_relu: `LeakyReLU(${LEAKY_SLOPE})`,
  tanh: 'Tanh',
  none: null,
};

/** G's architecture as PyTorch would print it, stored in both formats' metadata. */
export function generatorArchitecture(model: Model = MODEL): string {
  const parts = model.architecture.gen.flatMap((l) => [
    `Linear(${l.inFeatures},${l.outFeatures})`,
    ...(TORCH_ACTIVATION[l.activation] === null ? [] : [TORCH_ACTIVATION[l.activation]!]),
  ]);
  return `Sequential(${parts.join(', ')})`;
}

export interface ExportInfo {
  /** Steps the generator was trained for. */
  step: number;
  seed: number;
  /** The checkpoint it came from. */
  source: string;
  /** ganfleet's version. */
  version: string;
}

/** G's parameters as a safetensors file: `gen.*` tensors only, no optimizer state. */
export function generatorSafetensors(gen: Float32Array, info: ExportInfo, model: Model = MODEL): Buffer {
  const m = model.manifests.gen;
  if (gen.length !== m.size) throw new RangeError(`generator has ${gen.length} parameters, expected ${m.size}`);
  const tensors: Array<[string, SafeTensor]> = m.params.map((p) => [
    p.name,
    f32Tensor(p.shape, gen.subarray(p.offset, p.offset + p.length)),
  ]);
  return encodeSafetensors(tensors, {
    format: 'ganfleet-generator',
    format_version: '1',
    architecture: generatorArchitecture(model),
    z_dim: String(Z_DIM),
    output: '784 values in [-1, 1] per image (28x28, row-major); pixel = (v + 1) / 2',
    step: String(info.step),
    seed: String(info.seed),
    source: info.source,
    generated_by: `ganfleet ${info.version}`,
  });
}

const KERAS_ACTIVATION: Record<Activation, string> = {
  relu: 'relu',
  leaky_relu: 'leakyRelu',
  tanh: 'tanh',
  none: 'linear',
};

/** A TensorFlow.js LayersModel of G: the model.json object and the weights.bin bytes. */
export function generatorTfjs(
  gen: Float32Array,
  info: ExportInfo,
  model: Model = MODEL,
): { modelJson: Record<string, unknown>; weights: Buffer } {
  const m = model.manifests.gen;
  if (gen.length !== m.size) throw new RangeError(`generator has ${gen.length} parameters, expected ${m.size}`);
  const layers: unknown[] = [];
  const specs: Array<{ name: string; shape: number[]; dtype: 'float32' }> = [];
  const out = new Float32Array(m.size);
  let at = 0;
  layerParams('gen', gen, model).forEach(({ layer: l, weight: w, bias: b }, li) => {
    const name = `gen_${l.index}`;
    layers.push({
      class_name: 'Dense',
      config: {
        name,
        trainable: false,
        ...(li === 0 ? { batch_input_shape: [null, l.inFeatures] } : {}),
        dtype: 'float32',
        units: l.outFeatures,
        activation: KERAS_ACTIVATION[l.activation],
        use_bias: true,
        kernel_initializer: { class_name: 'Zeros', config: {} },
        bias_initializer: { class_name: 'Zeros', config: {} },
        kernel_regularizer: null,
        bias_regularizer: null,
        activity_regularizer: null,
        kernel_constraint: null,
        bias_constraint: null,
      },
    });
    // PyTorch stores [out, in]; a Keras kernel is [in, out].
    const I = l.inFeatures;
    const O = l.outFeatures;
    for (let i = 0; i < I; i++) for (let o = 0; o < O; o++) out[at + i * O + o] = gen[w.offset + o * I + i]!;
    at += I * O;
    out.set(gen.subarray(b.offset, b.offset + b.length), at);
    at += b.length;
    specs.push(
      { name: `${name}/kernel`, shape: [I, O], dtype: 'float32' },
      { name: `${name}/bias`, shape: [O], dtype: 'float32' },
    );
  });
  const weights = Buffer.alloc(out.length * 4);
  for (let i = 0; i < out.length; i++) weights.writeFloatLE(out[i]!, i * 4);
  const modelJson = {
    format: 'layers-model',
    generatedBy: `ganfleet ${info.version}`,
    convertedBy: null,
    modelTopology: {
      class_name: 'Sequential',
      config: { name: 'ganfleet_generator', layers },
      keras_version: 'tfjs-layers 4.22.0',
      backend: 'tensor_flow.js',
    },
    weightsManifest: [{ paths: ['weights.bin'], weights: specs }],
    userDefinedMetadata: {
      architecture: generatorArchitecture(model),
      zDim: Z_DIM,
      step: info.step,
      seed: info.seed,
      source: info.source,
      output: '784 values in [-1, 1] per image (28x28, row-major)',
    },
  };
  return { modelJson, weights };
}
