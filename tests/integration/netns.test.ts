/**
 * A short run of deploy/netns/cluster.sh: a coordinator host and one worker host in network
 * namespaces over rate-limited veth links (CI runs as root). Skipped, saying why, where network
 * namespaces cannot be made.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { validateBenchReport, type BenchReport } from '../../coordinator/bench/report.js';
import { start, tempDir, until } from '../support/cluster.js';

const SCRIPT = fileURLToPath(new URL('../../../deploy/netns/cluster.sh', import.meta.url));

function netnsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root for ip netns and tc';
  const probe = `gfprobe${process.pid}`;
  const add = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' });
  if (add.status !== 0) return `ip netns is not permitted here: ${(add.stderr || String(add.error)).trim()}`;
  spawnSync('ip', ['netns', 'del', probe]);
  const tc = spawnSync('tc', ['-V'], { encoding: 'utf8' });
  if (tc.status !== 0) return 'tc (iproute2) is not installed';
  return undefined;
}

const skip = netnsUnavailable();
const namespaces = (tag: string) =>
  spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .stdout.split('\n')
    .filter((l) => l.startsWith(tag));

test('namespace cluster: coordinator and worker hosts over 1 Gbit/s links; everything removed afterwards', {
  skip,
  timeout: 240_000,
}, async () => {
  const out = tempDir('ganfleet-netns-');
  const child = start([
    'bash',
    SCRIPT,
    '--workers',
    '1',
    '--steps',
    '4',
    '--warmup',
    '1',
    '--worker-gbit',
    '1',
    '--coordinator-gbit',
    '10',
    '--out',
    out,
    '--',
    '--synthetic-compute-ms',
    '2',
  ]);
  assert.equal(await child.exit, 0, child.stderr());
  const report = JSON.parse(readFileSync(join(out, 'bench.json'), 'utf8')) as BenchReport;
  assert.deepEqual(validateBenchReport(report), []);
  assert.equal(report.settings.mode, 'attach');
  assert.equal(report.settings.workerGbit, 1);
  assert.deepEqual(namespaces(`gf${child.pid}`), []);
});

test('namespace cluster: an interrupt removes the namespaces and processes it made', {
  skip,
  timeout: 120_000,
}, async () => {
  const out = tempDir('ganfleet-netns-');
  const args = ['--workers', '2', '--steps', '1000', '--warmup', '1', '--out', out];
  const child = start(['bash', SCRIPT, ...args, '--', '--synthetic-compute-ms', '2']);
  await until(() => child.stderr().includes('worker host(s)') || child.exitCode !== null, 60_000, 'the cluster');
  assert.ok(namespaces(`gf${child.pid}`).length >= 3, `namespaces exist while it runs: ${child.stderr()}`);
  child.kill('SIGINT');
  assert.equal(await child.exit, 130, child.stderr());
  assert.deepEqual(namespaces(`gf${child.pid}`), [], 'no namespace is left behind');
});
