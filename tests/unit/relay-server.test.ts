/** The relay's server on real sockets (port 0): guarded like the coordinator's, frames checked. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { pino } from 'pino';
import { WebSocket } from 'ws';
import { CloseCode } from '../../shared/errors.js';
import { encode, PROTOCOL_VERSION } from '../../shared/protocol.js';
import { RelayServer } from '../../worker/relay-server.js';
import { Egress } from '../../worker/egress.js';
import { RelaySums } from '../../worker/relay-sums.js';

const TOKEN = 'relay-test-token-0123456789abcdef';

async function relay() {
  const server = new RelayServer({
    host: '127.0.0.1',
    port: 0,
    token: TOKEN,
    log: pino({ level: 'silent' }),
    sums: new RelaySums(),
    egress: new Egress({ windowBytes: 64 * 1024 }),
    ready: () => undefined,
  });
  const port = await server.listen();
  return { server, url: `ws://127.0.0.1:${port}` };
}

/** The HTTP status the upgrade was refused with (0: it was accepted). */
async function upgradeStatus(url: string, headers: Record<string, string>): Promise<number> {
  const ws = new WebSocket(url, { headers });
  return new Promise((resolve) => {
    ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? -1));
    ws.once('open', () => {
      ws.terminate();
      resolve(0);
    });
    ws.once('error', () => undefined);
  });
}

async function closeCode(url: string, frames: Array<Buffer | string>): Promise<number> {
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${TOKEN}` } });
  await once(ws, 'open');
  for (const f of frames) ws.send(f, { binary: typeof f !== 'string' });
  const [code] = (await once(ws, 'close')) as [number];
  return code;
}

test('a relay refuses upgrades without the run token (401), takes it in the header', async () => {
  const { server, url } = await relay();
  try {
    assert.equal(await upgradeStatus(url, {}), 401);
    assert.equal(await upgradeStatus(url, { authorization: 'Bearer wrong' }), 401);
    assert.equal(await upgradeStatus(url, { authorization: `Bearer ${TOKEN}` }), 0);
  } finally {
    await server.close();
  }
});

test('frames are checked: text, a contribution before hello, a wrong protocol version', async () => {
  const { server, url } = await relay();
  try {
    assert.equal(await closeCode(url, ['hello']), CloseCode.BAD_FRAME);
    const contrib = encode({
      t: 'contrib',
      plan: 1,
      slice: 0,
      piece: 0,
      worker: 2,
      step: 1,
      phase: 'dis',
      start: 0,
      count: 8,
      total: { low: new Int32Array(4), exIndex: new Uint32Array(0), exHigh: new Int32Array(0) },
    });
    assert.equal(await closeCode(url, [contrib]), CloseCode.UNEXPECTED_MESSAGE);
    const hello = encode({ t: 'peer-hello', protocol: PROTOCOL_VERSION + 1, worker: 2, plan: 1 });
    assert.equal(await closeCode(url, [hello]), CloseCode.PROTOCOL_VERSION);
  } finally {
    await server.close();
  }
});

test('a peer whose link opens after pieces of weights went out gets them on hello', async () => {
  const { server, url } = await relay();
  try {
    const slice = encode({
      t: 'weights-slice',
      plan: 1,
      net: 'gen',
      version: 3,
      start: 16,
      data: new Float32Array([1, 2]),
    });
    const other = encode({
      t: 'weights-slice',
      plan: 1,
      net: 'gen',
      version: 3,
      start: 18,
      data: new Float32Array([3]),
    });
    server.broadcast({ plan: 1, net: 'gen', version: 3 }, slice, 0);
    server.broadcast({ plan: 1, net: 'gen', version: 3 }, other, 0);
    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${TOKEN}` } });
    await once(ws, 'open');
    ws.send(encode({ t: 'peer-hello', protocol: PROTOCOL_VERSION, worker: 2, plan: 1 }), { binary: true });
    const got: Buffer[] = [];
    ws.on('message', (d: Buffer) => got.push(Buffer.from(d)));
    while (got.length < 2) await once(ws, 'message');
    assert.deepEqual(got, [slice, other]);
    ws.terminate();
  } finally {
    await server.close();
  }
});

test("a peer gets only its own plan's weights, and none of a run the relay has left (reset)", async () => {
  const { server, url } = await relay();
  try {
    const slice = (plan: number, start: number) =>
      encode({ t: 'weights-slice', plan, net: 'dis', version: 7, start, data: new Float32Array([start]) });
    const old = slice(41, 0);
    server.broadcast({ plan: 41, net: 'dis', version: 7 }, old, 0);
    /** The frames a peer saying hello for `plan` is sent, up to the relay's 'end' marker frame. */
    const replay = async (plan: number): Promise<Buffer[]> => {
      const ws = new WebSocket(url, { headers: { authorization: `Bearer ${TOKEN}` } });
      await once(ws, 'open');
      const got: Buffer[] = [];
      ws.on('message', (d: Buffer) => got.push(Buffer.from(d)));
      ws.send(encode({ t: 'peer-hello', protocol: PROTOCOL_VERSION, worker: 2, plan }), { binary: true });
      // A marker broadcast after the hello: everything the hello replayed came before it.
      while (server.peerCount('open') < 1) await new Promise((r) => setImmediate(r));
      const marker = slice(plan, 99);
      server.broadcast({ plan, net: 'dis', version: 7 }, marker, 0);
      while (!got.some((g) => g.equals(marker))) await once(ws, 'message');
      ws.terminate();
      while (server.peerCount('open') > 0) await new Promise((r) => setImmediate(r));
      return got.slice(
        0,
        got.findIndex((g) => g.equals(marker)),
      );
    };
    assert.deepEqual(await replay(41), [old]);
    assert.deepEqual(await replay(42), []);
    server.broadcast({ plan: 41, net: 'dis', version: 7 }, old, 0);
    server.reset();
    assert.deepEqual(await replay(41), []);
  } finally {
    await server.close();
  }
});
