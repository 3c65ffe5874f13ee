import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { coordinator, exited, paramsDigest, runCli, spawnWorker, tempDir, trainWith } from '../support/cluster.js';

const skip = process.platform === 'win32' ? 'no Unix domain sockets' : false;

test('Unix-socket (mode 0600) and TCP workers train together; weights equal a TCP-only run; the socket goes', {
  skip,
}, async () => {
  const steps = 6;
  const reference = (await trainWith([undefined, undefined], steps)).summary;
  const socketPath = join(tempDir('gf-sock-'), 'c.sock');
  writeFileSync(socketPath, ''); // a regular file in the way is refused, not deleted
  await assert.rejects(coordinator({ maxSteps: steps }, { socketPath }), /exists and is not a socket/);
  const stale = createServer();
  await new Promise<void>((r) => stale.listen(join(socketPath, '..', 'stale.sock'), r));
  const live = join(socketPath, '..', 'stale.sock');
  // A socket something still listens on is refused as in use.
  await assert.rejects(coordinator({ maxSteps: steps }, { socketPath: live }), /another process is listening there/);
  await new Promise<void>((r) => stale.close(() => r()));

  const path = join(socketPath, '..', 'run.sock');
  const c = await coordinator({ maxSteps: steps, minWorkers: 2 }, { socketPath: path });
  assert.equal(c.localUrl, `ws+unix://${path}`);
  assert.equal(statSync(path).mode & 0o777, 0o600);
  const viaUnix = spawnWorker(c.localUrl!);
  const viaTcp = spawnWorker(c.url);
  const summary = await c.done;
  assert.deepEqual(await Promise.all([exited(viaUnix), exited(viaTcp)]), [0, 0], viaUnix.output() + viaTcp.output());
  assert.equal(summary.contributors, 2);
  assert.ok(c.server.sessions.size === 0);
  // The split follows measured throughput, so it may differ from the reference run's: rounding only.
  assert.equal(paramsDigest(summary.params), paramsDigest(reference.params));
  assert.equal(existsSync(path), false, 'the socket file is gone');
});

test('local --transport unix trains; malformed --socket and --connect are refused naming the flag', {
  skip,
}, async () => {
  const out = tempDir('gf-local-unix-');
  const r = await runCli(
    [
      'local',
      '--workers',
      '2',
      '--threads',
      '1',
      '--transport',
      'unix',
      '--max-steps',
      '3',
      '--backend',
      'wasm',
      '--no-samples',
      '--no-plots',
      '--out',
      out,
    ],
    180_000,
  );
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout + r.stderr, /ws\+unix:\/\//);
  for (const [args, flag] of [
    [['coordinator', '--socket', 'relative.sock'], '--socket'],
    [['coordinator', '--socket', `/${'x'.repeat(120)}.sock`], '--socket'],
    [['worker', '--connect', 'ws+unix://relative.sock'], '--connect'],
    [['local', '--transport', 'carrier-pigeon'], '--transport'],
  ] as const) {
    const bad = await runCli([...args]);
    assert.equal(bad.code, 2, `${args.join(' ')}: ${bad.stderr}`);
    assert.ok(bad.stderr.includes(flag), bad.stderr);
  }
});
