/**
 * The exact reduction's worker side: a shard's integer total must be the sum of its chunks'
 * quanta whatever shard the chunks sit in, wherever in it, and however many threads compute them —
 * so that any split of a batch adds up to the same bits. Checked for the C engine and for the tfjs
 * path on the backends CI runs, against each other's definitions and the float64 reference.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type FixedWire, FixedSum, fixedKernels, initialShifts, layoutOf } from '../../shared/fixed.js';
import { IMAGE_SIZE, initParams, MANIFESTS, MODEL, type NetName, Z_DIM } from '../../shared/model.js';
import { Purpose, noiseBlock, uniforms } from '../../shared/random.js';
import { selectBackend } from '../../worker/backend.js';
import { type ExactEngine, type ExactOutcome, ExactStep, rowsIndependent } from '../../worker/exact-step.js';
import { NativeExactStep } from '../../worker/kernels/native-exact.js';
import { TrainStep } from '../../worker/train-step.js';
import { referenceDiscriminator, referenceGenerator, relativeError } from '../support/reference-gan.js';

const B = 112; // 7 chunks of 16
const CHUNK = 16;
const real = new Float32Array(B * IMAGE_SIZE);
uniforms(3, Purpose.INIT, 901, -1, 1, real);
const zD = noiseBlock(3, Purpose.NOISE_DIS, 0, 0, B, Z_DIM);
const zG = noiseBlock(3, Purpose.NOISE_GEN, 0, 0, B, Z_DIM);
const weights = { gen: initParams('gen', 8), dis: initParams('dis', 8) };
const shifts = { gen: initialShifts(MANIFESTS.gen), dis: initialShifts(MANIFESTS.dis) };

/** Ways to cut the batch into shards of whole chunks (sample offsets where a shard starts). */
const SPLITS = [[0], [0, 48], [0, 16, 64, 96], [0, 32, 48, 80]];

function shard(e: ExactEngine, net: NetName, s: number, n: number): ExactOutcome {
  return net === 'dis'
    ? e.discriminator(
        real.subarray(s * IMAGE_SIZE, (s + n) * IMAGE_SIZE),
        zD.subarray(s * Z_DIM, (s + n) * Z_DIM),
        n,
        shifts.dis,
      )
    : e.generator(zG.subarray(s * Z_DIM, (s + n) * Z_DIM), n, shifts.gen);
}

/** The batch's total as float64 bits when the batch is cut at `starts`, the totals added last to first. */
function total(e: ExactEngine, net: NetName, starts: number[]): { bits: Buffer; sum: Float64Array; loss: number } {
  const totals: FixedWire[] = [];
  let loss = 0;
  starts.forEach((s, i) => {
    const r = shard(e, net, s, (starts[i + 1] ?? B) - s);
    assert.ok(r.ok, `${net} shard at ${s}: ${JSON.stringify(r)}`);
    totals.push(r.total);
    loss += r.lossSum;
  });
  const sum = new FixedSum(MANIFESTS[net].size);
  fixedKernels.addWires(sum, totals.reverse(), true);
  const out = new Float64Array(sum.length);
  fixedKernels.toFloat64(sum, layoutOf(MANIFESTS[net], shifts[net]), out);
  return { bits: Buffer.from(out.buffer), sum: out, loss };
}

function assertSplitIndependent(e: ExactEngine, what: string): Record<NetName, Float64Array> {
  const out = {} as Record<NetName, Float64Array>;
  for (const net of ['dis', 'gen'] as const) {
    const whole = total(e, net, SPLITS[0]!);
    for (const split of SPLITS.slice(1)) {
      const t = total(e, net, split);
      assert.ok(t.bits.equals(whole.bits), `${what}, ${net}: split at ${split} differs from the whole batch`);
      assert.equal(t.loss, whole.loss, `${what}, ${net}: loss`);
    }
    out[net] = whole.sum;
  }
  return out;
}

/** The exact total against the float64 reference of the whole batch (float32 arithmetic's error). */
function assertNearReference(sums: Record<NetName, Float64Array>, what: string): void {
  const rd = referenceDiscriminator(weights.gen, weights.dis, real, zD, B);
  const rg = referenceGenerator(weights.gen, weights.dis, zG, B);
  assert.ok(relativeError(sums.dis, rd.grad) <= 1e-5, `${what} dis: ${relativeError(sums.dis, rd.grad)}`);
  assert.ok(relativeError(sums.gen, rg.grad) <= 1e-5, `${what} gen: ${relativeError(sums.gen, rg.grad)}`);
}

const nativeReady = NativeExactStep.load(MODEL, CHUNK, 1) !== null;

test('C engine: the same bits for any split, any thread count; near the float64 reference', {
  skip: !nativeReady && 'the worker kernel addon is not built',
}, async () => {
  await selectBackend('wasm', { native: true, threads: 2 });
  let first: Record<NetName, Buffer> | undefined;
  for (const threads of [1, 2, 3]) {
    const e = NativeExactStep.load(MODEL, CHUNK, threads)!;
    e.setWeights('gen', weights.gen);
    e.setWeights('dis', weights.dis);
    const sums = assertSplitIndependent(e, `${threads} threads`);
    const bits = { dis: Buffer.from(sums.dis.buffer), gen: Buffer.from(sums.gen.buffer) };
    if (first === undefined) {
      first = bits;
      assertNearReference(sums, 'C engine');
    } else {
      assert.ok(bits.dis.equals(first.dis) && bits.gen.equals(first.gen), `${threads} threads differ from 1`);
    }
  }
});

for (const backend of ['wasm', 'cpu'] as const) {
  test(`tfjs on ${backend}: the same bits for any split, shard at once or chunk by chunk`, async () => {
    await selectBackend(backend, { native: false, threads: 1 });
    const step = new TrainStep();
    assert.equal(rowsIndependent(step, CHUNK), true, `${backend}'s rows depend on their neighbours`);
    step.setWeights('gen', weights.gen);
    step.setWeights('dis', weights.dis);
    const atOnce = assertSplitIndependent(new ExactStep(step, true, CHUNK), `${backend}, shard at once`);
    const byChunk = assertSplitIndependent(new ExactStep(step, false, CHUNK), `${backend}, chunk by chunk`);
    for (const net of ['dis', 'gen'] as const)
      assert.ok(Buffer.from(atOnce[net].buffer).equals(Buffer.from(byChunk[net].buffer)), `${backend} ${net}`);
    assertNearReference(atOnce, backend);
    step.dispose();
  });
}

test('a NaN in the input is reported as non-finite, naming a tensor; nothing is summed', async () => {
  await selectBackend('cpu', { native: false, threads: 1 });
  const step = new TrainStep();
  step.setWeights('gen', weights.gen);
  step.setWeights('dis', weights.dis);
  const engines: ExactEngine[] = [new ExactStep(step, true, CHUNK)];
  const native = NativeExactStep.load(MODEL, CHUNK, 2);
  if (native) {
    native.setWeights('gen', weights.gen);
    native.setWeights('dis', weights.dis);
    engines.push(native);
  }
  for (const e of engines) {
    const z = zG.slice(0, 32 * Z_DIM);
    z[17 * Z_DIM] = Number.NaN; // the second chunk
    const r = e.generator(z, 32, shifts.gen);
    assert.equal(r.ok, false, e.name);
    assert.equal(!r.ok && r.reason, 'non-finite', e.name);
  }
  step.dispose();
});
