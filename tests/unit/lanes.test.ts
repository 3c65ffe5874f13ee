import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  laneBytes,
  lanesWithExceptions,
  packLanes,
  packWithExceptions,
  unpackLanes,
  unpackWithExceptions,
} from '../../shared/lanes.js';

test('lanes: the fewest bytes that hold every word, packed and sign-extended back exactly', () => {
  const cases: Array<[number[], number]> = [
    [[], 1],
    [[0, 127, -128], 1],
    [[128], 2],
    [[-129], 2],
    [[32767, -32768], 2],
    [[32768], 3],
    [[-32769], 3],
    [[2 ** 23 - 1, -(2 ** 23)], 3],
    [[2 ** 23], 4],
    [[-(2 ** 23) - 1], 4],
    [[2 ** 31 - 1, -(2 ** 31)], 4],
  ];
  for (const [words, want] of cases) assert.equal(laneBytes(Int32Array.from(words)), want, `${words}`);
  for (const bytes of [1, 2, 3, 4]) {
    const lim = 2 ** (8 * bytes - 1);
    const low = Int32Array.from({ length: 4099 }, (_, i) => ((i * 2654435761) % (2 * lim)) - lim);
    low[0] = -lim;
    low[1] = lim - 1;
    low[2] = -1;
    const packed = new Uint8Array(bytes * low.length);
    packLanes(low, bytes, packed);
    assert.deepEqual(unpackLanes(packed, bytes, low.length), low);
  }
  assert.throws(() => packLanes(new Int32Array(3), 3, new Uint8Array(8)), RangeError);
  assert.throws(() => unpackLanes(new Uint8Array(8), 3, 3), RangeError);
});

test('lanes with exceptions: the width that makes lanes plus exceptions fewest, and the same values back', () => {
  // 1000 small values and 3 large: 2-byte lanes and 3 exceptions (2·1003 + 24) beat 4-byte lanes.
  const v = Int32Array.from({ length: 1003 }, (_, i) => ((i * 7919) % 60000) - 30000);
  v[5] = 2 ** 30;
  v[500] = -(2 ** 31);
  v[1002] = 40000;
  assert.deepEqual(lanesWithExceptions(v), { lanes: 2, exceptions: 3 });
  // Mostly wide: no exceptions, 4 bytes.
  assert.deepEqual(lanesWithExceptions(Int32Array.from([2 ** 30, -(2 ** 29), 1])), { lanes: 4, exceptions: 0 });
  assert.deepEqual(lanesWithExceptions(new Int32Array(0)), { lanes: 1, exceptions: 0 });
  for (const values of [v, Int32Array.from({ length: 77 }, (_, i) => (i * 2654435761) | 0), new Int32Array(9)]) {
    const { lanes, exceptions } = lanesWithExceptions(values);
    const buf = new Uint8Array(8 * exceptions + lanes * values.length);
    packWithExceptions(values, lanes, exceptions, buf);
    assert.deepEqual(unpackWithExceptions(buf, lanes, exceptions, values.length), values);
  }
  // Exceptions out of order or out of range are refused.
  const bad = new Uint8Array(8 + 2);
  new DataView(bad.buffer).setUint32(0, 7, true);
  assert.throws(() => unpackWithExceptions(bad, 1, 1, 2), RangeError);
  assert.throws(() => packWithExceptions(v, 2, 2, new Uint8Array(16 + 2 * 1003)), RangeError);
});

test('lanes: the same bytes and words whether or not the bytes are aligned for a typed-array view', () => {
  for (const bytes of [1, 2, 3, 4]) {
    const lim = 2 ** (8 * bytes - 1);
    const low = Int32Array.from({ length: 1001 }, (_, i) => ((i * 40503) % (2 * lim)) - lim);
    const aligned = new Uint8Array(bytes * low.length);
    packLanes(low, bytes, aligned);
    // Little-endian on the wire, whatever the host: the first word's lowest byte first.
    assert.equal(aligned[0], low[0]! & 0xff);
    const odd = new Uint8Array(bytes * low.length + 1).subarray(1);
    packLanes(low, bytes, odd);
    assert.deepEqual(odd, aligned, `${bytes}-byte lanes packed at an odd offset`);
    assert.deepEqual(unpackLanes(odd, bytes, low.length), low, `${bytes}-byte lanes read at an odd offset`);
    assert.deepEqual(unpackLanes(aligned, bytes, low.length), low);
  }
});
