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
import { PIECES } from '../../shared/slices.js';

const member = (id: number, over: Partial<Member> = {}): Member => ({
  id,
  zone: 'default',
  relay: `ws://10.0.0.${id}:9000`,
  shm: false,
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

test('at most MAX_RELAYS relays a zone; their pieces cover the network once', () => {
  const ms = Array.from({ length: MAX_RELAYS + 5 }, (_, i) => member(i + 1));
  const z = planFor(ms, 'auto', 'exact', STAR, next).zones[0]!;
  assert.equal(z.relays.length, MAX_RELAYS);
  assert.equal(z.members.length, MAX_RELAYS + 5);
  const b = boundsOf(z, 100_003);
  assert.equal(b.length, MAX_RELAYS * PIECES + 1);
  assert.equal(b[0], 0);
  assert.equal(b[MAX_RELAYS * PIECES], 100_003);
  for (let i = 0; i < MAX_RELAYS * PIECES; i++) assert.ok(b[i + 1]! > b[i]!);
});
