import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { validateBenchReport, type BenchReport } from '../../coordinator/bench/report.js';
import { runCli, tempDir } from '../support/cluster.js';

test('ganfleet bench (synthetic compute, f16 grads) writes a valid bench.json, the table and the chart', {
  timeout: 240_000,
}, async () => {
  const out = tempDir('ganfleet-bench-');
  const r = await runCli(
    [
      'bench',
      '--workers',
      '1,2',
      '--synthetic-compute-ms',
      '2',
      '--steps',
      '4',
      '--warmup',
      '1',
      '--grad-dtype',
      'f16',
      '--backend',
      'cpu',
      '--out',
      out,
    ],
    200_000,
  );
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /\| workers \| shape \| batch \| images\/s \|/);
  const report = JSON.parse(readFileSync(join(out, 'bench.json'), 'utf8')) as BenchReport;
  assert.deepEqual(validateBenchReport(report), []);
  assert.deepEqual(
    report.results.map((x) => x.workers),
    [1, 2],
  );
  for (const x of report.results) {
    // Weights down in float32, gradients up in f16: the minimum is 6 bytes per parameter.
    assert.ok(x.bytesRatio >= 1 && x.bytesRatio <= 1.02, `bytes ${x.bytesRatio} × the minimum`);
  }
  assert.ok(existsSync(join(out, 'bench.md')) && existsSync(join(out, 'bench.png')));
});

test('ganfleet bench --batch-per-worker --no-shm --topology slices: weak scaling over sockets, relays at 4', {
  timeout: 240_000,
}, async () => {
  const out = tempDir('ganfleet-bench-weak-');
  const r = await runCli(
    [
      'bench',
      '--workers',
      '1,4',
      '--batch-per-worker',
      '8',
      '--no-shm',
      '--topology',
      'slices',
      '--synthetic-compute-ms',
      '2',
      '--steps',
      '3',
      '--warmup',
      '1',
      '--backend',
      'cpu',
      '--out',
      out,
    ],
    200_000,
  );
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /batch 8 per worker \(weak scaling\)/);
  const report = JSON.parse(readFileSync(join(out, 'bench.json'), 'utf8')) as BenchReport;
  assert.deepEqual(validateBenchReport(report), []);
  assert.equal(report.settings.batchPerWorker, 8);
  assert.deepEqual(
    report.results.map((x) => [x.batchSize, x.shape.kind, x.shape.fanOut, x.workerTransports.tcp]),
    [
      [8, 'star', 1, 1],
      [32, 'slices', 4, 4],
    ],
  );
  for (const x of report.results) assert.ok(x.coordinatorCpuMs > 0 && x.coordinatorMsP50 >= 0);
  // Slices: the coordinator's link carries one network's worth each way, not four.
  const [one, four] = report.results;
  assert.ok(four!.coordinatorLink.in < 1.1 * one!.coordinatorLink.in, 'coordinator link in, 4 relays vs 1 worker');
});

test('ganfleet bench refuses malformed flags with exit 2, naming the flag', async () => {
  for (const [args, flag] of [
    [['--workers', '1,x'], '--workers'],
    [['--grad-dtype', 'f8'], '--grad-dtype'],
    [['--attach', 'http://x'], '--attach'],
    [['--synthetic-compute-ms', '-1'], '--synthetic-compute-ms'],
    [['--batch-size', '64', '--batch-per-worker', '32'], '--batch-per-worker'],
    [['--batch-per-worker', '0'], '--batch-per-worker'],
    [['--workers', '1,4', '--worker-gbit', '1,1'], '--worker-gbit'],
    [['--worker-gbit', '1,x'], '--worker-gbit'],
    [['--workers', '1,2', '--overhead-ms', '1,2,3'], '--overhead-ms'],
    [['--overhead-ms', '-5'], '--overhead-ms'],
  ] as const) {
    const r = await runCli(['bench', ...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.ok(r.stderr.includes(flag), r.stderr);
  }
});
