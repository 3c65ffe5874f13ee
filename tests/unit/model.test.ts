import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ARCHITECTURE, MANIFESTS, flatten, initParams, manifestHash, unflatten } from '../../shared/model.js';

test('manifests list the seed PyTorch names, shapes and offsets in order', () => {
  assert.deepEqual(
    MANIFESTS.gen.params.map((p) => [p.name, p.shape, p.offset, p.length]),
    [
      ['gen.0.weight', [256, 100], 0, 25600],
      ['gen.0.bias', [256], 25600, 256],
      ['gen.2.weight', [256, 256], 25856, 65536],
      ['gen.2.bias', [256], 91392, 256],
      ['gen.4.weight', [784, 256], 91648, 200704],
      ['gen.4.bias', [784], 292352, 784],
    ],
  );
  assert.equal(MANIFESTS.gen.size, 293136);
  assert.deepEqual(
    MANIFESTS.dis.params.map((p) => [p.name, p.shape]),
    [
      ['dis.0.weight', [256, 784]],
      ['dis.0.bias', [256]],
      ['dis.2.weight', [256, 256]],
      ['dis.2.bias', [256]],
      ['dis.4.weight', [1, 256]],
      ['dis.4.bias', [1]],
    ],
  );
  assert.equal(MANIFESTS.dis.size, 267009);
  // 2.24 MB of float32 for both networks, as the issue computes.
  assert.equal((MANIFESTS.gen.size + MANIFESTS.dis.size) * 4, 2240580);
});

test('flatten and unflatten round-trip, and refuse wrong lengths and missing names', () => {
  const flat = initParams('dis', 3);
  const named = unflatten('dis', flat);
  assert.equal(named.get('dis.2.bias')!.length, 256);
  assert.deepEqual(flatten('dis', named), flat);
  named.set('dis.4.bias', new Float32Array(2));
  assert.throws(() => flatten('dis', named), /dis\.4\.bias has 2 values, expected 1/);
  named.delete('dis.4.bias');
  assert.throws(() => flatten('dis', named), /dis\.4\.bias is missing/);
  assert.throws(() => unflatten('gen', flat), /manifest needs 293136/);
});

test('init follows nn.Linear: weights and biases uniform in ±1/sqrt(fan_in), seeded', () => {
  for (const net of ['gen', 'dis'] as const) {
    const flat = initParams(net, 42);
    assert.deepEqual(flat, initParams(net, 42));
    assert.notDeepEqual(flat, initParams(net, 43));
    MANIFESTS[net].params.forEach((p, i) => {
      const bound = 1 / Math.sqrt(ARCHITECTURE[net][i >> 1]!.inFeatures);
      const v = flat.subarray(p.offset, p.offset + p.length);
      let lo = Infinity;
      let hi = -Infinity;
      let sum = 0;
      for (const x of v) {
        lo = Math.min(lo, x);
        hi = Math.max(hi, x);
        sum += x;
      }
      assert.ok(lo >= -bound && hi <= bound, `${p.name} outside ±${bound}: [${lo}, ${hi}]`);
      if (p.length >= 256) {
        // A uniform sample of this size reaches close to both ends and is centred.
        assert.ok(hi > 0.95 * bound && lo < -0.95 * bound, `${p.name} does not span its range`);
        assert.ok(Math.abs(sum / p.length) < 0.1 * bound, `${p.name} mean ${sum / p.length}`);
      }
    });
  }
});

test('manifest hash is stable hex', () => {
  assert.match(manifestHash(), /^[0-9a-f]{64}$/);
  assert.equal(manifestHash(), manifestHash());
});

test('a changed hidden width flows through the manifest, the worker step, checkpoints and export', async () => {
  const { defineModel, ARCHITECTURE, initParams, layerParams } = await import('../../shared/model.js');
  const arch = structuredClone(ARCHITECTURE) as unknown as {
    gen: Array<{ index: number; inFeatures: number; outFeatures: number; activation: string }>;
    dis: Array<{ index: number; inFeatures: number; outFeatures: number; activation: string }>;
  };
  // 256 → 64 hidden units in G's and D's middle layers.
  arch.gen[0]!.outFeatures = 64;
  arch.gen[1]!.inFeatures = 64;
  arch.dis[1]!.outFeatures = 64;
  arch.dis[2]!.inFeatures = 64;
  const model = defineModel(arch as unknown as Parameters<typeof defineModel>[0]);
  assert.deepEqual(
    model.manifests.gen.params.map((p) => [p.name, p.shape]),
    [
      ['gen.0.weight', [64, 100]],
      ['gen.0.bias', [64]],
      ['gen.2.weight', [256, 64]],
      ['gen.2.bias', [256]],
      ['gen.4.weight', [784, 256]],
      ['gen.4.bias', [784]],
    ],
  );
  assert.equal(model.manifests.dis.size, 784 * 256 + 256 + 256 * 64 + 64 + 64 + 1);
  assert.notEqual(manifestHash(model), manifestHash());
  const gen = initParams('gen', 3, model);
  const dis = initParams('dis', 3, model);
  assert.equal(layerParams('dis', dis, model)[2]!.w.length, 64);

  // The worker's step computes the float64 reference's gradients for this model.
  const tf = await import('@tensorflow/tfjs-core');
  await import('@tensorflow/tfjs-backend-cpu');
  await tf.setBackend('cpu');
  const { TrainStep } = await import('../../worker/train-step.js');
  const { referenceDiscriminator, referenceGenerator, relativeError } = await import('../support/reference-gan.js');
  const { noiseBlock, Purpose, uniforms } = await import('../../shared/random.js');
  const n = 5;
  const real = new Float32Array(n * 784);
  uniforms(1, Purpose.INIT, 77, -1, 1, real);
  const z = noiseBlock(1, Purpose.NOISE_DIS, 0, 0, n, 100);
  const step = new TrainStep(model);
  step.setWeights('gen', gen);
  step.setWeights('dis', dis);
  const d = step.discriminatorPhase(real, z, n);
  assert.equal(d.grad.length, model.manifests.dis.size);
  assert.ok(relativeError(d.grad, referenceDiscriminator(gen, dis, real, z, n, model).grad) <= 1e-5);
  const g = step.generatorPhase(z, n);
  assert.ok(relativeError(g.grad, referenceGenerator(gen, dis, z, n, model).grad) <= 1e-5);
  step.dispose();

  // A checkpoint round trip, and the exported generator's architecture string.
  const { encodeCheckpoint, decodeCheckpoint } = await import('../../coordinator/checkpoint.js');
  const { adamState } = await import('../../coordinator/optimizer.js');
  const state = {
    step: 1,
    epoch: 0,
    seed: 3,
    params: { gen, dis },
    adam: { gen: adamState(gen.length), dis: adamState(dis.length) },
    config: {},
  };
  const back = decodeCheckpoint(encodeCheckpoint(state, model), 'x', model);
  assert.deepEqual(back.params.dis, dis);
  assert.throws(() => decodeCheckpoint(encodeCheckpoint(state, model), 'x'), /has \d+ values, expected/);
  const { generatorArchitecture, generatorSafetensors } = await import('../../shared/export/generator.js');
  assert.equal(
    generatorArchitecture(model),
    'Sequential(Linear(100,64), ReLU, Linear(64,256), ReLU, Linear(256,784), Tanh)',
  );
  assert.equal(
    generatorArchitecture(),
    'Sequential(Linear(100,256), ReLU, Linear(256,256), ReLU, Linear(256,784), Tanh)',
  );
  const file = generatorSafetensors(gen, { step: 1, seed: 3, source: 'x', version: '0' }, model);
  assert.ok(file.length > gen.length * 4);
});

test('a model whose layers do not chain is refused, naming the layer', async () => {
  const { defineModel, ARCHITECTURE } = await import('../../shared/model.js');
  const arch = structuredClone(ARCHITECTURE) as unknown as { gen: Array<{ outFeatures: number }> };
  arch.gen[0]!.outFeatures = 64;
  assert.throws(
    () => defineModel(arch as unknown as Parameters<typeof defineModel>[0]),
    /gen layer 1: 256 inputs after 64/,
  );
});
