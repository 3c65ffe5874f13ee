/**
 * Sample quality during a run: every `every` epochs (and at the run's last step) the generator's
 * weights are copied and sent to the evaluation thread (thread.ts); the training loop goes on at
 * once. Each score comes back as a `metrics.jsonl` line of its own type, a log line, and an
 * `onEval` call to the listeners (dashboard, Prometheus). A failing evaluation is logged and never
 * stops training.
 *
 * The metrics.jsonl line: {"type":"eval","step":S,"epoch":E,"fd":…,"classifier_score":…,"digits":…,
 * "digit_shares":[…10],"samples":N,"eval_ms":…,"eval_cpu_ms":…}, E being the epochs completed (the
 * epoch of samples/epoch-NNN.png drawn from the same weights).
 */
import { appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Logger } from '../../shared/log.js';
import type { Normalization } from '../../shared/pixels.js';
import type { EpochEvent, RunStartEvent, TrainerObserver } from '../events.js';
import type { EvalScores } from './evaluator.js';
import type { ThreadInit, ThreadReply, ThreadRequest } from './thread.js';

/** One evaluation as logged in metrics.jsonl. */
export interface EvalRecord extends EvalScores {
  type: 'eval';
  step: number;
  /** Epochs completed. */
  epoch: number;
  /** Wall time the evaluation thread spent on it (generator + classifier + statistics). */
  eval_ms: number;
  /** CPU time of the evaluation thread for it (Linux; null elsewhere). */
  eval_cpu_ms: number | null;
}

/** Whoever shows the scores. */
export interface EvalListener {
  onEval?(r: EvalRecord): void;
  /** The floor (real training images against the test set), once, when the evaluator is ready. */
  onEvalFloor?(floor: EvalScores): void;
}

export interface EvalObserverOptions {
  /** Evaluate every this many epochs (the run's last step is always evaluated). */
  every: number;
  samples: number;
  seed: number;
  normalize: Normalization;
  outDir: string;
  logger: Logger;
  dataDir?: string;
  classifierPath?: string;
  native?: boolean;
}

/** "FD 12.3, classifier score 8.91, digits ≥ 5 %: 10/10". */
export function describeScores(s: EvalScores): string {
  return `FD ${s.fd.toFixed(2)}, classifier score ${s.classifier_score.toFixed(2)}, digits ≥ 5 %: ${s.digits}/10`;
}

export class EvalObserver implements TrainerObserver {
  readonly listeners: EvalListener[] = [];
  /** Every score of this process's run, in order. */
  readonly records: EvalRecord[] = [];
  floor: EvalScores | undefined;
  private worker: Worker | undefined;
  private readonly log: Logger;
  private totalSteps = Number.POSITIVE_INFINITY;
  private nextId = 0;
  private readonly pending = new Map<number, { step: number; epoch: number }>();
  private idle: Array<() => void> = [];
  /** Appends to metrics.jsonl, in order. */
  private writes: Promise<void> = Promise.resolve();
  private failed = false;

  constructor(private readonly o: EvalObserverOptions) {
    this.log = o.logger.child({ component: 'eval' });
  }

  /** Starts the evaluation thread (it sets up while the workers connect). */
  start(): void {
    const init: ThreadInit = {
      dataDir: this.o.dataDir,
      classifierPath: this.o.classifierPath,
      native: this.o.native,
      seed: this.o.seed,
      samples: this.o.samples,
      normalize: this.o.normalize,
    };
    const w = new Worker(new URL('./thread.js', import.meta.url), { workerData: init });
    this.worker = w;
    w.on('message', (m: ThreadReply) => this.onReply(m));
    w.on('error', (err) => this.fail(`evaluation thread failed: ${err.message}`));
    w.on('exit', (code) => {
      if (this.worker === w && code !== 0) this.fail(`evaluation thread exited with code ${code}`);
    });
  }

  private fail(message: string): void {
    if (!this.failed) this.log.warn({ err: message }, `sample-quality evaluation off for this run: ${message}`);
    this.failed = true;
    this.pending.clear();
    this.settle();
  }

  private settle(): void {
    if (this.pending.size > 0) return;
    const waiting = this.idle;
    this.idle = [];
    for (const resolve of waiting) resolve();
  }

  private onReply(m: ThreadReply): void {
    if (m.type === 'ready') {
      this.floor = m.floor;
      this.log.info(
        { floor: m.floor, setupMs: Math.round(m.ms), setupCpuMs: m.cpuMs, native: m.native, reference: m.reference },
        `sample quality every ${this.o.every} epoch(s) on ${this.o.samples} samples` +
          `${m.native ? '' : ` (JavaScript products: ${m.note})`}; ` +
          `floor (real training images against the test set): ${describeScores(m.floor)}`,
      );
      for (const l of this.listeners) l.onEvalFloor?.(m.floor);
      return;
    }
    if (m.type === 'error' && m.id === undefined) {
      this.fail(m.message);
      return;
    }
    const at = this.pending.get(m.id!);
    if (!at) return;
    this.pending.delete(m.id!);
    if (m.type === 'error') {
      this.log.warn({ err: m.message, step: at.step }, `sample-quality evaluation of epoch ${at.epoch} failed`);
    } else {
      const rec: EvalRecord = {
        type: 'eval',
        step: at.step,
        epoch: at.epoch,
        ...m.scores,
        eval_ms: m.ms,
        eval_cpu_ms: m.cpuMs,
      };
      this.records.push(rec);
      this.log.info(rec, `epoch ${at.epoch} sample quality: ${describeScores(m.scores)} (${Math.round(m.ms)} ms)`);
      for (const l of this.listeners) {
        try {
          l.onEval?.(rec);
        } catch (err) {
          this.log.warn({ err: (err as Error).message }, 'an evaluation listener failed');
        }
      }
      const line = `${JSON.stringify(rec)}\n`;
      this.writes = this.writes
        .then(() => appendFile(join(this.o.outDir, 'metrics.jsonl'), line))
        .catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'could not log a sample-quality line'));
    }
    this.settle();
  }

  onRunStart(e: RunStartEvent): void {
    this.totalSteps = e.totalSteps;
  }

  onEpochEnd(e: EpochEvent): void {
    if (!this.worker || this.failed) return;
    if (e.epoch % this.o.every !== 0 && !e.partial && e.step < this.totalSteps) return;
    const id = this.nextId++;
    this.pending.set(id, { step: e.step, epoch: e.epoch });
    const gen = Float32Array.from(e.gen);
    this.worker.postMessage({ type: 'eval', id, gen } satisfies ThreadRequest, [gen.buffer]);
  }

  /** Resolves once every evaluation asked for so far is logged (or has failed). */
  async drain(): Promise<void> {
    if (this.pending.size > 0) await new Promise<void>((resolve) => this.idle.push(resolve));
    await this.writes;
  }

  /** Waits for the evaluations in flight, then stops the thread. */
  async close(): Promise<void> {
    await this.drain();
    const w = this.worker;
    this.worker = undefined;
    await w?.terminate();
  }
}
