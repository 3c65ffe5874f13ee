/**
 * The classifier's weights file: a safetensors file (assets/mnist-classifier.safetensors in the
 * repository) with one F32 tensor per parameter, under the names of CLASSIFIER_MANIFEST; the
 * feature statistics of the MNIST test set (`reference.mean`, `reference.cov`, F64) so that a run
 * need not fit them; and metadata saying how it was made, its test accuracy, the hash of the data
 * the statistics are of (`reference_data_hash`, as MnistSet.hash) and the floor (`floor`: the scores
 * of the first 10,000 training images against the test set, JSON).
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CheckpointError } from '../../shared/errors.js';
import {
  asFloat32,
  asFloat64,
  decodeSafetensors,
  encodeSafetensors,
  f32Tensor,
  f64Tensor,
  type SafeTensor,
} from '../../shared/safetensors.js';
import { CLASSIFIER_ARCHITECTURE, CLASSIFIER_MANIFEST, FEATURES } from './classifier.js';
import type { EvalScores } from './evaluator.js';
import type { FeatureStats } from './stats.js';

export const CLASSIFIER_FORMAT = 'ganfleet-mnist-classifier';
export const CLASSIFIER_FILE = 'mnist-classifier.safetensors';

/** The shipped weights: assets/ at the package root, seen from dist/coordinator/eval/ or coordinator/eval/. */
export function defaultClassifierPath(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [
    join(here, '..', '..', '..', 'assets', CLASSIFIER_FILE),
    join(here, '..', '..', 'assets', CLASSIFIER_FILE),
  ];
  return candidates.find((p) => existsSync(p)) ?? candidates[0]!;
}

export interface ClassifierFile {
  params: Float32Array;
  metadata: Record<string, string>;
  /** The test set's feature statistics, with the hash of the data they are of. */
  reference?: { stats: FeatureStats; dataHash: string };
  /** The training images' scores against the reference. */
  floor?: EvalScores;
}

export function encodeClassifier(f: ClassifierFile): Buffer {
  const tensors: Array<[string, SafeTensor]> = CLASSIFIER_MANIFEST.params.map((p) => [
    p.name,
    f32Tensor(p.shape, f.params.subarray(p.offset, p.offset + p.length)),
  ]);
  const meta: Record<string, string> = {
    ...f.metadata,
    format: CLASSIFIER_FORMAT,
    architecture: CLASSIFIER_ARCHITECTURE,
  };
  if (f.reference) {
    const { stats, dataHash } = f.reference;
    tensors.push(
      ['reference.mean', f64Tensor([stats.d], stats.mean)],
      ['reference.cov', f64Tensor([stats.d, stats.d], stats.cov)],
    );
    meta.reference_data_hash = dataHash;
    meta.reference_samples = String(stats.n);
  }
  if (f.floor) meta.floor = JSON.stringify(f.floor);
  return encodeSafetensors(tensors, meta);
}

/** Reads and checks a classifier file (every parameter present with its shape, nothing else). */
export async function readClassifier(path = defaultClassifierPath()): Promise<ClassifierFile> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (err) {
    throw new CheckpointError(`classifier weights ${path} cannot be read: ${(err as Error).message}`);
  }
  const { tensors, metadata } = decodeSafetensors(buf, path);
  if (metadata.format !== CLASSIFIER_FORMAT)
    throw new CheckpointError(`${path}: not a ganfleet classifier (format "${metadata.format ?? ''}")`);
  const params = new Float32Array(CLASSIFIER_MANIFEST.size);
  for (const p of CLASSIFIER_MANIFEST.params) {
    const t = tensors.get(p.name);
    if (!t) throw new CheckpointError(`${path}: tensor ${p.name} is missing`);
    if (JSON.stringify(t.shape) !== JSON.stringify(p.shape))
      throw new CheckpointError(
        `${path}: ${p.name} has shape ${JSON.stringify(t.shape)}, expected ${JSON.stringify(p.shape)}`,
      );
    params.set(asFloat32(t, p.name), p.offset);
  }
  const out: ClassifierFile = { params, metadata };
  const mean = tensors.get('reference.mean');
  const cov = tensors.get('reference.cov');
  if (mean && cov && metadata.reference_data_hash) {
    const d = FEATURES;
    if (JSON.stringify(mean.shape) !== `[${d}]` || JSON.stringify(cov.shape) !== `[${d},${d}]`)
      throw new CheckpointError(`${path}: reference statistics are not of ${d} features`);
    const stats = { n: Number(metadata.reference_samples), d, mean: asFloat64(mean), cov: asFloat64(cov) };
    out.reference = { stats, dataHash: metadata.reference_data_hash };
  }
  if (metadata.floor) out.floor = JSON.parse(metadata.floor) as EvalScores;
  return out;
}
