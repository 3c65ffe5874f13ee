import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { PNG } from 'pngjs';
import { readCheckpoint } from '../../coordinator/checkpoint.js';
import { logEvents, runCli, tempDir } from '../support/cluster.js';

test('ganfleet local trains real MNIST: grids, metrics, checkpoint, and D learns to tell real from fake', async () => {
  const out = join(tempDir(), 'run');
  const r = await runCli(
    ['local', '--workers', '2', '--backend', 'wasm', '--max-steps', '200', '--log-every', '20', '--out', out],
    300_000,
  );
  assert.equal(r.code, 0, r.stdout + r.stderr);
  // The last line names the folder, the last grid, the checkpoint and loss.png (not every grid).
  const done = logEvents(r.stdout).find((e) => e.lastGrid !== undefined);
  const rel = (p: string) => relative(process.cwd(), join(out, p));
  assert.deepEqual(
    [done?.steps, done?.outDir, done?.lastGrid, done?.grids, done?.checkpoint, done?.lossPlot],
    [200, rel('.'), rel('samples/epoch-001.png'), 1, rel('checkpoint.safetensors'), rel('loss.png')],
  );

  for (const png of ['real_images.png', 'samples/epoch-001.png']) {
    const img = PNG.sync.read(readFileSync(join(out, png)));
    assert.equal(img.width, 242, png);
    assert.equal(img.height, 242, png);
  }
  const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
  assert.equal(config.batchSize, 128);
  assert.equal(config.maxSteps, 200);

  const all = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  // Step lines, then the sample-quality line of the run's end (its own type).
  const lines = all.filter((l) => l.type === undefined);
  assert.equal(lines.length, 10);
  const evals = all.filter((l) => l.type === 'eval');
  assert.deepEqual(
    evals.map((l) => [l.step, l.epoch, l.samples, l.digit_shares.length]),
    [[200, 1, 10_000, 10]],
  );
  assert.ok(evals[0].fd > 0 && evals[0].classifier_score >= 1 && evals[0].classifier_score <= 10);
  // …and it is printed (a log line carrying the same scores).
  const printed = r.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l))
    .filter((l) => l.component === 'eval' && l.type === 'eval');
  assert.deepEqual(
    printed.map((l) => l.fd),
    [evals[0].fd],
  );
  assert.deepEqual(
    lines.map((l) => l.step),
    [20, 40, 60, 80, 100, 120, 140, 160, 180, 200],
  );
  for (const l of lines)
    for (const k of ['d_loss', 'g_loss', 'd_real', 'd_fake', 'images_per_s', 'd_phase_ms', 'g_phase_ms'])
      assert.ok(Number.isFinite(l[k]), k);
  assert.ok(
    lines.some((l) => l.d_real > l.d_fake),
    `D(real) never rose above D(fake): ${JSON.stringify(lines.map((l) => [l.d_real, l.d_fake]))}`,
  );
  // The seed's log line, every --log-every steps.
  assert.match(
    r.stdout,
    /Epoch \[0\/1\], d_loss: \d+\.\d{6}, g_loss: \d+\.\d{6},D real: \d+\.\d{6}, D fake: \d+\.\d{6}/,
  );

  const ckpt = await readCheckpoint(join(out, 'checkpoint.safetensors'));
  assert.equal(ckpt.step, 200);
  assert.equal(ckpt.adam.gen.step, 200);
  assert.equal(ckpt.adam.dis.step, 200);
  assert.ok(existsSync(join(out, 'checkpoint.safetensors')));
});
