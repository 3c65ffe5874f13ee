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
