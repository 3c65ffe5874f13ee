/**
 * The benchmark's chart as a PNG (pngjs, no other dependency): left, images/s per worker count
 * (the value above each bar, the worker count below); right, the step broken down in milliseconds
 * (stacked: compute, reduce, Adam, encode, send, wire+other; the colours are listed in the
 * Markdown table's caption). Numbers are drawn with a 3×5 pixel font, scaled.
 */
import { PNG } from 'pngjs';
import type { BenchReport } from './report.js';

const W = 960;
const H = 420;
export const SEGMENTS = [
  { key: 'compute', name: 'compute', rgb: [76, 120, 168] },
  { key: 'reduce', name: 'reduce', rgb: [245, 133, 24] },
  { key: 'adam', name: 'Adam', rgb: [228, 87, 86] },
  { key: 'encode', name: 'encode', rgb: [114, 183, 178] },
  { key: 'send', name: 'send', rgb: [84, 162, 75] },
  { key: 'wireAndOther', name: 'wire+other', rgb: [186, 176, 172] },
] as const;

const FONT: Record<string, string> = {
  '0': '111101101101111',
  '1': '010110010010111',
  '2': '111001111100111',
  '3': '111001111001111',
  '4': '101101111001001',
  '5': '111100111001111',
  '6': '111100111101111',
  '7': '111001001001001',
  '8': '111101111101111',
  '9': '111101111001111',
  '.': '000000000000010',
  ' ': '000000000000000',
  w: '000000101111111',
  '/': '001001010100100',
  s: '000111110011110',
  m: '000000111111101',
  i: '010000010010010',
  g: '000111101011110',
};

class Canvas {
  readonly png = new PNG({ width: W, height: H });
  constructor() {
    this.png.data.fill(255);
  }
  rect(x: number, y: number, w: number, h: number, [r, g, b]: readonly number[]): void {
    for (let yy = Math.max(0, Math.round(y)); yy < Math.min(H, Math.round(y + h)); yy++) {
      for (let xx = Math.max(0, Math.round(x)); xx < Math.min(W, Math.round(x + w)); xx++) {
        const i = (yy * W + xx) * 4;
        this.png.data[i] = r!;
        this.png.data[i + 1] = g!;
        this.png.data[i + 2] = b!;
        this.png.data[i + 3] = 255;
      }
    }
  }
  /** Text centred on x, top at y, in `scale`-pixel dots. */
  text(s: string, x: number, y: number, scale = 2): void {
    const width = s.length * 4 * scale - scale;
    let cx = x - width / 2;
    for (const ch of s) {
      const glyph = FONT[ch] ?? FONT[' ']!;
      for (let k = 0; k < 15; k++)
        if (glyph[k] === '1')
          this.rect(cx + (k % 3) * scale, y + Math.floor(k / 3) * scale, scale, scale, [30, 30, 30]);
      cx += 4 * scale;
    }
  }
}

function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 5, 10].map((m) => m * p).find((m) => m >= v)!;
}

/** Renders the report's chart and returns the PNG bytes. */
export function renderChart(r: BenchReport): Buffer {
  const c = new Canvas();
  const panel = (
    x0: number,
    title: string,
    values: Array<{ label: string; stack: Array<{ v: number; rgb: readonly number[] }>; top: string }>,
  ) => {
    const top = 50;
    const bottom = H - 50;
    const width = W / 2 - 80;
    const max = niceMax(Math.max(...values.map((v) => v.stack.reduce((a, s) => a + s.v, 0))));
    c.rect(x0, bottom, width, 2, [0, 0, 0]);
    c.rect(x0, top, 2, bottom - top, [0, 0, 0]);
    c.text(title, x0 + width / 2, 15, 3);
    c.text(String(max), x0 - 25, top - 5);
    const slot = width / Math.max(1, values.length);
    values.forEach((v, i) => {
      const bx = x0 + slot * i + slot * 0.2;
      let y = bottom;
      for (const s of v.stack) {
        const h = (s.v / max) * (bottom - top);
        c.rect(bx, y - h, slot * 0.6, h, s.rgb);
        y -= h;
      }
      c.text(v.top, bx + slot * 0.3, y - 16);
      c.text(v.label, bx + slot * 0.3, bottom + 12);
    });
  };
  panel(
    70,
    'img/s',
    r.results.map((x) => ({
      label: `${x.workers}w`,
      top: x.imagesPerS.toFixed(0),
      stack: [{ v: x.imagesPerS, rgb: [76, 120, 168] }],
    })),
  );
  panel(
    W / 2 + 60,
    'ms/step',
    r.results.map((x) => ({
      label: `${x.workers}w`,
      top: x.stepMs.mean.toFixed(1),
      stack: SEGMENTS.map((s) => ({ v: Math.max(0, x.breakdownMs[s.key]), rgb: s.rgb })),
    })),
  );
  // Legend: one swatch per segment, in stacking order (names in the Markdown caption).
  for (const [i, s] of SEGMENTS.entries()) c.rect(W / 2 + 60 + i * 60, H - 18, 40, 10, s.rgb);
  return PNG.sync.write(c.png);
}
