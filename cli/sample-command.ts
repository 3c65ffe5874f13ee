/** `ganfleet sample`: a grid of G's images from a checkpoint, for a chosen noise seed. */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { readCheckpoint } from '../coordinator/checkpoint.js';
import { writeImageGrid } from '../shared/image-grid.js';
import { IMAGE_SIZE, Z_DIM } from '../shared/model.js';
import { mlpForward } from '../shared/mlp-forward.js';
import { Purpose, noiseBlock } from '../shared/random.js';
import type { Options } from './flags.js';

/** n generator outputs (n × 784 in [-1, 1]) for noise seed `seed`. */
export function sampleImages(gen: Float32Array, n: number, seed: number): Float32Array {
  const z = noiseBlock(seed, Purpose.SAMPLE_GRID, 0, 0, n, Z_DIM);
  return Float32Array.from(mlpForward('gen', gen, z, n).at(-1)!);
}

export async function sampleCommand(o: Options): Promise<number> {
  const path = o.get('checkpoint');
  const n = o.get('n');
  const seed = o.get('sampleSeed');
  const nrow = o.get('nrow');
  const out = o.get('sampleOut');
  const raw = o.get('raw');
  const ckpt = await readCheckpoint(path);
  const images = sampleImages(ckpt.params.gen, n, seed);
  await writeImageGrid(out, images, n, { nrow });
  if (raw !== undefined) {
    await mkdir(dirname(resolve(raw)), { recursive: true });
    const bytes = Buffer.alloc(n * IMAGE_SIZE * 4);
    for (let i = 0; i < images.length; i++) bytes.writeFloatLE(images[i]!, i * 4);
    await writeFile(raw, bytes);
  }
  process.stdout.write(
    `wrote ${n} samples of ${path} (step ${ckpt.step}, noise seed ${seed}) to ${out}${raw ? ` and ${raw}` : ''}\n`,
  );
  return 0;
}
