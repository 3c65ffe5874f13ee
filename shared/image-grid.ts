import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { PNG } from 'pngjs';
import { writeFileAtomic } from './atomic-file.js';
import { GanfleetError } from './errors.js';

const SIDE = 28;
const PIXELS = SIDE * SIDE;

/** Layout options of `renderGrid`, named as in torchvision's `make_grid`. */
export interface GridOptions {
  /** Images per row; default 8. */
  nrow?: number;
  /** Pixels of background (value 0) around and between images; default 2. */
  padding?: number;
}

/** An 8-bit grayscale image, row-major. */
export interface GrayImage {
  width: number;
  height: number;
  gray: Uint8Array;
}

/**
 * Lays `n` generator outputs (each 784 values in [-1, 1]) out as one image, reproducing the seed's
 * `save_image(to_img(x))` byte for byte: `to_img` maps to [0, 1], `make_grid(nrow, padding,
 * pad_value=0)` tiles, and each value becomes `floor(v * 255 + 0.5)` clamped to 0..255. Arithmetic
 * is rounded to float32 at each step as torch does, so values on a rounding boundary agree. Like
 * `make_grid`, a single image is returned alone, without padding. NaN renders as 0.
 */
export function renderGrid(pixels: Float32Array, n: number, opts: GridOptions = {}): GrayImage {
  const nrow = opts.nrow ?? 8;
  const padding = opts.padding ?? 2;
  if (!Number.isSafeInteger(n) || n < 1) badArgument(`renderGrid: image count must be an integer >= 1, got ${n}`);
  if (pixels.length !== n * PIXELS) {
    badArgument(`renderGrid: expected ${n} x ${PIXELS} = ${n * PIXELS} values, got ${pixels.length}`);
  }
  if (!Number.isSafeInteger(nrow) || nrow < 1) badArgument(`renderGrid: nrow must be an integer >= 1, got ${nrow}`);
  if (!Number.isSafeInteger(padding) || padding < 0) {
    badArgument(`renderGrid: padding must be an integer >= 0, got ${padding}`);
  }

  // torchvision's make_grid returns a lone image unchanged (its `tensor.size(0) == 1` branch).
  const pad = n === 1 ? 0 : padding;
  const xmaps = Math.min(nrow, n);
  const ymaps = Math.ceil(n / xmaps);
  const cell = SIDE + pad;
  const width = n === 1 ? SIDE : xmaps * cell + pad;
  const height = n === 1 ? SIDE : ymaps * cell + pad;
  const gray = new Uint8Array(width * height);

  for (let k = 0; k < n; k++) {
    const top = Math.floor(k / xmaps) * cell + pad;
    const left = (k % xmaps) * cell + pad;
    for (let y = 0; y < SIDE; y++) {
      const src = k * PIXELS + y * SIDE;
      const dst = (top + y) * width + left;
      for (let x = 0; x < SIDE; x++) gray[dst + x] = toByte(pixels[src + x]!);
    }
  }
  return { width, height, gray };
}

/** One generator output value in [-1, 1] to the byte `save_image(to_img(x))` writes. */
function toByte(x: number): number {
  const f = Math.fround;
  const unit = Math.min(Math.max(f(f(0.5) * f(x + 1)), 0), 1);
  const scaled = f(f(unit * 255) + 0.5);
  if (Number.isNaN(scaled)) return 0;
  return Math.min(Math.max(Math.floor(scaled), 0), 255);
}

/** Encodes a grayscale image as an 8-bit grayscale PNG. */
export function encodePng(grid: GrayImage): Buffer {
  const { width, height, gray } = grid;
  if (!Number.isSafeInteger(width) || !Number.isSafeInteger(height) || width < 1 || height < 1) {
    badArgument(`encodePng: width and height must be integers >= 1, got ${width}x${height}`);
  }
  if (gray.length !== width * height) {
    badArgument(`encodePng: expected ${width * height} bytes for ${width}x${height}, got ${gray.length}`);
  }
  // Construct without dimensions: pngjs would otherwise allocate an unused RGBA buffer.
  const png = new PNG();
  png.width = width;
  png.height = height;
  png.data = Buffer.from(gray.buffer, gray.byteOffset, gray.byteLength);
  return PNG.sync.write(png, { colorType: 0, inputColorType: 0, inputHasAlpha: false, bitDepth: 8 });
}

/**
 * Renders `n` images (see `renderGrid`) and writes them as a PNG at `path`, creating the parent
 * folder; the write is atomic, so a viewer polling the file never sees half an image.
 */
export async function writeImageGrid(
  path: string,
  pixels: Float32Array,
  n: number,
  opts: GridOptions = {},
): Promise<void> {
  const png = encodePng(renderGrid(pixels, n, opts));
  await mkdir(dirname(path), { recursive: true });
  await writeFileAtomic(path, png);
}

function badArgument(message: string): never {
  throw new GanfleetError('ERR_BAD_ARGUMENT', message);
}
