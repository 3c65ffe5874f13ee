/**
 * Progress of a run for whoever started it. On a terminal: a cli-progress bar on stderr (epoch,
 * step, images/s, ETA, latest losses). Otherwise (a pipe, a log collector): one plain progress
 * line through the logger every `everyMs`, so it lands in the same stream as everything else.
 */
import cliProgress from 'cli-progress';
import type { Logger } from '../../shared/log.js';
import type { StepEvent, TrainerObserver } from '../events.js';

export type ProgressMode = 'auto' | 'bar' | 'lines' | 'off';
export const PROGRESS_MODES: readonly ProgressMode[] = ['auto', 'bar', 'lines', 'off'];

export interface ProgressOptions {
  mode: ProgressMode;
  epochs: number;
  logger: Logger;
  /** Interval of plain lines (default 10 s). */
  everyMs?: number;
  /** Where the bar goes (default process.stderr). */
  stream?: NodeJS.WriteStream;
}

/** m:ss or h:mm:ss. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '–';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${r}` : `${m}:${r}`;
}

/** The plain progress line (also what the tests check). */
export function progressLine(e: StepEvent, epochs: number, imagesPerSecond: number, etaSeconds: number): string {
  const pct = e.totalSteps > 0 ? ((100 * e.step) / e.totalSteps).toFixed(1) : '0.0';
  return (
    `progress: epoch ${e.epoch + 1}/${epochs} step ${e.step}/${e.totalSteps} (${pct}%) ` +
    `${Math.round(imagesPerSecond)} images/s ETA ${formatDuration(etaSeconds)} ` +
    `d_loss ${e.d_loss.toFixed(4)} g_loss ${e.g_loss.toFixed(4)} ` +
    `D(x) ${e.d_real.toFixed(3)} D(G(z)) ${e.d_fake.toFixed(3)}`
  );
}

export class ProgressObserver implements TrainerObserver {
  private bar: cliProgress.SingleBar | undefined;
  private readonly mode: 'bar' | 'lines' | 'off';
  private lastAt = 0;
  private lastLine = 0;
  private ips = 0;
  private stepMs = 0;

  constructor(private readonly opts: ProgressOptions) {
    const stream = opts.stream ?? process.stderr;
    this.mode = opts.mode === 'auto' ? (stream.isTTY ? 'bar' : 'lines') : opts.mode;
  }

  get effectiveMode(): 'bar' | 'lines' | 'off' {
    return this.mode;
  }

  onStep(e: StepEvent): void {
    if (this.mode === 'off') return;
    const now = performance.now();
    const dt = this.lastAt > 0 ? now - this.lastAt : e.timings.dPhaseMs + e.timings.gPhaseMs;
    this.lastAt = now;
    this.stepMs = this.stepMs === 0 ? dt : 0.9 * this.stepMs + 0.1 * dt;
    const r = (e.images * 1000) / Math.max(dt, 1e-3);
    this.ips = this.ips === 0 ? r : 0.9 * this.ips + 0.1 * r;
    const eta = ((e.totalSteps - e.step) * this.stepMs) / 1000;
    const values = {
      epochs: `${e.epoch + 1}/${this.opts.epochs}`,
      ips: String(Math.round(this.ips)),
      eta_s: formatDuration(eta),
      d_loss: e.d_loss.toFixed(4),
      g_loss: e.g_loss.toFixed(4),
      d_real: e.d_real.toFixed(3),
      d_fake: e.d_fake.toFixed(3),
    };
    if (this.mode === 'bar') {
      if (!this.bar) {
        this.bar = new cliProgress.SingleBar(
          {
            stream: this.opts.stream ?? process.stderr,
            format:
              'epoch {epochs} {bar} {percentage}% | step {value}/{total} | {ips} img/s | ETA {eta_s} | ' +
              'd_loss {d_loss} g_loss {g_loss} | D(x) {d_real} D(G(z)) {d_fake}',
            hideCursor: true,
            clearOnComplete: false,
            fps: 5,
          },
          cliProgress.Presets.shades_classic,
        );
        this.bar.start(e.totalSteps, e.step - 1, values);
      }
      this.bar.setTotal(e.totalSteps);
      this.bar.update(e.step, values);
      if (e.step >= e.totalSteps) this.stop();
      return;
    }
    const every = this.opts.everyMs ?? 10_000;
    if (this.lastLine === 0 || now - this.lastLine >= every || e.step >= e.totalSteps) {
      this.lastLine = now;
      this.opts.logger.info(
        {
          progress: {
            step: e.step,
            totalSteps: e.totalSteps,
            epoch: e.epoch,
            imagesPerSecond: Math.round(this.ips),
            etaSeconds: Math.round(eta),
          },
        },
        progressLine(e, this.opts.epochs, this.ips, eta),
      );
    }
  }

  /** Ends the bar (at the end of the run or on a stop), leaving its last state on screen. */
  stop(): void {
    if (this.bar) {
      this.bar.stop();
      this.bar = undefined;
    }
  }
}
