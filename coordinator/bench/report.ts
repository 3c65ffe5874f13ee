/**
 * The benchmark's report: its JSON schema (checked by `validateBenchReport`), the bandwidth model,
 * and the Markdown table.
 *
 * Bandwidth model, per training step with W workers taking shards and R ≥ W workers receiving the
 * weights (attach mode: every connected worker, spare ones too), C = the coordinator's link rate,
 * L = the slowest link among the W workers, U = gradient bytes a worker sends per step, D = weight
 * bytes a worker receives per step (both measured WebSocket payload):
 *
 *   step ≈ compute + coordinator + max(W·U / C, U / L) + max(R·D / C, D / L) + overhead
 *   (C and L capped at H, see below)
 *
 * compute = the slowest shard of each phase, summed over the two phases; coordinator = reduce +
 * Adam + encode on the coordinator (its own work; handing frames to the kernel, "send", is part of
 * the wire). The phases are sequential and within a phase the gradients go up before the weights
 * come down, so the two directions add: going up, every worker's U crosses the coordinator's link
 * (W·U / C) while each worker's own link carries its U concurrently with the others' (U / L), and
 * the slower of the two decides; coming down, the same with R receivers. With R = W (every
 * receiver takes shards) this is docs/benchmarks.md's compute + coordinator + max(W·B / C, B / L), B = U + D.
 *
 * Two terms for what the links alone do not explain, both 0 unless given:
 *
 * - H, the rate at which the hosts themselves can move bytes (`--host-gbit`): every link rate above
 *   is taken as H (C and L above become min(C, H) and min(L, H)). Real hosts move bytes far faster
 *   than their NICs; the hosts of deploy/netns/cluster.sh share one machine's cores, whose
 *   host-to-host TCP rate (measured) can be below the links it shapes: steps at such rates are bound
 *   by the machine, not by the links.
 * - overhead (`--overhead-ms`): per-step time that does not shrink with faster links: several
 *   messages a phase, each with ws framing and event-loop hops (wake-ups) on both ends. Measured, not
 *   modelled: deploy/netns/cluster.sh runs the same segments with unshaped links first (links = H)
 *   and passes each segment's measured step − model as the overhead.
 */
import { GRAD_DTYPES, type GradDtype } from '../../shared/dtype.js';
import { piecesFor } from '../../shared/slices.js';

export const BENCH_SCHEMA = 'ganfleet-bench/5';

/** How totals travelled in a segment (coordinator/topology.ts): the coordinator's fan-out and the hops up. */
export interface BenchShape {
  kind: 'star' | 'slices';
  /** Links into the coordinator for totals: W for a star, the relays for slices. */
  fanOut: number;
  /** Hops from a worker's total to the coordinator: 1 for a star, 2 through a relay. */
  depth: number;
}

/** Bytes per step each way on one link. */
export interface LinkBytes {
  in: number;
  out: number;
}

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
  /** Connected workers the weights went to (≥ workers: in attach mode spare workers receive them too). */
  receivers: number;
  /** Gradient payload bytes a worker sent per step (U in the model). */
  bytesUpPerWorker: number;
  /** Weights payload bytes a worker received per step (D in the model). */
  bytesDownPerReceiver: number;
  /** bytesUpPerWorker + bytesDownPerReceiver. */
  bytesPerStepPerWorker: number;
  /** Weights down in float32 plus gradients up in the wire dtype, both networks. */
  minBytesPerStepPerWorker: number;
  bytesRatio: number;
  /** How the measured workers reached the coordinator (shared memory on its host, Unix socket, TCP). */
  workerTransports: { shm: number; unix: number; tcp: number };
  shape: BenchShape;
  /** Measured bytes per step on the coordinator's link (its sockets; shared memory not counted). */
  coordinatorLink: LinkBytes;
  /** Measured bytes per step on the busiest worker's link (its socket and its peer links). */
  busiestWorkerLink: LinkBytes;
  /** What the shape needs per step on those two links (shapeBytes): the measured ones ÷ these ≈ 1. */
  shapeNeeds: { coordinator: LinkBytes; worker: LinkBytes };
  /** The step time of a ring all-reduce (DDP) over the same worker links, same compute and overhead. */
  ringModelStepMs: number;
  /** The worker link rate this row's model used: the slowest among its workers' links (Gbit/s). */
  modelWorkerGbit: number;
  /** The model's overhead term for this row (ms; measured with unshaped links, 0 when not given). */
  overheadMs: number;
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
    /**
     * One rate for every worker, or one per worker in the order they join (the N-worker row's model
     * takes the slowest of the first N).
     */
    workerGbit: number[];
    /** H: the rate the hosts themselves move bytes at, capping both links in the model; null: no cap. */
    hostGbit: number | null;
    linkSource: 'flags' | 'loopback-measured';
    seed: number;
  };
  results: BenchResult[];
}

export interface ModelInput {
  computeMs: number;
  coordinatorMs: number;
  /** W: workers that send gradients. */
  workers: number;
  /** R: workers that receive the weights (default W). */
  receivers?: number;
  /** U: gradient bytes per worker per step. */
  bytesUp: number;
  /** D: weights bytes per receiver per step. */
  bytesDown: number;
  coordinatorGbit: number;
  /** L: the slowest worker link. */
  workerGbit: number;
  /** H: link rates above it count as H (undefined: no cap). */
  hostGbit?: number;
  overheadMs?: number;
}

/** The model's step time (ms); see the formula at the top of this file. */
export function modelStepMs(m: ModelInput): number {
  const receivers = m.receivers ?? m.workers;
  const c = Math.min(m.coordinatorGbit, m.hostGbit ?? Infinity);
  const l = Math.min(m.workerGbit, m.hostGbit ?? Infinity);
  return (
    m.computeMs +
    m.coordinatorMs +
    Math.max(msAt(m.workers * m.bytesUp, c), msAt(m.bytesUp, l)) +
    Math.max(msAt(receivers * m.bytesDown, c), msAt(m.bytesDown, l)) +
    (m.overheadMs ?? 0)
  );
}

const msAt = (bytes: number, gbit: number) => ((bytes * 8) / (gbit * 1e9)) * 1000;

/**
 * What a shape needs on the coordinator's link and on the busiest worker's, per step, with W
 * workers, `relays` relays (slices), both networks' weights in `weights` bytes and their gradients
 * in `up` bytes. Star: each worker sends its total and gets the weights, the coordinator carries W
 * of each. Slices (k relays): a relay sends the k − 1 other relays their slices of its total (G
 * (k − 1)/k), its own slice up (G/k) and its slice of the weights to the W − 1 others (D (W − 1)/k);
 * it receives the W − 1 others' contributions (G (W − 1)/k), its slice of the weights and the k − 1
 * other slices (D): with G = D, (W + k − 1)/k networks each way; the coordinator carries one network
 * each way. Under relays G and D are what the wire carries (narrow lanes, weights as steps), which
 * the bench reads off the coordinator's link: exactly one of each crosses it.
 */
export function shapeBytes(
  shape: BenchShape,
  workers: number,
  receivers: number,
  weights: number,
  up: number,
): { coordinator: LinkBytes; worker: LinkBytes } {
  if (shape.kind === 'star')
    return { coordinator: { in: workers * up, out: receivers * weights }, worker: { in: weights, out: up } };
  const k = shape.fanOut;
  return {
    coordinator: { in: up, out: weights },
    worker: { in: (up * (workers - 1)) / k + weights, out: up + (weights * (workers - 1)) / k },
  };
}

/**
 * The slices shape's step: the links carry their bytes up and down at once (pieces overlap the two
 * ways), so the busiest direction of the busiest link decides, plus the first piece's way through
 * (a contribution, its total up, its weights on: three piece transfers). Measured bytes, as above.
 */
export function slicesModelStepMs(m: {
  computeMs: number;
  coordinatorMs: number;
  relays: number;
  coordinator: LinkBytes;
  worker: LinkBytes;
  weights: number;
  coordinatorGbit: number;
  workerGbit: number;
  hostGbit?: number;
  overheadMs?: number;
}): number {
  const c = Math.min(m.coordinatorGbit, m.hostGbit ?? Infinity);
  const l = Math.min(m.workerGbit, m.hostGbit ?? Infinity);
  const wire = Math.max(
    msAt(Math.max(m.coordinator.in, m.coordinator.out), c),
    msAt(Math.max(m.worker.in, m.worker.out), l),
  );
  const pieces = piecesFor(m.weights / 4 / 2, m.relays);
  const fill = msAt((3 * m.weights) / (m.relays * pieces), l);
  return m.computeMs + m.coordinatorMs + wire + fill + (m.overheadMs ?? 0);
}

/**
 * Ring all-reduce (PyTorch DDP, Horovod) over the same worker links: per network, a reduce-scatter
 * and an all-gather each move (W − 1)/W of its gradient over every link, both ways at once; no
 * coordinator (each worker steps its own optimizer).
 */
export function ringModelStepMs(m: {
  computeMs: number;
  workers: number;
  gradients: number;
  workerGbit: number;
  hostGbit?: number;
  overheadMs?: number;
}): number {
  const l = Math.min(m.workerGbit, m.hostGbit ?? Infinity);
  return m.computeMs + msAt((2 * (m.workers - 1) * m.gradients) / m.workers, l) + (m.overheadMs ?? 0);
}

/** The slowest link among the first `workers` of `rates` (one rate: every worker's). */
export function slowestWorkerGbit(rates: readonly number[], workers: number): number {
  return Math.min(...(rates.length === 1 ? rates : rates.slice(0, workers)));
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
  receivers: 'int',
  bytesUpPerWorker: 'number',
  bytesDownPerReceiver: 'number',
  bytesPerStepPerWorker: 'number',
  minBytesPerStepPerWorker: 'number',
  bytesRatio: 'number',
  workerTransports: { shm: 'int', unix: 'int', tcp: 'int' },
  shape: { kind: 'string', fanOut: 'int', depth: 'int' },
  coordinatorLink: { in: 'number', out: 'number' },
  busiestWorkerLink: { in: 'number', out: 'number' },
  shapeNeeds: { coordinator: { in: 'number', out: 'number' }, worker: { in: 'number', out: 'number' } },
  ringModelStepMs: 'number',
  modelWorkerGbit: 'number',
  overheadMs: 'number',
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
    workerGbit: ['number'],
    hostGbit: 'number?',
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
  const rates = rep.settings.workerGbit;
  if (rates.length === 0 || rates.some((g) => g <= 0))
    errors.push('$.settings.workerGbit: one or more positive rates expected');
  if (rep.settings.coordinatorGbit <= 0) errors.push('$.settings.coordinatorGbit: must be positive');
  if (rep.settings.hostGbit !== null && rep.settings.hostGbit <= 0)
    errors.push('$.settings.hostGbit: must be positive or null');
  if (rep.results.length !== rep.settings.workers.length)
    errors.push('$.results: one result per worker count expected');
  rep.results.forEach((x, i) => {
    if (x.workers !== rep.settings.workers[i])
      errors.push(`$.results[${i}].workers: expected ${rep.settings.workers[i]}`);
    if (x.imagesPerS <= 0) errors.push(`$.results[${i}].imagesPerS: must be positive`);
    if (x.stepMs.p50 > x.stepMs.p95) errors.push(`$.results[${i}].stepMs: p50 above p95`);
    if (x.receivers < x.workers) errors.push(`$.results[${i}].receivers: fewer than the workers`);
    if (!['star', 'slices'].includes(x.shape.kind)) errors.push(`$.results[${i}].shape.kind: expected star or slices`);
  });
  return errors;
}

const f = (x: number | null, d = 0) => (x === null || !Number.isFinite(x) ? '–' : x.toFixed(d));
/** A rate as given (up to 3 decimals, no trailing zeros). */
const gbit = (x: number) => String(Number(x.toFixed(3)));

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
    'shape',
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
    'coord. link MB in/out',
    'busiest worker MB in/out',
    'overhead ms',
    'model ms',
    'measured/model',
    'ring model images/s',
  ];
  const row = (cells: string[]) => `| ${cells.join(' | ')} |`;
  const lines = [
    `ganfleet bench — ${s.mode}, ${s.steps} timed steps after ${s.warmup} warm-up, ${batch}, ` +
      `grads ${s.gradDtype}, ${compute}, ${s.transport === 'unix' ? 'Unix socket' : 'TCP'}, ` +
      `${s.coordinatorKernels} coordinator kernels; model links: coordinator ${gbit(s.coordinatorGbit)} Gbit/s, ` +
      `worker ${s.workerGbit.map(gbit).join(',')} Gbit/s (${s.linkSource})` +
      `${s.hostGbit === null ? '' : `, hosts ${gbit(s.hostGbit)} Gbit/s`}; ${r.machine.cpus} × ${r.machine.cpuModel}`,
    '',
    row(header),
    `|${header.map(() => '--:').join('|')}|`,
  ];
  for (const x of r.results) {
    const b = x.breakdownMs;
    lines.push(
      row([
        String(x.workers),
        x.shape.kind === 'star' ? 'star' : `slices ×${x.shape.fanOut}`,
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
        `${f(x.coordinatorLink.in / 1e6, 2)} / ${f(x.coordinatorLink.out / 1e6, 2)}`,
        `${f(x.busiestWorkerLink.in / 1e6, 2)} / ${f(x.busiestWorkerLink.out / 1e6, 2)}`,
        f(x.overheadMs, 1),
        f(x.modelStepMs, 1),
        f(x.measuredOverModel, 2),
        f((x.batchSize / x.ringModelStepMs) * 1000),
      ]),
    );
  }
  return lines.join('\n') + '\n';
}
