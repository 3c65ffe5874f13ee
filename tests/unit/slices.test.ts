import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rotateAfter, sendOrder } from '../../shared/slices.js';

test('sendOrder: piece by piece, each worker from the relay after its own, every pair once', () => {
  assert.deepEqual(
    sendOrder(3, 2, 1).map(({ slice, piece }) => `${slice}.${piece}`),
    ['2.0', '0.0', '1.0', '2.1', '0.1', '1.1'],
  );
  // At each moment the relays' places send to distinct relays (a permutation per round).
  const k = 7;
  const orders = Array.from({ length: k }, (_, place) => sendOrder(k, 3, place));
  for (let at = 0; at < k * 3; at++) assert.equal(new Set(orders.map((o) => o[at]!.slice)).size, k);
  for (const o of orders) assert.equal(new Set(o.map(({ slice, piece }) => `${slice}.${piece}`)).size, k * 3);
  // A leaf's id may exceed the relay count; a negative place is still in range.
  assert.deepEqual(
    sendOrder(4, 1, 9).map((x) => x.slice),
    [2, 3, 0, 1],
  );
  assert.deepEqual(
    sendOrder(4, 1, -1).map((x) => x.slice),
    [0, 1, 2, 3],
  );
});

test('rotateAfter: ascending from the first id above self, round', () => {
  assert.deepEqual(rotateAfter([5, 1, 9, 3], 4), [5, 9, 1, 3]);
  assert.deepEqual(rotateAfter([5, 1, 9, 3], 9), [1, 3, 5, 9]);
  assert.deepEqual(rotateAfter([5, 1, 9, 3], 0), [1, 3, 5, 9]);
  assert.deepEqual(rotateAfter([], 2), []);
});
