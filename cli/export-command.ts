/** `ganfleet export`: the trained generator as a TensorFlow.js LayersModel or a safetensors file. */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readCheckpoint } from '../coordinator/checkpoint.js';
import { writeFileAtomic } from '../shared/atomic-file.js';
import { generatorSafetensors, generatorTfjs, type ExportInfo } from '../shared/export/generator.js';
import type { Options } from './flags.js';

async function version(): Promise<string> {
  const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export async function exportCommand(o: Options): Promise<number> {
  const path = o.get('checkpoint');
  const format = o.get('format');
  const out = o.get('exportOut');
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
