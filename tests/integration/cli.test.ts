import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { paramsDigest, runCli, tempDir } from '../support/cluster.js';
import { readCheckpoint } from '../../coordinator/checkpoint.js';

test('every command has --help with examples', async () => {
  for (const cmd of ['local', 'coordinator', 'worker', 'sample', 'export', 'bench']) {
    const r = await runCli([cmd, '--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, new RegExp(`Usage: ganfleet ${cmd}`));
    assert.match(r.stdout, /Examples:/);
  }
  const top = await runCli(['--help']);
  assert.equal(top.code, 0);
  assert.match(top.stdout, /Commands:/);
});

test('unknown or malformed flags exit 2 with a message naming the flag', async () => {
  const cases: Array<[string[], RegExp]> = [
    [['local', '--bacth-size', '64'], /Unknown option '--bacth-size'/],
    [['local', '--batch-size', 'lots'], /--batch-size must be an integer, got "lots"/],
    [['local', '--batch-size', '0'], /--batch-size must be between 1 and 60000, got 0/],
    [['coordinator', '--port', '70000'], /--port must be between 0 and 65535/],
    [['coordinator', '--lr=-1'], /--lr must be positive/],
    [['coordinator', '--lr', '-1'], /--lr must be positive/],
    [['bench', '--steps', '0'], /--steps must be between 1 and/],
    [['local', '--normalize', 'zscore'], /--normalize must be one of minus1to1, seed/],
    [['local', '--log-level', 'loud'], /--log-level must be one of/],
    [['worker'], /--connect URL is required/],
    [['worker', '--connect', 'http://x'], /--connect must be a ws:\/\/, wss:\/\/ or ws\+unix:\/\/\/absolute\/path URL/],
    [
      ['worker', '--connect', 'ws://x', '--backend', 'cuda'],
      /--backend must be one of auto, tensorflow, webgpu, wasm, cpu/,
    ],
    [['train'], /unknown command "train"/],
    [['local', 'extra'], /unexpected argument "extra"/],
  ];
  for (const [args, pattern] of cases) {
    const r = await runCli(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, pattern, args.join(' '));
  }
});

test('bench resolves GANFLEET_<FLAG> and --config like every other command', async () => {
  const env = await runCli(['bench', '--workers', '1,2'], 60_000, { GANFLEET_BATCH_SIZE: '1' });
  assert.equal(env.code, 2, env.stderr);
  assert.match(env.stderr, /--batch-size 1 is smaller than the largest worker count \(2\)/);
  const config = join(tempDir(), 'bench.yaml');
  writeFileSync(config, 'warmup: 0\n');
  const file = await runCli(['bench', '--config', config]);
  assert.equal(file.code, 2, file.stderr);
  assert.match(file.stderr, /--warmup must be between 1 and .*from --config/);
});

test('a bad data folder stops the run with a message naming the file and the fault', async () => {
  const dir = tempDir();
  const missing = await runCli(['local', '--data', join(dir, 'nope'), '--max-steps', '1']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /nope/);
  const bad = join(dir, 'bad');
  mkdirSync(bad);
  writeFileSync(join(bad, 'train-images-idx3-ubyte'), Buffer.from([0, 0, 8, 1, 0, 0, 0, 0, 0, 0, 0, 28, 0, 0, 0, 28]));
  writeFileSync(join(bad, 'train-labels-idx1-ubyte'), Buffer.from([0, 0, 8, 1, 0, 0, 0, 0]));
  const r = await runCli(['local', '--data', bad, '--max-steps', '1']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /train-images-idx3-ubyte.*expected 0x00000803.*found 0x00000801/);
});

test('a named backend that cannot load fails clearly', async () => {
  const r = await runCli(['worker', '--connect', 'ws://127.0.0.1:1', '--backend', 'tensorflow']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /cannot load backend "tensorflow": @tensorflow\/tfjs-node-gpu: .*@tensorflow\/tfjs-node: /);
});

test('local stops with a checkpoint, exit 1 when every worker died; resuming the half-done step is exact', async () => {
  const out = tempDir();
  const steps = 6;
  const args = [
    'local',
    '--workers',
    '1',
    '--backend',
    'wasm',
    '--max-steps',
    String(steps),
    '--no-samples',
    '--no-plots',
    '--progress',
    'off',
  ];
  // The one worker SIGKILLs itself on its step-2 G shard (worker/faults.ts), after D's step-2
  // update; children inherit the variable.
  const r = await runCli([...args, '--out', out], 120_000, {
    GANFLEET_FAULTS: JSON.stringify({ kill: { step: 2, phase: 'gen' } }),
  });
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stdout, /worker process 0 exited early \(SIGKILL\) and none is left; stopping/);
  assert.match(r.stderr, /every worker process exited before training finished.*--resume latest \[ERR_WORKERS_LOST\]/);
  const half = await readCheckpoint(join(out, 'checkpoint.safetensors'));
  assert.deepEqual([half.step, half.adam.gen.step, half.adam.dis.step], [2, 2, 3], 'D of step 2 applied, G not');

  const resumed = await runCli([...args, '--out', out, '--resume', 'latest']);
  assert.equal(resumed.code, 0, resumed.stdout + resumed.stderr);
  const cleanOut = tempDir();
  assert.equal((await runCli([...args, '--out', cleanOut])).code, 0);
  const a = await readCheckpoint(join(out, 'checkpoint.safetensors'));
  const b = await readCheckpoint(join(cleanOut, 'checkpoint.safetensors'));
  assert.equal(a.step, steps);
  assert.equal(paramsDigest(a.params), paramsDigest(b.params));
});
