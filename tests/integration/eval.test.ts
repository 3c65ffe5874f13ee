/**
 * Sample quality end to end, as a user runs it: a short real `ganfleet local` run scores its
 * samples into metrics.jsonl; `ganfleet eval` gives the same scores for its checkpoint, better ones
 * than for the untrained generator, and the same ones again for the generator exported by
 * `ganfleet export` and (where Debian's python3-torch is installed) for the generator loaded into
 * the seed's PyTorch module and saved back from its state_dict.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readCheckpoint, writeCheckpoint } from '../../coordinator/checkpoint.js';
import { adamState } from '../../coordinator/optimizer.js';
import { MANIFESTS, initParams } from '../../shared/model.js';
import { runCli, tempDir } from '../support/cluster.js';

const PY = '/usr/bin/python3';
const hasTorch = spawnSync(PY, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
const STEPS = 300;

interface Scores {
  fd: number;
  classifier_score: number;
  digits: number;
  digit_shares: number[];
  samples: number;
}

const scoresOf = (s: Scores) => ({
  fd: s.fd,
  classifier_score: s.classifier_score,
  digits: s.digits,
  digit_shares: s.digit_shares,
  samples: s.samples,
});

async function evalJson(args: string[]): Promise<Scores & { seed: number; floor: Scores }> {
  const r = await runCli(['eval', '--json', ...args]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  return JSON.parse(r.stdout) as Scores & { seed: number; floor: Scores };
}

// The seed's generator; loads a ganfleet file's gen.* tensors with load_state_dict(strict=True) and
// saves G.state_dict() back as safetensors (Debian has no python3-safetensors: written by hand).
const TORCH_ROUND_TRIP = `
import json, struct, sys
import numpy as np, torch, torch.nn as nn
class generator(nn.Module):
    def __init__(self):
        super(generator, self).__init__()
        self.gen = nn.Sequential(nn.Linear(100, 256), nn.ReLU(True), nn.Linear(256, 256), nn.ReLU(True),
                                 nn.Linear(256, 784), nn.Tanh())
    def forward(self, x):
        return self.gen(x)
src, dst = sys.argv[1], sys.argv[2]
buf = open(src, 'rb').read()
hl = struct.unpack('<Q', buf[:8])[0]
header = json.loads(buf[8:8 + hl])
sd = {}
for name, t in header.items():
    if not name.startswith('gen.'): continue
    a, b = t['data_offsets']
    sd[name] = torch.from_numpy(np.frombuffer(buf[8 + hl + a:8 + hl + b], dtype='<f4').reshape(t['shape']).copy())
G = generator()
G.load_state_dict(sd, strict=True)
head, blobs, off = {}, [], 0
for name, t in G.state_dict().items():
    b = t.detach().contiguous().numpy().astype('<f4').tobytes()
    head[name] = {'dtype': 'F32', 'shape': list(t.shape), 'data_offsets': [off, off + len(b)]}
    blobs.append(b); off += len(b)
h = json.dumps(head).encode()
h += b' ' * (-len(h) % 8)
open(dst, 'wb').write(struct.pack('<Q', len(h)) + h + b''.join(blobs))
print('ok', list(G.state_dict().keys()))
`;

test('a short run logs its sample quality; ganfleet eval reproduces it, beats the untrained generator, ' +
  'and scores exported and PyTorch-saved copies the same', {
  timeout: 900_000,
}, async (t) => {
  const out = tempDir();
  const run = await runCli(
    [
      'local',
      '--workers',
      '1',
      '--max-steps',
      String(STEPS),
      '--log-every',
      '100',
      '--lr',
      '0.002',
      '--beta1',
      '0.5',
      '--beta2',
      '0.99',
    ].concat(['--out', out, '--progress', 'off', '--no-plots']),
    600_000,
  );
  assert.equal(run.code, 0, run.stdout + run.stderr);

  // --beta1/--beta2 reach Adam and are recorded like lr.
  const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
  assert.deepEqual(config.adam, { lr: 0.002, beta1: 0.5, beta2: 0.99, eps: 1e-8 });
  const ckptPath = join(out, 'checkpoint.safetensors');
  const ckpt = await readCheckpoint(ckptPath);
  assert.deepEqual(ckpt.config.adam, config.adam);

  const lines = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.deepEqual(
    lines.filter((l) => l.type === undefined).map((l) => l.step),
    [100, 200, 300],
  );
  const evals = lines.filter((l) => l.type === 'eval');
  assert.equal(evals.length, 1, 'one evaluation: the run ends inside its first epoch');
  const logged = evals[0]!;
  assert.equal(logged.step, STEPS);
  assert.equal(logged.epoch, 1);
  assert.equal(logged.samples, 10_000);
  assert.ok(Math.abs(logged.digit_shares.reduce((a: number, b: number) => a + b, 0) - 1) <= 1e-9);

  const trained = await evalJson(['--checkpoint', ckptPath]);
  assert.equal(trained.seed, 1234);
  assert.deepEqual(scoresOf(trained), scoresOf(logged), 'ganfleet eval = the score the run logged');

  const untrainedPath = join(out, 'untrained.safetensors');
  await writeCheckpoint(untrainedPath, {
    step: 0,
    epoch: 0,
    seed: 1234,
    params: { gen: initParams('gen', 1234), dis: initParams('dis', 1234) },
    adam: { gen: adamState(MANIFESTS.gen.size), dis: adamState(MANIFESTS.dis.size) },
    config: { seed: 1234, normalize: 'minus1to1' },
  });
  const untrained = await evalJson(['--checkpoint', untrainedPath]);
  // 300 steps make blobs, not digits yet, but already closer to them (measured: FD ≈ 0.7 of the untrained one).
  assert.ok(trained.fd < 0.9 * untrained.fd, `FD trained ${trained.fd}, untrained ${untrained.fd}`);
  assert.ok(trained.classifier_score > untrained.classifier_score);
  assert.ok(trained.fd > trained.floor.fd);

  const exp = await runCli(['export', '--checkpoint', ckptPath, '--format', 'safetensors', '--out', out]);
  assert.equal(exp.code, 0, exp.stderr);
  const exported = await evalJson(['--checkpoint', join(out, 'generator.safetensors')]);
  assert.deepEqual(scoresOf(exported), scoresOf(trained), 'exported generator = its checkpoint');

  await t.test(
    "the generator saved from the seed's PyTorch module scores the same",
    {
      skip: hasTorch ? false : `no PyTorch: ${PY} cannot import torch (apt-get install python3-torch)`,
    },
    async () => {
      writeFileSync(join(out, 'round_trip.py'), TORCH_ROUND_TRIP);
      const torchFile = join(out, 'torch-generator.safetensors');
      const py = spawnSync(PY, [join(out, 'round_trip.py'), ckptPath, torchFile], {
        encoding: 'utf8',
        timeout: 120_000,
      });
      assert.equal(py.status, 0, py.stdout + py.stderr);
      const fromTorch = await evalJson(['--checkpoint', torchFile, '--seed', '1234']);
      assert.deepEqual(scoresOf(fromTorch), scoresOf(trained));
    },
  );
});

test('ganfleet eval: --help; usage errors exit 2; a file without a generator exits 1 naming the tensor', async () => {
  const help = await runCli(['eval', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Usage: ganfleet eval --checkpoint PATH/);
  assert.match(help.stdout, /Examples:/);
  const none = await runCli(['eval']);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /--checkpoint PATH is required/);
  const bad = await runCli(['eval', '--checkpoint', 'x.safetensors', '--eval-samples', '1']);
  assert.equal(bad.code, 2);
  const dir = tempDir();
  const path = join(dir, 'dis-only.safetensors');
  // A header-only safetensors file with no tensors at all.
  const header = Buffer.from('{"__metadata__":{}}    ');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  writeFileSync(path, Buffer.concat([len, header]));
  const r = await runCli(['eval', '--checkpoint', path]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no tensor gen\.0\.weight/);
});
