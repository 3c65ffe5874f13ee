import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { PNG } from 'pngjs';
import { GanfleetError } from '../../shared/errors.js';
import { encodePng, renderGrid, writeImageGrid } from '../../shared/image-grid.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ganfleet-grid-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

/** n images, image k filled with `fill(k, y, x)`. */
function images(n: number, fill: (k: number, y: number, x: number) => number): Float32Array {
  const out = new Float32Array(n * 784);
  for (let k = 0; k < n; k++)
    for (let y = 0; y < 28; y++) for (let x = 0; x < 28; x++) out[k * 784 + y * 28 + x] = fill(k, y, x);
  return out;
}

function at(grid: { width: number; gray: Uint8Array }, x: number, y: number): number {
  return grid.gray[y * grid.width + x]!;
}

function isBadArgument(err: unknown): boolean {
  assert.ok(err instanceof GanfleetError);
  assert.equal(err.code, 'ERR_BAD_ARGUMENT');
  return true;
}

describe('renderGrid', () => {
  test('64 images make a 242x242 grid laid out like make_grid', () => {
    // Image k is -1 (black) except pixel (y=k%28, x=3), which is +1 (white).
    const grid = renderGrid(
      images(64, (k, y, x) => (y === k % 28 && x === 3 ? 1 : -1)),
      64,
    );
    assert.equal(grid.width, 242);
    assert.equal(grid.height, 242);
    assert.equal(grid.gray.length, 242 * 242);
    for (let k = 0; k < 64; k++) {
      const top = Math.floor(k / 8) * 30 + 2;
      const left = (k % 8) * 30 + 2;
      assert.equal(at(grid, left + 3, top + (k % 28)), 255, `image ${k} white pixel`);
      assert.equal(at(grid, left + 4, top + (k % 28)), 0, `image ${k} black pixel`);
    }
    // Only one white pixel per image: everything else, padding included, is 0.
    assert.equal(
      grid.gray.reduce((s, v) => s + (v === 255 ? 1 : 0), 0),
      64,
    );
    assert.equal(
      grid.gray.reduce((s, v) => s + (v !== 0 && v !== 255 ? 1 : 0), 0),
      0,
    );
  });

  test('padding is 0, and -1, 0, +1 become 0, 128, 255', () => {
    const grid = renderGrid(
      images(4, (k) => [-1, 0, 1, 0.5][k]!),
      4,
    );
    assert.equal(grid.width, 4 * 30 + 2);
    assert.equal(grid.height, 32);
    for (const [x, y] of [
      [0, 0],
      [1, 15],
      [30, 10],
      [31, 10],
      [121, 31],
      [60, 0],
      [60, 30],
    ] as const) {
      assert.equal(at(grid, x, y), 0, `padding at ${x},${y}`);
    }
    assert.equal(at(grid, 2, 2), 0); // -1
    assert.equal(at(grid, 32, 2), 128); // 0
    assert.equal(at(grid, 62 + 27, 2 + 27), 255); // +1
    assert.equal(at(grid, 92, 16), 191); // 0.5 -> 0.75*255+0.5 = 191.75
  });

  test('values outside [-1, 1] clamp and NaN renders as 0', () => {
    const grid = renderGrid(
      images(2, (k) => (k === 0 ? -7 : 3)),
      2,
      { padding: 0 },
    );
    assert.equal(at(grid, 0, 0), 0);
    assert.equal(at(grid, 28, 0), 255);
    const nan = renderGrid(
      images(2, () => NaN),
      2,
    );
    assert.ok(nan.gray.every((v) => v === 0));
  });

  test('rounding follows float32 arithmetic as torch does', () => {
    // Bytes from numpy float32 step-by-step evaluation, torch's eager CPU semantics; float64
    // arithmetic gives one less for each of these.
    const cases: Array<[number, number]> = [
      [0.737254798412323, 222],
      [0.9647058248519897, 251],
      [0.18823522329330444, 152],
      [-0.22745098173618317, 99],
    ];
    for (const [x, byte] of cases) {
      assert.equal(
        at(
          renderGrid(
            images(1, () => x),
            1,
          ),
          0,
          0,
        ),
        byte,
        `x=${x}`,
      );
    }
  });

  test('three images make one row of three', () => {
    const grid = renderGrid(
      images(3, () => 1),
      3,
    );
    assert.equal(grid.width, 92);
    assert.equal(grid.height, 32);
  });

  test('nrow and padding options', () => {
    const grid = renderGrid(
      images(10, () => 1),
      10,
      { nrow: 4, padding: 1 },
    );
    assert.equal(grid.width, 4 * 29 + 1);
    assert.equal(grid.height, 3 * 29 + 1);
    assert.equal(at(grid, 1 + 29, 1 + 2 * 29), 255); // image 9: row 2, col 1
    assert.equal(at(grid, 1 + 2 * 29, 1 + 2 * 29), 0); // row 2, col 2: no image
  });

  test('a single image is returned alone, without padding, as make_grid does', () => {
    const grid = renderGrid(
      images(1, () => 1),
      1,
    );
    assert.equal(grid.width, 28);
    assert.equal(grid.height, 28);
    assert.ok(grid.gray.every((v) => v === 255));
  });

  test('bad arguments throw ERR_BAD_ARGUMENT', () => {
    assert.throws(() => renderGrid(new Float32Array(784 * 2 - 1), 2), isBadArgument);
    assert.throws(() => renderGrid(new Float32Array(0), 0), isBadArgument);
    assert.throws(() => renderGrid(new Float32Array(784), 1.5), isBadArgument);
    assert.throws(() => renderGrid(new Float32Array(784), 1, { nrow: 0 }), isBadArgument);
    assert.throws(() => renderGrid(new Float32Array(784), 1, { padding: -1 }), isBadArgument);
    assert.throws(() => encodePng({ width: 2, height: 2, gray: new Uint8Array(3) }), isBadArgument);
  });
});

describe('PNG output', () => {
  test('encodePng writes 8-bit grayscale that decodes back to the same pixels', () => {
    const grid = renderGrid(
      images(5, (k, y, x) => ((k * 31 + y * 7 + x) % 200) / 100 - 1),
      5,
      { nrow: 3 },
    );
    const png = encodePng(grid);
    // IHDR: bit depth at byte 24, colour type at byte 25 (0 = grayscale).
    assert.equal(png[24], 8);
    assert.equal(png[25], 0);
    const back = PNG.sync.read(png);
    assert.equal(back.width, grid.width);
    assert.equal(back.height, grid.height);
    // pngjs expands to RGBA on read.
    for (let i = 0; i < grid.gray.length; i++) {
      const v = grid.gray[i]!;
      if (
        back.data[4 * i] !== v ||
        back.data[4 * i + 1] !== v ||
        back.data[4 * i + 2] !== v ||
        back.data[4 * i + 3] !== 255
      ) {
        assert.fail(`pixel ${i}: expected ${v}, got ${[...back.data.subarray(4 * i, 4 * i + 4)]}`);
      }
    }
  });

  test('writeImageGrid creates the folder and leaves only the PNG', async () => {
    const dir = path.join(root, 'nested', 'samples');
    const file = path.join(dir, 'step-100.png');
    const pixels = images(64, (k) => (k % 2 === 0 ? 1 : -1));
    await writeImageGrid(file, pixels, 64);
    assert.deepEqual(fs.readdirSync(dir), ['step-100.png']);
    const back = PNG.sync.read(fs.readFileSync(file));
    assert.equal(back.width, 242);
    assert.equal(back.data[4 * (2 * 242 + 2)], 255);
    assert.equal(back.data[4 * (2 * 242 + 32)], 0);
    await writeImageGrid(
      file,
      images(3, () => 0),
      3,
    );
    assert.equal(PNG.sync.read(fs.readFileSync(file)).width, 92);
    assert.deepEqual(fs.readdirSync(dir), ['step-100.png']);
  });

  test('writeImageGrid validates before touching the disk', async () => {
    const file = path.join(root, 'never', 'x.png');
    await assert.rejects(writeImageGrid(file, new Float32Array(10), 1), isBadArgument);
    assert.equal(fs.existsSync(path.dirname(file)), false);
  });
});
