/**
 * The coordinator is SIGKILLed at an arbitrary step and restarted with --resume latest; workers
 * reconnect by themselves, and the run ends with the weights of an undisturbed one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readCheckpoint } from '../../coordinator/checkpoint.js';
import {
  exited,
  freePort,
  paramsDigest,
  runCli,
  spawnWorker,
  startCli,
  tempDir,
  trainWith,
  until,
  type Proc,
} from '../support/cluster.js';

const STEPS = 16;

function startCoordinator(port: number, out: string, extra: string[] = []): Proc {
  const args = ['--port', String(port), '--seed', '7', '--epochs', '1', '--max-steps', String(STEPS)];
  const rest = ['--checkpoint-every', '4', '--log-every', '1', '--no-samples', '--out', out, '--log-level', 'warn'];
  return startCli(['coordinator', ...args, ...rest, ...extra]);
}

function loggedSteps(out: string): number {
  const f = join(out, 'metrics.jsonl');
  if (!existsSync(f)) return 0;
  const lines = readFileSync(f, 'utf8').trim().split('\n').filter(Boolean);
  return lines.length ? (JSON.parse(lines.at(-1)!) as { step: number }).step : 0;
}

test('coordinator SIGKILLed mid-run and resumed ends with the weights of an undisturbed run', async () => {
  const reference = paramsDigest((await trainWith([undefined, undefined], STEPS)).summary.params);
  const out = tempDir();
  const port = await freePort();
  const first = startCoordinator(port, out);
  const url = `ws://127.0.0.1:${port}`;
  // Both workers hold step 9's D result until SIGUSR2: the run cannot get past step 9 before the kill.
  const hold = { GANFLEET_FAULTS: JSON.stringify({ hold: { step: 9, phase: 'dis' } }) };
  const workers = [spawnWorker(url, ['--max-retries', '40'], hold), spawnWorker(url, ['--max-retries', '40'], hold)];
  try {
    // Kill it between two checkpoints (8 and 12), so the steps after the last one are redone.
    await until(() => loggedSteps(out) >= 9, 120_000, 'step 9');
    first.kill('SIGKILL');
    await exited(first);
    // The held results belonged to the dead coordinator's connections: released, they are dropped.
    for (const w of workers) w.kill('SIGUSR2');
    const saved = await readCheckpoint(join(out, 'checkpoint.safetensors'));
    assert.equal(saved.step, 8);

    const second = startCoordinator(port, out, ['--resume', 'latest']);
    assert.equal(await exited(second), 0);
    for (const w of workers) assert.equal(await exited(w), 0, w.output());
  } finally {
    for (const p of [first, ...workers]) p.kill('SIGKILL');
  }
  const final = await readCheckpoint(join(out, 'checkpoint.safetensors'));
  assert.equal(final.step, STEPS);
  assert.equal(paramsDigest(final.params), reference, 'the weights differ from an undisturbed run');
  // Steps logged before the crash and redone after it appear once.
  const steps = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { step: number; type?: string })
    .filter((l) => l.type === undefined)
    .map((l) => l.step);
  assert.deepEqual(
    steps,
    Array.from({ length: STEPS }, (_, i) => i + 1),
  );
});

test('a corrupted or truncated checkpoint is refused with the file and the fault, and left as it was', async () => {
  const out = tempDir();
  const r = await runCli([
    'local',
    '--workers',
    '1',
    '--backend',
    'wasm',
    '--max-steps',
    '2',
    '--no-samples',
    '--out',
    out,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const path = join(out, 'checkpoint.safetensors');
  const good = readFileSync(path);

  const flipped = Buffer.from(good);
  flipped[flipped.length - 5] ^= 0x40;
  writeFileSync(path, flipped);
  const bad = await runCli(['coordinator', '--port', '0', '--resume', path, '--out', out]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, new RegExp(`${path}: checksum mismatch`));
  assert.deepEqual(readFileSync(path), flipped, 'the refused file is not overwritten');

  writeFileSync(path, good.subarray(0, good.length - 1000));
  const cut = await runCli(['coordinator', '--port', '0', '--resume', 'latest', '--out', out]);
  assert.equal(cut.code, 1);
  assert.match(cut.stderr, new RegExp(`${path}: not a valid safetensors file`));
});
