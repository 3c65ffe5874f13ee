/**
 * A socket's kernel send queue kept short, and what it still holds (shared/socket-queue.ts over the
 * addon's tcpNotsentLowat and tcpUnacked): on a real TCP connection, plain and TLS; wrong calls are
 * typed errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { NativeErrorCode } from '../../shared/native-addon.js';
import { loadReduceAddon } from '../../shared/reduce-addon.js';
import { sendQueueLimit, shortenSendQueue, unackedBytes, unsentBytes } from '../../shared/socket-queue.js';
import { selfSignedCert } from '../support/tls.js';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A self-signed certificate for 127.0.0.1 (tests/support/tls.ts), read in. */
function makeTestTls(): { cert: Buffer; key: Buffer } {
  const dir = mkdtempSync(join(tmpdir(), 'gf-sq-'));
  try {
    const { key, cert } = selfSignedCert(dir);
    return { cert: readFileSync(cert), key: readFileSync(key) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const reduce = loadReduceAddon();
const skip = reduce.addon === null ? `ganfleet_reduce not in use: ${reduce.error}` : false;

async function pair(tls?: { cert: Buffer; key: Buffer }) {
  const { createServer: createHttps } = await import('node:https');
  const http = tls ? createHttps(tls) : createServer();
  const wss = new WebSocketServer({ server: http });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', () => r()));
  const port = (http.address() as AddressInfo).port;
  const accepted = once(wss, 'connection') as Promise<[WebSocket]>;
  const client = new WebSocket(`${tls ? 'wss' : 'ws'}://127.0.0.1:${port}`, tls ? { ca: tls.cert } : {});
  await once(client, 'open');
  const [server] = await accepted;
  return {
    client,
    server,
    close: async () => {
      client.terminate();
      server.terminate();
      wss.close();
      await new Promise<void>((r) => http.close(() => r()));
    },
  };
}

test('socket-queue: both ends of a WebSocket take the limit, and it reads back', { skip }, async () => {
  const p = await pair();
  try {
    assert.equal(shortenSendQueue(p.client, 16384), '');
    assert.equal(shortenSendQueue(p.server, 20000), '');
    assert.equal(sendQueueLimit(p.client), 16384);
    assert.equal(sendQueueLimit(p.server), 20000);
  } finally {
    await p.close();
  }
});

test('socket-queue: under TLS the TCP socket beneath is found', { skip }, async () => {
  const p = await pair(makeTestTls());
  try {
    assert.equal(shortenSendQueue(p.client, 16384), '');
    assert.equal(shortenSendQueue(p.server, 16384), '');
    assert.equal(sendQueueLimit(p.client), 16384);
    assert.equal(sendQueueLimit(p.server), 16384);
  } finally {
    await p.close();
  }
});

test('socket-queue: no socket under it, or a wrong call, is said, not thrown', { skip }, () => {
  assert.match(shortenSendQueue({}, 16384), /no TCP socket/);
  const addon = reduce.addon!;
  assert.throws(() => addon.tcpNotsentLowat(-1, 1), { name: 'RangeError', code: NativeErrorCode.RANGE });
  assert.throws(() => addon.tcpNotsentLowat(0, -5), { name: 'RangeError', code: NativeErrorCode.RANGE });
  // fd 0 is not a TCP socket: the kernel refuses, with its reason.
  assert.throws(() => addon.tcpNotsentLowat(0, 1), { name: 'RangeError', code: NativeErrorCode.RANGE });
  assert.throws(() => (addon.tcpNotsentLowat as (...a: unknown[]) => number)('3', 1), {
    name: 'TypeError',
    code: NativeErrorCode.ARG,
  });
});

/** Sends `data` from `from` and waits for `to` to echo it back: by then `from`'s bytes are acknowledged. */
async function roundTrip(from: WebSocket, to: WebSocket, data: Buffer): Promise<void> {
  to.once('message', (m: Buffer) => to.send(m));
  const back = once(from, 'message');
  from.send(data);
  await back;
}

for (const tls of [false, true])
  test(`socket-queue: what the kernel holds, unacknowledged${tls ? ' (TLS)' : ''}`, { skip }, async () => {
    const p = await pair(tls ? makeTestTls() : undefined);
    try {
      await roundTrip(p.client, p.server, Buffer.alloc(1000, 7));
      // The echo carried the acknowledgement of everything the client wrote (and the server's
      // own echo was acknowledged before the client's next write, if any): nothing is held.
      assert.equal(unackedBytes(p.client), 0);
      // A peer that stops reading: its window closes and the sender's kernel keeps the rest.
      (p.server as unknown as { _socket: { pause(): void } })._socket.pause();
      p.client.send(Buffer.alloc(64 << 20));
      assert.ok(unackedBytes(p.client) > 0);
    } finally {
      await p.close();
    }
  });

test('socket-queue: unacknowledged bytes of no socket are unknown; wrong calls are typed errors', { skip }, () => {
  assert.equal(unackedBytes({}), -1);
  const addon = reduce.addon!;
  assert.throws(() => addon.tcpUnacked(-1), { name: 'RangeError', code: NativeErrorCode.RANGE });
  // A file is not a socket.
  const fd = openSync(process.execPath, 'r');
  try {
    assert.throws(() => addon.tcpUnacked(fd), { name: 'RangeError', code: NativeErrorCode.RANGE });
  } finally {
    closeSync(fd);
  }
  assert.throws(() => (addon.tcpUnacked as (...a: unknown[]) => number)('3'), {
    name: 'TypeError',
    code: NativeErrorCode.ARG,
  });
});

for (const tls of [false, true])
  test(`socket-queue: a large frame is unsent only until the kernel takes it${tls ? ' (TLS)' : ''}`, async () => {
    const p = await pair(tls ? makeTestTls() : undefined);
    type Paused = { _socket: { pause(): void; resume(): void } };
    try {
      (p.client as unknown as Paused)._socket.pause();
      const n = 64 << 20;
      p.server.send(Buffer.alloc(n));
      // ws counts the frame whole (payload and a 10-byte header) until its last byte is in the
      // kernel; the kernel took a part of it at once.
      assert.equal(p.server.bufferedAmount, n + 10);
      const unsent = unsentBytes(p.server);
      assert.ok(unsent > 0 && unsent < n + 10, `${unsent}`);
      const got = once(p.client, 'message');
      (p.client as unknown as Paused)._socket.resume();
      await got;
      assert.equal(unsentBytes(p.server), 0);
    } finally {
      await p.close();
    }
  });
