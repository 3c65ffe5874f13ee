/**
 * Shared memory's safety rules (shared/shm.ts, coordinator/shm-hub.ts): segments are private to the
 * coordinator's user, only a worker that echoes the nonces of the very segments offered gets a
 * link, a torn or stale buffer is never used, a slot's claims are checked like a frame's, and
 * segments that dead runs left behind are removed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { pino } from 'pino';
import { ShmHub } from '../../coordinator/shm-hub.js';
import type { WorkerSession } from '../../coordinator/session.js';
import { CloseCode, type GanfleetError } from '../../shared/errors.js';
import { MANIFESTS } from '../../shared/model.js';
import { loadReduceAddon } from '../../shared/reduce-addon.js';
import { removeStaleSegments, ResultSlot, Segment, shmUnavailable, WeightsSegment } from '../../shared/shm.js';
import { ShmLink } from '../../worker/shm-link.js';

const log = pino({ level: 'silent' });
const skip = shmUnavailable() || false;
const sessions = new Map<number, WorkerSession>();
const session = (id: number): WorkerSession => {
  if (!sessions.has(id)) sessions.set(id, { id, log } as unknown as WorkerSession);
  return sessions.get(id)!;
};
const path = (name: string) => `/dev/shm${name}`;

test('segments are made 0600 under unguessable names; only ganfleet segments of this user open', { skip }, () => {
  const w = Segment.create('weights');
  try {
    assert.match(w.name, /^\/ganfleet-\d+-w-[0-9a-f]{32}$/);
    assert.equal(statSync(path(w.name)).mode & 0o777, 0o600);
    assert.equal(Segment.open('weights', w.name).nonce, w.nonce);
    assert.throws(() => Segment.open('weights', '/etc-passwd'), /not a ganfleet segment name/);
    // The right name for the wrong kind: a slot's size is not a weights segment's.
    assert.throws(
      () => Segment.open('slot', w.name),
      (e: Error & { code?: string }) => e.code === 'ERR_NATIVE_RANGE',
    );
  } finally {
    w.remove();
  }
  assert.throws(() => statSync(path(w.name)), /ENOENT/);
});

test('a weights buffer being written, holding another version, or changed is never read', { skip }, () => {
  const seg = Segment.create('weights');
  try {
    const w = new WeightsSegment(seg);
    const reader = new WeightsSegment(Segment.open('weights', seg.name));
    const into = new Float32Array(MANIFESTS.dis.size);
    w.begin('dis', 3);
    w.data('dis', 3).fill(0.5);
    assert.equal(reader.read('dis', 3, into), 'being written');
    w.end('dis', 3);
    assert.equal(reader.read('dis', 3, into), '');
    assert.equal(into[7], 0.5);
    // Version 5 shares version 3's buffer: a reader still after 3 sees that it is gone.
    w.begin('dis', 5);
    w.end('dis', 5);
    assert.equal(reader.read('dis', 3, into), 'holds version 5, not 3');
  } finally {
    seg.remove();
  }
});

test('only a worker echoing both nonces gets a link; a slot is read only as announced and complete', { skip }, () => {
  const hub = ShmHub.start(log)!;
  try {
    const offer = hub.offer(session(1))!;
    const { link, reply } = ShmLink.open(offer);
    assert.ok(link && reply.ok);
    // Echoing other nonces (a segment of the same name elsewhere, or a forged answer): refused.
    assert.throws(
      () => hub.answer(session(1), { ...reply, slotNonce: '00'.repeat(16) }),
      (e: GanfleetError) => e.code === 'ERR_SHM_PROOF' && e.closeCode === CloseCode.SHM_REFUSED,
    );
    assert.equal(hub.ready(session(1)), false);

    const offer2 = hub.offer(session(2))!;
    const linked = ShmLink.open(offer2);
    hub.answer(session(2), linked.reply);
    assert.equal(hub.ready(session(2)), true);
    const id = { step: 4, phase: 'gen' as const, start: 16, count: 16 };
    const low = Int32Array.from({ length: MANIFESTS.gen.size }, (_, i) => i - 7);
    const total = { low, exIndex: Uint32Array.of(3), exHigh: Int32Array.of(-2) };
    const stats = { lossSum: 5, dRealSum: 0, dFakeSum: 9 };
    const seq = linked.link!.writeResult(id, { dtype: 'exact', total }, stats);
    const r = hub.result(session(2), { t: 'shm-result', ...id, seq, computeMs: 1 });
    assert.ok(r.grad.dtype === 'exact');
    assert.deepEqual([...r.grad.total.low.subarray(0, 5)], [-7, -6, -5, -4, -3]);
    assert.deepEqual([...r.grad.total.exHigh], [-2]);
    assert.equal(r.lossSum, 5);
    // Another seq or shard than the slot holds: refused, never consumed.
    for (const wrong of [{ seq: seq + 2 }, { start: 0 }, { phase: 'dis' as const }])
      assert.throws(
        () => hub.result(session(2), { t: 'shm-result', ...id, seq, computeMs: 1, ...wrong }),
        (e: GanfleetError) => e.code === 'ERR_BAD_SLOT' && e.closeCode === CloseCode.BAD_RESULT,
      );
    // A write begun and not finished (a worker that died half-way): the slot is being written.
    new ResultSlot(Segment.open('slot', offer2.slot)).begin();
    assert.throws(() => hub.result(session(2), { t: 'shm-result', ...id, seq, computeMs: 1 }), /being written/);
    // A worker that cannot map its segments (another host, its own /dev/shm) declines: no link.
    const offer3 = hub.offer(session(3))!;
    hub.answer(session(3), { t: 'shm', ok: false, reason: 'cannot map' });
    assert.equal(hub.ready(session(3)), false);
    assert.throws(() => statSync(path(offer3.slot)), /ENOENT/, 'a declined offer leaves no segment');
    hub.drop(session(2));
    assert.throws(() => statSync(path(offer2.slot)), /ENOENT/, 'a departed worker loses its slot');
  } finally {
    hub.close();
  }
});

test('segments of dead runs are removed at start; those of live ones are left', { skip }, () => {
  const addon = loadReduceAddon().addon!;
  // A pid that cannot be running (above Linux's limit), and this process's own.
  const dead = `/ganfleet-4194999-s-${'ab'.repeat(16)}`;
  const live = `/ganfleet-${process.pid}-s-${'cd'.repeat(16)}`;
  addon.shmCreate(dead, 64);
  addon.shmCreate(live, 64);
  try {
    const removed = removeStaleSegments();
    assert.ok(removed.includes(dead.slice(1)));
    assert.ok(!removed.includes(live.slice(1)));
    assert.throws(() => statSync(path(dead)), /ENOENT/);
    assert.equal(statSync(path(live)).size, 64);
  } finally {
    addon.shmUnlink(live);
    addon.shmUnlink(dead);
  }
});
