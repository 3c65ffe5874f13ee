import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { loadLayersModel } from '@tensorflow/tfjs-layers';
import { generatorSafetensors, generatorTfjs } from '../../shared/export/generator.js';
import { IMAGE_SIZE, MANIFESTS, Z_DIM, initParams } from '../../shared/model.js';
import { mlpForward } from '../../shared/mlp-forward.js';
import { Purpose, noiseBlock, uniforms } from '../../shared/random.js';
import { asFloat32, decodeSafetensors } from '../../shared/safetensors.js';

const INFO = { step: 42, seed: 9, source: 'ckpt.safetensors', version: '0.0.0' };

/** Weights that are not just the init (biases non-zero too), so layout mistakes show. */
function generator(): Float32Array {
  const g = initParams('gen', 9);
  const noise = new Float32Array(g.length);
  uniforms(9, Purpose.INIT, 77, -0.05, 0.05, noise);
  for (let i = 0; i < g.length; i++) g[i] = g[i]! + noise[i]!;
  return g;
}

test("safetensors export: G alone, the seed's PyTorch names and [out, in] shapes, float32 LE, no optimizer", () => {
  const gen = generator();
  const buf = generatorSafetensors(gen, INFO);
  // The layout: u64 header length, JSON header, then the tensors' bytes.
  const headerLen = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + headerLen).toString('utf8')) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  assert.deepEqual(
    Object.keys(header)
      .filter((k) => k !== '__metadata__')
      .sort(),
    ['gen.0.bias', 'gen.0.weight', 'gen.2.bias', 'gen.2.weight', 'gen.4.bias', 'gen.4.weight'],
  );
  assert.deepEqual(header['gen.0.weight']!.shape, [256, Z_DIM]);
  assert.deepEqual(header['gen.4.weight']!.shape, [IMAGE_SIZE, 256]);
  assert.deepEqual(header['gen.4.bias']!.shape, [IMAGE_SIZE]);
  for (const p of MANIFESTS.gen.params) {
    const h = header[p.name]!;
    assert.equal(h.dtype, 'F32');
    const [a, b] = h.data_offsets;
    assert.equal(b - a, p.length * 4);
    const bytes = buf.subarray(8 + headerLen + a, 8 + headerLen + b);
    // Row-major [out, in]: element (o, i) of weight is at o * in + i, like PyTorch's contiguous tensor.
    for (const k of [0, 1, p.length - 1, Math.floor(p.length / 3)])
      assert.equal(bytes.readFloatLE(k * 4), gen[p.offset + k]);
  }
  assert.equal(buf.length, 8 + headerLen + MANIFESTS.gen.size * 4, 'nothing but G');
  const { tensors, metadata } = decodeSafetensors(buf, 'export');
  assert.equal(metadata.format, 'ganfleet-generator');
  assert.equal(metadata.step, '42');
  assert.deepEqual(
    asFloat32(tensors.get('gen.2.weight')!),
    gen.subarray(MANIFESTS.gen.params[2]!.offset, MANIFESTS.gen.params[2]!.offset + 256 * 256),
  );
});

test("tfjs export: tf.loadLayersModel (over HTTP) loads it; the trainer's images for the same z (≤ 1e-5)", async () => {
  await tf.setBackend('cpu');
  const gen = generator();
  const { modelJson, weights } = generatorTfjs(gen, INFO);
  const server = createServer((req, res) => {
    if (req.url === '/model/model.json')
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(modelJson));
    else if (req.url === '/model/weights.bin')
      res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(weights);
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const model = await loadLayersModel(`http://127.0.0.1:${(server.address() as AddressInfo).port}/model/model.json`);
    assert.deepEqual(model.inputs[0]!.shape, [null, Z_DIM]);
    assert.deepEqual(model.outputs[0]!.shape, [null, IMAGE_SIZE]);
    assert.deepEqual(
      model.layers.map((l) => l.name),
      ['gen_0', 'gen_2', 'gen_4'],
    );
    const n = 16;
    const z = noiseBlock(3, Purpose.SAMPLE_GRID, 0, 0, n, Z_DIM);
    const out = model.predict(tf.tensor2d(z, [n, Z_DIM])) as tf.Tensor;
    const got = (await out.data()) as Float32Array;
    const want = mlpForward('gen', gen, z, n).at(-1)!;
    let max = 0;
    for (let i = 0; i < want.length; i++) max = Math.max(max, Math.abs(got[i]! - want[i]!));
    assert.ok(max <= 1e-5, `max |tfjs − trainer| = ${max}`);
    // Not trivially equal: the images differ from one another.
    assert.ok(Math.abs(want[0]! - want[IMAGE_SIZE]!) + Math.abs(want[400]! - want[IMAGE_SIZE + 400]!) > 1e-4);
    out.dispose();
    model.dispose();
  } finally {
    server.close();
  }
});
