/**
 * deploy/netns/cluster.sh: its plan and input checks (no root needed), a short run of a coordinator
 * host and two worker hosts with uneven links in network namespaces (CI runs as root), eight worker
 * hosts relaying in slices, and an interrupt. The namespace tests are skipped, saying why, where
 * network namespaces cannot be made.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
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

const script = (...args: string[]) => spawnSync('bash', [SCRIPT, ...args], { encoding: 'utf8' });

test('cluster.sh --dry-run: each host at its own rate, every link direction shaped once, sized for the rate', () => {
  const r = script('--dry-run', '--workers', '1,2', '--coordinator-gbit', '2', '--worker-gbit', '1,0.1');
  assert.equal(r.status, 0, r.stderr);
  const plan = r.stdout.replace(/gf\d+/g, 'gfX');
  // The slowest link (0.1 Gbit/s: 12500 bytes/ms) sets the GSO size: a quarter ms, at least 16 KiB.
  assert.match(plan, /^plan: switch namespace gfXsw with bridge br0; veth GSO size 16384 bytes$/m);
  const lines = plan.split('\n');
  // The line after "plan: host H ..." is its uplink's qdisc, the next its downlink's: [device, tbf options].
  const tbf = (h: string, dir: 'up' | 'down') => {
    const at = lines.findIndex((l) => l.startsWith(`plan: host ${h} `));
    const line = lines[at + (dir === 'up' ? 1 : 2)] ?? '';
    return new RegExp(`^plan:   ${dir}: .* tc qdisc add dev (\\S+) root tbf (.*)$`).exec(line)?.slice(1);
  };
  assert.match(plan, /^plan: host c 10\.77\.0\.1 namespace gfXc: 2 Gbit\/s each way$/m);
  assert.match(plan, /^plan: host w1 10\.77\.0\.11 namespace gfXw1: 1 Gbit\/s each way$/m);
  assert.match(plan, /^plan: host w2 10\.77\.0\.12 namespace gfXw2: 0\.1 Gbit\/s each way$/m);
  // Burst: 1 ms of the rate, at least 4 GSO packets; queue: 50 ms of the rate, at least 1 MiB.
  assert.deepEqual(tbf('c', 'up'), ['eth0', 'rate 2000000kbit burst 250000 limit 12500000']);
  assert.deepEqual(tbf('c', 'down'), ['gfXcp', 'rate 2000000kbit burst 250000 limit 12500000']);
  assert.deepEqual(tbf('w1', 'up'), ['eth0', 'rate 1000000kbit burst 125000 limit 6250000']);
  assert.deepEqual(tbf('w2', 'up'), ['eth0', 'rate 100000kbit burst 65536 limit 1048576']);
  assert.deepEqual(tbf('w2', 'down'), ['gfXw2p', 'rate 100000kbit burst 65536 limit 1048576']);
  assert.equal(plan.match(/tc qdisc add/g)?.length, 6, 'one qdisc per host per direction');
  assert.match(plan, /^plan: bench --coordinator-gbit 2 --worker-gbit 1,0\.1 /m);
  // One rate for every worker host.
  const even = script('--dry-run', '--workers', '3', '--worker-gbit', '0.5', '--coordinator-gbit', '5');
  assert.equal(even.status, 0, even.stderr);
  assert.equal(even.stdout.match(/namespace gf\d+w\d: 0\.5 Gbit\/s each way/g)?.length, 3);
  assert.match(even.stdout, /veth GSO size 16384 bytes/);
  assert.match(even.stdout, /--worker-gbit 0\.5,0\.5,0\.5 /);
  // Many hosts on a slow link: the queue holds 4 GSO packets for each connection a link may carry
  // (33 × 4 × 16 KiB), more than 50 ms of the rate or 1 MiB.
  const many = script('--dry-run', '--workers', '32', '--worker-gbit', '0.005', '--coordinator-gbit', '0.005');
  assert.equal(many.status, 0, many.stderr);
  assert.equal(many.stdout.match(/root tbf rate 5000kbit burst 65536 limit 2162688$/gm)?.length, 66);
});

test('cluster.sh refuses bad input with exit 2, naming the flag', () => {
  const cases: [string[], RegExp][] = [
    [['--workers', '1,x'], /--workers must be a list/],
    [['--workers', '65'], /--workers: at most 64/],
    [['--workers', '3', '--worker-gbit', '1,2'], /--worker-gbit: 2 rates for 3 worker hosts/],
    [['--worker-gbit', '1,,2'], /--worker-gbit must be a rate or a list/],
    [['--worker-gbit', 'fast'], /--worker-gbit: a rate is a decimal number/],
    [['--coordinator-gbit', '1e3'], /--coordinator-gbit: a rate is a decimal number/],
    [['--coordinator-gbit', '11'], /--coordinator-gbit: a rate must be in \[0\.001, 10\]/],
    [['--worker-gbit', '0.0005'], /--worker-gbit: a rate must be in \[0\.001, 10\]/],
    [['--steps', '0'], /--steps must be a positive integer/],
    [['--calibrate-steps', 'x'], /--calibrate-steps must be a positive integer/],
    [['--out'], /--out needs a value/],
    [['--frobnicate'], /unknown option --frobnicate/],
  ];
  for (const [args, message] of cases) {
    const r = script('--dry-run', ...args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, message, args.join(' '));
    assert.equal(r.stdout, '', args.join(' '));
  }
});

test('namespace cluster: uneven links as tc reports them, each segment on exactly its hosts, calibrated model', {
  skip,
  timeout: 240_000,
}, async () => {
  const out = tempDir('ganfleet-netns-');
  const child = start([
    'bash',
    SCRIPT,
    '--workers',
    '1,2',
    '--steps',
    '3',
    '--warmup',
    '1',
    '--calibrate-steps',
    '2',
    '--coordinator-gbit',
    '2',
    '--worker-gbit',
    '1,0.1',
    '--out',
    out,
    '--',
    '--synthetic-compute-ms',
    '2',
  ]);
  assert.equal(await child.exit, 0, child.stderr());
  const stderr = child.stderr();
  // The qdiscs as tc shows them after shaping: each host's rate, up (its end) and down (the switch's).
  const link = (h: string) =>
    new RegExp(`^cluster\\.sh: link ${h} (\\S+): up rate (\\S+) burst \\S+, down rate (\\S+) burst \\S+$`, 'm')
      .exec(stderr)
      ?.slice(1);
  assert.deepEqual(link('c'), ['10.77.0.1', '2Gbit', '2Gbit']);
  assert.deepEqual(link('w1'), ['10.77.0.11', '1Gbit', '1Gbit']);
  assert.deepEqual(link('w2'), ['10.77.0.12', '100Mbit', '100Mbit']);
  const report = JSON.parse(readFileSync(join(out, 'bench.json'), 'utf8')) as BenchReport;
  assert.deepEqual(validateBenchReport(report), []);
  assert.equal(report.settings.mode, 'attach');
  assert.equal(report.settings.coordinatorGbit, 2);
  assert.deepEqual(report.settings.workerGbit, [1, 0.1]);
  assert.deepEqual(
    report.results.map((r) => [r.workers, r.receivers, r.modelWorkerGbit]),
    [
      [1, 1, 1],
      [2, 2, 0.1],
    ],
    'no spare worker receives weights; the 2-worker model uses the slower host',
  );
  for (const r of report.results)
    assert.deepEqual(r.workerTransports, { shm: 0, unix: 0, tcp: r.workers }, 'over the links');
  // The calibration ran unshaped first: its loopback rate caps the model's links, its leftover time
  // is the model's overhead term.
  const cal = JSON.parse(readFileSync(join(out, 'calibration', 'bench.json'), 'utf8')) as BenchReport;
  assert.deepEqual(validateBenchReport(cal), []);
  // The calibration measured H, the rate TCP moves bytes between two hosts unshaped, and modelled its
  // unshaped links at H; the shaped run's model takes H as the hosts' rate.
  const h = report.settings.hostGbit;
  assert.ok(h !== null && h > 0, `hostGbit ${h}`);
  assert.equal(cal.settings.coordinatorGbit, h);
  assert.deepEqual(cal.settings.workerGbit, [h]);
  assert.match(stderr, new RegExp(`TCP between two hosts with the links unshaped: ${h.toFixed(3)} Gbit/s`));
  cal.results.forEach((c, i) => {
    const expected = Math.max(0, c.stepMs.mean - c.modelStepMs);
    assert.ok(Math.abs(report.results[i]!.overheadMs - expected) < 0.01, `overhead ${i}`);
  });
  assert.ok(existsSync(join(out, 'bench.md')));
  assert.deepEqual(namespaces(`gf${child.pid}`), []);
});

test('namespace cluster: 8 worker hosts in slices; the coordinator link carries one network a phase', {
  skip,
  timeout: 240_000,
}, async () => {
  const out = tempDir('ganfleet-netns-');
  // Peer byte counters come with each worker's 'relayed' frame, so a window's ends can be off by up to one
  // phase's contributions (they race the frame): 10 timed steps keep that under 3 % of a step's bytes.
  const args = ['--workers', '8', '--steps', '10', '--warmup', '2', '--no-calibrate', '--out', out];
  const links = ['--coordinator-gbit', '1', '--worker-gbit', '1'];
  const bench = ['--synthetic-compute-ms', '2', '--batch-per-worker', '16', '--topology', 'slices'];
  const child = start(['bash', SCRIPT, ...args, ...links, '--', ...bench]);
  assert.equal(await child.exit, 0, child.stderr());
  const report = JSON.parse(readFileSync(join(out, 'bench.json'), 'utf8')) as BenchReport;
  assert.deepEqual(validateBenchReport(report), []);
  const r = report.results[0]!;
  assert.deepEqual(r.shape, { kind: 'slices', fanOut: 8, depth: 2 });
  assert.deepEqual(r.workerTransports, { shm: 0, unix: 0, tcp: 8 });
  // A star would carry 8 totals in and 8 weights out; slices carry about one of each (headers aside).
  const weights = r.minBytesPerStepPerWorker / 2;
  for (const dir of ['in', 'out'] as const) {
    assert.ok(r.coordinatorLink[dir] < 1.05 * weights, `coordinator ${dir}: ${r.coordinatorLink[dir]} vs ${weights}`);
    const need = r.shapeNeeds.worker[dir];
    assert.ok(r.busiestWorkerLink[dir] < 1.05 * need, `busiest worker ${dir}: ${r.busiestWorkerLink[dir]} vs ${need}`);
    // The need counts contributions as wide as the totals the coordinator gets; a worker's share is narrower
    // (16 samples here: 2 bytes a value against the totals' 3), so the link may carry less than the need.
    assert.ok(r.busiestWorkerLink[dir] > 0.75 * need, `busiest worker ${dir}: ${r.busiestWorkerLink[dir]} vs ${need}`);
  }
  assert.deepEqual(namespaces(`gf${child.pid}`), []);
});

test('namespace cluster: --topology auto times both shapes on 4 hosts and keeps the faster one', {
  skip,
  timeout: 240_000,
}, async () => {
  const out = tempDir('ganfleet-netns-');
  const args = ['--workers', '4', '--steps', '2', '--warmup', '12', '--no-calibrate', '--out', out];
  const links = ['--coordinator-gbit', '1', '--worker-gbit', '1'];
  const bench = ['--synthetic-compute-ms', '2', '--batch-per-worker', '16', '--log-level', 'info'];
  const child = start(['bash', SCRIPT, ...args, ...links, '--', ...bench]);
  assert.equal(await child.exit, 0, child.stderr());
  const events = child
    .output()
    .split('\n')
    .filter((l) => l.includes('"shape-chosen"'))
    .map(
      (l) =>
        JSON.parse(l.slice(l.indexOf('{'))) as { event?: string; shape?: string; starMs?: number; slicesMs?: number },
    );
  const chosen = events.filter((e) => e.event === 'shape-chosen');
  assert.equal(chosen.length, 1, 'one verdict: the members did not change');
  const v = chosen[0]!;
  assert.ok(v.starMs! > 0 && v.slicesMs! > 0);
  assert.equal(v.shape, v.slicesMs! < v.starMs! ? 'slices' : 'star');
  // The timed steps ran in the shape chosen.
  const report = JSON.parse(readFileSync(join(out, 'bench.json'), 'utf8')) as BenchReport;
  assert.equal(report.results[0]!.shape.kind, v.shape);
  assert.deepEqual(namespaces(`gf${child.pid}`), []);
});

test('namespace cluster: an interrupt removes the namespaces and processes it made', {
  skip,
  timeout: 120_000,
}, async () => {
  const out = tempDir('ganfleet-netns-');
  const args = ['--workers', '2', '--steps', '1000', '--warmup', '1', '--out', out];
  const child = start(['bash', SCRIPT, ...args, '--', '--synthetic-compute-ms', '2']);
  await until(
    () => child.stderr().includes('waiting for 2 worker(s)') || child.exitCode !== null,
    60_000,
    'the cluster',
  );
  assert.ok(namespaces(`gf${child.pid}`).length >= 4, 'namespaces exist while it runs');
  // The bench and both workers run in the namespaces (the workers start just after that line).
  const inNamespaces = () =>
    spawnSync(
      'bash',
      ['-c', `for n in $(ip netns list | awk '/^gf${child.pid}/{print $1}'); do ip netns pids "$n"; done`],
      { encoding: 'utf8' },
    )
      .stdout.split('\n')
      .filter(Boolean);
  let pids: string[] = [];
  await until(() => (pids = inNamespaces()).length >= 3, 10_000, 'the bench and 2 workers in the namespaces');
  child.kill('SIGINT');
  assert.equal(await child.exit, 130, child.stderr());
  assert.deepEqual(namespaces(`gf${child.pid}`), [], 'no namespace is left behind');
  for (const pid of pids) {
    assert.equal(spawnSync('kill', ['-0', pid]).status, 1, `process ${pid} is gone`);
  }
});
