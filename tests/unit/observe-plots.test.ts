import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import {
  lossSpec,
  mergePoints,
  readMetricsPoints,
  renderSvg,
  thin,
  writeLossPlot,
  type PlotPoint,
} from '../../coordinator/observe/plots.js';
import { formatDuration, progressLine } from '../../coordinator/observe/progress.js';
import { tempDir } from '../support/cluster.js';

function points(n: number, from = 1): PlotPoint[] {
  return Array.from({ length: n }, (_, i) => ({
    step: from + i,
    d_loss: 1.4 - i / n,
    g_loss: 0.7 + i / n,
    d_real: 0.5 + i / (3 * n),
    d_fake: 0.5 - i / (3 * n),
  }));
}

test('loss.png: Vega-Lite → SVG with both panels and all four series → a PNG', async () => {
  const svg = await renderSvg(lossSpec(points(300)));
  for (const label of ['D loss', 'G loss', 'D(real)', 'D(fake)', 'step', 'mean D output'])
    assert.ok(svg.includes(label), `SVG lacks "${label}"`);
  const out = join(tempDir(), 'loss.png');
  await writeLossPlot(out, points(300));
  const png = PNG.sync.read(readFileSync(out));
  assert.ok(png.width > 1000 && png.height > 700, `${png.width}x${png.height}`);
  // Not blank: some pixels are neither white nor grey (the coloured lines).
  let coloured = 0;
  for (let i = 0; i < png.data.length; i += 4) {
    const [r, g, b] = [png.data[i]!, png.data[i + 1]!, png.data[i + 2]!];
    if (Math.max(r, g, b) - Math.min(r, g, b) > 60) coloured++;
  }
  assert.ok(coloured > 2000, `only ${coloured} coloured pixels`);
});

test('plot data: long histories thinned (last point kept); a resumed run starts with the logged history', async () => {
  const t = thin(points(10_001));
  assert.ok(t.length <= 2001);
  assert.equal(t.at(-1)!.step, 10_001);
  const dir = tempDir();
  writeFileSync(
    join(dir, 'metrics.jsonl'),
    points(5, 1)
      .map((p) => JSON.stringify({ ...p, step: p.step * 100 }))
      .join('\n') + '\n{"step": 60',
  );
  const logged = await readMetricsPoints(dir);
  assert.deepEqual(
    logged.map((p) => p.step),
    [100, 200, 300, 400, 500],
  );
  const merged = mergePoints(logged, points(3, 301));
  assert.deepEqual(
    mergePoints(logged, points(2, 250)).map((p) => p.step),
    [100, 200, 250, 251],
  );
  assert.deepEqual(
    merged.map((p) => p.step),
    [100, 200, 300, 301, 302, 303],
  );
  assert.deepEqual(await readMetricsPoints(join(dir, 'none')), []);
});

test('progress lines: epoch, step, percentage, images/s, ETA and losses', () => {
  assert.equal(formatDuration(59.6), '1:00');
  assert.equal(formatDuration(3725), '1:02:05');
  const line = progressLine(
    {
      step: 117,
      epoch: 0,
      totalSteps: 469,
      stepsPerEpoch: 469,
      images: 128,
      d_loss: 1.23456,
      g_loss: 0.5,
      d_real: 0.7,
      d_fake: 0.3,
      workers: 2,
      timings: { dPhaseMs: 1, gPhaseMs: 1, reduceMs: 0, adamMs: 0, encodeMs: 0, sendMs: 0 },
    },
    1,
    1234.4,
    61,
  );
  assert.equal(
    line,
    'progress: epoch 1/1 step 117/469 (24.9%) 1234 images/s ETA 1:01 ' +
      'd_loss 1.2346 g_loss 0.5000 D(x) 0.700 D(G(z)) 0.300',
  );
});
