/**
 * Faults injected into real worker processes (GANFLEET_FAULTS, see worker/faults.ts) and the
 * exactness that must survive them: every faulty run ends with the weights of a clean run, bit for
 * bit (the exact reduction: shared/fixed.ts). Waits are on events and signals, never on timers.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import type { TrainSummary } from '../../coordinator/trainer.js';
import { CloseCode } from '../../shared/errors.js';
import { coordinator, events, exited, paramsDigest, spawnWorker, trainWith, until } from '../support/cluster.js';

const STEPS = 8;
let clean: string;

before(async () => {
  clean = paramsDigest((await trainWith([undefined], STEPS)).summary.params);
});

function assertClean(s: TrainSummary, what: string): void {
  assert.equal(s.steps, STEPS);
  assert.equal(paramsDigest(s.params), clean, `${what}: the weights differ from a clean run's`);
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
  assertClean(summary, 'after two SIGKILLs');
  assert.equal(procs[0]!.signalCode, 'SIGKILL');
  assert.equal(procs[1]!.signalCode, 'SIGKILL');
  // Each died holding the shard it was just given; the phase completed without it.
  assert.deepEqual(held.sort(), ['2/dis', '5/gen']);
});

test('a worker joining mid-run takes part from then on; weights unchanged', async () => {
  const c = await coordinator({ maxSteps: STEPS, minWorkers: 1 });
  // The first worker holds step 3's D result until it is told to send it (SIGUSR2), so the
  // second surely joins while the run is under way.
  const first = spawnWorker(c.url, [], { GANFLEET_FAULTS: JSON.stringify({ hold: { step: 3, phase: 'dis' } }) });
  await until(() => c.trainer.currentStep === 3, 120_000, 'step 3');
  const joined = new Promise<void>((resolve) =>
    c.trainer.bus.add({ onWorker: (e) => e.kind === 'joined' && resolve() }),
  );
  const second = spawnWorker(c.url);
  await joined;
  first.kill('SIGUSR2');
  const summary = await c.done;
  await Promise.all([exited(first), exited(second)]);
  assert.equal(summary.contributors, 2, 'the late worker computed shards');
  assertClean(summary, 'with a late joiner');
});

test('with no worker left training pauses, says so, and resumes when one joins', async () => {
  const lines: string[] = [];
  const c = await coordinator({ maxSteps: STEPS, minWorkers: 1 }, { lines });
  const only = spawnWorker(c.url, [], { GANFLEET_FAULTS: JSON.stringify({ kill: { step: 4, phase: 'dis' } }) });
  await exited(only);
  await until(() => events(lines, 'phase-paused').length > 0, 60_000, 'the pause to be logged');
  assert.deepEqual(
    events(lines, 'phase-paused').map((e) => [e.step, e.phase]),
    [[4, 'dis']],
  );
  const rescuer = spawnWorker(c.url);
  const summary = await c.done;
  await exited(rescuer);
  assertClean(summary, 'after a pause with zero workers');
});

test("a straggler's shard is sent to an idle worker at the deadline; the late copy is discarded", async () => {
  const lines: string[] = [];
  const c = await coordinator({ maxSteps: STEPS, minWorkers: 2 }, { lines });
  const straggler = spawnWorker(c.url, [], { GANFLEET_FAULTS: JSON.stringify({ hold: { step: 3, phase: 'dis' } }) });
  const other = spawnWorker(c.url);
  // The held result goes once step 3 is done (its copy computed elsewhere): it then arrives late.
  c.trainer.bus.add({ onStep: (e) => void (e.step === 4 && straggler.kill('SIGUSR2')) });
  const summary = await c.done;
  await Promise.all([exited(straggler), exited(other)]);
  assertClean(summary, 'with a straggler');
  assert.ok(events(lines, 'shards-speculated').some((e) => e.step === 3 && e.phase === 'dis'));
});

test('NaN results are refused and sent again; a worker that keeps sending them is disconnected with 4005', async () => {
  const lines: string[] = [];
  const once = await trainWith([{ nan: { step: 2, phase: 'dis', times: 1 } }, undefined], STEPS, {}, lines);
  assertClean(once.summary, 'after one NaN result');
  assert.deepEqual(
    events(lines, 'result-rejected').map((e) => [e.step, e.phase, e.reason]),
    [[2, 'dis', 'non-finite']],
  );

  const lines2: string[] = [];
  const often = await trainWith([{ nan: { step: 2, phase: 'gen', times: 3 } }], STEPS, {}, lines2);
  assertClean(often.summary, 'after a worker was dropped for NaNs');
  const closed = events(lines2, 'session-closed');
  assert.deepEqual(
    closed.map((e) => [e.code, e.closeCode]),
    [['ERR_BAD_RESULTS', CloseCode.BAD_RESULT]],
  );
});

test('a worker that stops answering pings is dropped with 4008; its shard is redone, the weights exact', async () => {
  const lines: string[] = [];
  const c = await coordinator({ maxSteps: STEPS, minWorkers: 2 }, { lines, heartbeatMs: 1000 });
  // Both hold step 3's G result, so the run waits there (no idle worker takes a copy) until the
  // frozen one has been dropped and the healthy one is let go.
  const hold = { GANFLEET_FAULTS: JSON.stringify({ hold: { step: 3, phase: 'gen' } }) };
  const frozen = spawnWorker(c.url, [], hold);
  const healthy = spawnWorker(c.url, [], hold);
  await until(() => c.trainer.currentStep === 3, 120_000, 'step 3');
  // SIGSTOP: the process and its socket stay up but nothing answers, as on a hung node.
  frozen.kill('SIGSTOP');
  await until(() => events(lines, 'heartbeat-missed').length > 0, 60_000, 'the heartbeat drop');
  frozen.kill('SIGCONT');
  // The frozen worker's held result belongs to the dropped connection: released, it is not sent.
  frozen.kill('SIGUSR2');
  healthy.kill('SIGUSR2');
  const summary = await c.done;
  await Promise.all([exited(frozen), exited(healthy)]);
  assert.deepEqual(
    events(lines, 'session-closed').map((e) => [e.code, e.closeCode]),
    [['ERR_HEARTBEAT', CloseCode.HEARTBEAT_TIMEOUT]],
  );
  assertClean(summary, 'after a heartbeat drop');
});
