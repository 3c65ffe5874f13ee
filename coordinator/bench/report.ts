/**
 * The benchmark's report: its JSON schema (checked by `validateBenchReport`), the bandwidth model,
 * and the Markdown table.
 *
 * Bandwidth model, per training step with W workers (B = measured WebSocket payload bytes per step
 * per worker, both directions; C = the coordinator's link rate, L = a worker's link rate):
 *
 *   step ≈ compute + coordinator + max(W·B / C, B / L)
 *
 * compute = the slowest shard of each phase, summed over the two phases; coordinator = reduce +
 * Adam + encode on the coordinator (its own work; handing frames to the kernel, "send", is part of
 * the wire). The phases are sequential (gradients up, then weights
 * down), so every byte of the step crosses the coordinator's link once (W·B / C); the workers' own
 * links carry their B concurrently with each other (B / L), and the slower of the two decides.
 */
import { GRAD_DTYPES, type GradDtype } from '../../shared/dtype.js';

export const BENCH_SCHEMA = 'ganfleet-bench/3';

export interface BenchBreakdown {
  /** Σ over the two phases of the slowest shard's compute time (worker-reported). */
  compute: number;
  reduce: number;
  adam: number;
  encode: number;
  /** Handing the weights frames to every socket (ws framing and the kernel's TCP send path). */
  send: number;
  /** The rest of the step: time on the wire, worker decode/setWeights/encode, event-loop hops. */
  wireAndOther: number;
}

export interface BenchResult {
  workers: number;
  /** Distinct hosts among the workers (1 for a local run). */
  nodes: number;
  steps: number;
  imagesPerS: number;
  imagesPerSPerWorker: number;
  imagesPerSPerNode: number;
  /** imagesPerS ÷ (workers × imagesPerS with one worker); null without a one-worker run. */
  scalingEfficiency: number | null;
  stepMs: { mean: number; p50: number; p95: number };
  /** Mean per step, milliseconds. */
  breakdownMs: BenchBreakdown;
  /** Batch per step: the global batch (strong scaling) or per-worker batch × workers (weak scaling). */
  batchSize: number;
  /** reduce + adam + encode, mean per step: the coordinator's own work, the wire excluded. */
  coordinatorMs: number;
  /** The same, median over the timed steps (garbage-collection pauses move the mean). */
  coordinatorMsP50: number;
  /** CPU time of the whole coordinator process per step (user + system: ws, the kernel's TCP work, GC included). */
  coordinatorCpuMs: number;
  bytesPerStepPerWorker: number;
  /** Weights down in float32 plus gradients up in the wire dtype, both networks. */
  minBytesPerStepPerWorker: number;
  bytesRatio: number;
  /** How the measured workers reached the coordinator (shared memory on its host, Unix socket, TCP). */
  workerTransports: { shm: number; unix: number; tcp: number };
  modelStepMs: number;
  measuredOverModel: number;
}

export interface BenchReport {
  schema: typeof BENCH_SCHEMA;
  createdAt: string;
  machine: { cpus: number; cpuModel: string; node: string; platform: string; arch: string };
  settings: {
    mode: 'local' | 'attach';
    workers: number[];
    steps: number;
    warmup: number;
    batchSize: number;
    /**
     * Weak scaling: each worker's share of the batch, fixed (the global batch grows with the workers);
     * null: strong scaling.
     */
    batchPerWorker: number | null;
    gradDtype: GradDtype;
    syntheticComputeMs: number | null;
    backend: string;
    threadsPerWorker: number | null;
    /** How the workers reached the coordinator: tcp, or unix (a Unix domain socket, local mode). */
    transport: 'tcp' | 'unix';
    /** The coordinator's reduce/Adam kernels: native (native/ganfleet_reduce.c) or js. */
    coordinatorKernels: string;
    /** Link rates used by the model, Gbit/s (measured loopback TCP when not given). */
    coordinatorGbit: number;
    workerGbit: number;
    linkSource: 'flags' | 'loopback-measured';
    seed: number;
  };
  results: BenchResult[];
}

/** The model's step time (ms) for W workers and B bytes per worker per step. */
export function modelStepMs(
  computeMs: number,
  coordinatorMs: number,
  workers: number,
  bytesPerWorker: number,
  coordinatorGbit: number,
  workerGbit: number,
): number {
  const msAt = (bytes: number, gbit: number) => ((bytes * 8) / (gbit * 1e9)) * 1000;
  return (
    computeMs +
    coordinatorMs +
    Math.max(msAt(workers * bytesPerWorker, coordinatorGbit), msAt(bytesPerWorker, workerGbit))
  );
}

/** Nearest-rank percentile of `xs` (p in [0, 100]). */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

type Shape = 'number' | 'number?' | 'string' | 'int' | Shape[] | { [k: string]: Shape };

const RESULT_SHAPE: Shape = {
  workers: 'int',
  nodes: 'int',
  steps: 'int',
  imagesPerS: 'number',
  imagesPerSPerWorker: 'number',
  imagesPerSPerNode: 'number',
  scalingEfficiency: 'number?',
  stepMs: { mean: 'number', p50: 'number', p95: 'number' },
  breakdownMs: {
    compute: 'number',
    reduce: 'number',
    adam: 'number',
    encode: 'number',
    send: 'number',
    wireAndOther: 'number',
  },
  batchSize: 'int',
  coordinatorMs: 'number',
  coordinatorMsP50: 'number',
  coordinatorCpuMs: 'number',
  bytesPerStepPerWorker: 'number',
  minBytesPerStepPerWorker: 'number',
  bytesRatio: 'number',
  workerTransports: { shm: 'int', unix: 'int', tcp: 'int' },
  modelStepMs: 'number',
  measuredOverModel: 'number',
};

const REPORT_SHAPE: Shape = {
  schema: 'string',
  createdAt: 'string',
  machine: { cpus: 'int', cpuModel: 'string', node: 'string', platform: 'string', arch: 'string' },
  settings: {
    mode: 'string',
    workers: ['int'],
    steps: 'int',
    warmup: 'int',
    batchSize: 'int',
    batchPerWorker: 'number?',
    gradDtype: 'string',
    syntheticComputeMs: 'number?',
    backend: 'string',
    threadsPerWorker: 'number?',
    transport: 'string',
    coordinatorKernels: 'string',
    coordinatorGbit: 'number',
    workerGbit: 'number',
    linkSource: 'string',
    seed: 'int',
  },
  results: [RESULT_SHAPE],
};

function check(v: unknown, shape: Shape, path: string, errors: string[]): void {
  if (Array.isArray(shape)) {
    if (!Array.isArray(v)) return void errors.push(`${path}: expected an array`);
    for (const [i, x] of v.entries()) check(x, shape[0]!, `${path}[${i}]`, errors);
    return;
  }
  if (typeof shape === 'object') {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return void errors.push(`${path}: expected an object`);
    for (const [k, s] of Object.entries(shape)) check((v as Record<string, unknown>)[k], s, `${path}.${k}`, errors);
    for (const k of Object.keys(v)) if (!(k in shape)) errors.push(`${path}.${k}: unexpected field`);
    return;
  }
  if (shape === 'string') {
    if (typeof v !== 'string') errors.push(`${path}: expected a string`);
  } else if (shape === 'number?') {
    if (v !== null && (typeof v !== 'number' || !Number.isFinite(v)))
      errors.push(`${path}: expected a finite number or null`);
  } else if (typeof v !== 'number' || !Number.isFinite(v) || (shape === 'int' && !Number.isInteger(v))) {
    errors.push(`${path}: expected ${shape === 'int' ? 'an integer' : 'a finite number'}`);
  }
}

/** The ways `r` departs from the bench.json schema (empty when it conforms). */
export function validateBenchReport(r: unknown): string[] {
  const errors: string[] = [];
  check(r, REPORT_SHAPE, '$', errors);
  if (errors.length) return errors;
  const rep = r as BenchReport;
  if (rep.schema !== BENCH_SCHEMA) errors.push(`$.schema: expected ${BENCH_SCHEMA}`);
  if (!['local', 'attach'].includes(rep.settings.mode)) errors.push('$.settings.mode: expected local or attach');
  if (!['tcp', 'unix'].includes(rep.settings.transport)) errors.push('$.settings.transport: expected tcp or unix');
  if (!(GRAD_DTYPES as readonly string[]).includes(rep.settings.gradDtype))
    errors.push(`$.settings.gradDtype: expected one of ${GRAD_DTYPES.join(', ')}`);
  if (rep.results.length !== rep.settings.workers.length)
    errors.push('$.results: one result per worker count expected');
  rep.results.forEach((x, i) => {
    if (x.workers !== rep.settings.workers[i])
      errors.push(`$.results[${i}].workers: expected ${rep.settings.workers[i]}`);
    if (x.imagesPerS <= 0) errors.push(`$.results[${i}].imagesPerS: must be positive`);
    if (x.stepMs.p50 > x.stepMs.p95) errors.push(`$.results[${i}].stepMs: p50 above p95`);
  });
  return errors;
}

const f = (x: number | null, d = 0) => (x === null || !Number.isFinite(x) ? '–' : x.toFixed(d));

/** The report as a Markdown table (plus a line of settings). */
export function markdownTable(r: BenchReport): string {
  const s = r.settings;
  const batch =
    s.batchPerWorker === null
      ? `batch ${s.batchSize} (strong scaling)`
      : `batch ${s.batchPerWorker} per worker (weak scaling)`;
  const compute =
    s.syntheticComputeMs === null ? `backend ${s.backend}` : `synthetic compute ${s.syntheticComputeMs} ms`;
  const header = [
    'workers',
    'batch',
    'images/s',
    'per worker',
    'per node',
    'scaling',
    'step p50 ms',
    'p95 ms',
    'compute',
    'reduce',
    'Adam',
    'encode',
    'coord. ms (p50)',
    'coord. CPU ms',
    'send',
    'wire+other',
    'MB/step/worker',
    '× min',
    'model ms',
    'measured/model',
  ];
  const row = (cells: string[]) => `| ${cells.join(' | ')} |`;
  const lines = [
    `ganfleet bench — ${s.mode}, ${s.steps} timed steps after ${s.warmup} warm-up, ${batch}, ` +
      `grads ${s.gradDtype}, ${compute}, ${s.transport === 'unix' ? 'Unix socket' : 'TCP'}, ` +
      `${s.coordinatorKernels} coordinator kernels; model links: coordinator ${f(s.coordinatorGbit, 1)} Gbit/s, ` +
      `worker ${f(s.workerGbit, 1)} Gbit/s (${s.linkSource}); ${r.machine.cpus} × ${r.machine.cpuModel}`,
    '',
    row(header),
    `|${header.map(() => '--:').join('|')}|`,
  ];
  for (const x of r.results) {
    const b = x.breakdownMs;
    lines.push(
      row([
        String(x.workers),
        String(x.batchSize),
        f(x.imagesPerS),
        f(x.imagesPerSPerWorker),
        f(x.imagesPerSPerNode),
        x.scalingEfficiency === null ? '–' : `${f(x.scalingEfficiency * 100)}%`,
        f(x.stepMs.p50, 1),
        f(x.stepMs.p95, 1),
        f(b.compute, 1),
        f(b.reduce, 2),
        f(b.adam, 2),
        f(b.encode, 2),
        `${f(x.coordinatorMs, 2)} (${f(x.coordinatorMsP50, 2)})`,
        f(x.coordinatorCpuMs, 1),
        f(b.send, 2),
        f(b.wireAndOther, 1),
        f(x.bytesPerStepPerWorker / 1e6, 3),
        f(x.bytesRatio, 4),
        f(x.modelStepMs, 1),
        f(x.measuredOverModel, 2),
      ]),
    );
  }
  return lines.join('\n') + '\n';
}
