/**
 * What the dispatcher's wait log says a missing shard waits for (coordinator/dispatcher.ts
 * describeWait), and the bytes still on their way to a worker it reads (coordinator/session.ts
 * inFlightBytes), on a real WebSocket: a worker whose welcome is still crossing a slow link is
 * named with them, so a stalled phase shows the coordinator's link, not the worker, as the cause.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { WebSocket, WebSocketServer } from 'ws';
import { describeWait } from '../../coordinator/dispatcher.js';
import { WorkerSession } from '../../coordinator/session.js';

const shard = { start: 640, count: 128 };
const holder = (id: number, inFlightBytes: number) => ({ id, inFlightBytes }) as unknown as WorkerSession;

test('dispatcher: a missing shard names its state, its workers and the bytes not yet with them', () => {
  assert.equal(describeWait(shard, { kind: 'pending' }), '[640, +128) pending');
  assert.equal(
    describeWait(shard, { kind: 'assigned', holders: new Set([holder(7, 2_104_000)]), copyWanted: false }),
    '[640, +128) assigned to worker 7 (2.10 MB on its way to it)',
  );
  // A copy on a second worker that has everything: named alone.
  assert.equal(
    describeWait(shard, {
      kind: 'assigned',
      holders: new Set([holder(7, 2_104_000), holder(9, 0)]),
      copyWanted: false,
    }),
    '[640, +128) assigned to worker 7 (2.10 MB on its way to it), worker 9',
  );
});

test('session: bytes sent to a worker that has not read them are in flight; none once it has', async () => {
  const http = createServer();
  const wss = new WebSocketServer({ server: http });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', () => r()));
  const accepted = once(wss, 'connection') as Promise<[WebSocket]>;
  const worker = new WebSocket(`ws://127.0.0.1:${(http.address() as AddressInfo).port}`);
  await once(worker, 'open');
  const [ws] = await accepted;
  const session = new WorkerSession(1, ws, '127.0.0.1', pino({ level: 'silent' }));
  try {
    // The worker echoes a frame: by the time the echo is back, the frame was acknowledged.
    worker.once('message', (m: Buffer) => worker.send(m));
    const back = once(ws, 'message');
    session.send(Buffer.alloc(1000, 7));
    await back;
    assert.equal(session.inFlightBytes, 0);
    // A worker that reads nothing more: 64 MiB cannot all have reached it.
    (worker as unknown as { _socket: { pause(): void } })._socket.pause();
    session.send(Buffer.alloc(64 << 20));
    assert.ok(session.inFlightBytes > 0);
  } finally {
    worker.terminate();
    ws.terminate();
    wss.close();
    await new Promise<void>((r) => http.close(() => r()));
  }
});
