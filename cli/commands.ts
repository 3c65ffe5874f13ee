/** The `coordinator`, `worker` and `local` commands. */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join, relative } from 'node:path';
import { privateSocketPath } from '../shared/transport.js';
import { GanfleetError, UsageError } from '../shared/errors.js';
import { createLogger, type Logger } from '../shared/log.js';
import { loadMnist } from '../shared/mnist.js';
import { startCoordinator, type CoordinatorOptions } from '../coordinator/run.js';
import { reap } from '../coordinator/worker-processes.js';
import type { TrainSummary } from '../coordinator/trainer.js';
import { selectBackend } from '../worker/backend.js';
import { keepFreedMemory } from '../shared/reduce-addon.js';
import { WorkerClient, type WorkerOptions } from '../worker/client.js';
import { persistedSettings, type Options } from './flags.js';
import { evalOptions, observeOptions, trainerConfig } from './train-options.js';
import { assertNotExposed, pemFrom, tokenFrom } from './security-options.js';

const CLI_PATH = fileURLToPath(new URL('./main.js', import.meta.url));

/** Logs the configuration that config.json keeps (the table's allow-list: no secrets), once, at start. */
function logSettings(log: Logger, settings: Record<string, unknown>): void {
  log.info({ config: settings }, 'effective configuration');
}

/**
 * The run's last line: where its outputs are (the folder, the last sample grid, the checkpoint and
 * loss.png), not every grid of a long run.
 */
function printSummary(s: TrainSummary, log: Logger): void {
  const rel = (p: string) => relative(process.cwd(), p) || '.';
  const inDir = (p: string) => relative(s.outDir, p);
  const last = s.samples.at(-1);
  const loss = join(s.outDir, 'loss.png');
  const lossPlot = existsSync(loss) ? loss : undefined;
  const files = [
    last ? `${inDir(last)} (the last of ${s.samples.length} sample grids)` : 'no sample grids',
    inDir(s.checkpoint),
    lossPlot ? inDir(lossPlot) : 'no loss plot',
  ];
  log.info(
    {
      steps: s.steps,
      imagesPerSecond: Math.round(s.imagesPerSecond),
      contributors: s.contributors,
      ...s.final,
      outDir: rel(s.outDir),
      lastGrid: last ? rel(last) : null,
      grids: s.samples.length,
      checkpoint: rel(s.checkpoint),
      lossPlot: lossPlot ? rel(lossPlot) : null,
    },
    `done: ${s.steps} steps at ${Math.round(s.imagesPerSecond)} images/s; outputs in ${rel(s.outDir)}: ` +
      files.join(', '),
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

/**
 * The coordinator's options from its flags, checked; logs the effective configuration (what
 * config.json keeps: the table's allow-list, no secrets) on `log`.
 */
export function coordinatorOptions(o: Options, log: Logger): CoordinatorOptions {
  const host = o.get('host');
  const token = tokenFrom(o);
  assertNotExposed(o, host, token);
  const cert = pemFrom(o, 'tlsCert');
  const key = pemFrom(o, 'tlsKey');
  if ((cert === undefined) !== (key === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
  const settings = persistedSettings(o, { auth: token !== undefined, tls: cert !== undefined });
  logSettings(log, settings);
  return {
    ...trainerConfig(o),
    host,
    port: o.get('port'),
    socketPath: o.get('socket'),
    dataDir: o.get('data'),
    resume: o.get('resume'),
    maxConnections: o.get('maxConnections'),
    heartbeatMs: o.get('heartbeatMs'),
    handshakesPerSecond: o.get('handshakesPerSecond'),
    metricsPublic: o.get('metricsPublic'),
    shm: !o.get('noShm'),
    ...observeOptions(o),
    ...evalOptions(o),
    logger: log,
    token,
    tls: cert && key ? { cert, key } : undefined,
    settings,
  };
}

export async function coordinatorCommand(o: Options): Promise<number> {
  const log = createLogger({ level: o.get('logLevel'), name: 'coordinator' });
  const c = await startCoordinator(coordinatorOptions(o, log));
  onSignals(() => c.stop(), log);
  printSummary(await c.done, log);
  return 0;
}

/**
 * Where a worker listens as a relay: on every interface with a token (or --insecure), on loopback
 * only without one when its coordinator is on this host, and not at all otherwise — a relay open to
 * anyone who can reach it would take anyone's contributions. Said once in the log.
 */
function relayOptions(o: Options, url: string, token: string | undefined, log: Logger): WorkerOptions['relay'] {
  if (o.get('noRelay')) return undefined;
  const cert = pemFrom(o, 'tlsCert');
  const key = pemFrom(o, 'tlsKey');
  if ((cert === undefined) !== (key === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
  const tls = cert && key ? { cert, key } : undefined;
  const local = /^ws\+unix:/.test(url) || /^wss?:\/\/(127\.|localhost|\[::1\])/.test(url);
  const host = token !== undefined || o.get('insecure') ? '0.0.0.0' : local ? '127.0.0.1' : undefined;
  if (host === undefined) {
    log.info(
      'relay off: no token to guard it (set GANFLEET_TOKEN or --token-file, or --insecure); this worker is a leaf',
    );
    return undefined;
  }
  return { host, port: o.get('relayPort'), advertise: o.get('relayHost'), ...(tls ? { tls } : {}) };
}

export async function workerCommand(o: Options): Promise<number> {
  const url = o.get('connect');
  const token = tokenFrom(o); // an unreadable token file fails before anything loads
  const ca = pemFrom(o, 'ca');
  const log = createLogger({ level: o.get('logLevel'), name: 'worker' });
  logSettings(log, persistedSettings(o));
  const threads = o.get('threads');
  // Every result is a fresh model-sized buffer: keep freed memory for reuse (glibc, where built).
  keepFreedMemory();
  const backend = await selectBackend(o.get('backend'), { threads, native: !o.get('noNative'), warmUp: true });
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
  const data = await loadMnist(o.get('data'));
  log.info({ images: data.count, dir: data.dir }, 'training data loaded');
  const client = new WorkerClient({
    url,
    data,
    backend,
    logger: log,
    maxRetries: o.get('maxRetries'),
    token,
    ca,
    shm: !o.get('noShm'),
    relay: relayOptions(o, url, token, log),
    zone: o.get('zone'),
  });
  process.once('SIGINT', () => client.stop());
  process.once('SIGTERM', () => client.stop());
  const outcome = await client.run();
  return outcome.reason === 'done' || outcome.reason === 'stopped' ? 0 : 1;
}

export async function localCommand(o: Options): Promise<number> {
  const cfg = trainerConfig(o);
  const workers = o.get('workers');
  const threads = o.get('threadsPerWorker');
  // A list is dealt out to the workers in turn (webgpu,wasm: 0 webgpu, 1 wasm, 2 webgpu, …).
  const backends = o.get('backends');
  const level = o.get('logLevel');
  const dataDir = o.get('data');
  const log = createLogger({ level, name: 'local' });
  const rest = {
    host: '127.0.0.1',
    port: o.get('port'),
    socketPath: o.get('transport') === 'unix' ? privateSocketPath() : undefined,
    dataDir,
    resume: o.get('resume'),
    shm: !o.get('noShm'),
    heartbeatMs: o.get('heartbeatMs'),
    ...observeOptions(o),
    ...evalOptions(o),
  };
  const settings = persistedSettings(o);
  logSettings(log, settings);
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
      backends[i % backends.length]!,
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
