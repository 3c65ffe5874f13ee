/**
 * The coordinator's evaluation thread (a worker_thread started by EvalObserver): it sets up the
 * evaluator once (classifier, reference statistics, the run's fixed noise), then scores each
 * generator it is sent, one at a time, off the training loop's thread. OpenBLAS runs on one
 * thread here, so an evaluation takes one core for its duration.
 */
import { readFileSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import type { Normalization } from '../../shared/pixels.js';
import type { EvalScores } from './evaluator.js';
import { setupEvaluator } from './setup.js';

export interface ThreadInit {
  dataDir?: string;
  classifierPath?: string;
  native?: boolean;
  seed: number;
  samples: number;
  normalize: Normalization;
}

export type ThreadRequest = { type: 'eval'; id: number; gen: Float32Array };

export type ThreadReply =
  | {
      type: 'ready';
      ms: number;
      cpuMs: number | null;
      floor: EvalScores;
      native: boolean;
      note: string;
      reference: 'shipped' | 'fitted';
    }
  | { type: 'result'; id: number; scores: EvalScores; ms: number; cpuMs: number | null }
  | { type: 'error'; id?: number; message: string };

/**
 * CPU time of this thread so far (user + system, ms), from Linux's /proc/thread-self/stat (10 ms
 * ticks); null elsewhere. With one OpenBLAS thread, all of an evaluation's work runs on this thread.
 */
export function threadCpuMs(): number | null {
  try {
    const stat = readFileSync('/proc/thread-self/stat', 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 14 and 15 of stat(5) (utime, stime), counted from field 3 (the state) here.
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
  } catch {
    return null;
  }
}

const port = parentPort!;
const init = workerData as ThreadInit;
const post = (m: ThreadReply) => port.postMessage(m);

const t0 = performance.now();
const c0 = threadCpuMs();
const since = (c: number | null) => {
  const now = threadCpuMs();
  return c === null || now === null ? null : now - c;
};
setupEvaluator({
  dataDir: init.dataDir,
  classifierPath: init.classifierPath,
  native: init.native,
  capacity: init.samples,
})
  .then((s) => {
    // The run's noise now, so that the first epoch's evaluation does not pay for it.
    s.evaluator.evalNoise(init.seed, init.samples);
    post({
      type: 'ready',
      ms: performance.now() - t0,
      cpuMs: since(c0),
      floor: s.floor,
      native: s.native,
      note: s.note,
      reference: s.reference,
    });
    port.on('message', (m: ThreadRequest) => {
      const t = performance.now();
      const c = threadCpuMs();
      try {
        const scores = s.evaluator.generator(m.gen, init);
        post({ type: 'result', id: m.id, scores, ms: performance.now() - t, cpuMs: since(c) });
      } catch (err) {
        post({ type: 'error', id: m.id, message: (err as Error).message });
      }
    });
  })
  .catch((err: unknown) => {
    post({ type: 'error', message: (err as Error).message });
  });
