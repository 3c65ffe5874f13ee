import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Packr } from 'msgpackr';
import { CloseCode } from '../../shared/errors.js';
import { MANIFESTS, initParams } from '../../shared/model.js';
import { FramePool } from '../../coordinator/frame-pool.js';
import {
  PROTOCOL_VERSION,
  decodeCoordinatorMessage,
  decodePeerMessage,
  decodeRelayMessage,
  decodeWorkerMessage,
  encode,
  maxPayload,
  payloadFrame,
  weightsFrame,
  type AssignMessage,
  type HelloMessage,
  type ResultMessage,
  type WeightsMessage,
  type WelcomeMessage,
} from '../../shared/protocol.js';

const gen = initParams('gen', 1);
const dis = initParams('dis', 1);
const hello: HelloMessage = {
  t: 'hello',
  protocol: PROTOCOL_VERSION,
  manifest: 'a'.repeat(64),
  dataset: 'b'.repeat(64),
  backend: 'wasm',
  device: 'wasm simd',
};
const result: ResultMessage = {
  t: 'result',
  step: 3,
  phase: 'dis',
  start: 40,
  count: 3,
  grad: { dtype: 'f32', values: dis },
  lossSum: 1.5,
  dRealSum: 0.25,
  dFakeSum: 2,
  computeMs: 12.5,
};
const welcome: WelcomeMessage = {
  t: 'welcome',
  workerId: 4,
  config: { seed: 1, normalize: 'seed', batchSize: 128, gradDtype: 'exact', chunk: 16 },
  genVersion: 2,
  gen,
  disVersion: 3,
  dis,
};
/** The result as it is laid out on the wire (the gradient's bytes under "grad", its dtype beside). */
const wireResult = { ...result, dtype: 'f32', grad: dis };
const weights: WeightsMessage = { t: 'weights', net: 'gen', version: 9, data: gen };
const assign: AssignMessage = {
  t: 'assign',
  step: 5,
  phase: 'dis',
  start: 2,
  count: 3,
  indices: new Uint32Array([7, 8, 59999]),
  genVersion: 5,
  disVersion: 5,
  shifts: Int32Array.from([36, 36, 30, 30, 20, 20]),
  plan: 0,
};

test('every message type survives encode/decode', () => {
  assert.deepEqual(decodeWorkerMessage(encode(hello)), hello);
  assert.deepEqual(decodeWorkerMessage(encode(result)), result);
  assert.deepEqual(decodeCoordinatorMessage(encode(welcome)), welcome);
  assert.deepEqual(decodeCoordinatorMessage(encode(weights)), weights);
  assert.deepEqual(decodeCoordinatorMessage(encode(assign)), assign);
  const g: AssignMessage = { ...assign, phase: 'gen', indices: new Uint32Array(0) };
  assert.deepEqual(decodeCoordinatorMessage(encode(g)), g);
});

test('a subarray view of the permutation encodes only its own bytes', () => {
  const perm = new Uint32Array([1, 2, 3, 4, 5, 6]);
  const a = { ...assign, count: 2, indices: perm.subarray(3, 5) };
  assert.deepEqual(
    [
      ...(decodeCoordinatorMessage(encode(a)).t === 'assign'
        ? (decodeCoordinatorMessage(encode(a)) as AssignMessage).indices
        : []),
    ],
    [4, 5],
  );
});

test('frames carry little more than the float payload', () => {
  const overhead = encode(weights).length - MANIFESTS.gen.size * 4;
  assert.ok(overhead < 64, `weights frame overhead ${overhead} bytes`);
  assert.ok(encode(welcome).length < maxPayload());
});

const packr = new Packr({ useRecords: false });
function badFrame(frame: Uint8Array, decode: (f: Uint8Array) => unknown, pattern: RegExp): void {
  assert.throws(
    () => decode(frame),
    (e: Error & { code?: string; closeCode?: number }) =>
      e.code === 'ERR_BAD_FRAME' && e.closeCode === CloseCode.BAD_FRAME && pattern.test(e.message),
  );
}

test('malformed frames are refused with BAD_FRAME and a reason', () => {
  const w = decodeWorkerMessage;
  badFrame(encode(hello).subarray(0, 20), w, /not valid msgpack/);
  badFrame(Buffer.from([0xc1]), w, /not valid msgpack|not a msgpack map|unknown message type/);
  badFrame(packr.pack([1, 2]), w, /not a msgpack map/);
  badFrame(packr.pack('hello'), w, /not a msgpack map/);
  badFrame(packr.pack({ t: 'welcome' }), w, /unknown message type "welcome" from a worker/);
  badFrame(packr.pack({ ...hello, protocol: 'one' }), w, /"protocol" must be an integer/);
  badFrame(packr.pack({ ...hello, manifest: undefined }), w, /"manifest" must be a string/);
  badFrame(packr.pack({ ...hello, backend: 'x'.repeat(1000) }), w, /"backend" must be a string of at most 64/);
  badFrame(packr.pack({ ...wireResult, grad: dis.subarray(1) }), w, /"grad" has 1068032 bytes, expected 1068036/);
  badFrame(packr.pack({ ...wireResult, grad: [1, 2, 3] }), w, /"grad" must be binary/);
  badFrame(packr.pack({ ...wireResult, phase: 'both' }), w, /"phase" must be one of gen, dis/);
  badFrame(packr.pack({ ...wireResult, step: -1 }), w, /"step" must be an integer/);
  badFrame(packr.pack({ ...wireResult, count: 0 }), w, /"count" must be an integer in \[1/);
  badFrame(packr.pack({ ...wireResult, lossSum: NaN }), w, /"lossSum" must be a finite number/);
  badFrame(
    packr.pack({ ...wireResult, lossSum: undefined, ['__proto__']: { lossSum: 1 } }),
    w,
    /"lossSum" must be a finite number/,
  );
  const c = decodeCoordinatorMessage;
  badFrame(packr.pack({ ...assign, indices: new Uint32Array(2) }), c, /"indices" has 8 bytes, expected 12/);
  badFrame(
    packr.pack({ ...welcome, config: { seed: 1, normalize: 'zscore', batchSize: 1 } }),
    c,
    /"normalize" must be one of/,
  );
  badFrame(packr.pack({ ...weights, net: 'disc' }), c, /"net" must be one of/);
  badFrame(packr.pack({ t: 'hello' }), c, /unknown message type "hello" from the coordinator/);
});

test('weightsFrame gives the same bytes as encode once its payload is filled, in a reused buffer too', () => {
  const data = initParams('dis', 5);
  const want = encode({ t: 'weights', net: 'dis', version: 300, data });
  const pool = new FramePool();
  const a = weightsFrame('dis', 300, data.length, pool.alloc);
  a.data.set(data);
  assert.deepEqual(a.frame, want);
  pool.release(a.frame);
  const b = weightsFrame('dis', 301, data.length, pool.alloc);
  assert.equal(b.frame.buffer, a.frame.buffer, 'the released buffer is reused');
  assert.equal(pool.allocated, 1);
  b.data.set(data);
  const back = decodeCoordinatorMessage(b.frame);
  assert.equal(back.t, 'weights');
  assert.equal(back.t === 'weights' && back.version, 301);
  assert.deepEqual(back.t === 'weights' && [...back.data.subarray(0, 9)], [...data.subarray(0, 9)]);
  // A frame still being written is never handed out again.
  const c = weightsFrame('dis', 302, data.length, pool.alloc);
  assert.notEqual(c.frame.buffer, b.frame.buffer);
  assert.throws(() => payloadFrame({ t: 'weights' }, 'data', 8, () => Buffer.alloc(3)), /whole buffer of the length/);
});

test('a payload starts 8-byte aligned whatever the length of the head before it', () => {
  const data = Float32Array.from({ length: 24 }, (_, i) => i / 3);
  const offsets = new Set<number>();
  for (const version of [0, 127, 128, 255, 256, 65_535, 65_536, 2 ** 32, 2 ** 40]) {
    const frame = encode({ t: 'weights-slice', plan: 1, net: 'dis', version, start: 16, data });
    const at = frame.length - data.byteLength;
    assert.equal(at % 8, 0, `version ${version}: payload at ${at}`);
    offsets.add(at);
    const back = decodeRelayMessage(frame);
    assert.deepEqual([back.version, [...back.data!]], [version, [...data]]);
  }
  assert.ok(offsets.size > 1, 'heads of several lengths');
});

test('contributions and slice totals carry each value in the fewest bytes that hold every one of them', () => {
  const n = 1000;
  for (const [lanes, big] of [
    [1, 127],
    [2, -129],
    [2, 32767],
    [3, -32769],
    [3, 2 ** 23 - 1],
    [4, 2 ** 23],
    [4, -(2 ** 31)],
  ] as const) {
    const low = Int32Array.from({ length: n }, (_, i) => ((i * 37) % 200) - 100);
    low[n - 1] = big;
    const total = { low, exIndex: Uint32Array.from([3, 999]), exHigh: Int32Array.from([-1, 2]) };
    const contrib = {
      t: 'contrib',
      step: 7,
      phase: 'gen',
      start: 0,
      count: 16,
      plan: 3,
      worker: 2,
      slice: 1,
      piece: 0,
      total,
    } as const;
    const frame = encode(contrib);
    const head = encode({
      ...contrib,
      total: { low: new Int32Array(0), exIndex: new Uint32Array(0), exHigh: new Int32Array(0) },
    });
    // The payload: 8 bytes per exception, then `lanes` per value (the head differs by a few bytes of counts).
    assert.ok(Math.abs(frame.length - head.length - (16 + lanes * n)) <= 8, `${lanes}: ${frame.length - head.length}`);
    const back = decodePeerMessage(frame);
    assert.equal(back.t, 'contrib');
    if (back.t !== 'contrib') return;
    assert.deepEqual([...back.total.low], [...low]);
    assert.deepEqual([...back.total.exIndex], [3, 999]);
    assert.deepEqual([...back.total.exHigh], [-1, 2]);
    const slice = {
      t: 'slice-total',
      plan: 3,
      step: 7,
      phase: 'gen',
      slice: 1,
      piece: 0,
      parts: Int32Array.from([0, 16, 2]),
      start: 96,
      total,
    } as const;
    const s = decodeWorkerMessage(encode(slice));
    assert.equal(s.t, 'slice-total');
    if (s.t === 'slice-total') assert.deepEqual([...s.total.low], [...low]);
  }
});

test('a narrowed total with a wrong lane width or byte count is refused', () => {
  const contrib = { t: 'contrib', step: 7, phase: 'gen', start: 0, count: 16, plan: 3, worker: 2, slice: 1, piece: 0 };
  const p = decodePeerMessage;
  badFrame(packr.pack({ ...contrib, length: 4, exceptions: 0, lanes: 5, grad: new Uint8Array(20) }), p, /"lanes"/);
  badFrame(packr.pack({ ...contrib, length: 4, exceptions: 0, lanes: 0, grad: new Uint8Array(0) }), p, /"lanes"/);
  badFrame(
    packr.pack({ ...contrib, length: 4, exceptions: 1, lanes: 3, grad: new Uint8Array(19) }),
    p,
    /"grad" has 19 bytes, expected 20/,
  );
  badFrame(
    packr.pack({
      ...contrib,
      length: 4,
      exceptions: 2,
      lanes: 1,
      grad: Uint8Array.from([3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]),
    }),
    p,
    /exception indices must increase strictly/,
  );
});

test('a weights piece as steps: narrow lanes with the outliers beside them, the same steps back', () => {
  const steps = Int32Array.from({ length: 5000 }, (_, i) => ((i * 7919) % 200000) - 100000);
  steps[17] = 2 ** 30;
  steps[4000] = -(2 ** 31);
  const m = { t: 'weights-slice', plan: 2, net: 'dis', version: 4, start: 100, steps } as const;
  const frame = encode(m);
  const whole = encode({
    t: 'weights-slice',
    plan: 2,
    net: 'dis',
    version: 4,
    start: 100,
    data: new Float32Array(5000),
  });
  // 3-byte lanes and two exceptions (8 bytes each) instead of 4 bytes a weight.
  assert.ok(frame.length - (whole.length - 4 * 5000) <= 3 * 5000 + 16 + 40, `${frame.length}`);
  const back = decodeRelayMessage(frame);
  assert.deepEqual(back.steps, steps);
  assert.equal(back.data, undefined);
  assert.equal(back.start, 100);
  const p = decodeRelayMessage;
  const head = { t: 'weights-slice', plan: 2, net: 'dis', version: 4, start: 100 };
  badFrame(packr.pack({ ...head, length: 4, lanes: 3, exceptions: 0, steps: new Uint8Array(11) }), p, /"steps" has 11/);
  badFrame(packr.pack({ ...head, length: 4, lanes: 7, exceptions: 0, steps: new Uint8Array(12) }), p, /"lanes"/);
  badFrame(
    packr.pack({
      ...head,
      start: MANIFESTS.dis.size - 2,
      length: 4,
      lanes: 1,
      exceptions: 0,
      steps: new Uint8Array(4),
    }),
    p,
    /"length"/,
  );
  const unordered = new Uint8Array(16 + 4);
  new DataView(unordered.buffer).setUint32(0, 3, true);
  new DataView(unordered.buffer).setUint32(4, 1, true);
  badFrame(packr.pack({ ...head, length: 4, lanes: 1, exceptions: 2, steps: unordered }), p, /exception index/);
});
