/**
 * `ganfleet local` with a webgpu worker (Dawn on SwiftShader, CPU-emulated Vulkan: what CI has) and
 * a wasm worker in one run. SwiftShader is slow, so the run is a few steps of a small batch.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readCheckpoint } from '../../coordinator/checkpoint.js';
import { runCli, tempDir } from '../support/cluster.js';
import { swiftShaderEnv } from '../support/swiftshader.js';

type LogLine = Record<string, unknown>;

function jsonLines(text: string): LogLine[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine);
}

test('ganfleet local --backend webgpu,wasm: a webgpu and a wasm worker train together', async () => {
  const out = join(tempDir(), 'run');
  // Batch 32: the exact reduction (the default) cuts a batch into shards of whole 16-sample chunks, so
  // two workers need two chunks. A minute's heartbeat: on SwiftShader the exact reduction's probe, which
  // a worker runs when it joins (worker/client.ts), blocks it for 10–20 s of CPU emulation.
  const args = ['local', '--workers', '2', '--backend', 'webgpu,wasm', '--batch-size', '32', '--max-steps', '4'];
  args.push('--heartbeat-ms', '60000');
  const r = await runCli([...args, '--out', out], 600_000, swiftShaderEnv());
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const lines = jsonLines(`${r.stdout}\n${r.stderr}`);
  // Each worker's choice, as it logged it, and as the coordinator recorded it when the worker joined.
  const chosen = lines.filter((l) => l.name === 'worker' && typeof l.backend === 'string').map((l) => l.backend);
  assert.deepEqual(chosen.sort(), ['wasm', 'webgpu']);
  const joined = (backend: string) => lines.filter((l) => l.event === 'session-joined' && l.backend === backend);
  assert.equal(joined('wasm').length, 1);
  assert.deepEqual(
    joined('webgpu').map((l) => l.device),
    ['google swiftshader (SwiftShader driver 5.0.0), cpu emulation'],
  );
  // Both workers' results went into the weights.
  const done = lines.find((l) => l.name === 'local' && typeof l.contributors === 'number');
  assert.ok(done, 'the run summary');
  assert.equal(done.steps, 4);
  assert.equal(done.contributors, 2);
  for (const k of ['d_loss', 'g_loss', 'd_real', 'd_fake']) assert.ok(Number.isFinite(done[k]), k);
  const ckpt = await readCheckpoint(join(out, 'checkpoint.safetensors'));
  assert.equal(ckpt.step, 4);
});

test('worker --backend webgpu with no Vulkan driver that Dawn accepts: a BackendError naming the fix', async () => {
  const r = await runCli(['worker', '--connect', 'ws://127.0.0.1:1', '--backend', 'webgpu'], 60_000, {
    VK_ICD_FILENAMES: '/nonexistent/icd.json',
  });
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    /cannot load backend "webgpu": webgpu: no WebGPU adapter: .*VK_ICD_FILENAMES.*\[ERR_BACKEND\]/,
  );
});
