/**
 * The end-of-run plot, loss.png: D and G loss over steps above D(real) and D(fake) over steps.
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

/** At most this many points per series are drawn (evenly thinned, the last point kept). */
const MAX_POINTS = 2000;

export function thin<T>(points: T[], max = MAX_POINTS): T[] {
  if (points.length <= max) return points;
  const every = Math.ceil(points.length / max);
  return points.filter((_, i) => i % every === 0 || i === points.length - 1);
}

/** The Vega-Lite spec of loss.png (long-form data: one row per step and series). */
export function lossSpec(points: PlotPoint[], title = 'ganfleet training'): Record<string, unknown> {
  const rows: Array<{ step: number; series: string; value: number | null; panel: string }> = [];
  for (const p of thin(points)) {
    const v = (x: number) => (Number.isFinite(x) ? x : null);
    rows.push({ step: p.step, series: 'D loss', value: v(p.d_loss), panel: 'loss' });
    rows.push({ step: p.step, series: 'G loss', value: v(p.g_loss), panel: 'loss' });
    rows.push({ step: p.step, series: 'D(real)', value: v(p.d_real), panel: 'd' });
    rows.push({ step: p.step, series: 'D(fake)', value: v(p.d_fake), panel: 'd' });
  }
  const x = { field: 'step', type: 'quantitative', title: 'step', axis: { format: 'd' } };
  const layer = (panel: string, yTitle: string, domain: string[], range: string[], scale?: object) => ({
    width: 720,
    height: 240,
    transform: [{ filter: `datum.panel === '${panel}'` }],
    mark: { type: 'line', strokeWidth: 1.5, interpolate: 'linear' },
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

/** Draws loss.png for `points` at `path`. */
export async function writeLossPlot(path: string, points: PlotPoint[], title?: string): Promise<void> {
  const png = await svgToPng(await renderSvg(lossSpec(points, title)));
  await writeFileAtomic(path, png);
}

/** The points of an output folder's metrics.jsonl (malformed lines are skipped). */
export async function readMetricsPoints(dir: string): Promise<PlotPoint[]> {
  let text: string;
  try {
    text = await readFile(join(dir, 'metrics.jsonl'), 'utf8');
  } catch {
    return [];
  }
  const out: PlotPoint[] = [];
  for (const l of text.split('\n')) {
    if (!l.trim()) continue;
    try {
      const r = JSON.parse(l) as PlotPoint;
      if (Number.isFinite(r.step))
        out.push({ step: r.step, d_loss: r.d_loss, g_loss: r.g_loss, d_real: r.d_real, d_fake: r.d_fake });
    } catch {
      /* a torn last line after a crash */
    }
  }
  return out;
}

/**
 * The points loss.png draws: every step this process saw (`live`), preceded by the logged
 * metrics.jsonl points of steps before them (a resumed run's earlier history).
 */
export function mergePoints(logged: PlotPoint[], live: PlotPoint[]): PlotPoint[] {
  const first = live.length ? live[0]!.step : Infinity;
  return [...logged.filter((p) => p.step < first), ...live].sort((a, b) => a.step - b.step);
}
