/** `ganfleet eval`: the sample-quality scores of a checkpoint's (or an exported) generator. */
import { readFile } from 'node:fs/promises';
import { decodeCheckpoint, CHECKPOINT_FORMAT } from '../coordinator/checkpoint.js';
import type { EvalScores } from '../coordinator/eval/evaluator.js';
import { describeScores } from '../coordinator/eval/observer.js';
import { setupEvaluator } from '../coordinator/eval/setup.js';
import { CheckpointError } from '../shared/errors.js';
import { MANIFESTS } from '../shared/model.js';
import type { Normalization } from '../shared/pixels.js';
import { asFloat32, decodeSafetensors } from '../shared/safetensors.js';
import { DEFAULT_SEED } from './flag-table.js';
import type { Options } from './flags.js';

/** The generator, and what the file says about how it was trained. */
export async function readGenerator(
  path: string,
): Promise<{ gen: Float32Array; seed?: number; normalize?: Normalization; step?: number; kind: string }> {
  const buf = await readFile(path).catch((err: Error) => {
    throw new CheckpointError(`${path} cannot be read: ${err.message}`);
  });
  const { tensors, metadata } = decodeSafetensors(buf, path);
  if (metadata.format === CHECKPOINT_FORMAT) {
    const c = decodeCheckpoint(buf, path);
    const normalize = c.config.normalize as Normalization | undefined;
    return { gen: c.params.gen, seed: c.seed, normalize, step: c.step, kind: 'checkpoint' };
  }
  const gen = new Float32Array(MANIFESTS.gen.size);
  for (const p of MANIFESTS.gen.params) {
    const t = tensors.get(p.name);
    if (!t)
      throw new CheckpointError(`${path}: no tensor ${p.name}: not a ganfleet checkpoint nor a generator state_dict`);
    if (JSON.stringify(t.shape) !== JSON.stringify(p.shape))
      throw new CheckpointError(
        `${path}: ${p.name} has shape ${JSON.stringify(t.shape)}, expected ${JSON.stringify(p.shape)}`,
      );
    gen.set(asFloat32(t, `${path}: ${p.name}`), p.offset);
  }
  const seed = metadata.seed !== undefined && /^\d+$/.test(metadata.seed) ? Number(metadata.seed) : undefined;
  const step = metadata.step !== undefined && /^\d+$/.test(metadata.step) ? Number(metadata.step) : undefined;
  return { gen, seed, step, kind: 'generator' };
}

function shares(s: EvalScores): string {
  return s.digit_shares.map((v, d) => `${d}: ${(100 * v).toFixed(1)} %`).join(', ');
}

export async function evalCommand(o: Options): Promise<number> {
  const path = o.get('evalCheckpoint');
  const samples = o.get('evalSamples');
  const g = await readGenerator(path);
  const seed = o.get('evalSeed') ?? g.seed ?? DEFAULT_SEED;
  const normalize = o.get('evalNormalize') ?? g.normalize ?? 'minus1to1';
  const t0 = performance.now();
  const s = await setupEvaluator({ dataDir: o.get('data') });
  const scores = s.evaluator.generator(g.gen, { seed, samples, normalize });
  const ms = performance.now() - t0;
  if (o.get('json')) {
    const out = { file: path, kind: g.kind, step: g.step ?? null, seed, normalize, ...scores, floor: s.floor };
    process.stdout.write(`${JSON.stringify(out)}\n`);
    return 0;
  }
  process.stdout.write(
    `floor (real training images against the test set): ${describeScores(s.floor)}\n` +
      `${path}${g.step !== undefined ? ` (step ${g.step})` : ''}, ${samples} samples, noise seed ${seed}, ` +
      `${normalize}: ${describeScores(scores)}\n  digit shares: ${shares(scores)}\n` +
      `  (${(ms / 1000).toFixed(2)} s${s.native ? '' : `, JavaScript products: ${s.note}`})\n`,
  );
  return 0;
}
