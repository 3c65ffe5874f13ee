/**
 * The run's files as an observer of the training loop: config.json and real_images.png at the
 * start, the seed's loss line (log and metrics.jsonl) every `logEvery` steps, a sample grid at
 * every epoch's end, a checkpoint every `checkpointEvery` steps and at the end. Critical: a file
 * that cannot be written fails the run rather than leaving it without a checkpoint.
 */
import type { Logger } from '../../shared/log.js';
import { gatherImages, pixelTable } from '../../shared/pixels.js';
import { type CheckpointState, writeCheckpoint } from '../checkpoint.js';
import type { EpochEvent, EventBus, RunEndEvent, RunStartEvent, StepEvent, TrainerObserver } from '../events.js';
import { GRID_SAMPLES, RunOutputs } from '../run-outputs.js';

export interface RunFilesOptions {
  outDir: string;
  seed: number;
  epochs: number;
  logEvery: number;
  /** Write a sample grid at the end of every epoch. */
  samples: boolean;
  /** Write a checkpoint every this many steps (0: only at the end and on stop). */
  checkpointEvery?: number;
  /** What config.json records. */
  config: Record<string, unknown>;
  /** The images of the first batch (pixels in the dataset's bytes) and the dataset. */
  firstBatch: () => { images: Uint8Array; indices: Uint32Array };
  /** The state a checkpoint saves, as of now. */
  state: () => CheckpointState;
  log: Logger;
  bus: EventBus;
}

export class RunFiles implements TrainerObserver {
  readonly critical = true;
  private readonly outputs: RunOutputs;
  /** Sample grids written, oldest first. */
  readonly samples: string[] = [];
  private windowStart = performance.now();
  private windowImages = 0;

  constructor(private readonly o: RunFilesOptions) {
    this.outputs = new RunOutputs(o.outDir, o.seed);
  }

  get checkpointPath(): string {
    return this.outputs.checkpointPath;
  }

  async onRunStart(e: RunStartEvent): Promise<void> {
    await this.outputs.init(this.o.config, e.startStep);
    // The seed saves a grid of real images; here from the first batch, shown in [-1, 1].
    if (e.startStep === 0) {
      const { images, indices } = this.o.firstBatch();
      await this.outputs.writeRealImages(
        gatherImages(images, indices.subarray(0, GRID_SAMPLES), pixelTable('minus1to1')),
      );
    }
    this.windowStart = performance.now();
  }

  async onStep(e: StepEvent): Promise<void> {
    this.windowImages += e.images;
    // The seed's line every logEvery steps (and after the last step).
    if (e.step % this.o.logEvery === 0 || e.step === e.totalSteps) {
      const now = performance.now();
      const rec = {
        step: e.step,
        epoch: e.epoch,
        d_loss: e.d_loss,
        g_loss: e.g_loss,
        d_real: e.d_real,
        d_fake: e.d_fake,
        images_per_s: (this.windowImages * 1000) / (now - this.windowStart),
        d_phase_ms: e.timings.dPhaseMs,
        g_phase_ms: e.timings.gPhaseMs,
        workers: e.workers,
      };
      await this.outputs.appendMetrics(rec);
      const f = (x: number) => x.toFixed(6);
      this.o.log.info(
        rec,
        `Epoch [${e.epoch}/${this.o.epochs}], d_loss: ${f(e.d_loss)}, g_loss: ${f(e.g_loss)},` +
          `D real: ${f(e.d_real)}, D fake: ${f(e.d_fake)}`,
      );
      this.windowStart = now;
      this.windowImages = 0;
    }
    // Periodic checkpoint: the whole state is weights, Adam and the step number.
    const every = this.o.checkpointEvery;
    if (every && e.step % every === 0 && e.step < e.totalSteps) await this.checkpoint(e.step);
  }

  async onEpochEnd(e: EpochEvent): Promise<void> {
    if (!this.o.samples) return;
    const path = await this.outputs.writeSamples(e.gen, e.epoch);
    this.samples.push(path);
    this.o.log.info({ epoch: e.epoch, path }, 'sample grid written');
    this.o.bus.notify('onSamples', { epoch: e.epoch, path });
  }

  async onRunEnd(e: RunEndEvent): Promise<void> {
    await this.checkpoint(e.step);
  }

  private async checkpoint(step: number): Promise<void> {
    await writeCheckpoint(this.outputs.checkpointPath, this.o.state());
    this.o.log.info({ path: this.outputs.checkpointPath, step }, 'checkpoint written');
    this.o.bus.notify('onCheckpoint', { path: this.outputs.checkpointPath, step });
  }
}
