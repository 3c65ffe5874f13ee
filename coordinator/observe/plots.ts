/**
 * The end-of-run plot, loss.png: D and G loss over steps above D(real) and D(fake) over steps, and,
 * when the run scored its samples, the Fréchet distance and the classifier score below them.
 * Declared in Vega-Lite, compiled and rendered to SVG by Vega (headless, no canvas), then
 * rasterised by resvg. The three libraries load only when a plot is drawn.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../shared/atomic-file.js';

export interface PlotPoint {
  step: number;
  d_loss: number;
  g_loss: number;
  d_real: number;
  d_fake: number;
}

/** One sample-quality score (a metrics.jsonl line of type "eval"). */
export interface EvalPoint {
  step: number;
  epoch: number;
  fd: number;
  classifier_score: number;
  digits: number;
}

/** At most this many points per series are drawn (evenly thinned, the last point kept). */
const MAX_POINTS = 2000;

export function thin<T>(points: T[], max = MAX_POINTS): T[] {
  if (points.length <= max) return points;
  const every = Math.ceil(points.length / max);
  return points.filter((_, i) => i % every === 0 || i === points.length - 1);
}

/** The Vega-Lite spec of loss.png (long-form data: one row per step and series). */
export function lossSpec(
  points: PlotPoint[],
  title = 'ganfleet training',
  evals: EvalPoint[] = [],
): Record<string, unknown> {
  const rows: Array<{ step: number; series: string; value: number | null; panel: string }> = [];
  for (const p of thin(points)) {
    const v = (x: number) => (Number.isFinite(x) ? x : null);
    rows.push({ step: p.step, series: 'D loss', value: v(p.d_loss), panel: 'loss' });
    rows.push({ step: p.step, series: 'G loss', value: v(p.g_loss), panel: 'loss' });
    rows.push({ step: p.step, series: 'D(real)', value: v(p.d_real), panel: 'd' });
    rows.push({ step: p.step, series: 'D(fake)', value: v(p.d_fake), panel: 'd' });
  }
  for (const e of evals) {
    if (!(e.fd > 0)) continue;
    rows.push({ step: e.step, series: 'Fréchet distance', value: e.fd, panel: 'fd' });
    rows.push({ step: e.step, series: 'classifier score', value: e.classifier_score, panel: 'score' });
    rows.push({ step: e.step, series: 'digits ≥ 5 %', value: e.digits, panel: 'score' });
  }
  // One step axis for every panel (a quality panel's few points would otherwise get their own).
  const steps = rows.map((r) => r.step);
  const domain = steps.length ? { scale: { domain: [Math.min(...steps), Math.max(...steps)] } } : {};
  const x = { field: 'step', type: 'quantitative', title: 'step', axis: { format: 'd' }, ...domain };
  const layer = (panel: string, yTitle: string, domain: string[], range: string[], scale?: object) => ({
    width: 720,
    height: 240,
    transform: [{ filter: `datum.panel === '${panel}'` }],
    mark: { type: 'line', strokeWidth: 1.5, interpolate: 'linear', point: panel === 'fd' || panel === 'score' },
    encoding: {
      x,
      y: { field: 'value', type: 'quantitative', title: yTitle, ...(scale ? { scale } : {}) },
      color: { field: 'series', type: 'nominal', title: null, scale: { domain, range }, legend: { orient: 'right' } },
    },
  });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: title, anchor: 'start' },
    background: 'white',
    padding: 12,
    data: { values: rows },
    vconcat: [
      layer('loss', 'loss (batch mean)', ['D loss', 'G loss'], ['#1f77b4', '#d62728']),
      layer('d', 'mean D output', ['D(real)', 'D(fake)'], ['#2ca02c', '#ff7f0e'], { domain: [0, 1] }),
      ...(rows.some((r) => r.panel === 'fd')
        ? [
            layer('fd', 'Fréchet distance (log)', ['Fréchet distance'], ['#9467bd'], { type: 'log' }),
            layer('score', 'classifier score, digits', ['classifier score', 'digits ≥ 5 %'], ['#8c564b', '#17becf'], {
              domain: [0, 10],
            }),
          ]
        : []),
    ],
    resolve: { scale: { color: 'independent' } },
    config: {
      font: 'DejaVu Sans',
      view: { stroke: '#ddd' },
      axis: { labelFontSize: 11, titleFontSize: 12 },
      legend: { labelFontSize: 12 },
    },
  };
}

/** Renders a Vega-Lite spec to SVG text. */
export async function renderSvg(spec: Record<string, unknown>): Promise<string> {
  const [vl, vega] = await Promise.all([import('vega-lite'), import('vega')]);
  const compiled = vl.compile(spec as never).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Rasterises SVG to PNG at `scale` (2 = twice the SVG's pixel size). */
export async function svgToPng(svg: string, scale = 2): Promise<Buffer> {
  const { Resvg } = await import('@resvg/resvg-js');
  const r = new Resvg(svg, {
    fitTo: { mode: 'zoom', value: scale },
    background: 'white',
    font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' },
  });
  return Buffer.from(r.render().asPng());
}

/** Draws loss.png for `points` (and the sample-quality scores `evals`) at `path`. */
export async function writeLossPlot(
  path: string,
  points: PlotPoint[],
  title?: string,
  evals: EvalPoint[] = [],
): Promise<void> {
  const png = await svgToPng(await renderSvg(lossSpec(points, title, evals)));
  await writeFileAtomic(path, png);
}

/** The lines of an output folder's metrics.jsonl as objects (malformed lines are skipped). */
async function readMetricsLines(dir: string): Promise<Array<Record<string, unknown>>> {
  let text: string;
  try {
    text = await readFile(join(dir, 'metrics.jsonl'), 'utf8');
  } catch {
    return [];
  }
  const out: Array<Record<string, unknown>> = [];
  for (const l of text.split('\n')) {
    if (!l.trim()) continue;
    try {
      const r = JSON.parse(l) as unknown;
      if (r !== null && typeof r === 'object') out.push(r as Record<string, unknown>);
    } catch {
      /* a torn last line after a crash */
    }
  }
  return out;
}

/** The sample-quality scores of an output folder's metrics.jsonl (its lines of type "eval"), by step. */
export async function readEvalRecords(dir: string): Promise<EvalPoint[]> {
  return (await readMetricsLines(dir))
    .filter((r) => r.type === 'eval' && Number.isFinite(r.step) && Number.isFinite(r.fd))
    .map((r) => r as unknown as EvalPoint)
    .sort((a, b) => a.step - b.step);
}

/** The step points of an output folder's metrics.jsonl (malformed lines and lines of other types are skipped). */
export async function readMetricsPoints(dir: string): Promise<PlotPoint[]> {
  return (await readMetricsLines(dir))
    .filter((r) => Number.isFinite(r.step) && r.type === undefined)
    .map((r) => {
      const p = r as unknown as PlotPoint;
      return { step: p.step, d_loss: p.d_loss, g_loss: p.g_loss, d_real: p.d_real, d_fake: p.d_fake };
    });
}

/**
 * The points loss.png draws: every step this process saw (`live`), preceded by the logged
 * metrics.jsonl points of steps before them (a resumed run's earlier history).
 */
export function mergePoints(logged: PlotPoint[], live: PlotPoint[]): PlotPoint[] {
  const first = live.length ? live[0]!.step : Infinity;
  return [...logged.filter((p) => p.step < first), ...live].sort((a, b) => a.step - b.step);
}
