import { test } from 'node:test';
import assert from 'node:assert/strict';
import { coordinator, exited, maxAbsDiff, spawnWorker } from '../support/cluster.js';
import type { TrainSummary } from '../../coordinator/trainer.js';

async function train(workers: number, steps: number): Promise<TrainSummary> {
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
    return summary;
  } finally {
    for (const p of procs) p.kill('SIGKILL');
  }
}

test('weights after K steps do not depend on the number of workers (1 vs 3, unequal shards)', async () => {
  const steps = Number(process.env.GANFLEET_WORLD_STEPS ?? 8);
  const one = await train(1, steps);
  const three = await train(3, steps);
  assert.equal(one.steps, steps);
  assert.equal(three.steps, steps);
  const dGen = maxAbsDiff(one.params.gen, three.params.gen);
  const dDis = maxAbsDiff(one.params.dis, three.params.dis);
  console.log(`max |Δw| after ${steps} steps: gen ${dGen.toExponential(2)}, dis ${dDis.toExponential(2)}`);
  assert.ok(dGen <= 1e-5, `gen differs by ${dGen}`);
  assert.ok(dDis <= 1e-5, `dis differs by ${dDis}`);
});
