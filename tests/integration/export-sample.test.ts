/**
 * `ganfleet sample` and `ganfleet export` as a user runs them, on a checkpoint; where Debian's
 * python3-torch is installed, the exported safetensors go into the seed's own `generator` module.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeCheckpoint } from '../../coordinator/checkpoint.js';
import { adamState } from '../../coordinator/optimizer.js';
import { RunOutputs } from '../../coordinator/run-outputs.js';
import { IMAGE_SIZE, MANIFESTS, Z_DIM, initParams } from '../../shared/model.js';
import { mlpForward } from '../../shared/mlp-forward.js';
import { Purpose, noiseBlock, uniforms } from '../../shared/random.js';
import { runCli, tempDir } from '../support/cluster.js';

async function checkpoint(dir: string, seed: number): Promise<{ path: string; gen: Float32Array }> {
  const gen = initParams('gen', seed);
  const noise = new Float32Array(gen.length);
  uniforms(seed, Purpose.INIT, 99, -0.05, 0.05, noise);
  for (let i = 0; i < gen.length; i++) gen[i] = gen[i]! + noise[i]!;
  const path = join(dir, 'checkpoint.safetensors');
  await writeCheckpoint(path, {
    step: 10,
    epoch: 0,
    seed,
    params: { gen, dis: initParams('dis', seed) },
    adam: { gen: adamState(MANIFESTS.gen.size), dis: adamState(MANIFESTS.dis.size) },
    config: { seed },
  });
  return { path, gen };
}

test("ganfleet sample: an n-image grid; with the run's seed, the run's own sample grid byte for byte", async () => {
  const dir = tempDir();
  const { path, gen } = await checkpoint(dir, 31);
  const runGrid = await new RunOutputs(dir, 31).writeSamples(gen, 1);
  const r = await runCli([
    'sample',
    '--checkpoint',
    path,
    '--n',
    '64',
    '--seed',
    '31',
    '--out',
    join(dir, 'grid.png'),
    '--raw',
    join(dir, 'grid.f32'),
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(readFileSync(join(dir, 'grid.png')), readFileSync(runGrid));
  const raw = readFileSync(join(dir, 'grid.f32'));
  assert.equal(raw.length, 64 * IMAGE_SIZE * 4);
  const r2 = await runCli([
    'sample',
    '--checkpoint',
    path,
    '--n',
    '10',
    '--nrow',
    '5',
    '--seed',
    '1',
    '--out',
    join(dir, 'ten.png'),
  ]);
  assert.equal(r2.code, 0, r2.stderr);
  assert.match(r2.stdout, /wrote 10 samples .* \(step 10, noise seed 1\)/);
  const bad = await runCli(['sample', '--n', '3']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--checkpoint PATH is required/);
});

test('ganfleet export: tfjs and safetensors files; bad flags exit 2', async () => {
  const dir = tempDir();
  const { path } = await checkpoint(dir, 5);
  const t = await runCli(['export', '--checkpoint', path, '--format', 'tfjs', '--out', join(dir, 'tfjs')]);
  assert.equal(t.code, 0, t.stderr);
  const model = JSON.parse(readFileSync(join(dir, 'tfjs', 'model.json'), 'utf8'));
  assert.equal(model.format, 'layers-model');
  assert.equal(readFileSync(join(dir, 'tfjs', 'weights.bin')).length, MANIFESTS.gen.size * 4);
  const s = await runCli(['export', '--checkpoint', path, '--format', 'safetensors', '--out', join(dir, 'st')]);
  assert.equal(s.code, 0, s.stderr);
  assert.ok(readFileSync(join(dir, 'st', 'generator.safetensors')).length > MANIFESTS.gen.size * 4);
  const bad = await runCli(['export', '--checkpoint', path, '--format', 'onnx', '--out', dir]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--format must be one of tfjs, safetensors, got "onnx"/);
});

const PY = '/usr/bin/python3';
const hasTorch = spawnSync(PY, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;

// The seed's generator class, verbatim in structure, and a minimal safetensors reader (Debian has
// no python3-safetensors): G.load_state_dict must accept the file's tensors as they are.
const LOAD_IN_TORCH = `
import json, struct, sys
import numpy as np, torch, torch.nn as nn
class generator(nn.Module):
    def __init__(self):
        super(generator, self).__init__()
        self.gen = nn.Sequential(nn.Linear(100, 256), nn.ReLU(True), nn.Linear(256, 256), nn.ReLU(True),
                                 nn.Linear(256, 784), nn.Tanh())
    def forward(self, x):
        return self.gen(x)
path, zpath, n, outpath = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
buf = open(path, 'rb').read()
hl = struct.unpack('<Q', buf[:8])[0]
header = json.loads(buf[8:8 + hl])
sd = {}
for name, t in header.items():
    if name == '__metadata__': continue
    a, b = t['data_offsets']
    assert t['dtype'] == 'F32'
    sd[name] = torch.from_numpy(np.frombuffer(buf[8 + hl + a:8 + hl + b], dtype='<f4').reshape(t['shape']).copy())
G = generator()
G.load_state_dict(sd, strict=True)
z = torch.from_numpy(np.fromfile(zpath, dtype='<f4').reshape(n, 100).copy())
with torch.no_grad():
    G.eval().double()
    out = G(z.double()).float().numpy()
out.astype('<f4').tofile(outpath)
print('ok', out.shape)
`;

test("safetensors export loads into the seed's PyTorch generator and draws the same images for the same z (≤ 1e-5)", {
  skip: hasTorch ? false : `no PyTorch: ${PY} cannot import torch (apt-get install python3-torch to run this test)`,
}, async () => {
  const dir = tempDir();
  const { path, gen } = await checkpoint(dir, 12);
  const r = await runCli(['export', '--checkpoint', path, '--format', 'safetensors', '--out', dir]);
  assert.equal(r.code, 0, r.stderr);
  const n = 32;
  const z = noiseBlock(4, Purpose.SAMPLE_GRID, 0, 0, n, Z_DIM);
  writeFileSync(join(dir, 'z.f32'), Buffer.from(z.buffer, z.byteOffset, z.byteLength));
  writeFileSync(join(dir, 'load.py'), LOAD_IN_TORCH);
  const py = spawnSync(
    PY,
    [join(dir, 'load.py'), join(dir, 'generator.safetensors'), join(dir, 'z.f32'), String(n), join(dir, 'out.f32')],
    { encoding: 'utf8', timeout: 120_000 },
  );
  assert.equal(py.status, 0, py.stdout + py.stderr);
  const buf = readFileSync(join(dir, 'out.f32'));
  const got = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
  const want = mlpForward('gen', gen, z, n).at(-1)!;
  assert.equal(got.length, want.length);
  let max = 0;
  for (let i = 0; i < want.length; i++) max = Math.max(max, Math.abs(got[i]! - want[i]!));
  assert.ok(max <= 1e-5, `max |torch − ganfleet| = ${max}`);
});
