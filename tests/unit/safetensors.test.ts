import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { writeFileAtomic } from '../../shared/atomic-file.js';
import { CheckpointError } from '../../shared/errors.js';
import {
  asFloat32,
  asFloat64,
  decodeSafetensors,
  encodeSafetensors,
  f32Tensor,
  f64Tensor,
  type SafeTensor,
} from '../../shared/safetensors.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ganfleet-st-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

const FILE = 'runs/ckpt/step-000100.safetensors';

function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength).slice();
}

/** One tensor of every dtype, plus a scalar and an empty tensor. */
function sampleTensors(): Array<[string, SafeTensor]> {
  return [
    ['gen.fc1.weight', f32Tensor([2, 3], new Float32Array([1, -2, 3.5, 1e-7, -0, Infinity]))],
    ['gen.fc1.bias', f64Tensor([3], new Float64Array([Math.PI, -1e300, 5e-324]))],
    ['step', { dtype: 'I64', shape: [], data: bytesOf(new BigInt64Array([-9007199254740993n])) }],
    ['ids', { dtype: 'I32', shape: [2, 2], data: bytesOf(new Int32Array([-1, 2, 2 ** 31 - 1, -(2 ** 31)])) }],
    ['mask', { dtype: 'U8', shape: [5], data: new Uint8Array([0, 1, 2, 254, 255]) }],
    ['half', { dtype: 'F16', shape: [2], data: new Uint8Array([0x00, 0x3c, 0x00, 0xc0]) }], // 1, -2
    ['brain', { dtype: 'BF16', shape: [1, 2], data: new Uint8Array([0x80, 0x3f, 0x49, 0x40]) }], // 1, ~3.14
    ['empty', { dtype: 'F32', shape: [0, 4], data: new Uint8Array(0) }],
  ];
}

function isCheckpointError(...fragments: string[]) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof CheckpointError, `expected CheckpointError, got ${String(err)}`);
    assert.equal(err.code, 'ERR_CHECKPOINT');
    for (const f of fragments) assert.ok(err.message.includes(f), `"${err.message}" lacks "${f}"`);
    return true;
  };
}

/** A file whose header is `header` (padded to 8) followed by `data`. */
function rawFile(header: string | object, data: Uint8Array = new Uint8Array(0)): Buffer {
  let json = typeof header === 'string' ? header : JSON.stringify(header);
  while (Buffer.byteLength(json) % 8 !== 0) json += ' ';
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return Buffer.concat([prefix, Buffer.from(json), data]);
}

describe('encode / decode', () => {
  test('round trip of every dtype keeps order, shapes, bytes and metadata', () => {
    const given = sampleTensors();
    const metadata = { format: 'pt', step: '100', ['__proto__']: 'plain key', unicode: 'gän ✓' };
    const buf = encodeSafetensors(given, metadata);
    const { tensors, metadata: back } = decodeSafetensors(buf, FILE);
    assert.deepEqual(
      [...tensors.keys()],
      given.map(([name]) => name),
    );
    for (const [name, t] of given) {
      const got = tensors.get(name)!;
      assert.equal(got.dtype, t.dtype, name);
      assert.deepEqual(got.shape, t.shape, name);
      assert.deepEqual(Buffer.from(got.data), Buffer.from(t.data), name);
    }
    assert.deepEqual(Object.entries(back), Object.entries(metadata));
    assert.deepEqual(asFloat32(tensors.get('gen.fc1.weight')!), new Float32Array([1, -2, 3.5, 1e-7, -0, Infinity]));
    assert.ok(Object.is(asFloat32(tensors.get('gen.fc1.weight')!)[4], -0));
    assert.deepEqual(asFloat64(tensors.get('gen.fc1.bias')!), new Float64Array([Math.PI, -1e300, 5e-324]));
  });

  test('a Map keeps its order too, including integer-like names', () => {
    const map = new Map<string, SafeTensor>([
      ['b', f32Tensor([1], new Float32Array([1]))],
      ['10', f32Tensor([1], new Float32Array([2]))],
      ['a', f32Tensor([1], new Float32Array([3]))],
    ]);
    const buf = encodeSafetensors(map, {});
    const json = buf.subarray(8, 8 + Number(buf.readBigUInt64LE(0))).toString();
    assert.ok(json.indexOf('"b"') < json.indexOf('"10"') && json.indexOf('"10"') < json.indexOf('"a"'), json);
    const { tensors, metadata } = decodeSafetensors(buf, FILE);
    assert.deepEqual([...tensors.keys()], ['b', '10', 'a']);
    assert.deepEqual(
      [...tensors.values()].map((t) => asFloat32(t)[0]),
      [1, 2, 3],
    );
    assert.deepEqual(metadata, {});
  });

  test('the byte layout of a tiny file, by hand', () => {
    const buf = encodeSafetensors([['a', f32Tensor([2], new Float32Array([1, 2]))]], { k: 'v' });
    const json = '{"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
    assert.equal(json.length, 79); // so one space of padding makes 80
    const expected = Buffer.concat([
      Buffer.from([80, 0, 0, 0, 0, 0, 0, 0]),
      Buffer.from(`${json} `),
      Buffer.from([0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x40]),
    ]);
    assert.deepEqual(buf, expected);
    assert.equal(buf.length, 96);
  });

  test('asFloat32 copes with unaligned data and does not alias it', () => {
    const buf = encodeSafetensors(
      [
        ['odd', { dtype: 'U8', shape: [3], data: new Uint8Array([1, 2, 3]) }],
        ['w', f32Tensor([2], new Float32Array([0.25, -8]))],
      ],
      {},
    );
    const w = decodeSafetensors(buf, FILE).tensors.get('w')!;
    assert.notEqual(w.data.byteOffset % 4, 0);
    const values = asFloat32(w);
    assert.deepEqual(values, new Float32Array([0.25, -8]));
    values[0] = 99;
    assert.deepEqual(asFloat32(w), new Float32Array([0.25, -8]));
    assert.throws(() => asFloat64(w, 'w'), isCheckpointError('w has dtype F32, expected F64'));
  });

  test('helpers copy their input and check the shape', () => {
    const values = new Float32Array([1, 2, 3, 4]);
    const t = f32Tensor([2, 2], values);
    values[0] = 7;
    assert.equal(asFloat32(t)[0], 1);
    assert.throws(() => f32Tensor([3], values), isCheckpointError('[3]'));
    assert.throws(() => f64Tensor([2, -1], new Float64Array(2)), CheckpointError);
  });

  test('encode refuses bad names, shapes, sizes and metadata', () => {
    const ok = f32Tensor([1], new Float32Array([1]));
    assert.throws(() => encodeSafetensors([['', ok]], {}), isCheckpointError('empty tensor name'));
    assert.throws(() => encodeSafetensors([['__metadata__', ok]], {}), isCheckpointError('reserved'));
    assert.throws(
      () =>
        encodeSafetensors(
          [
            ['x', ok],
            ['x', ok],
          ],
          {},
        ),
      isCheckpointError('duplicate', "'x'"),
    );
    assert.throws(
      () => encodeSafetensors([['x', { ...ok, shape: [2] }]], {}),
      isCheckpointError("'x'", 'needs 8 bytes, has 4'),
    );
    assert.throws(() => encodeSafetensors([['x', { ...ok, shape: [1.5] }]], {}), isCheckpointError('invalid shape'));
    assert.throws(
      () => encodeSafetensors([['x', { ...ok, dtype: 'Q8' as 'U8' }]], {}),
      isCheckpointError('unknown dtype'),
    );
    assert.throws(() => encodeSafetensors([], { n: 1 as unknown as string }), isCheckpointError("metadata 'n'"));
  });
});

describe('decode refuses corrupt files', () => {
  const good = encodeSafetensors(sampleTensors(), { step: '100' });
  const headerLen = Number(good.readBigUInt64LE(0));

  test('truncation at any of several points', () => {
    const cuts = [0, 1, 7, 8, 9, 8 + headerLen / 2, 8 + headerLen, 8 + headerLen + 1, good.length - 8, good.length - 1];
    for (const cut of cuts) {
      assert.throws(() => decodeSafetensors(good.subarray(0, cut), FILE), isCheckpointError(FILE), `cut at ${cut}`);
    }
    assert.throws(() => decodeSafetensors(good.subarray(0, 5), FILE), isCheckpointError('shorter than the 8-byte'));
    assert.throws(
      () => decodeSafetensors(good.subarray(0, 8 + headerLen - 1), FILE),
      isCheckpointError('beyond the file'),
    );
  });

  test('a flipped byte in the header length', () => {
    for (let i = 0; i < 8; i++) {
      for (const mask of [0x01, 0x80, 0xff]) {
        const bad = Buffer.from(good);
        bad[i] ^= mask;
        assert.throws(() => decodeSafetensors(bad, FILE), isCheckpointError(FILE), `byte ${i} ^ ${mask}`);
      }
    }
  });

  test('garbage JSON, a non-object header, a non-object entry', () => {
    assert.throws(() => decodeSafetensors(rawFile('{"a": [1, 2'), FILE), isCheckpointError(FILE, 'not valid JSON'));
    assert.throws(() => decodeSafetensors(rawFile('not json'), FILE), isCheckpointError('not valid JSON'));
    const badUtf8 = rawFile('{"a":"        "}');
    badUtf8[14] = 0xff;
    assert.throws(() => decodeSafetensors(badUtf8, FILE), isCheckpointError('not valid JSON'));
    assert.throws(() => decodeSafetensors(rawFile('[1,2]'), FILE), isCheckpointError('not a JSON object'));
    assert.throws(() => decodeSafetensors(rawFile({ w: 5 }), FILE), isCheckpointError("entry 'w' is not an object"));
  });

  test('unknown dtype, bad shape, size that disagrees with the offsets', () => {
    const data = new Uint8Array(8);
    const entry = (over: object) => rawFile({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8], ...over } }, data);
    assert.doesNotThrow(() => decodeSafetensors(entry({}), FILE));
    assert.throws(
      () => decodeSafetensors(entry({ dtype: 'F8_E4M3' }), FILE),
      isCheckpointError(FILE, "'w'", 'unknown dtype'),
    );
    assert.throws(() => decodeSafetensors(entry({ shape: [-2] }), FILE), isCheckpointError('invalid shape'));
    assert.throws(() => decodeSafetensors(entry({ shape: 'big' }), FILE), isCheckpointError('invalid shape'));
    assert.throws(
      () => decodeSafetensors(entry({ shape: [3] }), FILE),
      isCheckpointError('needs 12 bytes but data_offsets span 8'),
    );
    assert.throws(
      () => decodeSafetensors(entry({ data_offsets: [0] }), FILE),
      isCheckpointError('invalid data_offsets'),
    );
  });

  test('offsets out of range, reversed, overlapping, leaving gaps', () => {
    const data = new Uint8Array(16);
    const two = (a: [number, number], b: [number, number]) =>
      rawFile(
        { a: { dtype: 'F32', shape: [2], data_offsets: a }, b: { dtype: 'F32', shape: [2], data_offsets: b } },
        data,
      );
    assert.doesNotThrow(() => decodeSafetensors(two([8, 16], [0, 8]), FILE));
    assert.throws(() => decodeSafetensors(two([0, 8], [12, 20]), FILE), isCheckpointError(FILE, 'out of range'));
    assert.throws(() => decodeSafetensors(two([0, 8], [4, 12]), FILE), isCheckpointError(FILE, 'overlap'));
    assert.throws(() => decodeSafetensors(two([0, 8], [0, 8]), FILE), isCheckpointError('overlap'));
    assert.throws(() => decodeSafetensors(two([8, 0], [0, 8]), FILE), isCheckpointError('out of range'));
    const gap = rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, new Uint8Array(12));
    assert.throws(() => decodeSafetensors(gap, FILE), isCheckpointError('bytes 0..4', 'belong to no tensor'));
    const tail = rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, new Uint8Array(12));
    assert.throws(() => decodeSafetensors(tail, FILE), isCheckpointError('bytes 8..12'));
  });

  test('metadata that is not an object of strings', () => {
    assert.throws(
      () => decodeSafetensors(rawFile({ __metadata__: { step: 100 } }), FILE),
      isCheckpointError(FILE, "metadata 'step'"),
    );
    assert.throws(() => decodeSafetensors(rawFile({ __metadata__: ['x'] }), FILE), isCheckpointError('not an object'));
  });
});

describe('writeFileAtomic', () => {
  test('writes the bytes, replaces an existing file, leaves no temporary file', async () => {
    const dir = fs.mkdtempSync(path.join(root, 'atomic-'));
    const file = path.join(dir, 'model.safetensors');
    await writeFileAtomic(file, new Uint8Array([1, 2, 3]));
    await writeFileAtomic(file, new Uint8Array([4, 5]));
    assert.deepEqual([...fs.readFileSync(file)], [4, 5]);
    assert.deepEqual(fs.readdirSync(dir), ['model.safetensors']);
  });

  test('a missing folder rejects and leaves nothing behind', async () => {
    const file = path.join(root, 'missing', 'x.bin');
    await assert.rejects(writeFileAtomic(file, new Uint8Array(1)), { code: 'ENOENT' });
    assert.equal(fs.existsSync(path.dirname(file)), false);
  });
});

const PYTHON_READER = `
import json, struct, sys
import numpy as np
raw = open(sys.argv[1], 'rb').read()
(n,) = struct.unpack('<Q', raw[:8])
header = json.loads(raw[8:8 + n])
data = raw[8 + n:]
kinds = {'F32': '<f4', 'F64': '<f8', 'I32': '<i4', 'I64': '<i8', 'U8': 'u1', 'F16': '<f2'}
out = {'metadata': header.pop('__metadata__', {}), 'tensors': {}}
for name, info in header.items():
    b, e = info['data_offsets']
    if info['dtype'] == 'BF16':
        arr = (np.frombuffer(data[b:e], dtype='<u2').astype(np.uint32) << 16).view(np.float32)
    else:
        arr = np.frombuffer(data[b:e], dtype=kinds[info['dtype']])
    arr = arr.reshape(info['shape'])
    out['tensors'][name] = {'shape': list(arr.shape), 'values': [repr(v) for v in arr.reshape(-1).tolist()]}
print(json.dumps(out))
`;

describe('interoperability', () => {
  test('a Python reader using only json, struct and numpy reads our file', (t) => {
    // Debian's python3 with python3-numpy (what .ci/run installs), else the first python3 on the PATH.
    const python = ['/usr/bin/python3', 'python3'].find(
      (py) => spawnSync(py, ['-c', 'import numpy'], { stdio: 'ignore' }).status === 0,
    );
    if (python === undefined) {
      t.skip('no python3 with numpy (apt-get install python3-numpy)');
      return;
    }
    const file = path.join(root, 'interop.safetensors');
    fs.writeFileSync(file, encodeSafetensors(sampleTensors(), { step: '100' }));
    const run = spawnSync(python, ['-c', PYTHON_READER, file], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    const got = JSON.parse(run.stdout) as {
      metadata: object;
      tensors: Record<string, { shape: number[]; values: string[] }>;
    };
    assert.deepEqual(got.metadata, { step: '100' });
    assert.deepEqual(got.tensors, {
      'gen.fc1.weight': { shape: [2, 3], values: ['1.0', '-2.0', '3.5', '1.0000000116860974e-07', '-0.0', 'inf'] },
      'gen.fc1.bias': { shape: [3], values: ['3.141592653589793', '-1e+300', '5e-324'] },
      step: { shape: [], values: ['-9007199254740993'] },
      ids: { shape: [2, 2], values: ['-1', '2', '2147483647', '-2147483648'] },
      mask: { shape: [5], values: ['0', '1', '2', '254', '255'] },
      half: { shape: [2], values: ['1.0', '-2.0'] },
      brain: { shape: [1, 2], values: ['1.0', '3.140625'] },
      empty: { shape: [0, 4], values: [] },
    });
  });
});
