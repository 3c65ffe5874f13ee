/**
 * Faults injected into real worker processes (GANFLEET_FAULTS, see worker/faults.ts) and the
 * exactness that must survive them: every faulty run ends with the weights of a clean run.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import type { TrainSummary } from '../../coordinator/trainer.js';
import { coordinator, exited, maxAbsDiff, messages, spawnWorker, trainWith, until } from '../support/cluster.js';

const STEPS = 8;
let clean: TrainSummary;

before(async () => {
  clean = (await trainWith([undefined], STEPS)).summary;
});

function assertSameWeights(s: TrainSummary, what: string): void {
  assert.equal(s.steps, STEPS);
  const dg = maxAbsDiff(s.params.gen, clean.params.gen);
  const dd = maxAbsDiff(s.params.dis, clean.params.dis);
  assert.ok(dg <= 1e-5 && dd <= 1e-5, `${what}: max |Δw| gen ${dg}, dis ${dd}`);
}

test('workers SIGKILLed mid-phase: their shards go to the others and the weights equal a clean run', async () => {
  const held: string[] = [];
  const { summary, procs } = await trainWith(
    [{ kill: { step: 2, phase: 'dis' } }, { kill: { step: 5, phase: 'gen' } }, undefined],
    STEPS,
    {},
    undefined,
    { onWorker: (e) => void (e.kind === 'left' && e.held && held.push(`${e.held.step}/${e.held.phase}`)) },
  );
  assertSameWeights(summary, 'after two SIGKILLs');
  assert.equal(procs[0]!.signalCode, 'SIGKILL');
  assert.equal(procs[1]!.signalCode, 'SIGKILL');
  // Each died holding the shard it was just given; the phase completed without it.
  assert.deepEqual(held.sort(), ['2/dis', '5/gen']);
});

test('a worker joining mid-run takes part from the next phase; weights unchanged', async () => {
  // A short run (float rounding from different splits grows over long GAN horizons), kept slow by a
  // first worker that holds each result back, so that the second is up before it ends.
  const steps = 40;
  const reference = (await trainWith([undefined], steps)).summary;
  const c = await coordinator({ maxSteps: steps, minWorkers: 1 });
  const first = spawnWorker(c.url, [], { GANFLEET_FAULTS: JSON.stringify({ slow: { ms: 50 } }) });
  await until(() => c.trainer.currentStep >= 3, 60_000, 'step 3');
  const second = spawnWorker(c.url);
  const summary = await c.done;
  await Promise.all([exited(first), exited(second)]);
  assert.equal(summary.steps, steps);
  assert.equal(summary.contributors, 2, 'the late worker computed shards');
  const dg = maxAbsDiff(summary.params.gen, reference.params.gen);
  const dd = maxAbsDiff(summary.params.dis, reference.params.dis);
  console.log(`late joiner after ${steps} steps: max |Δw| gen ${dg.toExponential(2)}, dis ${dd.toExponential(2)}`);
  assert.ok(dg <= 1e-5 && dd <= 1e-5, `with a late joiner: max |Δw| gen ${dg}, dis ${dd}`);
});

test('with no worker left training pauses, says so, and resumes when one joins', async () => {
  const lines: string[] = [];
  const c = await coordinator({ maxSteps: STEPS, minWorkers: 1 }, { lines });
  const only = spawnWorker(c.url, [], { GANFLEET_FAULTS: JSON.stringify({ kill: { step: 4, phase: 'dis' } }) });
  await exited(only);
  await until(
    () => messages(lines).includes('no worker connected: step 4 dis phase paused until one joins'),
    30_000,
    'the pause to be logged',
  );
  const rescuer = spawnWorker(c.url);
  const summary = await c.done;
  await exited(rescuer);
  assertSameWeights(summary, 'after a pause with zero workers');
});

test("a straggler's shard is sent to an idle worker at the deadline; the late copy is discarded", async () => {
  const lines: string[] = [];
  const { summary } = await trainWith([{ delay: { step: 3, phase: 'dis', ms: 4000 } }, undefined], STEPS, {}, lines);
  assertSameWeights(summary, 'with a straggler');
  assert.ok(messages(lines).includes('shards past their deadline; sending copies to idle workers'));
});

test('NaN results are discarded and re-sent; a worker that keeps sending them is disconnected with 4005', async () => {
  const lines: string[] = [];
  const once = await trainWith([{ nan: { step: 2, phase: 'dis', times: 1 } }, undefined], STEPS, {}, lines);
  assertSameWeights(once.summary, 'after one NaN result');
  assert.ok(messages(lines).includes('result rejected; shard sent again'));

  const lines2: string[] = [];
  const often = await trainWith([{ nan: { step: 2, phase: 'gen', times: 3 } }], STEPS, {}, lines2);
  assertSameWeights(often.summary, 'after a worker was dropped for NaNs');
  const closed = lines2
    .map((l) => JSON.parse(l))
    .find((l) => l.msg?.startsWith('closing worker connection: 3 rejected results in a row'));
  assert.ok(closed, 'the worker was disconnected');
  assert.equal(closed.closeCode, 4005);
});

test('a worker that stops answering pings is dropped with 4008; its shard is redone, the weights exact', async () => {
  const steps = 40;
  const reference = (await trainWith([undefined], steps)).summary;
  const lines: string[] = [];
  const c = await coordinator({ maxSteps: steps, minWorkers: 2 }, { lines, heartbeatMs: 1000 });
  const frozen = spawnWorker(c.url);
  const healthy = spawnWorker(c.url);
  await until(() => c.trainer.currentStep >= 3, 60_000, 'step 3');
  // SIGSTOP: the process and its socket stay up but nothing answers, as on a hung node.
  frozen.kill('SIGSTOP');
  await until(() => messages(lines).includes('worker missed a heartbeat; dropping it'), 30_000, 'the heartbeat drop');
  frozen.kill('SIGCONT');
  const summary = await c.done;
  await Promise.all([exited(frozen), exited(healthy)]);
  const dropped = lines
    .map((l) => JSON.parse(l))
    .find((l) => l.msg?.startsWith('closing worker connection: no pong within 1000 ms'));
  assert.equal(dropped?.closeCode, 4008);
  assert.equal(summary.steps, steps);
  const dg = maxAbsDiff(summary.params.gen, reference.params.gen);
  const dd = maxAbsDiff(summary.params.dis, reference.params.dis);
  assert.ok(dg <= 1e-5 && dd <= 1e-5, `after a heartbeat drop: max |Δw| gen ${dg}, dis ${dd}`);
});
