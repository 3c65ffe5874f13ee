import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeCheckpoint, encodeCheckpoint, readCheckpoint, writeCheckpoint } from '../../coordinator/checkpoint.js';
import { adamState } from '../../coordinator/optimizer.js';
import { MANIFESTS, initParams } from '../../shared/model.js';
import { decodeSafetensors, asFloat32 } from '../../shared/safetensors.js';
import { tempDir } from '../support/cluster.js';

function state() {
  const adam = { gen: adamState(MANIFESTS.gen.size), dis: adamState(MANIFESTS.dis.size) };
  adam.gen.step = 7;
  adam.dis.step = 7;
  adam.gen.m.fill(0.5);
  adam.dis.v.fill(0.25);
  return {
    step: 7,
    epoch: 0,
    seed: 99,
    params: { gen: initParams('gen', 1), dis: initParams('dis', 1) },
    adam,
    config: { batchSize: 128 },
  };
}

test('checkpoint holds both networks under the seed PyTorch names, Adam moments and metadata', () => {
  const s = state();
  const buf = encodeCheckpoint(s);
  const { tensors, metadata } = decodeSafetensors(buf, 'x');
  assert.deepEqual(tensors.get('gen.0.weight')!.shape, [256, 100]);
  assert.deepEqual(tensors.get('dis.4.weight')!.shape, [1, 256]);
  assert.deepEqual(asFloat32(tensors.get('gen.4.bias')!), s.params.gen.subarray(292352));
  assert.equal(asFloat32(tensors.get('optim.gen.0.weight.exp_avg')!)[0], 0.5);
  assert.equal(asFloat32(tensors.get('optim.dis.0.bias.exp_avg_sq')!)[0], 0.25);
  assert.equal(metadata.format, 'ganfleet-checkpoint');
  assert.equal(metadata.step, '7');
  assert.equal(metadata.seed, '99');
  assert.equal(tensors.size, 12 * 3);
  const back = decodeCheckpoint(buf, 'x');
  assert.deepEqual(back.params.gen, s.params.gen);
  assert.deepEqual(back.adam.dis.v, s.adam.dis.v);
  assert.equal(back.adam.gen.step, 7);
  assert.deepEqual(back.config, { batchSize: 128 });
});

test('a truncated or foreign checkpoint is refused with the file name and the fault', async () => {
  const dir = tempDir();
  const good = join(dir, 'ok.safetensors');
  await writeCheckpoint(good, state());
  assert.equal((await readCheckpoint(good)).step, 7);
  const buf = encodeCheckpoint(state());
  const cut = join(dir, 'cut.safetensors');
  writeFileSync(cut, buf.subarray(0, buf.length - 100));
  await assert.rejects(
    readCheckpoint(cut),
    (e: Error & { code?: string }) => e.code === 'ERR_CHECKPOINT' && e.message.includes(cut),
  );
  await assert.rejects(
    readCheckpoint(join(dir, 'missing.safetensors')),
    /missing\.safetensors: cannot read checkpoint \(ENOENT\)/,
  );
});
