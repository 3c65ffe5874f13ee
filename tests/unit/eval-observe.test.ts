/**
 * The sample-quality knobs and outputs short of a run: --beta1/--beta2/--eval-every/--eval-samples
 * parsing, the metrics.jsonl "eval" lines beside the step lines, the loss.png panels, the
 * Prometheus gauges and the dashboard's state.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { resolveOptions } from '../../cli/flags.js';
import { evalOptions, trainerConfig } from '../../cli/train-options.js';
import type { EvalRecord } from '../../coordinator/eval/observer.js';
import { MetricsObserver } from '../../coordinator/observe/metrics.js';
import { lossSpec, readEvalRecords, readMetricsPoints, renderSvg } from '../../coordinator/observe/plots.js';
import { DashboardState } from '../../coordinator/observe/state.js';
import type { CoordinatorServer } from '../../coordinator/server.js';
import { UsageError } from '../../shared/errors.js';
import { tempDir } from '../support/cluster.js';

const flags = (argv: string[], env: NodeJS.ProcessEnv = {}) => resolveOptions('local', argv, { env });

function record(step: number, fd: number): EvalRecord {
  return {
    type: 'eval',
    step,
    epoch: step / 100,
    fd,
    classifier_score: 10 - fd / 100,
    digits: 7,
    digit_shares: [0.3, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1, 0, 0, 0],
    samples: 10_000,
    eval_ms: 250,
    eval_cpu_ms: 240,
  };
}

test("--beta1/--beta2 reach Adam (defaults: the seed's 0.9/0.999); --eval-every/--eval-samples", () => {
  const seed = trainerConfig(flags([]));
  assert.deepEqual(seed.adam, { lr: 3e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8 });
  const recipe = trainerConfig(flags(['--beta1', '0.5', '--beta2', '0.99']));
  assert.deepEqual(recipe.adam, { lr: 3e-4, beta1: 0.5, beta2: 0.99, eps: 1e-8 });
  assert.equal(trainerConfig(flags([], { GANFLEET_BETA1: '0' })).adam.beta1, 0);
  for (const bad of [
    ['--beta1', '1'],
    ['--beta2', '2'],
    ['--beta1', 'half'],
  ])
    assert.throws(
      () => trainerConfig(flags(bad)),
      (e: Error) => e instanceof UsageError && e.message.startsWith(`${bad[0]} must be a number in [0, 0.9999]`),
    );
  assert.deepEqual(evalOptions(flags([])), { evalEvery: 1, evalSamples: 10_000 });
  assert.deepEqual(evalOptions(flags(['--eval-every', '0', '--eval-samples', '500'])), {
    evalEvery: 0,
    evalSamples: 500,
  });
  assert.throws(() => evalOptions(flags(['--eval-samples', '20000'])), UsageError);
});

test('metrics.jsonl: "eval" lines and step lines are read apart; loss.png gets the quality panels', async () => {
  const dir = tempDir();
  const step = (s: number) => ({ step: s, epoch: 0, d_loss: 1, g_loss: 2, d_real: 0.6, d_fake: 0.4 });
  writeFileSync(
    join(dir, 'metrics.jsonl'),
    [step(100), record(200, 80), step(200), record(100, 120)].map((l) => JSON.stringify(l)).join('\n') + '\n',
  );
  assert.deepEqual(
    (await readMetricsPoints(dir)).map((p) => p.step),
    [100, 200],
  );
  const evals = await readEvalRecords(dir);
  assert.deepEqual(
    evals.map((e) => [e.step, e.fd]),
    [
      [100, 120],
      [200, 80],
    ],
  );
  const svg = await renderSvg(lossSpec([step(100), step(200)], 'run', evals));
  for (const label of ['Fréchet distance', 'classifier score', 'digits ≥ 5 %', 'D loss'])
    assert.ok(svg.includes(label.replace('≥', '&#8805;')) || svg.includes(label), `SVG lacks "${label}"`);
  assert.ok(!(await renderSvg(lossSpec([step(100)]))).includes('Fréchet'), 'no quality panels without scores');
});

test('Prometheus gauges and the dashboard state take the scores and the floor', async () => {
  const server = { active: () => [], ready: true, bytesIn: 0, bytesOut: 0 } as unknown as CoordinatorServer;
  const m = new MetricsObserver(server, { defaultMetrics: false });
  m.onEvalFloor({ ...record(0, 1.5), samples: 10_000 });
  m.onEval(record(300, 42.5));
  const { body } = await m.render();
  assert.match(body, /^ganfleet_eval_frechet_distance\{images="generated"\} 42\.5$/m);
  assert.match(body, /^ganfleet_eval_frechet_distance\{images="real"\} 1\.5$/m);
  assert.match(body, /^ganfleet_eval_digits\{images="generated"\} 7$/m);
  assert.match(body, /^ganfleet_eval_digit_share\{digit="0"\} 0\.3$/m);
  assert.match(body, /^ganfleet_eval_epoch 3$/m);
  assert.match(body, /^ganfleet_eval_duration_seconds_count 1$/m);

  const run = { seed: 1, epochs: 3, totalSteps: 300, stepsPerEpoch: 100, batchSize: 128, outDir: '.', startedAt: 0 };
  const state = new DashboardState(run, () => ({ step: 0, params: new Float32Array(0) }));
  state.onEvalFloor(record(0, 1.5));
  state.onEval(record(100, 90));
  state.onEval(record(200, 60));
  const snap = state.snapshot() as { evals: Array<{ epoch: number; fd: number }>; evalFloor: { fd: number } };
  assert.deepEqual(
    snap.evals.map((e) => [e.epoch, e.fd]),
    [
      [1, 90],
      [2, 60],
    ],
  );
  assert.equal(snap.evalFloor.fd, 1.5);
});
