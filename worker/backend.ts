/**
 * Chooses the worker's tfjs backend: the best one this machine can load, or the one asked for.
 * Order for `auto`: tfjs-node-gpu (CUDA), webgpu on a GPU (Dawn over Vulkan, worker/webgpu/; a
 * CPU-emulated adapter such as SwiftShader only when `webgpu` is asked for by name), tfjs-node
 * (libtensorflow on CPU), wasm (XNNPACK, SIMD), then the pure-JS cpu backend. All of them share the
 * one tfjs-core 4.22.0 that ganfleet pins, so the training step does not care which one runs it.
 *
 * On wasm and cpu the matrix products go to ganfleet's optional OpenBLAS kernel pack
 * (worker/kernels/native-gemm.ts) where it was built at install; without it, wasm runs XNNPACK
 * with its own thread pool (the threaded-SIMD binary, started from a real worker-script file,
 * since Node's worker_threads refuse the blob: URL tfjs-wasm makes for it).
 */
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import os, { availableParallelism, tmpdir } from 'node:os';
import { existsSync, mkdirSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { BackendError } from '../shared/errors.js';
import {
  loadBlasAddon,
  nativeLoadError,
  registerNativeGemm,
  setNativeThreads,
  unregisterNativeGemm,
  type NativeBackend,
} from './kernels/native-gemm.js';
import { loadWebgpu, releaseWebgpu } from './webgpu/backend.js';
import { warmUpTrainStep } from './webgpu/warm-up.js';

export type BackendChoice = 'auto' | 'tensorflow' | 'webgpu' | 'wasm' | 'cpu';
export const BACKEND_CHOICES: readonly BackendChoice[] = ['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu'];

/** How the chosen backend computes. */
export interface BackendOptions {
  /**
   * Threads for the worker's compute: OpenBLAS's with the native kernels, XNNPACK's pool on
   * wasm without them. Default: the cores this process may use (`os.availableParallelism()`).
   * On wasm it takes effect on the first load in a process only (tfjs cannot restart the module).
   */
  threads?: number;
  /** Use the native OpenBLAS kernels where they were built (default true). */
  native?: boolean;
  /**
   * On webgpu, compile the training step's GPU programs before returning (worker/webgpu/warm-up.ts),
   * so that a worker's first shards are not slow; default false (tests and benchmarks warm up their
   * own shapes).
   */
  warmUp?: boolean;
}

/** What a worker reports to the coordinator about its compute. */
export interface BackendInfo {
  /** tfjs backend name: `tensorflow`, `webgpu`, `wasm` or `cpu`. */
  readonly name: string;
  /**
   * Human-readable device, e.g. `cuda (tfjs-node-gpu)`, `wasm simd + openblas, 2 threads`, `js`; on
   * webgpu the adapter's vendor, architecture and driver, e.g. `google swiftshader (SwiftShader driver 5.0.0),
   * cpu emulation`.
   */
  readonly device: string;
  /** Why each better backend was passed over (for the log), and why the native kernels are off. */
  readonly skipped: readonly string[];
  /** Compute threads in use, where ganfleet sets them (wasm, cpu). */
  readonly threads?: number;
  /** Whether the matrix products run on the native OpenBLAS kernels. */
  readonly native?: boolean;
}

interface Loaded {
  device: string;
  threads?: number;
  native?: boolean;
  notes?: string[];
}

type Loader = (opts: Required<BackendOptions>) => Promise<Loaded>;

async function loadTensorflow(pkg: '@tensorflow/tfjs-node-gpu' | '@tensorflow/tfjs-node'): Promise<Loaded> {
  // Imported by name at run time: these optional packages are absent where libtensorflow cannot be installed.
  await import(pkg);
  if (!(await tf.setBackend('tensorflow'))) throw new Error('backend "tensorflow" did not initialise');
  return { device: pkg === '@tensorflow/tfjs-node-gpu' ? 'cuda (tfjs-node-gpu)' : 'cpu (tfjs-node, libtensorflow)' };
}

/** Native kernels for a js/wasm backend, when wanted and built; returns a note when they are off. */
function useNative(backend: NativeBackend, opts: Required<BackendOptions>): { native: boolean; note?: string } {
  if (!opts.native) {
    unregisterNativeGemm(backend);
    return { native: false };
  }
  if (loadBlasAddon() === null) return { native: false, note: `native kernels: ${nativeLoadError()}` };
  setNativeThreads(opts.threads);
  return { native: registerNativeGemm(backend) };
}

/** The wasm module's state in this process: tfjs initialises it once. */
let wasmThreads: number | undefined;

const THREADED_IMPORT =
  'if(typeof e.data.urlOrBlob=="string"){importScripts(e.data.urlOrBlob)}else{' +
  'var objectUrl=URL.createObjectURL(e.data.urlOrBlob);importScripts(objectUrl);URL.revokeObjectURL(objectUrl)}';

/**
 * Writes tfjs-wasm's pthread worker script to a file, changed to load the threaded module's
 * glue code from its file in node_modules rather than from the Blob tfjs passes it.
 */
function threadedWorkerScript(): string {
  const require = createRequire(import.meta.url);
  const base = '@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd';
  const mainJs = require.resolve(`${base}.js`);
  const { wasmWorkerContents } = require(`${base}.worker.js`) as { wasmWorkerContents: string };
  if (!wasmWorkerContents.includes(THREADED_IMPORT)) throw new Error('unrecognised tfjs-wasm worker script');
  // As tfjs does for its blob: the template literal turned the script's "\n" escapes into newlines.
  const script = wasmWorkerContents
    .replace(THREADED_IMPORT, `importScripts(${JSON.stringify(mainJs)});`)
    .replace(/\n/g, '\\n');
  const hash = createHash('sha256').update(script).digest('hex').slice(0, 16);
  const dir = join(tmpdir(), 'ganfleet-wasm');
  const path = join(dir, `tfjs-wasm-threaded-simd-${hash}.worker.cjs`);
  if (!existsSync(path)) {
    mkdirSync(dir, { recursive: true });
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, script);
    renameSync(tmp, path);
  }
  return path;
}

/** Emscripten's pthread bookkeeping, as much of it as ganfleet touches. */
interface PThreadPool {
  unusedWorkers?: Array<{ unref?: () => void }>;
  runningWorkers?: Array<{ unref?: () => void }>;
}

/** Starts the threaded-SIMD binary with `threads` XNNPACK threads; returns the count XNNPACK uses. */
async function initThreadedWasm(threads: number): Promise<number> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  const workerPath = threadedWorkerScript();
  wasm.setThreadsCount(threads);
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  // tfjs-wasm hands Emscripten a blob: URL for the pthread worker; Node's worker_threads need a file.
  const createObjectURL = URL.createObjectURL;
  URL.createObjectURL = (obj: Blob) =>
    obj instanceof Blob && obj.type === 'application/javascript' ? workerPath : createObjectURL.call(URL, obj);
  // The module caps XNNPACK's pool at half the logical cores (it assumes 2 hyper-threads per core),
  // read from os.cpus() while it starts: 1 thread on a 2-core machine whatever setThreadsCount says.
  // For that moment it is shown 2 × threads cores, so the count asked for is the count used.
  const cpus = os.cpus;
  os.cpus = () => {
    const real = cpus.call(os);
    const model = real[0] ?? { model: 'unknown', speed: 0, times: { user: 0, nice: 0, sys: 0, idle: 0, irq: 0 } };
    return Array.from({ length: Math.max(real.length, 2 * threads) }, (_, i) => real[i] ?? model);
  };
  try {
    if (!(await tf.setBackend('wasm'))) throw new Error('threaded wasm did not initialise');
  } finally {
    URL.createObjectURL = createObjectURL;
    os.cpus = cpus;
  }
  // The pthread workers (a pool of 8, XNNPACK's threads among them) would keep the process alive
  // after its work is done; they are helpers, not work.
  const pthread = (tf.backend() as unknown as { wasm?: { PThread?: PThreadPool } }).wasm?.PThread;
  for (const w of [...(pthread?.unusedWorkers ?? []), ...(pthread?.runningWorkers ?? [])]) w.unref?.();
  return wasm.getThreadsCount();
}

async function loadWasm(opts: Required<BackendOptions>): Promise<Loaded> {
  await import('@tensorflow/tfjs-backend-wasm');
  const notes: string[] = [];
  // Not tf.findBackend: it would start the module with whatever flags are set.
  const started = (tf.engine() as unknown as { registry: Record<string, unknown> }).registry['wasm'] !== undefined;
  if (!started) {
    // XNNPACK's thread pool only pays off when XNNPACK does the products; with the native kernels
    // OpenBLAS has the threads and the single-threaded binary runs the rest.
    const wantThreads = opts.threads > 1 && !(opts.native && loadBlasAddon() !== null);
    wasmThreads = 1;
    if (wantThreads) {
      try {
        wasmThreads = await initThreadedWasm(opts.threads);
        if (wasmThreads !== opts.threads) notes.push(`threaded wasm: ${wasmThreads} threads, not ${opts.threads}`);
      } catch (err) {
        notes.push(`threaded wasm: ${reason(err)}`);
      }
    }
    if (wasmThreads === 1) {
      tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
      if (!(await tf.setBackend('wasm'))) throw new Error('backend "wasm" did not initialise');
    }
  } else if (!(await tf.setBackend('wasm'))) {
    throw new Error('backend "wasm" did not initialise');
  }
  const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
  const { native, note } = useNative('wasm', opts);
  if (note !== undefined) notes.push(note);
  const threads = native ? opts.threads : (wasmThreads ?? 1);
  const kind = `${simd ? 'wasm simd' : 'wasm'}${native ? ' + openblas' : ''}`;
  const device = `${kind}, ${threads} thread${threads === 1 ? '' : 's'}`;
  return { device, threads, native, notes };
}

async function loadCpu(opts: Required<BackendOptions>): Promise<Loaded> {
  await import('@tensorflow/tfjs-backend-cpu');
  if (!(await tf.setBackend('cpu'))) throw new Error('backend "cpu" did not initialise');
  // The cpu backend prints an advert for tfjs-node on first use; ganfleet logs its own, more
  // precise line (which backends were skipped and why), so the advert is switched off.
  (tf.backend() as unknown as { firstUse: boolean }).firstUse = false;
  const { native, note } = useNative('cpu', opts);
  const threads = native ? opts.threads : 1;
  return {
    device: native ? `js + openblas, ${threads} thread${threads === 1 ? '' : 's'}` : 'js',
    threads,
    native,
    notes: note === undefined ? [] : [note],
  };
}

const TFJS_NODE_GPU: [string, Loader] = [
  '@tensorflow/tfjs-node-gpu',
  () => loadTensorflow('@tensorflow/tfjs-node-gpu'),
];
const TFJS_NODE: [string, Loader] = ['@tensorflow/tfjs-node', () => loadTensorflow('@tensorflow/tfjs-node')];
/** By name, any adapter Dawn offers; in `auto`, a GPU only (CPU emulation is slower than wasm). */
const webgpu = (allowSoftware: boolean): [string, Loader] => [
  'webgpu',
  async (opts) => {
    // Without a GPU's device node Dawn could only find an emulator, and says so loudly on stderr.
    if (!allowSoftware && !hasGpuNode())
      throw new Error('no GPU device node (/dev/dri/renderD*, /dev/nvidia*, /dev/dxg)');
    const { device } = await loadWebgpu(allowSoftware);
    if (opts.warmUp) warmUpTrainStep();
    return { device };
  },
];

/** Whether this host shows a GPU to processes (Linux device nodes; elsewhere: assume so). */
function hasGpuNode(): boolean {
  if (process.platform !== 'linux') return true;
  const dri = existsSync('/dev/dri') ? readdirSync('/dev/dri').some((f) => f.startsWith('renderD')) : false;
  return dri || existsSync('/dev/nvidia0') || existsSync('/dev/dxg');
}

const WASM: [string, Loader] = ['@tensorflow/tfjs-backend-wasm', loadWasm];
const CPU: [string, Loader] = ['@tensorflow/tfjs-backend-cpu', loadCpu];

const CANDIDATES: Record<BackendChoice, Array<[string, Loader]>> = {
  auto: [TFJS_NODE_GPU, webgpu(false), TFJS_NODE, WASM, CPU],
  tensorflow: [TFJS_NODE_GPU, TFJS_NODE],
  webgpu: [webgpu(true)],
  wasm: [WASM],
  cpu: [CPU],
};

function reason(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.split('\n')[0]!.slice(0, 200);
}

/** The cores this process may use (CPU affinity included). */
export function defaultThreads(): number {
  return Math.max(1, availableParallelism());
}

/**
 * Loads a backend and makes it tfjs's current one. With `auto` it walks the preference order and
 * records why each better backend was skipped; with a named backend it fails with a
 * `BackendError` that says why that backend cannot load.
 */
export async function selectBackend(choice: BackendChoice, options: BackendOptions = {}): Promise<BackendInfo> {
  const threads = options.threads ?? defaultThreads();
  if (!Number.isInteger(threads) || threads < 1)
    throw new BackendError(`threads must be a positive integer, got ${options.threads}`);
  const opts: Required<BackendOptions> = { threads, native: options.native ?? true, warmUp: options.warmUp ?? false };
  const order = CANDIDATES[choice];
  const skipped: string[] = [];
  for (const [pkg, load] of order) {
    try {
      const loaded = await load(opts);
      skipped.push(...(loaded.notes ?? []));
      const info: BackendInfo = { name: tf.getBackend(), device: loaded.device, skipped };
      return {
        ...info,
        ...(loaded.threads === undefined ? {} : { threads: loaded.threads }),
        ...(loaded.native === undefined ? {} : { native: loaded.native }),
      };
    } catch (err) {
      skipped.push(`${pkg}: ${reason(err)}`);
    }
  }
  throw new BackendError(`cannot load backend "${choice}": ${skipped.join('; ')}`);
}

/**
 * Releases what a backend holds outside tfjs's tensors: today the webgpu device (destroyed; it is
 * also destroyed at process exit). The next `selectBackend('webgpu')` starts a new one.
 */
export function releaseBackends(): void {
  releaseWebgpu();
}
