/**
 * Chooses the worker's tfjs backend: the best one this machine can load, or the one asked for.
 * Order for `auto`: tfjs-node-gpu (CUDA), tfjs-node (libtensorflow on CPU), wasm (XNNPACK, SIMD),
 * then the pure-JS cpu backend. All of them share the one tfjs-core 4.22.0 that ganfleet pins, so
 * the training step does not care which one runs it.
 */
import * as tf from '@tensorflow/tfjs-core';
import { BackendError } from '../shared/errors.js';

export type BackendChoice = 'auto' | 'tensorflow' | 'wasm' | 'cpu';
export const BACKEND_CHOICES: readonly BackendChoice[] = ['auto', 'tensorflow', 'wasm', 'cpu'];

/** What a worker reports to the coordinator about its compute. */
export interface BackendInfo {
  /** tfjs backend name: `tensorflow`, `wasm` or `cpu`. */
  readonly name: string;
  /** Human-readable device, e.g. `cuda (tfjs-node-gpu)`, `wasm simd`, `js`. */
  readonly device: string;
  /** Why each better backend was passed over (for the log). */
  readonly skipped: readonly string[];
}

type Loader = () => Promise<string>;

async function loadTensorflow(pkg: '@tensorflow/tfjs-node-gpu' | '@tensorflow/tfjs-node'): Promise<string> {
  // Imported by name at run time: these optional packages are absent where libtensorflow cannot be installed.
  await import(pkg);
  if (!(await tf.setBackend('tensorflow'))) throw new Error('backend "tensorflow" did not initialise');
  return pkg === '@tensorflow/tfjs-node-gpu' ? 'cuda (tfjs-node-gpu)' : 'cpu (tfjs-node, libtensorflow)';
}

async function loadWasm(): Promise<string> {
  await import('@tensorflow/tfjs-backend-wasm');
  // The threaded binary needs a worker script that Node cannot start from a blob: URL; the
  // single-threaded SIMD binary works everywhere Node does.
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  if (!(await tf.setBackend('wasm'))) throw new Error('backend "wasm" did not initialise');
  const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
  return simd ? 'wasm simd' : 'wasm';
}

async function loadCpu(): Promise<string> {
  await import('@tensorflow/tfjs-backend-cpu');
  if (!(await tf.setBackend('cpu'))) throw new Error('backend "cpu" did not initialise');
  // The cpu backend prints an advert for tfjs-node on first use; ganfleet logs its own, more
  // precise line (which backends were skipped and why), so the advert is switched off.
  (tf.backend() as unknown as { firstUse: boolean }).firstUse = false;
  return 'js';
}

const CANDIDATES: Record<Exclude<BackendChoice, 'auto'>, Array<[string, Loader]>> = {
  tensorflow: [
    ['@tensorflow/tfjs-node-gpu', () => loadTensorflow('@tensorflow/tfjs-node-gpu')],
    ['@tensorflow/tfjs-node', () => loadTensorflow('@tensorflow/tfjs-node')],
  ],
  wasm: [['@tensorflow/tfjs-backend-wasm', loadWasm]],
  cpu: [['@tensorflow/tfjs-backend-cpu', loadCpu]],
};

function reason(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.split('\n')[0]!.slice(0, 200);
}

/**
 * Loads a backend and makes it tfjs's current one. With `auto` it walks the preference order and
 * records why each better backend was skipped; with a named backend it fails with a
 * `BackendError` that says why that backend cannot load.
 */
export async function selectBackend(choice: BackendChoice): Promise<BackendInfo> {
  const order: Array<[string, Loader]> =
    choice === 'auto' ? [...CANDIDATES.tensorflow, ...CANDIDATES.wasm, ...CANDIDATES.cpu] : CANDIDATES[choice];
  const skipped: string[] = [];
  for (const [pkg, load] of order) {
    try {
      const device = await load();
      return { name: tf.getBackend(), device, skipped };
    } catch (err) {
      skipped.push(`${pkg}: ${reason(err)}`);
    }
  }
  throw new BackendError(`cannot load backend "${choice}": ${skipped.join('; ')}`);
}
