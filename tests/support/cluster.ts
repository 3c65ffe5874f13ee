/**
 * Test helpers that start a real coordinator (in this process, port 0) and real worker processes
 * (`node dist/cli/main.js worker`), as a user would.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { startCoordinator, type CoordinatorOptions, type RunningCoordinator } from '../../coordinator/run.js';
import { SEED_ADAM } from '../../coordinator/optimizer.js';
import type { TrainerConfig } from '../../coordinator/trainer.js';
import type { TrainerObserver } from '../../coordinator/events.js';

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

/** Starts a worker process against `url`; its output is kept for failure messages. */
export function spawnWorker(
  url: string,
  extra: string[] = [],
  env: Record<string, string> = {},
): ChildProcess & { output: () => string } {
  // --max-retries: a worker that outlives its coordinator gives up instead of retrying forever.
  const child = spawn(
    process.execPath,
    [
      CLI,
      'worker',
      '--connect',
      url,
      '--backend',
      'wasm',
      '--log-level',
      'warn',
      '--max-retries',
      '3',
      '--threads',
      '1',
      ...extra,
    ],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, GANFLEET_LOG_FORMAT: 'json', ...env },
    },
  );
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  return Object.assign(child, { output: () => out });
}

/** Resolves with the exit code once the process ends. */
export function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/** Runs the CLI to completion and returns its exit code and output. */
export function runCli(
  args: string[],
  timeoutMs = 120_000,
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, GANFLEET_LOG_FORMAT: 'json', ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`ganfleet ${args.join(' ')} timed out\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
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
) {
  const c = await coordinator({ maxSteps: steps, minWorkers: faults.length, ...over }, { lines });
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

/** Waits until `predicate` holds, polling; fails after `ms`. */
export async function until(predicate: () => boolean, ms = 60_000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Messages of JSON log lines. */
export function messages(lines: string[]): string[] {
  return lines.map((l) => (JSON.parse(l) as { msg: string }).msg);
}
