/**
 * The sample-quality curves of several runs side by side (docs/quality.png is this script's
 * output): Fréchet distance per epoch (log scale) above classifier score and digits ≥ 5 %, one
 * colour per run, read from each run's metrics.jsonl, with the floor (real training images).
 *
 *   node dist/coordinator/eval/quality-chart.js --out docs/quality.png seed=runs/q-seed recipe=runs/q-recipe
 */
import { mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { writeFileAtomic } from '../../shared/atomic-file.js';
import { readEvalRecords, renderSvg, svgToPng, type EvalPoint } from '../observe/plots.js';
import { readClassifier } from './classifier-file.js';

const COLORS = ['#d62728', '#1f77b4', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b'];

export function qualitySpec(
  runs: Array<{ label: string; evals: EvalPoint[] }>,
  floor?: number,
): Record<string, unknown> {
  const rows: Array<{ epoch: number; run: string; metric: string; value: number }> = [];
  for (const r of runs)
    for (const e of r.evals) {
      rows.push({ epoch: e.epoch, run: r.label, metric: 'fd', value: e.fd });
      rows.push({ epoch: e.epoch, run: r.label, metric: 'score', value: e.classifier_score });
      rows.push({ epoch: e.epoch, run: r.label, metric: 'digits', value: e.digits });
    }
  const color = {
    field: 'run',
    type: 'nominal',
    title: null,
    scale: { domain: runs.map((r) => r.label), range: COLORS.slice(0, runs.length) },
    legend: { orient: 'bottom', labelLimit: 400, labelFontSize: 12 },
  };
  const x = { field: 'epoch', type: 'quantitative', title: 'epoch', axis: { format: 'd' } };
  const panel = (metric: string, title: string, scale: object, dash?: number[]) => ({
    transform: [{ filter: `datum.metric === '${metric}'` }],
    mark: { type: 'line', strokeWidth: 2, point: { size: 18 }, ...(dash ? { strokeDash: dash } : {}) },
    encoding: { x, y: { field: 'value', type: 'quantitative', title, scale }, color },
  });
  const fd = {
    width: 640,
    height: 280,
    layer: [
      panel('fd', 'Fréchet distance (log; lower is better)', { type: 'log' }),
      ...(floor === undefined
        ? []
        : [
            {
              data: { values: [{ y: floor, label: `floor: real images, ${floor.toFixed(2)}` }] },
              layer: [
                {
                  mark: { type: 'rule', strokeDash: [6, 4], color: '#7f7f7f' },
                  encoding: { y: { field: 'y', type: 'quantitative' } },
                },
                {
                  mark: { type: 'text', align: 'left', dx: 4, dy: -7, color: '#555', fontSize: 11 },
                  encoding: { x: { value: 0 }, y: { field: 'y', type: 'quantitative' }, text: { field: 'label' } },
                },
              ],
            },
          ]),
    ],
  };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: 'Sample quality per epoch (10,000 samples, fixed noise)',
      subtitle: 'lower panel: classifier score (solid), digits with ≥ 5 % of the samples (dashed)',
      anchor: 'start',
    },
    background: 'white',
    padding: 12,
    data: { values: rows },
    vconcat: [
      fd,
      {
        width: 640,
        height: 160,
        layer: [
          panel('score', 'score · digits', { domain: [0, 10] }),
          panel('digits', 'score · digits', { domain: [0, 10] }, [5, 3]),
        ],
      },
    ],
    config: { font: 'DejaVu Sans', view: { stroke: '#ddd' }, axis: { labelFontSize: 11, titleFontSize: 12 } },
  };
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({ options: { out: { type: 'string' } }, allowPositionals: true });
  if (!values.out || positionals.length === 0) throw new Error('usage: quality-chart --out PNG label=RUN_DIR …');
  const runs = await Promise.all(
    positionals.map(async (p) => {
      const [label, dir] = p.includes('=') ? [p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1)] : [p, p];
      return { label, evals: await readEvalRecords(dir) };
    }),
  );
  const floor = (await readClassifier()).floor?.fd;
  const png = await svgToPng(await renderSvg(qualitySpec(runs, floor)));
  await mkdir(dirname(resolve(values.out)), { recursive: true });
  await writeFileAtomic(values.out, png);
  process.stdout.write(`wrote ${values.out}: ${runs.map((r) => `${r.label} (${r.evals.length} scores)`).join(', ')}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`quality-chart: ${(err as Error).message}\n`);
    process.exitCode = 1;
  });
}
