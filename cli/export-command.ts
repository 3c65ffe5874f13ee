/** `ganfleet export`: the trained generator as a TensorFlow.js LayersModel or a safetensors file. */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readCheckpoint } from '../coordinator/checkpoint.js';
import { writeFileAtomic } from '../shared/atomic-file.js';
import { UsageError } from '../shared/errors.js';
import {
  EXPORT_FORMATS,
  generatorSafetensors,
  generatorTfjs,
  type ExportFormat,
  type ExportInfo,
} from '../shared/export/generator.js';
import { choiceFlag, resolveFlags, stringFlag } from './flags.js';

export const EXPORT_HELP = `ganfleet export — the trained generator for other tools

Usage: ganfleet export --checkpoint PATH --format tfjs|safetensors --out DIR

  --checkpoint PATH   a checkpoint.safetensors written by a run (required)
  --format FORMAT     tfjs: a TensorFlow.js LayersModel, DIR/model.json + DIR/weights.bin, for
                      tf.loadLayersModel (input: z [n, 100] of standard normals; output [n, 784]
                      in [-1, 1]);
                      safetensors: DIR/generator.safetensors, G's weights alone (no optimizer
                      state) under the seed's PyTorch names (gen.0.weight, …) for load_state_dict
  --out DIR           output folder (created if needed)
  --config PATH       settings from a YAML or JSON file; GANFLEET_<FLAG> variables work too

Examples:
  ganfleet export --checkpoint runs/exp1/checkpoint.safetensors --format tfjs --out web/model
  ganfleet export --checkpoint runs/exp1/checkpoint.safetensors --format safetensors --out export
`;

async function version(): Promise<string> {
  const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export async function exportCommand(argv: string[]): Promise<number> {
  const { values: v } = resolveFlags(argv, {
    checkpoint: { type: 'string' },
    format: { type: 'string' },
    out: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (v.help) {
    process.stdout.write(EXPORT_HELP);
    return 0;
  }
  const path = stringFlag(v, 'checkpoint', undefined);
  if (path === undefined) throw new UsageError('--checkpoint PATH is required');
  if (v.format === undefined) throw new UsageError(`--format is required (one of ${EXPORT_FORMATS.join(', ')})`);
  const format = choiceFlag<ExportFormat>(v, 'format', 'tfjs', EXPORT_FORMATS);
  const out = stringFlag(v, 'out', undefined);
  if (out === undefined) throw new UsageError('--out DIR is required');
  const ckpt = await readCheckpoint(path);
  const info: ExportInfo = { step: ckpt.step, seed: ckpt.seed, source: path, version: await version() };
  await mkdir(out, { recursive: true });
  const written: string[] = [];
  if (format === 'safetensors') {
    const file = join(out, 'generator.safetensors');
    await writeFileAtomic(file, generatorSafetensors(ckpt.params.gen, info));
    written.push(file);
  } else {
    const { modelJson, weights } = generatorTfjs(ckpt.params.gen, info);
    // weights.bin first: a model.json never points at a missing or older weights file.
    await writeFileAtomic(join(out, 'weights.bin'), weights);
    await writeFileAtomic(join(out, 'model.json'), Buffer.from(JSON.stringify(modelJson, null, 1) + '\n'));
    written.push(join(out, 'model.json'), join(out, 'weights.bin'));
  }
  process.stdout.write(`exported the generator of ${path} (step ${ckpt.step}) as ${format}: ${written.join(', ')}\n`);
  return 0;
}
