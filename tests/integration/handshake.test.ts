import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { Packr } from 'msgpackr';
import { CloseCode } from '../../shared/errors.js';
import { manifestHash } from '../../shared/model.js';
import { loadMnist } from '../../shared/mnist.js';
import { PROTOCOL_VERSION, decodeCoordinatorMessage, encode, type HelloMessage } from '../../shared/protocol.js';
import { coordinator } from '../support/cluster.js';

const data = await loadMnist();
// A coordinator that never starts training (it waits for more workers than will come).
const c = await coordinator({ minWorkers: 1000 });
after(() => {
  c.stop();
});

const goodHello = (): HelloMessage => ({
  t: 'hello',
  protocol: PROTOCOL_VERSION,
  manifest: manifestHash(),
  dataset: data.hash,
  backend: 'test',
  device: 'test',
});

/** Opens a socket, sends `frames`, and resolves with the close code and reason (and frames received). */
function exchange(frames: Array<Buffer | string>): Promise<{ code: number; reason: string; received: Buffer[] }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(c.url);
    const received: Buffer[] = [];
    ws.on('open', () => {
      for (const f of frames) ws.send(f);
    });
    ws.on('message', (d) => received.push(d as Buffer));
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString(), received }));
    ws.on('error', reject);
  });
}

test('a matching hello is welcomed with the config and both networks', async () => {
  const ws = new WebSocket(c.url);
  const frame = await new Promise<Buffer>((resolve) => {
    ws.on('open', () => ws.send(encode(goodHello())));
    ws.once('message', (d) => resolve(d as Buffer));
  });
  const msg = decodeCoordinatorMessage(frame);
  assert.equal(msg.t, 'welcome');
  if (msg.t === 'welcome') assert.equal(msg.config.seed, 7);
  ws.close();
});

test('a wrong protocol version is refused with 4001 and says what differs', async () => {
  const r = await exchange([encode({ ...goodHello(), protocol: PROTOCOL_VERSION + 1 })]);
  assert.equal(r.code, CloseCode.PROTOCOL_VERSION);
  assert.match(
    r.reason,
    new RegExp(`protocol version ${PROTOCOL_VERSION + 1} is not supported; the coordinator speaks ${PROTOCOL_VERSION}`),
  );
  assert.equal(r.received.length, 0);
});

test('a wrong manifest hash is refused with 4002', async () => {
  const r = await exchange([encode({ ...goodHello(), manifest: '0'.repeat(64) })]);
  assert.equal(r.code, CloseCode.MANIFEST_MISMATCH);
  assert.match(r.reason, /model manifest 000000000000… differs/);
});

test('a different dataset is refused with 4003', async () => {
  const r = await exchange([encode({ ...goodHello(), dataset: 'f'.repeat(64) })]);
  assert.equal(r.code, CloseCode.DATASET_MISMATCH);
  assert.match(r.reason, /dataset ffffffffffff… differs/);
});

test('malformed frames and text frames close with 4000; results before hello with 4004', async () => {
  assert.equal((await exchange([Buffer.from([0xc1, 0x00])])).code, CloseCode.BAD_FRAME);
  assert.equal((await exchange(['{"t":"hello"}'])).code, CloseCode.BAD_FRAME);
  assert.equal(
    (await exchange([new Packr({ useRecords: false }).pack({ t: 'hello', protocol: 1 })])).code,
    CloseCode.BAD_FRAME,
  );
  const early = encode({
    t: 'result',
    step: 0,
    phase: 'gen',
    start: 0,
    count: 1,
    grad: { dtype: 'f32', values: new Float32Array(293136) },
    lossSum: 0,
    dRealSum: 0,
    dFakeSum: 0,
    computeMs: 1,
  });
  const r = await exchange([early]);
  assert.equal(r.code, CloseCode.UNEXPECTED_MESSAGE);
  assert.match(r.reason, /before hello/);
});

test('a result for a shard that was never assigned closes with 4005', async () => {
  const early = encode({
    t: 'result',
    step: 0,
    phase: 'gen',
    start: 0,
    count: 1,
    grad: { dtype: 'f32', values: new Float32Array(293136) },
    lossSum: 0,
    dRealSum: 0,
    dFakeSum: 0,
    computeMs: 1,
  });
  const r = await exchange([encode(goodHello()), early]);
  assert.equal(r.code, CloseCode.BAD_RESULT);
  assert.match(r.reason, /was not assigned to this worker/);
});

test('an oversized frame is refused by maxPayload (1009)', async () => {
  const r = await exchange([Buffer.alloc(4 * 1024 * 1024)]);
  assert.equal(r.code, 1009);
});
