/**
 * The threaded-SIMD wasm binary from Node: its pthread workers start from a real file (not the
 * blob: URL tfjs makes), XNNPACK gets the thread count asked for, products are right, and the
 * process still exits by itself. Each case runs in a child process: tfjs starts the wasm module
 * once per process.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
const backendUrl = pathToFileURL(join(here, '..', '..', 'worker', 'backend.js')).href;

function runChild(options: string): { status: number | null; out: Record<string, unknown>; stderr: string } {
  const script = `
    import * as tf from '@tensorflow/tfjs-core';
    import { getThreadsCount } from '@tensorflow/tfjs-backend-wasm';
    import { selectBackend } from ${JSON.stringify(backendUrl)};
    const info = await selectBackend('wasm', ${options});
    const a = tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]);
    const b = tf.tensor2d([7, 8, 9, 10, 11, 12], [3, 2]);
    const big = tf.matMul(tf.ones([96, 784]), tf.ones([784, 256])).dataSync();
    console.log(JSON.stringify({ info, xnnThreads: getThreadsCount(), mm: Array.from(tf.matMul(a, b).dataSync()),
      big: [big[0], big[big.length - 1], big.length] }));
  `;
  // Run from the package root so that the bare imports resolve against its node_modules.
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    cwd: join(here, '..', '..', '..'),
    encoding: 'utf8',
    timeout: 60_000,
  });
  const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('{'));
  return {
    status: r.status,
    out: line === undefined ? {} : (JSON.parse(line) as Record<string, unknown>),
    stderr: r.stderr ?? '',
  };
}

test('threaded wasm: 2 XNNPACK threads from Node, right products, clean exit', () => {
  const r = runChild('{ native: false, threads: 2 }');
  assert.equal(r.status, 0, `child failed or hung: ${r.stderr.slice(-500)}`);
  const info = r.out.info as { device: string; threads: number; native: boolean };
  assert.equal(info.threads, 2);
  assert.equal(info.native, false);
  assert.match(info.device, /wasm simd, 2 threads/);
  assert.equal(r.out.xnnThreads, 2);
  assert.deepEqual(r.out.mm, [58, 64, 139, 154]);
  assert.deepEqual(r.out.big, [784, 784, 96 * 256]);
});

test('wasm with 1 thread uses the single-threaded binary', () => {
  const r = runChild('{ native: false, threads: 1 }');
  assert.equal(r.status, 0, r.stderr.slice(-500));
  const info = r.out.info as { device: string; threads: number };
  assert.equal(info.threads, 1);
  assert.match(info.device, /1 thread$/);
  assert.equal(r.out.xnnThreads, 1);
  assert.deepEqual(r.out.mm, [58, 64, 139, 154]);
});

test('selectBackend rejects a thread count that is not a positive integer', async () => {
  const { selectBackend } = (await import(backendUrl)) as typeof import('../../worker/backend.js');
  await assert.rejects(selectBackend('wasm', { threads: 0 }), /threads/);
  await assert.rejects(selectBackend('cpu', { threads: 1.5 }), /threads/);
});
