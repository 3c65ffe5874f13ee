/**
 * The exact reduction's promise, end to end with real worker processes: the same seed gives the
 * same weights, bit for bit, whatever the number of workers and the throughput-driven split, and
 * whether a worker died mid-phase and had its shard redone.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readCheckpoint } from '../../coordinator/checkpoint.js';
import { coordinator, exited, paramsDigest, runCli, spawnWorker, tempDir, trainWith } from '../support/cluster.js';

const STEPS = Number(process.env.GANFLEET_WORLD_STEPS ?? 200);

async function train(workers: number, steps: number): Promise<string> {
  const c = await coordinator({ maxSteps: steps, minWorkers: workers });
  const procs = Array.from({ length: workers }, () => spawnWorker(c.url));
  try {
    const summary = await c.done;
    const codes = await Promise.all(procs.map(exited));
    assert.deepEqual(
      codes,
      procs.map(() => 0),
      procs.map((p) => p.output()).join('\n'),
    );
    assert.equal(summary.steps, steps);
    assert.equal(summary.contributors, workers, 'every worker computed shards');
    return paramsDigest(summary.params);
  } finally {
    for (const p of procs) p.kill('SIGKILL');
  }
}

test(`1, 2, 3 and 5 workers end ${STEPS} steps with bit-identical weights`, async () => {
  const digests = new Map<number, string>();
  for (const w of [1, 2, 3, 5]) digests.set(w, await train(w, STEPS));
  console.log(`weights after ${STEPS} steps: ${[...digests].map(([w, d]) => `${w}: ${d.slice(0, 16)}`).join(', ')}`);
  assert.equal(new Set(digests.values()).size, 1, JSON.stringify([...digests]));
});

test('local with 1 and 3 workers, and a run that loses a worker mid-phase: the same checkpoint tensors', async () => {
  const digestOf = async (workers: number) => {
    const out = join(tempDir(), 'run');
    const r = await runCli(
      [
        'local',
        '--workers',
        String(workers),
        '--threads',
        '1',
        '--max-steps',
        String(STEPS),
        '--seed',
        '5',
        '--out',
        out,
      ],
      600_000,
    );
    assert.equal(r.code, 0, r.stderr);
    const ckpt = await readCheckpoint(join(out, 'checkpoint.safetensors'));
    return paramsDigest(ckpt.params);
  };
  const one = await digestOf(1);
  const three = await digestOf(3);
  const { summary, procs } = await trainWith([{ kill: { step: 7, phase: 'gen' } }, undefined, undefined], STEPS, {
    seed: 5,
  });
  assert.equal(procs[0]!.signalCode, 'SIGKILL');
  const killed = paramsDigest(summary.params);
  console.log(
    `local 1 worker ${one.slice(0, 16)}, 3 workers ${three.slice(0, 16)}, one SIGKILLed ${killed.slice(0, 16)}`,
  );
  assert.equal(three, one);
  assert.equal(killed, one);
});
