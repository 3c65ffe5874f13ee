/**
 * Relays with real worker processes (coordinator/topology.ts, worker/relay-*.ts): the slices shape
 * gives the star's weights bit for bit while the coordinator's link carries about one network a
 * phase instead of one per worker; a relay SIGKILLed holding other workers' contributions, a relay
 * that never sends its slice total and one that sends a short total all end in the same bits (the
 * phase runs again without that relay), the bad one struck like a worker.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { TrainerConfig } from '../../coordinator/trainer.js';
import { coordinator, events, exited, paramsDigest, spawnWorker } from '../support/cluster.js';

const STEPS = 6;
const WORKERS = 4;

/** Trains STEPS steps with WORKERS socket-only workers (the faults of worker 0 as given). */
async function run(topology: TrainerConfig['topology'], fault?: object) {
  const lines: string[] = [];
  const c = await coordinator({ maxSteps: STEPS, minWorkers: WORKERS, topology }, { lines, shm: false });
  const procs = Array.from({ length: WORKERS }, (_, i) =>
    spawnWorker(c.url, [], i === 0 && fault ? { GANFLEET_FAULTS: JSON.stringify(fault) } : {}),
  );
  const summary = await c.done;
  await Promise.all(procs.map(exited));
  return { summary, lines, bytesIn: c.server.bytesIn, procs };
}

// One star run is the reference for every test below.
const star = run('star');

test('slices: the same bits as the star; the coordinator link carries a fraction of the bytes', async () => {
  const ref = await star;
  const relayed = await run('slices');
  assert.equal(events(ref.lines, 'plan-changed').length, 0);
  assert.equal(events(relayed.lines, 'plan-changed').length, 1);
  assert.equal(relayed.summary.steps, STEPS);
  assert.equal(paramsDigest(relayed.summary.params), paramsDigest(ref.summary.params));
  // Star: every worker's totals come in (4 networks' worth a phase); slices: one network's worth.
  assert.ok(relayed.bytesIn < ref.bytesIn / 2.5, `${relayed.bytesIn} bytes in vs the star's ${ref.bytesIn}`);
  assert.deepEqual(
    relayed.procs.map((p) => p.exitCode),
    [0, 0, 0, 0],
  );
});

test('a relay SIGKILLed on its flush: the phase runs again without it; the same bits', async () => {
  const ref = await star;
  const r = await run('slices', { relayKill: { step: 3, phase: 'dis' } });
  assert.equal(r.procs[0]!.signalCode, 'SIGKILL');
  const replanned = events(r.lines, 'phase-replanned');
  assert.equal(replanned.length, 1, JSON.stringify(replanned));
  assert.deepEqual([replanned[0]!.step, replanned[0]!.phase], [3, 'dis']);
  assert.equal(r.summary.steps, STEPS);
  assert.equal(paramsDigest(r.summary.params), paramsDigest(ref.summary.params));
});

test('a relay that never sends its slice total is passed over at the deadline; the same bits', async () => {
  const ref = await star;
  const r = await run('slices', { relayHold: { step: 2, phase: 'gen' } });
  const replanned = events(r.lines, 'phase-replanned');
  assert.equal(replanned.length, 1);
  assert.deepEqual([replanned[0]!.step, replanned[0]!.phase], [2, 'gen']);
  assert.equal(paramsDigest(r.summary.params), paramsDigest(ref.summary.params));
});

test('a relay that sends a short slice total is struck and passed over; the same bits', async () => {
  const ref = await star;
  const r = await run('slices', { relayBad: { step: 4, phase: 'dis' } });
  const rejected = events(r.lines, 'result-rejected');
  assert.equal(rejected.length, 1);
  assert.deepEqual([rejected[0]!.step, rejected[0]!.phase], [4, 'dis']);
  assert.equal(events(r.lines, 'phase-replanned').length, 1);
  assert.equal(paramsDigest(r.summary.params), paramsDigest(ref.summary.params));
});
