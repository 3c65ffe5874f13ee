/**
 * The files a run leaves in its output folder: config.json, metrics.jsonl, real_images.png,
 * samples/epoch-NNN.png and checkpoint.safetensors.
 */
import { appendFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../shared/atomic-file.js';
import { writeImageGrid } from '../shared/image-grid.js';
import { IMAGE_SIZE, Z_DIM } from '../shared/model.js';
import { mlpForward } from '../shared/mlp-forward.js';
import { Purpose, noiseBlock } from '../shared/random.js';

/** Samples in every grid (8 × 8). */
export const GRID_SAMPLES = 64;

/** One line of metrics.jsonl. */
export interface MetricsRecord {
  step: number;
  epoch: number;
  d_loss: number;
  g_loss: number;
  d_real: number;
  d_fake: number;
  images_per_s: number;
  d_phase_ms: number;
  g_phase_ms: number;
  workers: number;
}

export class RunOutputs {
  /** The fixed z of every sample grid, so that epochs compare. */
  private readonly gridNoise: Float32Array;

  constructor(
    readonly dir: string,
    seed: number,
  ) {
    this.gridNoise = noiseBlock(seed, Purpose.SAMPLE_GRID, 0, 0, GRID_SAMPLES, Z_DIM);
  }

  get checkpointPath(): string {
    return join(this.dir, 'checkpoint.safetensors');
  }

  async init(config: Record<string, unknown>): Promise<void> {
    await mkdir(join(this.dir, 'samples'), { recursive: true });
    await writeFileAtomic(join(this.dir, 'config.json'), Buffer.from(JSON.stringify(config, null, 2) + '\n'));
  }

  async appendMetrics(rec: MetricsRecord): Promise<void> {
    await appendFile(join(this.dir, 'metrics.jsonl'), JSON.stringify(rec) + '\n');
  }

  /** Writes real images (already scaled to [-1, 1]) as real_images.png. */
  async writeRealImages(pixels: Float32Array): Promise<string> {
    const path = join(this.dir, 'real_images.png');
    await writeImageGrid(path, pixels, pixels.length / IMAGE_SIZE);
    return path;
  }

  /** Renders G on the fixed grid noise (plain typed arrays, no tfjs) and writes samples/epoch-NNN.png. */
  async writeSamples(gen: Float32Array, epoch: number): Promise<string> {
    const images = Float32Array.from(mlpForward('gen', gen, this.gridNoise, GRID_SAMPLES).at(-1)!);
    const path = join(this.dir, 'samples', `epoch-${String(epoch).padStart(3, '0')}.png`);
    await writeImageGrid(path, images, GRID_SAMPLES);
    return path;
  }
}
