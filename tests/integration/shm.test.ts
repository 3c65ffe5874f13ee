/**
 * Shared memory with real worker processes on the coordinator's host: it is taken automatically,
 * the weights are the same bits as over the sockets, and a worker killed half-way through writing
 * its slot corrupts nothing (its half-written result is never consumed; its shard is redone).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { shmUnavailable } from '../../shared/shm.js';
import { coordinator, events, exited, paramsDigest, spawnWorker, trainWith } from '../support/cluster.js';

const STEPS = 8;
const skip = shmUnavailable() || false;
const segments = (pid: number) => readdirSync('/dev/shm').filter((n) => n.startsWith(`ganfleet-${pid}-`));

test('workers on the coordinator host take shared memory; the weights equal a sockets-only run', { skip }, async () => {
  // One worker takes the offer, one declines it (--no-shm): both paths in one run.
  const lines: string[] = [];
  const c = await coordinator({ maxSteps: STEPS, minWorkers: 2 }, { lines });
  const procs = [spawnWorker(c.url), spawnWorker(c.url, ['--no-shm'])];
  const mixed = await c.done;
  await Promise.all(procs.map(exited));
  assert.equal(events(lines, 'shm-linked').length, 1);
  assert.equal(events(lines, 'shm-declined').length, 1);
  const linesWs: string[] = [];
  const viaSockets = await trainWith([undefined, undefined], STEPS, {}, linesWs, undefined, { shm: false });
  assert.equal(events(linesWs, 'shm-linked').length, 0);
  assert.equal(paramsDigest(mixed.params), paramsDigest(viaSockets.summary.params));
  assert.deepEqual(segments(process.pid), [], 'every segment is removed when the run ends');
});

test('a worker SIGKILLed half-way through writing its slot: nothing half-written is used; weights exact', {
  skip,
}, async () => {
  const clean = paramsDigest((await trainWith([undefined], STEPS)).summary.params);
  const lines: string[] = [];
  const { summary, procs } = await trainWith(
    [{ killMidWrite: { step: 3, phase: 'gen' } }, undefined],
    STEPS,
    {},
    lines,
  );
  assert.equal(procs[0]!.signalCode, 'SIGKILL');
  assert.equal(events(lines, 'shm-linked').length, 2);
  assert.equal(summary.steps, STEPS);
  assert.equal(paramsDigest(summary.params), clean);
});
