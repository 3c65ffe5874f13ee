/** Token authentication at the upgrade, TLS, refusing unsafe exposure, and frame fuzzing during a run. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { Packr } from 'msgpackr';
import { manifestHash, MANIFESTS } from '../../shared/model.js';
import { loadMnist } from '../../shared/mnist.js';
import { PROTOCOL_VERSION, encode } from '../../shared/protocol.js';
import { selfSignedCert } from '../support/tls.js';
import {
  coordinator,
  exited,
  paramsDigest,
  events,
  runCli,
  spawnWorker,
  tempDir,
  trainWith,
} from '../support/cluster.js';

const TOKEN = 'correct-horse-battery-staple';

/** Tries to open a socket; resolves with the HTTP status of a refused upgrade, or 101. */
function upgradeStatus(url: string, headers: Record<string, string>, opts: { ca?: Buffer } = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers, ...opts });
    ws.on('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.on('open', () => {
      resolve(101);
      ws.close();
    });
    ws.on('error', (e) => reject(e));
  });
}

test('a missing or wrong token gets 401 and no socket; the token never appears in the logs', async () => {
  const lines: string[] = [];
  const c = await coordinator({ maxSteps: 2, minWorkers: 1 }, { lines, token: TOKEN });
  assert.equal(await upgradeStatus(c.url, {}), 401);
  assert.equal(await upgradeStatus(c.url, { authorization: 'Bearer wrong-token' }), 401);
  assert.equal(await upgradeStatus(c.url, { authorization: `Basic ${TOKEN}` }), 401);
  assert.equal(c.server.sessions.size, 0);
  assert.equal(events(lines, 'session-opened').length, 0, 'no session was created');

  const dir = tempDir();
  writeFileSync(join(dir, 'token'), `${TOKEN}\n`);
  writeFileSync(join(dir, 'wrong'), 'nope\n');
  const intruder = spawnWorker(c.url, ['--token-file', join(dir, 'wrong')]);
  assert.equal(await exited(intruder), 1);
  assert.match(intruder.output(), /coordinator answered 401.*check the token/);
  const worker = spawnWorker(c.url, ['--token-file', join(dir, 'token')]);
  const summary = await c.done;
  assert.equal(await exited(worker), 0, worker.output());
  assert.equal(summary.steps, 2);
  const all = lines.join('\n') + intruder.output() + worker.output();
  assert.ok(!all.includes(TOKEN) && !all.includes('nope'), 'a token leaked into a log');
  const refused = events(lines, 'upgrade-refused').map((e) => [e.status, e.reason]);
  assert.deepEqual(refused.slice(0, 2), [
    [401, 'missing token'],
    [401, 'wrong token'],
  ]);
});

test('the coordinator refuses a non-loopback address without a token unless --insecure', async () => {
  const r = await runCli(['coordinator', '--host', '0.0.0.0', '--port', '0', '--max-steps', '1']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /refusing to listen on 0\.0\.0\.0 without a token.*--insecure/);
});

test('TLS: wss:// with a certificate made here; workers trust it through --ca', async () => {
  const dir = tempDir();
  const { key, cert } = selfSignedCert(dir);
  const c = await coordinator(
    { maxSteps: 2, minWorkers: 1 },
    { tls: { cert: readFileSync(cert), key: readFileSync(key) }, token: TOKEN },
  );
  assert.match(c.url, /^wss:\/\//);
  assert.equal(await upgradeStatus(c.url, { authorization: `Bearer ${TOKEN}` }, { ca: readFileSync(cert) }), 101);
  const untrusting = spawnWorker(c.url, ['--max-retries', '0'], { GANFLEET_TOKEN: TOKEN });
  assert.equal(await exited(untrusting), 1);
  assert.match(untrusting.output(), /self-signed certificate|unable to verify/);
  const worker = spawnWorker(c.url, ['--ca', cert], { GANFLEET_TOKEN: TOKEN });
  const summary = await c.done;
  assert.equal(await exited(worker), 0, worker.output());
  assert.equal(summary.steps, 2);
});

/** A small seeded PRNG (mulberry32) so that a failing fuzz case can be replayed. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('10,000 random and mutated frames during a run: every bad connection closed, the weights stay exact', async () => {
  // The worker holds step 5's D result until the fuzzing is over (SIGUSR2), so the fuzzing
  // overlaps training whatever the machine's speed.
  const steps = 10;
  const clean = paramsDigest((await trainWith([undefined], steps)).summary.params);
  const data = await loadMnist();
  const c = await coordinator(
    { maxSteps: steps, minWorkers: 1 },
    { token: TOKEN, handshakesPerSecond: 1_000_000, maxConnections: 10_000 },
  );
  const worker = spawnWorker(c.url, [], {
    GANFLEET_TOKEN: TOKEN,
    GANFLEET_FAULTS: JSON.stringify({ hold: { step: 5, phase: 'dis' } }),
  });
  const rand = prng(20261126);
  const packr = new Packr({ useRecords: false });
  const hello = encode({
    t: 'hello',
    protocol: PROTOCOL_VERSION,
    manifest: manifestHash(),
    dataset: data.hash,
    backend: 'fuzz',
    device: 'fuzz',
  });
  const result = encode({
    t: 'result',
    step: 0,
    phase: 'dis',
    start: 0,
    count: 1,
    grad: { dtype: 'f32', values: new Float32Array(MANIFESTS.dis.size) },
    lossSum: 0,
    dRealSum: 0,
    dFakeSum: 0,
    computeMs: 1,
  });
  const makeFrame = (): Buffer | string => {
    // Oversized frames are rare: each is megabytes on the loopback.
    if (rand() < 0.01) return Buffer.alloc(3 * 1024 * 1024, 7);
    switch (Math.floor(rand() * 9)) {
      case 0: // random bytes
        return Buffer.from(Array.from({ length: 1 + Math.floor(rand() * 64) }, () => Math.floor(rand() * 256)));
      case 1: // truncated valid frame
        return hello.subarray(0, Math.floor(rand() * hello.length));
      case 2: {
        // a valid frame with flipped bytes
        const f = Buffer.from(rand() < 0.5 ? hello : result.subarray(0, 200));
        for (let i = 0; i < 3; i++) f[Math.floor(rand() * f.length)] ^= 1 << Math.floor(rand() * 8);
        return f;
      }
      case 3: // wrong field types
        return packr.pack({ t: 'hello', protocol: 'x', manifest: 1, dataset: [], backend: {}, device: null });
      case 4: // prototype pollution attempts
        return packr.pack(
          JSON.parse(`{"t":"result","__proto__":{"step":0,"phase":"dis"},"constructor":{"prototype":{"x":1}}}`),
        );
      case 5: // a result of the wrong length, or full of NaN
        return rand() < 0.5
          ? packr.pack({
              t: 'result',
              step: 0,
              phase: 'gen',
              start: 0,
              count: 1,
              grad: new Float32Array(7),
              lossSum: 0,
              dRealSum: 0,
              dFakeSum: 0,
              computeMs: 1,
            })
          : packr.pack({
              t: 'result',
              step: 0,
              phase: 'dis',
              start: 0,
              count: 1,
              grad: new Float32Array(MANIFESTS.dis.size).fill(NaN),
              lossSum: NaN,
              dRealSum: 0,
              dFakeSum: 0,
              computeMs: 1,
            });
      case 6: // text frame
        return '{"t":"hello"}';
      case 7: // unknown type
        return packr.pack({ t: ['assign', 'welcome', 'weights', 'bye'][Math.floor(rand() * 4)] });
      default: // a good hello followed (next frame) by anything
        return hello;
    }
  };
  const allowed = new Set([1009, 4000, 4001, 4002, 4003, 4004, 4005, 4006]);
  const codes = new Map<number, number>();
  let frames = 0;
  let refused401 = 0;
  const fuzzConnection = (auth: boolean, n: number) =>
    new Promise<void>((resolve) => {
      const ws = new WebSocket(c.url, { headers: auth ? { authorization: `Bearer ${TOKEN}` } : {} });
      let refusedAtUpgrade = false;
      ws.on('unexpected-response', (_q, res) => {
        refusedAtUpgrade = true;
        if (res.statusCode === 401) refused401++;
        ws.terminate();
        resolve();
      });
      ws.on('open', () => {
        for (let i = 0; i < n && ws.readyState === ws.OPEN; i++) {
          ws.send(makeFrame());
          frames++;
        }
        // Connections that survived (e.g. only a good hello) end themselves, as a crashing client would.
        setTimeout(() => ws.close(1000), 50);
      });
      ws.on('close', (code) => {
        if (!refusedAtUpgrade) codes.set(code, (codes.get(code) ?? 0) + 1);
        resolve();
      });
      ws.on('error', () => resolve());
    });
  let attempts = 0;
  while (frames < 10_000) {
    const conns: Array<Promise<void>> = [];
    for (let k = 0; k < 10; k++) conns.push(fuzzConnection(true, 100), fuzzConnection(false, 100));
    attempts += 10;
    await Promise.all(conns);
  }
  const fuzzedDuringTraining = c.trainer.currentStep < steps;
  worker.kill('SIGUSR2');
  const summary = await c.done;
  assert.equal(await exited(worker), 0, worker.output());
  assert.ok(frames >= 10_000, `${frames} frames sent`);
  assert.ok(fuzzedDuringTraining, 'training ended before the fuzzing did');
  assert.equal(refused401, attempts, 'every unauthenticated attempt got 401');
  for (const [code, n] of codes)
    assert.ok(allowed.has(code) || code === 1000 || code === 1005, `unexpected close code ${code} (${n}×)`);
  assert.ok(
    [...codes.keys()].some((k) => allowed.has(k)),
    `no protocol close codes seen: ${JSON.stringify([...codes])}`,
  );
  console.log(
    `fuzz: ${frames} frames on ${attempts} authenticated connections, ${refused401} refused at upgrade; ` +
      `close codes ${JSON.stringify([...codes].sort())}`,
  );
  assert.equal(summary.steps, steps);
  assert.equal(paramsDigest(summary.params), clean, 'the weights differ from a clean run');
});
