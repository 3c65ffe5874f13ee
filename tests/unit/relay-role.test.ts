import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { MANIFESTS } from '../../shared/model.js';
import { decodeRelayMessage, encode, type WeightsSliceMessage } from '../../shared/protocol.js';
import { weightSteps } from '../../shared/weight-steps.js';
import { RelayRole } from '../../worker/relay-role.js';

const n = MANIFESTS.gen.size;

function role() {
  const got: Array<{ version: number; data: Float32Array }> = [];
  const outOfStep: string[] = [];
  const r = new RelayRole({
    log: pino({ level: 'silent' }),
    coordinator: () => undefined,
    weights: (_net, version, data) => got.push({ version, data: data.slice() }),
    outOfStep: (why) => outOfStep.push(why),
  });
  return { r, got, outOfStep };
}

/** Version `version` of gen as two pieces of steps from `prev`, as frames decoded on arrival. */
function pieces(prev: Float32Array, next: Float32Array, version: number): WeightsSliceMessage[] {
  const cut = 1024;
  return [0, cut].map((start) => {
    const end = start === 0 ? cut : n;
    const steps = weightSteps(prev.subarray(start, end), next.subarray(start, end));
    return decodeRelayMessage(encode({ t: 'weights-slice', plan: 5, net: 'gen', version, start, steps }));
  });
}

test('relay role: weights as steps from the version held come out bit for bit', () => {
  const { r, got, outOfStep } = role();
  const v1 = Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 0.05);
  const v2 = v1.map((w, i) => w + (i % 3) * 1e-4);
  const v3 = v2.map((w) => w * 0.999);
  r.whole('gen', 1, v1);
  for (const m of pieces(v1, v2, 2)) r.relayWeights(encode(m), m);
  // Then from the assembled version on.
  for (const m of pieces(v2, v3, 3)) r.relayWeights(encode(m), m);
  assert.deepEqual(outOfStep, []);
  assert.deepEqual(
    got.map((g) => g.version),
    [2, 3],
  );
  assert.deepEqual(new Int32Array(got[0]!.data.buffer), new Int32Array(v2.slice().buffer));
  assert.deepEqual(new Int32Array(got[1]!.data.buffer), new Int32Array(v3.slice().buffer));
});

test('relay role: steps from a version this worker does not hold are refused, never applied', () => {
  const { r, got, outOfStep } = role();
  const v1 = new Float32Array(n).fill(0.25);
  const v3 = new Float32Array(n).fill(0.5);
  r.whole('gen', 1, v1);
  const [first] = pieces(v1, v3, 3);
  r.relayWeights(encode(first!), first!);
  assert.equal(got.length, 0);
  assert.equal(outOfStep.length, 1);
  // No weights held at all (shared memory, a new run): refused too.
  const fresh = role();
  fresh.r.relayWeights(encode(first!), first!);
  assert.equal(fresh.outOfStep.length, 1);
  assert.equal(fresh.got.length, 0);
});

test('relay role: the array of two versions back is filled again, every version still bit for bit', () => {
  const seen: Float32Array[] = [];
  const got: Int32Array[] = [];
  const r = new RelayRole({
    log: pino({ level: 'silent' }),
    coordinator: () => undefined,
    weights: (_net, _version, data) => {
      seen.push(data);
      got.push(new Int32Array(data.slice().buffer));
    },
    outOfStep: (why) => assert.fail(why),
  });
  const versions = [Float32Array.from({ length: n }, (_, i) => Math.cos(i) * 0.05)];
  for (let v = 1; v < 6; v++) versions.push(versions[v - 1]!.map((w, i) => w + ((i + v) % 5) * 1e-4 - 2e-4));
  r.whole('gen', 1, versions[0]);
  for (let v = 1; v < 6; v++)
    for (const m of pieces(versions[v - 1]!, versions[v]!, v + 1)) r.relayWeights(encode(m), m);
  assert.deepEqual(
    got,
    versions.slice(1).map((w) => new Int32Array(w.slice().buffer)),
  );
  // Two arrays in turn after the first (the welcome's weights are a frame's, never reused).
  assert.notEqual(seen[1], seen[0]);
  assert.equal(seen[2], seen[0]);
  assert.equal(seen[3], seen[1]);
  assert.equal(seen[4], seen[2]);
  assert.ok(!seen.includes(versions[0]!));
});
