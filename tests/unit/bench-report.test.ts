import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PNG } from 'pngjs';
import {
  BENCH_SCHEMA,
  markdownTable,
  modelStepMs,
  percentile,
  ringModelStepMs,
  shapeBytes,
  slicesModelStepMs,
  slowestWorkerGbit,
  validateBenchReport,
  type BenchReport,
} from '../../coordinator/bench/report.js';
import { renderChart } from '../../coordinator/bench/chart.js';
import { piecesFor } from '../../shared/slices.js';

function sample(): BenchReport {
  const result = (workers: number, ips: number) => ({
    workers,
    nodes: 1,
    steps: 10,
    imagesPerS: ips,
    imagesPerSPerWorker: ips / workers,
    imagesPerSPerNode: ips,
    scalingEfficiency: 1,
    stepMs: { mean: 40, p50: 39, p95: 45 },
    breakdownMs: { compute: 20, reduce: 1, adam: 4, encode: 1, send: 1, wireAndOther: 13 },
    batchSize: 128,
    coordinatorMs: 6,
    coordinatorMsP50: 5.5,
    coordinatorCpuMs: 12,
    receivers: workers,
    bytesUpPerWorker: 2.25e6,
    bytesDownPerReceiver: 2.25e6,
    bytesPerStepPerWorker: 4.5e6,
    minBytesPerStepPerWorker: 4.48e6,
    bytesRatio: 1.0002,
    workerTransports: { shm: 0, unix: 0, tcp: workers },
    modelWorkerGbit: 1,
    overheadMs: 0,
    modelStepMs: 38,
    measuredOverModel: 1.05,
    shape: { kind: 'star' as const, fanOut: workers, depth: 1 },
    coordinatorLink: { in: 2.25e6 * workers, out: 2.25e6 * workers },
    busiestWorkerLink: { in: 2.25e6, out: 2.25e6 },
    shapeNeeds: { coordinator: { in: 2.2e6 * workers, out: 2.2e6 * workers }, worker: { in: 2.2e6, out: 2.2e6 } },
    ringModelStepMs: 30,
  });
  return {
    schema: BENCH_SCHEMA,
    createdAt: new Date(0).toISOString(),
    machine: { cpus: 2, cpuModel: 'test', node: 'v20', platform: 'linux', arch: 'x64' },
    settings: {
      mode: 'local',
      workers: [1, 2],
      steps: 10,
      warmup: 2,
      batchSize: 128,
      batchPerWorker: null,
      gradDtype: 'f32',
      syntheticComputeMs: null,
      backend: 'wasm',
      threadsPerWorker: null,
      transport: 'tcp',
      coordinatorKernels: 'native',
      coordinatorGbit: 10,
      workerGbit: [1],
      hostGbit: null,
      linkSource: 'flags',
      seed: 1,
    },
    results: [result(1, 3000), result(2, 5000)],
  };
}

test('a well-formed report passes the schema; each kind of fault is named', () => {
  assert.deepEqual(validateBenchReport(sample()), []);
  const r = sample() as unknown as Record<string, any>;
  r.results[1].imagesPerS = 'fast';
  delete r.settings.steps;
  r.extra = 1;
  r.results[0].stepMs.p50 = Infinity;
  const errors = validateBenchReport(r);
  assert.ok(errors.includes('$.results[1].imagesPerS: expected a finite number'), errors.join('\n'));
  assert.ok(errors.includes('$.settings.steps: expected an integer'));
  assert.ok(errors.includes('$.extra: unexpected field'));
  assert.ok(errors.includes('$.results[0].stepMs.p50: expected a finite number'));
  const s = sample();
  s.results.pop();
  assert.deepEqual(validateBenchReport(s), ['$.results: one result per worker count expected']);
  assert.deepEqual(validateBenchReport({ ...sample(), schema: 'other' }), [`$.schema: expected ${BENCH_SCHEMA}`]);
  const spare = sample();
  spare.results[1]!.receivers = 1;
  spare.settings.workerGbit = [];
  assert.deepEqual(validateBenchReport(spare), [
    '$.settings.workerGbit: one or more positive rates expected',
    '$.results[1].receivers: fewer than the workers',
  ]);
});

test('the bandwidth model: compute + coordinator + each direction at its slower side + overhead', () => {
  const near = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-9, `${a} != ${b}`);
  const m = { computeMs: 20, coordinatorMs: 5, bytesUp: 2.24e6, bytesDown: 2.24e6, coordinatorGbit: 10, workerGbit: 1 };
  // 4.48 MB per worker; 1 Gbit/s worker links, 10 Gbit/s coordinator link: README's max(W·B/C, B/L).
  near(modelStepMs({ ...m, workers: 1 }), 25 + 35.84);
  near(modelStepMs({ ...m, workers: 16 }), 25 + 16 * 3.584);
  // Spare receivers load only the weights direction of the coordinator's link: 1 worker, 32 receivers.
  near(modelStepMs({ ...m, workers: 1, receivers: 32, coordinatorGbit: 1 }), 25 + 17.92 + 32 * 17.92);
  near(modelStepMs({ ...m, workers: 1, overheadMs: 7.5 }), 25 + 35.84 + 7.5);
  // Hosts that move only 0.5 Gbit/s: both links count as 0.5 (the 10 Gbit/s one for 16 workers too).
  near(modelStepMs({ ...m, workers: 1, hostGbit: 0.5 }), 25 + 2 * 35.84);
  near(modelStepMs({ ...m, workers: 16, hostGbit: 0.5 }), 25 + 16 * 2 * 35.84);
  near(modelStepMs({ ...m, workers: 1, hostGbit: 20 }), 25 + 35.84);
  assert.equal(slowestWorkerGbit([1, 1, 0.1], 2), 1);
  assert.equal(slowestWorkerGbit([1, 1, 0.1], 3), 0.1);
  assert.equal(slowestWorkerGbit([2.5], 8), 2.5);
  assert.equal(percentile([5, 1, 3, 2, 4], 50), 3);
  assert.equal(percentile([5, 1, 3, 2, 4], 95), 5);
});

test('shape bytes: the star loads the coordinator W-fold; slices keep every link near two networks', () => {
  const g = 4.5e6; // both networks' weights, one way
  const star = shapeBytes({ kind: 'star', fanOut: 16, depth: 1 }, 16, 16, g, g);
  assert.deepEqual(star, { coordinator: { in: 16 * g, out: 16 * g }, worker: { in: g, out: g } });
  const slices = shapeBytes({ kind: 'slices', fanOut: 16, depth: 2 }, 16, 16, g, g);
  assert.deepEqual(slices, { coordinator: { in: g, out: g }, worker: { in: (31 / 16) * g, out: (31 / 16) * g } });
  // 4 relays among 16 workers: each relay takes 15 contributions of a quarter and passes on a quarter to 15.
  assert.equal(shapeBytes({ kind: 'slices', fanOut: 4, depth: 2 }, 16, 16, g, g).worker.in, (19 / 4) * g);
  // Narrower gradients (G) than weights (D) on the wire: G(W − 1)/k + D in, G + D(W − 1)/k out.
  const d = 3e6;
  assert.deepEqual(shapeBytes({ kind: 'slices', fanOut: 16, depth: 2 }, 16, 16, d, g), {
    coordinator: { in: g, out: d },
    worker: { in: (15 / 16) * g + d, out: g + (15 / 16) * d },
  });
});

test('the slices and ring models: the busiest direction of the busiest link, plus the first piece', () => {
  const near = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-9, `${a} != ${b}`);
  const g = 4.5e6;
  const links = { coordinatorGbit: 1, workerGbit: 1 };
  // 36 ms per 4.5 MB at 1 Gbit/s.
  const m = slicesModelStepMs({
    computeMs: 10,
    coordinatorMs: 2,
    relays: 16,
    coordinator: { in: g, out: g },
    worker: { in: 2 * g, out: 1.5 * g },
    weights: g,
    ...links,
    overheadMs: 3,
  });
  near(m, 10 + 2 + 72 + (3 * 36) / (16 * piecesFor(g / 8, 16)) + 3);
  near(ringModelStepMs({ computeMs: 10, workers: 16, gradients: g, ...links }), 10 + (2 * 15 * 36) / 16);
  near(ringModelStepMs({ computeMs: 10, workers: 1, gradients: g, ...links }), 10);
});

test('the Markdown table has a row per worker count, and the chart is a PNG', () => {
  const md = markdownTable(sample());
  assert.equal(md.split('\n').filter((l) => /^\| \d/.test(l)).length, 2);
  assert.match(md, /\| 2 \| star \| 128 \| 5000 \| 2500 \|/);
  assert.match(md, /\| 4\.50 \/ 4\.50 \| 2\.25 \/ 2\.25 \| 0\.0 \| 38\.0 \| 1\.05 \| 4267 \|$/m);
  assert.match(md, /batch 128 \(strong scaling\)/);
  assert.match(md, /\| 6\.00 \(5\.50\) \| 12\.0 \|/);
  const weak = sample();
  weak.settings.batchPerWorker = 64;
  assert.deepEqual(validateBenchReport(weak), []);
  assert.match(markdownTable(weak), /batch 64 per worker \(weak scaling\)/);
  const png = PNG.sync.read(renderChart(sample()));
  assert.equal(png.width, 960);
  assert.equal(png.height, 420);
});
