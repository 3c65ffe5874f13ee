/**
 * `ganfleet bench`: a short timed training segment per worker count, each on a fresh coordinator,
 * measured through the trainer's observers (per-step timings, per-shard compute) and the server's
 * byte counters. Local mode spawns the workers (`ganfleet worker` processes on loopback); attach
 * mode listens on a given address and uses the workers that connect there (other hosts, or the
 * network-namespace cluster of deploy/netns), the first N of them for the N-worker segment.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, connect, type AddressInfo } from 'node:net';
import { availableParallelism, cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../../shared/log.js';
import { MANIFESTS } from '../../shared/model.js';
import { dtypeBytes, type GradDtype } from '../../shared/dtype.js';
import { startCoordinator } from '../run.js';
import { reduceKernels } from '../reduce-kernels.js';
import { DEFAULT_TRANSPORT, privateSocketPath, type Transport } from '../../shared/transport.js';
import { reap } from '../worker-processes.js';
import { SEED_ADAM } from '../optimizer.js';
import type { StepTimings } from '../events.js';
import type { Plan, Topology } from '../topology.js';
import type { WorkerSession } from '../session.js';
import { PROBE_LENGTH } from '../shape-probe.js';
import {
  BENCH_SCHEMA,
  type BenchShape,
  modelStepMs,
  ringModelStepMs,
  shapeBytes,
  slicesModelStepMs,
  percentile,
  slowestWorkerGbit,
  type BenchReport,
  type BenchResult,
} from './report.js';

const CLI_PATH = fileURLToPath(new URL('../../cli/main.js', import.meta.url));

export interface BenchOptions {
  workers: number[];
  steps: number;
  warmup: number;
  /** Global batch (strong scaling); ignored when batchPerWorker is set. */
  batchSize: number;
  /** Weak scaling: every worker count runs batchPerWorker × workers samples per step. */
  batchPerWorker?: number;
  seed: number;
  gradDtype: GradDtype;
  /** How totals travel (coordinator/topology.ts; default auto). */
  topology?: Topology;
  /** Offer shared memory to workers on this host (default true). */
  shm?: boolean;
  syntheticComputeMs?: number;
  /** Listen here and use connecting workers instead of spawning them (ws://HOST:PORT). */
  attach?: { host: string; port: number };
  token?: string;
  backend: string;
  /** Local mode: how spawned workers connect (default TCP loopback; see shared/transport.ts). */
  transport?: Transport;
  /** Threads per spawned worker (default: cores ÷ workers, at least 1). */
  threads?: number;
  coordinatorGbit?: number;
  /** One rate for every worker, or one per worker in join order (the N-worker model: the slowest of N). */
  workerGbit?: number[];
  /** H: the rate the hosts themselves move bytes at; the model caps link rates there (see report.ts). */
  hostGbit?: number;
  /** The model's per-step overhead (ms): one value, or one per worker count (see report.ts). */
  overheadMs?: number[];
  outDir: string;
  dataDir?: string;
  logger: Logger;
  /** Called with a line of progress per segment. */
  progress?: (line: string) => void;
}

interface StepSample {
  at: number;
  timings: StepTimings;
}

/** Loopback TCP throughput (Gbit/s): 128 MiB through a local socket, in 1 MiB writes. */
export async function measureLoopbackGbit(bytes = 128 * 1024 * 1024): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const received = new Promise<number>((resolve) => {
    server.once('connection', (s) => {
      let n = 0;
      let t0 = 0;
      s.on('data', (d: Buffer) => {
        if (t0 === 0) t0 = performance.now();
        n += d.length;
        if (n >= bytes) resolve(performance.now() - t0);
      });
    });
  });
  const sock = connect(port, '127.0.0.1');
  sock.setNoDelay(true);
  await new Promise<void>((r) => sock.once('connect', () => r()));
  const chunk = Buffer.alloc(1024 * 1024, 7);
  for (let sent = 0; sent < bytes; sent += chunk.length) {
    if (!sock.write(chunk)) await new Promise<void>((r) => sock.once('drain', () => r()));
  }
  const ms = await received;
  sock.destroy();
  await new Promise<void>((r) => server.close(() => r()));
  return (bytes * 8) / (ms / 1000) / 1e9;
}

function spawnWorkers(n: number, url: string, o: BenchOptions, threads: number): ChildProcess[] {
  return Array.from({ length: n }, () => {
    const args = [
      CLI_PATH,
      'worker',
      '--connect',
      url,
      '--backend',
      o.backend,
      '--threads',
      String(threads),
      '--log-level',
      'warn',
      '--max-retries',
      '3',
    ];
    if (o.dataDir) args.push('--data', o.dataDir);
    if (o.shm === false) args.push('--no-shm');
    return spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  });
}

type SegmentResult = Omit<
  BenchResult,
  'scalingEfficiency' | 'modelWorkerGbit' | 'overheadMs' | 'modelStepMs' | 'measuredOverModel' | 'ringModelStepMs'
>;

/** One segment: `n` workers, warm-up then timed steps. */
async function segment(
  n: number,
  o: BenchOptions,
  last: boolean,
  threads: number,
  children: ChildProcess[],
): Promise<SegmentResult> {
  const total = o.warmup + o.steps;
  const batchSize = o.batchPerWorker === undefined ? o.batchSize : o.batchPerWorker * n;
  const c = await segmentCoordinator(n, o, last, batchSize);
  const rec = record(c, n, o, last);
  if (o.attach === undefined) children.push(...spawnWorkers(n, c.localUrl ?? c.url, o, threads));
  const hosts = new Set<string>();
  const sample = setInterval(() => {
    for (const s of c.server.active().slice(0, n)) hosts.add(s.remote.replace(/:\d+$/, ''));
  }, 200);
  try {
    await c.done;
  } finally {
    clearInterval(sample);
  }
  if (rec.steps.length < total)
    throw new Error(`the ${n}-worker segment ended after ${rec.steps.length} of ${total} steps`);
  return summarize(n, o, batchSize, rec, o.attach === undefined ? 1 : Math.max(1, hosts.size));
}

/** A segment's coordinator: the bench's settings, nothing but the steps measured. */
function segmentCoordinator(n: number, o: BenchOptions, last: boolean, batchSize: number) {
  const attach = o.attach !== undefined;
  const total = o.warmup + o.steps;
  return startCoordinator({
    seed: o.seed,
    batchSize,
    epochs: 1_000_000,
    // Attached workers must outlive all but the last segment: that one stops one step early, so
    // the coordinator says "going away" (workers reconnect) rather than "finished" (they exit).
    maxSteps: attach && !last ? total + 1 : total,
    adam: SEED_ADAM,
    normalize: 'minus1to1',
    outDir: join(o.outDir, `segment-w${n}`),
    logEvery: 1_000_000,
    minWorkers: n,
    maxWorkers: n,
    // A benchmark measures the steady state: no copies of late shards (their bytes and work).
    speculate: false,
    samples: false,
    checkpointEvery: 0,
    gradDtype: o.gradDtype,
    topology: o.topology,
    shm: o.shm,
    syntheticComputeMs: o.syntheticComputeMs,
    host: o.attach?.host ?? '127.0.0.1',
    port: o.attach?.port ?? 0,
    socketPath: !attach && (o.transport ?? DEFAULT_TRANSPORT) === 'unix' ? privateSocketPath() : undefined,
    dataDir: o.dataDir,
    logger: o.logger,
    token: o.token,
    heartbeatMs: 60_000,
  });
}

type Coordinator = Awaited<ReturnType<typeof startCoordinator>>;
type LinkBytesNow = { in: number; out: number };
/** The coordinator's sockets and each worker's link (its socket and what it moved with its peers). */
type Links = { coordinator: LinkBytesNow; workers: Map<number, WorkerSession['bytes']> };

/** What an observer of the segment's steps records: samples, and bytes at the warm-up's end and the last step. */
interface Recording {
  steps: StepSample[];
  /** "step/phase" → the slowest shard's compute time. */
  compute: Map<string, number>;
  moved: { warm: LinkBytesNow; end: LinkBytesNow };
  links: { warm: Links; end: Links };
  /** The process's CPU time (user + system, µs) at the warm-up's end and the last step. */
  cpuUs: { warm: number; end: number };
  plan: Plan;
  transports: { shm: number; unix: number; tcp: number };
  /** Connected workers at the end: all of them receive the weights (idle ones too, to stay ready). */
  receivers: number;
}

function record(c: Coordinator, n: number, o: BenchOptions, last: boolean): Recording {
  const total = o.warmup + o.steps;
  const links = (): Links => ({
    coordinator: { in: c.server.bytesIn, out: c.server.bytesOut },
    workers: new Map(c.server.active().map((s) => [s.id, { ...s.bytes }])),
  });
  // Bytes a worker moves, whether over its socket or through shared memory.
  const moved = () => ({ in: c.server.bytesIn + c.server.bytesShmIn, out: c.server.bytesOut + c.server.bytesShmOut });
  const rec: Recording = {
    steps: [],
    compute: new Map(),
    moved: { warm: { in: 0, out: 0 }, end: { in: 0, out: 0 } },
    links: { warm: links(), end: links() },
    cpuUs: { warm: 0, end: 0 },
    plan: c.trainer.plan,
    transports: { shm: 0, unix: 0, tcp: 0 },
    receivers: n,
  };
  c.trainer.bus.add({
    onShard: (e) => {
      const k = `${e.step}/${e.phase}`;
      rec.compute.set(k, Math.max(rec.compute.get(k) ?? 0, e.computeMs));
    },
    onStep: (e) => {
      rec.steps.push({ at: performance.now(), timings: { ...e.timings } });
      // The process's CPU time at the window's two ends only: a call costs as much as a small step's work.
      if (e.step === o.warmup || e.step === total) {
        const cpu = process.cpuUsage();
        rec.cpuUs[e.step === total ? 'end' : 'warm'] = cpu.user + cpu.system;
      }
      if (e.step === o.warmup) {
        rec.moved.warm = moved();
        rec.links.warm = links();
      }
      if (e.step === total) {
        rec.moved.end = moved();
        rec.links.end = links();
        rec.plan = c.trainer.plan;
        rec.transports = c.server.transports();
        rec.receivers = Math.max(n, c.server.active().length);
        if (o.attach !== undefined && !last) c.stop();
      }
    },
  });
  return rec;
}

/** The segment's figures from what was recorded over its timed steps. */
function summarize(n: number, o: BenchOptions, batchSize: number, rec: Recording, nodes: number): SegmentResult {
  const total = o.warmup + o.steps;
  const { steps } = rec;
  const timed = steps.slice(o.warmup, total);
  const durations = timed.map((s, i) => s.at - steps[o.warmup + i - 1]!.at);
  const seconds = (timed[timed.length - 1]!.at - steps[o.warmup - 1]!.at) / 1000;
  const mean = (f: (t: StepTimings) => number) => timed.reduce((a, s) => a + f(s.timings), 0) / timed.length;
  let computeSum = 0;
  for (let s = o.warmup; s < total; s++)
    computeSum += (rec.compute.get(`${s}/dis`) ?? 0) + (rec.compute.get(`${s}/gen`) ?? 0);
  const stepMean = durations.reduce((a, b) => a + b, 0) / durations.length;
  const b = {
    compute: computeSum / o.steps,
    reduce: mean((t) => t.reduceMs),
    adam: mean((t) => t.adamMs),
    encode: mean((t) => t.encodeMs),
    send: mean((t) => t.sendMs),
    wireAndOther: 0,
  };
  const own = (t: StepTimings) => t.reduceMs + t.adamMs + t.encodeMs;
  const coordinatorMs = b.reduce + b.adam + b.encode;
  b.wireAndOther = Math.max(0, stepMean - b.compute - coordinatorMs - b.send);
  const images = o.steps * batchSize;
  // Gradients come from the n workers that take shards; weights go to every connected worker
  // (in attach mode the spare ones too), so each direction is divided by its own head count.
  const bytesUp = (rec.moved.end.in - rec.moved.warm.in) / o.steps / n;
  const bytesDown = (rec.moved.end.out - rec.moved.warm.out) / o.steps / rec.receivers;
  const bytes = bytesUp + bytesDown;
  const params = MANIFESTS.gen.size + MANIFESTS.dis.size;
  const minBytes = params * 4 + params * dtypeBytes(o.gradDtype);
  return {
    workers: n,
    nodes,
    steps: o.steps,
    imagesPerS: images / seconds,
    imagesPerSPerWorker: images / seconds / n,
    imagesPerSPerNode: images / seconds / nodes,
    stepMs: { mean: stepMean, p50: percentile(durations, 50), p95: percentile(durations, 95) },
    breakdownMs: b,
    batchSize,
    coordinatorMs,
    coordinatorMsP50: percentile(
      timed.map((s) => own(s.timings)),
      50,
    ),
    coordinatorCpuMs: (rec.cpuUs.end - rec.cpuUs.warm) / 1000 / o.steps,
    receivers: rec.receivers,
    bytesUpPerWorker: bytesUp,
    bytesDownPerReceiver: bytesDown,
    bytesPerStepPerWorker: bytes,
    minBytesPerStepPerWorker: minBytes,
    bytesRatio: bytes / minBytes,
    workerTransports: rec.transports,
    ...linkFigures(n, o, rec, params),
  };
}

/** The shape the timed steps ended in, the bytes on the coordinator's and the busiest worker's link. */
function linkFigures(n: number, o: BenchOptions, rec: Recording, params: number) {
  const perStep = (a: number, b: number) => (b - a) / o.steps;
  let busiest = { in: 0, out: 0 };
  for (const [id, end] of rec.links.end.workers) {
    const warm = rec.links.warm.workers.get(id);
    if (warm === undefined) continue;
    const w = {
      in: perStep(warm.in + warm.peerIn, end.in + end.peerIn),
      out: perStep(warm.out + warm.peerOut, end.out + end.peerOut),
    };
    if (Math.max(w.in, w.out) > Math.max(busiest.in, busiest.out)) busiest = w;
  }
  const zone = rec.plan.zones[0];
  const shape: BenchShape =
    zone === undefined
      ? { kind: 'star', fanOut: n, depth: 1 }
      : { kind: 'slices', fanOut: zone.relays.length, depth: 2 };
  const { warm, end } = rec.links;
  const coordinatorLink = {
    in: perStep(warm.coordinator.in, end.coordinator.in),
    out: perStep(warm.coordinator.out, end.coordinator.out),
  };
  // Under relays one network's gradients and weights, as the wire narrows them, cross the coordinator's link.
  const [weights, up] =
    shape.kind === 'star' ? [params * 4, params * dtypeBytes(o.gradDtype)] : [coordinatorLink.out, coordinatorLink.in];
  return {
    shape,
    coordinatorLink,
    busiestWorkerLink: busiest,
    shapeNeeds: shapeBytes(shape, n, rec.receivers, weights, up),
  };
}

/** Runs every segment and returns the report (the caller writes it). */
export async function runBench(o: BenchOptions): Promise<BenchReport> {
  let coordinatorGbit = o.coordinatorGbit;
  let workerGbit = o.workerGbit;
  const measured = coordinatorGbit === undefined || workerGbit === undefined;
  if (measured) {
    const gbit = await measureLoopbackGbit();
    o.progress?.(`loopback TCP: ${gbit.toFixed(1)} Gbit/s (used by the bandwidth model for links not given)`);
    coordinatorGbit ??= gbit;
    workerGbit ??= [gbit];
  }
  // Attached workers on other hosts may form slices: auto's probe then takes a segment's first steps.
  if (o.attach !== undefined && (o.topology ?? 'auto') === 'auto' && o.warmup < PROBE_LENGTH)
    o.progress?.(
      `--topology auto times star and slices over a segment's first ${PROBE_LENGTH} steps; with ` +
        `--warmup ${o.warmup} some timed steps may run in the shape it drops (give --warmup ${PROBE_LENGTH} ` +
        'or name the shape)',
    );
  const overhead = o.overheadMs ?? [0];
  if (overhead.length !== 1 && overhead.length !== o.workers.length)
    throw new RangeError(`overheadMs: ${overhead.length} values for ${o.workers.length} worker counts`);
  const results: BenchResult[] = [];
  for (let i = 0; i < o.workers.length; i++) {
    const n = o.workers[i]!;
    const threads = o.threads ?? Math.max(1, Math.floor(availableParallelism() / n));
    const children: ChildProcess[] = [];
    // deploy/netns/cluster.sh starts exactly n worker hosts when it reads "waiting for <n> worker(s)".
    const waiting = o.attach ? ` (attach: waiting for ${n} worker(s) on ${o.attach.host}:${o.attach.port})` : '';
    o.progress?.(`${n} worker(s): ${o.warmup} warm-up + ${o.steps} timed steps${waiting}`);
    try {
      const r = await segment(n, o, i === o.workers.length - 1, threads, children);
      const modelWorkerGbit = slowestWorkerGbit(workerGbit!, n);
      const overheadMs = overhead.length === 1 ? overhead[0]! : overhead[i]!;
      const links = {
        coordinatorGbit: coordinatorGbit!,
        workerGbit: modelWorkerGbit,
        hostGbit: o.hostGbit,
        overheadMs,
      };
      const weights = (MANIFESTS.gen.size + MANIFESTS.dis.size) * 4;
      const model =
        r.shape.kind === 'star'
          ? modelStepMs({
              computeMs: r.breakdownMs.compute,
              coordinatorMs: r.coordinatorMs,
              workers: n,
              receivers: r.receivers,
              bytesUp: r.bytesUpPerWorker,
              bytesDown: r.bytesDownPerReceiver,
              ...links,
            })
          : slicesModelStepMs({
              computeMs: r.breakdownMs.compute,
              coordinatorMs: r.coordinatorMs,
              relays: r.shape.fanOut,
              coordinator: r.coordinatorLink,
              worker: r.busiestWorkerLink,
              weights,
              ...links,
            });
      const ring = ringModelStepMs({ computeMs: r.breakdownMs.compute, workers: n, gradients: weights, ...links });
      results.push({
        ...r,
        scalingEfficiency: null,
        modelWorkerGbit,
        overheadMs,
        modelStepMs: model,
        measuredOverModel: r.stepMs.mean / model,
        ringModelStepMs: ring,
      });
      o.progress?.(`${n} worker(s): ${r.imagesPerS.toFixed(0)} images/s, step p50 ${r.stepMs.p50.toFixed(1)} ms`);
    } finally {
      await reap(children);
    }
  }
  const one = results.find((r) => r.workers === 1);
  if (one) for (const r of results) r.scalingEfficiency = r.imagesPerS / (r.workers * one.imagesPerS);
  return {
    schema: BENCH_SCHEMA,
    createdAt: new Date().toISOString(),
    machine: {
      cpus: availableParallelism(),
      cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
      node: process.version,
      platform: process.platform,
      arch: process.arch,
    },
    settings: {
      mode: o.attach ? 'attach' : 'local',
      workers: o.workers,
      steps: o.steps,
      warmup: o.warmup,
      batchSize: o.batchPerWorker === undefined ? o.batchSize : o.batchPerWorker,
      batchPerWorker: o.batchPerWorker ?? null,
      gradDtype: o.gradDtype,
      syntheticComputeMs: o.syntheticComputeMs ?? null,
      backend: o.attach ? 'as connected' : o.backend,
      threadsPerWorker: o.attach ? null : (o.threads ?? null),
      transport: o.attach ? 'tcp' : (o.transport ?? DEFAULT_TRANSPORT),
      coordinatorKernels: reduceKernels.name,
      coordinatorGbit: coordinatorGbit!,
      workerGbit: workerGbit!,
      hostGbit: o.hostGbit ?? null,
      linkSource: measured ? 'loopback-measured' : 'flags',
      seed: o.seed,
    },
    results,
  };
}
