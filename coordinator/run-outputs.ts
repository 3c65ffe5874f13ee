/**
 * The files a run leaves in its output folder: config.json, metrics.jsonl, real_images.png,
 * samples/epoch-NNN.png and checkpoint.safetensors.
 */
import { appendFile, mkdir, readFile } from 'node:fs/promises';
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

  /**
   * Creates the folder and writes config.json. When resuming at `fromStep`, metrics lines of steps
   * after it (logged before a crash, then redone) are dropped so that nothing appears twice.
   */
  async init(config: Record<string, unknown>, fromStep = 0): Promise<void> {
    await mkdir(join(this.dir, 'samples'), { recursive: true });
    await writeFileAtomic(join(this.dir, 'config.json'), Buffer.from(JSON.stringify(config, null, 2) + '\n'));
    const metrics = join(this.dir, 'metrics.jsonl');
    let text: string;
    try {
      text = await readFile(metrics, 'utf8');
    } catch {
      return;
    }
    const keep = text.split('\n').filter((l) => {
      if (l.trim() === '') return false;
      try {
        return fromStep > 0 && (JSON.parse(l) as { step: number }).step <= fromStep;
      } catch {
        return false;
      }
    });
    await writeFileAtomic(metrics, Buffer.from(keep.map((l) => l + '\n').join('')));
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
