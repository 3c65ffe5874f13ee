import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Heartbeat } from '../../coordinator/heartbeat.js';

test('an answered ping is followed by the next; an unanswered one with nothing in flight drops the worker', () => {
  const h = new Heartbeat<object>();
  const w = {};
  assert.deepEqual(h.tick(w, { sentBytes: 100, inFlightBytes: 0, receivedBytes: 0 }), { kind: 'ping' });
  h.answered(w);
  assert.deepEqual(h.tick(w, { sentBytes: 300, inFlightBytes: 0, receivedBytes: 0 }), { kind: 'ping' });
  assert.deepEqual(h.tick(w, { sentBytes: 300, inFlightBytes: 0, receivedBytes: 0 }), { kind: 'drop' });
});

test('a ping behind bytes that keep arriving waits, and says so once; stalled bytes drop the worker', () => {
  const h = new Heartbeat<object>();
  const w = {};
  // 2 MB queued (a welcome), the ping behind them.
  assert.deepEqual(h.tick(w, { sentBytes: 2_000_000, inFlightBytes: 2_000_000, receivedBytes: 0 }), { kind: 'ping' });
  assert.deepEqual(h.tick(w, { sentBytes: 2_000_000, inFlightBytes: 1_500_000, receivedBytes: 0 }), {
    kind: 'wait',
    ahead: 1_500_000,
    first: true,
  });
  // More frames queued after the ping do not count as ahead of it.
  assert.deepEqual(h.tick(w, { sentBytes: 3_000_000, inFlightBytes: 2_000_000, receivedBytes: 0 }), {
    kind: 'wait',
    ahead: 1_000_000,
    first: false,
  });
  // Nothing arrived since the last tick (a hung reader, a closed window): dropped.
  assert.deepEqual(h.tick(w, { sentBytes: 3_000_000, inFlightBytes: 2_000_000, receivedBytes: 0 }), { kind: 'drop' });
});

test('once the bytes before the ping have arrived, a missing pong drops the worker even while later bytes move', () => {
  const h = new Heartbeat<object>();
  const w = {};
  assert.deepEqual(h.tick(w, { sentBytes: 1_000, inFlightBytes: 1_000, receivedBytes: 0 }), { kind: 'ping' });
  // Everything sent before the ping has arrived; later frames are still moving.
  assert.deepEqual(h.tick(w, { sentBytes: 5_000, inFlightBytes: 3_000, receivedBytes: 0 }), { kind: 'drop' });
});

test('workers are judged apart', () => {
  const h = new Heartbeat<object>();
  const a = {};
  const b = {};
  assert.deepEqual(h.tick(a, { sentBytes: 0, inFlightBytes: 0, receivedBytes: 0 }), { kind: 'ping' });
  assert.deepEqual(h.tick(b, { sentBytes: 0, inFlightBytes: 0, receivedBytes: 0 }), { kind: 'ping' });
  h.answered(b);
  assert.deepEqual(h.tick(a, { sentBytes: 0, inFlightBytes: 0, receivedBytes: 0 }), { kind: 'drop' });
  assert.deepEqual(h.tick(b, { sentBytes: 0, inFlightBytes: 0, receivedBytes: 0 }), { kind: 'ping' });
});

test('a worker whose own bytes keep arriving is kept while its pong is behind them; silence drops it', () => {
  const h = new Heartbeat<object>();
  const w = {};
  assert.deepEqual(h.tick(w, { sentBytes: 500, inFlightBytes: 0, receivedBytes: 1_000 }), { kind: 'ping' });
  // The ping arrived long ago; the pong queues behind a gradient upload on a shared link.
  assert.deepEqual(h.tick(w, { sentBytes: 500, inFlightBytes: 0, receivedBytes: 700_000 }), {
    kind: 'wait',
    ahead: 0,
    first: true,
  });
  assert.deepEqual(h.tick(w, { sentBytes: 500, inFlightBytes: 0, receivedBytes: 2_240_000 }), {
    kind: 'wait',
    ahead: 0,
    first: false,
  });
  assert.deepEqual(h.tick(w, { sentBytes: 500, inFlightBytes: 0, receivedBytes: 2_240_000 }), { kind: 'drop' });
});
