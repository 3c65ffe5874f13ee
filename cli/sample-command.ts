/** `ganfleet sample`: a grid of G's images from a checkpoint, for a chosen noise seed. */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { readCheckpoint } from '../coordinator/checkpoint.js';
import { UsageError } from '../shared/errors.js';
import { writeImageGrid } from '../shared/image-grid.js';
import { IMAGE_SIZE, Z_DIM } from '../shared/model.js';
import { mlpForward } from '../shared/mlp-forward.js';
import { Purpose, noiseBlock } from '../shared/random.js';
import { intFlag, resolveFlags, stringFlag } from './flags.js';

export const SAMPLE_HELP = `ganfleet sample — draw images from a trained generator

Usage: ganfleet sample --checkpoint PATH [options]

  --checkpoint PATH   a checkpoint.safetensors written by a run (required)
  --n N               images to draw (default 64)
  --seed N            noise seed (default 1): z of image i is Philox(seed, sample-grid, i), so the
                      same seed gives the same images; the run's own seed reproduces its
                      samples/epoch-NNN.png grids
  --nrow N            images per row (default 8)
  --out PATH          the PNG grid to write (default samples.png)
  --raw PATH          also write the images as raw little-endian float32 [n, 784] in [-1, 1]
  --config PATH       settings from a YAML or JSON file; GANFLEET_<FLAG> variables work too

Examples:
  ganfleet sample --checkpoint runs/exp1/checkpoint.safetensors --n 64 --seed 1 --out grid.png
  ganfleet sample --checkpoint runs/exp1/checkpoint.safetensors --n 100 --nrow 10 --seed 7 --out digits.png
`;

/** n generator outputs (n × 784 in [-1, 1]) for noise seed `seed`. */
export function sampleImages(gen: Float32Array, n: number, seed: number): Float32Array {
  const z = noiseBlock(seed, Purpose.SAMPLE_GRID, 0, 0, n, Z_DIM);
  return Float32Array.from(mlpForward('gen', gen, z, n).at(-1)!);
}

export async function sampleCommand(argv: string[]): Promise<number> {
  const { values: v } = resolveFlags(argv, {
    checkpoint: { type: 'string' },
    n: { type: 'string' },
    seed: { type: 'string' },
    nrow: { type: 'string' },
    out: { type: 'string' },
    raw: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (v.help) {
    process.stdout.write(SAMPLE_HELP);
    return 0;
  }
  const path = stringFlag(v, 'checkpoint', undefined);
  if (path === undefined)
    throw new UsageError('--checkpoint PATH is required (e.g. --checkpoint runs/exp1/checkpoint.safetensors)');
  const n = intFlag(v, 'n', 64, 1, 10_000);
  const seed = intFlag(v, 'seed', 1, 0, 0xffffffff);
  const nrow = intFlag(v, 'nrow', 8, 1, 10_000);
  const out = stringFlag(v, 'out', 'samples.png');
  const raw = stringFlag(v, 'raw', undefined);
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
