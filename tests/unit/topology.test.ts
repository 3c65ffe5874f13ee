import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AUTO_MIN_WORKERS,
  boundsOf,
  feedOf,
  type Member,
  planFor,
  STAR,
  starReason,
  zoneOf,
} from '../../coordinator/topology.js';
import { MAX_RELAYS } from '../../shared/protocol.js';
import { MAX_PIECES, MIN_PIECE_BYTES, MIN_PIECES, piecesFor } from '../../shared/slices.js';

const member = (id: number, over: Partial<Member> = {}): Member => ({
  id,
  zone: 'default',
  relay: `ws://10.0.0.${id}:9000`,
  shm: false,
  local: false,
  ...over,
});
let ids = 0;
const next = () => ++ids;

test('star when asked, or when sums are lossy (their value would depend on the grouping)', () => {
  const ms = [1, 2, 3, 4, 5].map((i) => member(i));
  assert.equal(planFor(ms, 'star', 'exact', STAR, next), STAR);
  assert.equal(planFor(ms, 'auto', 'f32', STAR, next), STAR);
  assert.equal(planFor(ms, 'slices', 'bf16', STAR, next), STAR);
  assert.match(starReason('auto', 'f32'), /exact/);
  assert.equal(starReason('auto', 'exact'), '');
});

test('auto: slices from AUTO_MIN_WORKERS workers of a zone up; slices: from two relays', () => {
  const few = Array.from({ length: AUTO_MIN_WORKERS - 1 }, (_, i) => member(i + 1));
  assert.equal(planFor(few, 'auto', 'exact', STAR, next), STAR);
  const p = planFor(few, 'slices', 'exact', STAR, next);
  assert.equal(p.zones.length, 1);
  assert.deepEqual(
    p.zones[0]!.relays.map((r) => r.worker),
    few.map((m) => m.id),
  );
  const enough = [...few, member(AUTO_MIN_WORKERS)];
  assert.equal(planFor(enough, 'auto', 'exact', STAR, next).zones[0]!.members.length, AUTO_MIN_WORKERS);
  // One relay alone is no better than the star.
  assert.equal(planFor([member(1), member(2, { relay: undefined })], 'slices', 'exact', STAR, next), STAR);
});

test('leaves send to the relays; shared-memory workers stay out; zones plan apart, in name order', () => {
  const ms = [
    member(1, { zone: 'b' }),
    member(2, { zone: 'b' }),
    member(3, { zone: 'b', relay: undefined }),
    member(4, { zone: 'a' }),
    member(5, { zone: 'a' }),
    member(6, { zone: 'a', shm: true }),
    member(7, { zone: 'c' }),
  ];
  const p = planFor(ms, 'slices', 'exact', STAR, next);
  assert.deepEqual(
    p.zones.map((z) => [z.zone, z.relays.map((r) => r.worker), z.members]),
    [
      ['a', [4, 5], [4, 5]],
      ['b', [1, 2], [1, 2, 3]],
    ],
  );
  assert.equal(zoneOf(p, 3)?.zone, 'b');
  assert.equal(zoneOf(p, 6), undefined);
  assert.equal(zoneOf(p, 7), undefined, 'a zone of one worker sends straight to the coordinator');
  assert.equal(feedOf(p, 3), '1,2');
  assert.equal(feedOf(p, 7), '');
});

test('the same members keep the plan (and its id); a change or `fresh` makes a new id', () => {
  const ms = [1, 2, 3, 4].map((i) => member(i));
  const p = planFor(ms, 'auto', 'exact', STAR, next);
  assert.equal(planFor(ms, 'auto', 'exact', p, next), p);
  const again = planFor(ms, 'auto', 'exact', p, next, true);
  assert.notEqual(again.id, p.id);
  assert.deepEqual(again.zones, p.zones);
  const fewer = planFor(ms.slice(1), 'slices', 'exact', p, next);
  assert.notEqual(fewer.id, p.id);
  assert.ok(fewer.id > again.id);
});

test('auto leaves workers on the coordinator host out (they share its CPU); slices takes them', () => {
  const ms = [1, 2, 3, 4, 5].map((i) => member(i, { local: i <= 2 }));
  assert.deepEqual(planFor(ms, 'auto', 'exact', STAR, next), STAR, 'three remote workers: fewer than AUTO_MIN_WORKERS');
  assert.equal(planFor(ms, 'slices', 'exact', STAR, next).zones[0]!.members.length, 5);
});

test('at most MAX_RELAYS relays a zone; their pieces cover the network once', () => {
  const ms = Array.from({ length: MAX_RELAYS + 5 }, (_, i) => member(i + 1));
  const z = planFor(ms, 'auto', 'exact', STAR, next).zones[0]!;
  assert.equal(z.relays.length, MAX_RELAYS);
  assert.equal(z.members.length, MAX_RELAYS + 5);
  const n = 1_000_003;
  const pieces = piecesFor(n, MAX_RELAYS);
  const b = boundsOf(z, n);
  assert.equal(b.length, MAX_RELAYS * pieces + 1);
  assert.equal(b[0], 0);
  assert.equal(b[MAX_RELAYS * pieces], n);
  for (let i = 0; i < MAX_RELAYS * pieces; i++) assert.ok(b[i + 1]! > b[i]!);
});

test('pieces: MIN_PIECE_BYTES each where a slice still has MIN_PIECES, at most MAX_PIECES, at least one', () => {
  assert.equal(piecesFor(267_009, 4), MAX_PIECES);
  assert.equal(piecesFor(267_009, 8), MAX_PIECES);
  assert.equal(piecesFor(267_009, 16), Math.floor((267_009 * 4) / 16 / MIN_PIECE_BYTES));
  assert.equal(piecesFor(267_009, 16), 4);
  // Fewer than MIN_PIECE_BYTES a piece rather than fewer than MIN_PIECES a slice.
  assert.equal(piecesFor(267_009, 32), MIN_PIECES);
  assert.equal(piecesFor(267_009, 256), MIN_PIECES);
  // ...while a piece keeps 64 elements.
  assert.equal(piecesFor(64 * 2 * 10, 10), 2);
  assert.equal(piecesFor(1000, 200), 1);
});
