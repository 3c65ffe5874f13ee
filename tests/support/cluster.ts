/**
 * The one place tests start things: a real coordinator in this process (port 0), or any process
 * (`ganfleet coordinator`, workers, deploy/ command lines) with its output kept, and the waits and
 * probes around them.
 */
import { createHash } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { startCoordinator, type CoordinatorOptions, type RunningCoordinator } from '../../coordinator/run.js';
import { SEED_ADAM } from '../../coordinator/optimizer.js';
import type { TrainerConfig } from '../../coordinator/trainer.js';
import type { TrainerObserver } from '../../coordinator/events.js';
import type { LogEvent } from '../../shared/log.js';

export const CLI = fileURLToPath(new URL('../../cli/main.js', import.meta.url));

const tempDirs: string[] = [];
// Test folders go when the test process ends (set GANFLEET_KEEP_TEMP=1 to look at them).
process.once('exit', () => {
  if (process.env.GANFLEET_KEEP_TEMP) return;
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});

export function tempDir(prefix = 'ganfleet-test-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(d);
  return d;
}

/** A logger that keeps its lines in `lines` (and prints them when GANFLEET_TEST_LOG is set). */
export function testLogger(lines?: string[]) {
  const print = process.env.GANFLEET_TEST_LOG !== undefined;
  if (!lines) return pino({ level: print ? process.env.GANFLEET_TEST_LOG! : 'silent' });
  return pino(
    { level: 'debug' },
    {
      write(line: string) {
        lines.push(line);
        if (print) process.stdout.write(line);
      },
    },
  );
}

export function trainerConfig(over: Partial<TrainerConfig> = {}): TrainerConfig {
  return {
    seed: 7,
    batchSize: 128,
    epochs: 1,
    maxSteps: 5,
    adam: SEED_ADAM,
    normalize: 'minus1to1',
    outDir: tempDir(),
    logEvery: 100,
    minWorkers: 1,
    samples: false,
    ...over,
  };
}

export async function coordinator(
  over: Partial<TrainerConfig> = {},
  extra: Partial<CoordinatorOptions> & { lines?: string[] } = {},
): Promise<RunningCoordinator> {
  const { lines, ...rest } = extra;
  return startCoordinator({ ...trainerConfig(over), host: '127.0.0.1', port: 0, logger: testLogger(lines), ...rest });
}

// ---- processes ----------------------------------------------------------------------------------

/** A child process whose output is kept (for failure messages) and whose exit is a promise. */
export type Proc = ChildProcess & {
  argv: string[];
  /** stdout and stderr, interleaved as they arrived. */
  output(): string;
  stdout(): string;
  stderr(): string;
  exit: Promise<number | null>;
};

/** Starts `argv` (any program) with `env` added to this process's environment. */
export function start(argv: string[], env: NodeJS.ProcessEnv = {}): Proc {
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let out = '';
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => {
    out += d;
    stdout += d;
  });
  child.stderr!.on('data', (d) => {
    out += d;
    stderr += d;
  });
  const exit = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  return Object.assign(child, { argv, output: () => out, stdout: () => stdout, stderr: () => stderr, exit });
}

/** Starts `ganfleet <args>` (this checkout's dist/cli/main.js), logging JSON lines. */
export function startCli(args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  return start([process.execPath, CLI, ...args], { GANFLEET_LOG_FORMAT: 'json', ...env });
}

/** Starts a wasm worker process against `url`, one thread, giving up after 3 failed connections. */
export function spawnWorker(url: string, extra: string[] = [], env: Record<string, string> = {}): Proc {
  // --max-retries: a worker that outlives its coordinator gives up instead of retrying forever.
  const args = ['--backend', 'wasm', '--log-level', 'warn', '--max-retries', '3', '--threads', '1'];
  return startCli(['worker', '--connect', url, ...args, ...extra], env);
}

/** Resolves with the exit code once the process ends. */
export function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/** Resolves with the exit code, or kills the process and throws after `ms`. */
export async function exitWithin(p: Proc, ms: number, what: string): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`${what} did not exit within ${ms} ms: ${p.argv.join(' ')}\n${p.output().slice(-3000)}`));
    }, ms);
  });
  try {
    return await Promise.race([p.exit, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export function killAll(procs: ChildProcess[]): void {
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
}

/** Runs the CLI to completion and returns its exit code and output. */
export async function runCli(
  args: string[],
  timeoutMs = 120_000,
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = startCli(args, env);
  const code = await exitWithin(p, timeoutMs, `ganfleet ${args.join(' ')}`);
  return { code, stdout: p.stdout(), stderr: p.stderr() };
}

/** A port free on 127.0.0.1 at the time of asking. */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolvePort(port));
    });
  });
}

/** Resolves with the HTTP status of GET url, or 0 when nothing answers. */
export async function httpStatus(url: string): Promise<number> {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
    await r.text();
    return r.status;
  } catch {
    return 0;
  }
}

/** max |a − b| over two equally long arrays. */
export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new RangeError(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Trains `steps` steps with one worker per entry of `faults` (its GANFLEET_FAULTS, or undefined). */
export async function trainWith(
  faults: Array<object | undefined>,
  steps: number,
  over: Partial<TrainerConfig> = {},
  lines?: string[],
  observer?: TrainerObserver,
  extra: Partial<CoordinatorOptions> = {},
) {
  const c = await coordinator({ maxSteps: steps, minWorkers: faults.length, ...over }, { lines, ...extra });
  if (observer) c.trainer.bus.add(observer);
  const procs = faults.map((f) => spawnWorker(c.url, [], f ? { GANFLEET_FAULTS: JSON.stringify(f) } : {}));
  try {
    const summary = await c.done;
    return { summary, procs, coordinator: c };
  } finally {
    await Promise.all(procs.map((p) => Promise.race([exited(p), new Promise((r) => setTimeout(r, 5000))])));
    for (const p of procs) p.kill('SIGKILL');
  }
}

/** Waits until `probe` holds, polling; fails after `ms`. */
export async function until(probe: () => boolean | Promise<boolean>, ms = 60_000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!(await probe())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The JSON log lines in a process's output (other lines skipped). */
export function logEvents(output: string): Array<Record<string, unknown>> {
  return output.split('\n').flatMap((l) => {
    try {
      return l.startsWith('{') ? [JSON.parse(l) as Record<string, unknown>] : [];
    } catch {
      return []; // a line cut short where the output ends
    }
  });
}

/** The steps of a training run's last log line (the one naming its outputs), if it was logged. */
export function stepsDone(output: string): number | undefined {
  return logEvents(output).find((e) => e.lastGrid !== undefined && e.checkpoint !== undefined)?.steps as number;
}

/** The log records of a coordinator's lines whose `event` (shared/log.ts LogEvent) is `event`. */
export function events(lines: string[], event: LogEvent): Array<Record<string, unknown>> {
  return lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((r) => r.event === event);
}

/** sha256 of both networks' weights (float32 bytes, gen then dis): equal digests are equal bits. */
export function paramsDigest(params: { gen: Float32Array; dis: Float32Array }): string {
  const h = createHash('sha256');
  for (const a of [params.gen, params.dis]) h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  return h.digest('hex');
}
