/**
 * ganfleet's OpenBLAS kernels (worker/kernels/native-gemm.ts) against the kernels tfjs's own
 * backends register, on random shapes including the odd last batch (96): every product, bias,
 * activation and transpose combination the pack takes, and the cases it hands back to tfjs.
 * Skipped where the optional addon was not built.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../../worker/backend.js';
import {
  loadBlasAddon,
  nativeGemmActive,
  registerNativeGemm,
  unregisterNativeGemm,
  type NativeBackend,
} from '../../worker/kernels/native-gemm.js';
import { NativeErrorCode } from '../../shared/native-addon.js';
import type { ActivationCode } from '../../worker/kernels/blas-addon.js';
import { relativeError } from '../support/reference-gan.js';

const skip = loadBlasAddon() === null ? 'native kernel pack not built (optional)' : false;
const backends: NativeBackend[] = ['wasm', 'cpu'];
const TOL = 1e-5;

/** Deterministic pseudo-random numbers (xorshift), so failures reproduce. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}

function randomArray(n: number, r: () => number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (r() * 2 - 1) * scale;
  return a;
}

/**
 * Runs f on the backend with the pack's kernels, and on tfjs's reference backend (cpu, pure JS,
 * its own kernels), returning both results. The reference is not wasm's own kernel: tfjs-wasm
 * 4.22's _FusedMatMul is wrong when transposeB is set together with a bias or an activation.
 */
async function both(
  backend: NativeBackend,
  f: () => tf.Tensor | tf.Tensor[],
): Promise<{ native: Float32Array[]; ref: Float32Array[] }> {
  const read = (): Float32Array[] => {
    const out = tf.tidy(f);
    const list = Array.isArray(out) ? out : [out];
    const data = list.map((t) => t.dataSync() as Float32Array);
    tf.dispose(list);
    return data;
  };
  await tf.setBackend(backend);
  assert.ok(registerNativeGemm(backend));
  assert.ok(nativeGemmActive(backend));
  const native = read();
  const cpuNative = nativeGemmActive('cpu');
  unregisterNativeGemm('cpu');
  await tf.setBackend('cpu');
  const ref = read();
  if (cpuNative) registerNativeGemm('cpu');
  await tf.setBackend(backend);
  return { native, ref };
}

/** The backend with the pack registered, the cpu backend started for the references. */
async function start(backend: NativeBackend): Promise<void> {
  await selectBackend('cpu', { native: true });
  await selectBackend(backend, { native: true });
}

function assertClose(backend: NativeBackend, what: string, r: { native: Float32Array[]; ref: Float32Array[] }): void {
  assert.equal(r.native.length, r.ref.length);
  r.native.forEach((a, i) => {
    const e = relativeError(a, r.ref[i]!);
    assert.ok(e <= TOL, `${backend} ${what} [${i}]: rel err ${e}`);
  });
}

/** Shapes: the GAN's own (with n = 128, 96 and 256), odd sizes, and degenerate ones. */
function shapes(r: () => number): Array<[number, number, number]> {
  const fixed: Array<[number, number, number]> = [
    [96, 100, 256],
    [96, 256, 784],
    [192, 784, 256],
    [96, 256, 1],
    [1, 256, 256],
    [256, 96, 784],
    [128, 784, 256],
    [7, 3, 5],
    [1, 1, 1],
  ];
  const rand: Array<[number, number, number]> = [];
  for (let i = 0; i < 6; i++)
    rand.push([1 + Math.floor(r() * 200), 1 + Math.floor(r() * 200), 1 + Math.floor(r() * 200)]);
  return [...fixed, ...rand];
}

for (const backend of backends) {
  test(`${backend}: BatchMatMul (all transpose combinations, rank 2 and batch-1 rank 3) matches tfjs`, {
    skip,
  }, async () => {
    await start(backend);
    const r = rng(1);
    const before = tf.memory().numTensors;
    for (const [m, k, n] of shapes(r)) {
      for (const ta of [false, true]) {
        for (const tb of [false, true]) {
          const a = randomArray(m * k, r);
          const b = randomArray(k * n, r);
          const res = await both(backend, () => {
            const at = tf.tensor(a, ta ? [k, m] : [m, k]);
            const bt = tf.tensor(b, tb ? [n, k] : [k, n]);
            const a3 = tf.reshape(at, [1, ...at.shape]);
            const b3 = tf.reshape(bt, [1, ...bt.shape]);
            return [tf.matMul(at as tf.Tensor2D, bt as tf.Tensor2D, ta, tb), tf.matMul(a3, b3, ta, tb)];
          });
          assertClose(backend, `matMul ${m}×${k}×${n} ta=${ta} tb=${tb}`, res);
        }
      }
    }
    assert.equal(tf.memory().numTensors, before);
  });

  test(`${backend}: _FusedMatMul (bias of n or of 1, every activation, transposes) matches tfjs`, {
    skip,
  }, async () => {
    await start(backend);
    const r = rng(2);
    const activations = ['linear', 'relu', 'leakyrelu', 'relu6', 'sigmoid', 'elu'] as const;
    let i = 0;
    // The big products once, in the train step's forward form (x·Wᵀ); the rest in every form.
    const cases = shapes(r).flatMap(([m, k, n]) =>
      (m * k * n > 4e6
        ? [[false, true]]
        : [
            [false, false],
            [false, true],
            [true, false],
            [true, true],
          ]
      ).map(([ta, tb]) => [m, k, n, ta, tb] as const),
    );
    for (const [m, k, n, ta, tb] of cases) {
      for (const activation of [activations[i++ % activations.length]!, activations[i++ % activations.length]!]) {
        const a = randomArray(m * k, r);
        const b = randomArray(k * n, r);
        const bias = randomArray(n, r, 2);
        const alpha = r() < 0.5 ? 0.2 : 0.05;
        const res = await both(backend, () => {
          const at = tf.tensor2d(a, ta ? [k, m] : [m, k]);
          const bt = tf.tensor2d(b, tb ? [n, k] : [k, n]);
          return [
            tf.fused.matMul({
              a: at,
              b: bt,
              transposeA: ta,
              transposeB: tb,
              bias: tf.tensor1d(bias),
              activation,
              leakyreluAlpha: alpha,
            }),
            tf.fused.matMul({
              a: at,
              b: bt,
              transposeA: ta,
              transposeB: tb,
              bias: tf.tensor1d([bias[0]!]),
              activation,
              leakyreluAlpha: alpha,
            }),
            tf.fused.matMul({ a: at, b: bt, transposeA: ta, transposeB: tb, activation, leakyreluAlpha: alpha }),
          ];
        });
        assertClose(backend, `fused ${m}×${k}×${n} ${activation} ta=${ta} tb=${tb}`, res);
      }
    }
  });

  test(`${backend}: the fused Tanh the train step asks for matches tf.tanh of tfjs's product`, { skip }, async () => {
    await start(backend);
    const r = rng(3);
    for (const [m, k, n] of [
      [96, 256, 784],
      [128, 256, 784],
      [5, 7, 3],
      [1, 1, 1],
      [33, 65, 17],
    ] as const) {
      const a = randomArray(m * k, r, 0.5);
      const b = randomArray(k * n, r, 0.5);
      const bias = randomArray(n, r, 3);
      const at = tf.tensor2d(a, [m, k]);
      const bt = tf.tensor2d(b, [n, k]);
      const bb = tf.tensor1d(bias);
      const out = tf.engine().runKernel('_FusedMatMul', { a: at, b: bt, bias: bb }, {
        transposeA: false,
        transposeB: true,
        activation: 'tanh',
        leakyreluAlpha: 0,
      } as unknown as tf.NamedAttrMap) as tf.Tensor;
      const got = out.dataSync() as Float32Array;
      const [want] = (
        await both(backend, () =>
          tf.tanh(
            tf.fused.matMul({
              a: tf.tensor2d(a, [m, k]),
              b: tf.tensor2d(b, [n, k]),
              transposeB: true,
              bias: tf.tensor1d(bias),
            }),
          ),
        )
      ).ref as [Float32Array];
      assert.deepEqual(out.shape, [m, n]);
      assert.ok(relativeError(got, want) <= TOL, `tanh ${m}×${k}×${n}: rel err ${relativeError(got, want)}`);
      // Element by element too: tanh saturates, so a norm-wise check alone could hide small values.
      for (let i = 0; i < got.length; i++)
        assert.ok(
          Math.abs(got[i]! - want[i]!) <= 2e-6 * Math.max(1, Math.abs(want[i]!)) + 1e-6,
          `tanh element ${i}: ${got[i]} vs ${want[i]}`,
        );
      tf.dispose([at, bt, bb, out]);
    }
    // Extremes: ±inf saturate, NaN stays NaN.
    const x = tf.tensor2d([Infinity, -Infinity, NaN, 0, 1e-30, 30, -30], [7, 1]);
    const one = tf.tensor2d([1], [1, 1]);
    const y = tf.engine().runKernel('_FusedMatMul', { a: x, b: one }, {
      transposeA: false,
      transposeB: false,
      activation: 'tanh',
      leakyreluAlpha: 0,
    } as unknown as tf.NamedAttrMap) as tf.Tensor;
    const v = Array.from(y.dataSync());
    assert.deepEqual(v.slice(0, 2), [1, -1]);
    assert.ok(Number.isNaN(v[2]));
    assert.deepEqual(
      v.slice(3),
      [0, 1e-30, 1, -1].map((e) => Math.fround(e)),
    );
    tf.dispose([x, one, y]);
  });

  test(`${backend}: products the pack does not take (batch > 1, PReLU, empty) go to tfjs's kernels; k = 0: zeros`, {
    skip,
  }, async () => {
    await start(backend);
    const r = rng(4);
    const a = randomArray(3 * 5 * 7, r);
    const b = randomArray(3 * 7 * 4, r);
    const res = await both(backend, () => {
      const at = tf.tensor3d(a, [3, 5, 7]);
      const bt = tf.tensor3d(b, [3, 7, 4]);
      return [
        tf.matMul(at, bt),
        tf.fused.matMul({ a: at, b: bt, activation: 'prelu', preluActivationWeights: tf.scalar(0.3) }),
        tf.fused.matMul({
          a: tf.slice(at, [0, 0, 0], [1, 5, 7]),
          b: tf.slice(bt, [0, 0, 0], [1, 7, 4]),
          activation: 'prelu',
          preluActivationWeights: tf.scalar(0.3),
        }),
        tf.matMul(tf.zeros([0, 7]) as tf.Tensor2D, tf.zeros([7, 4]) as tf.Tensor2D),
        tf.matMul(tf.zeros([5, 0]) as tf.Tensor2D, tf.zeros([0, 4]) as tf.Tensor2D),
      ];
    });
    assertClose(backend, 'fallbacks', res);
  });
}

test('the OpenBLAS thread count can be set', { skip }, () => {
  const lib = loadBlasAddon()!;
  const was = lib.getThreads();
  lib.setThreads(1);
  assert.equal(lib.getThreads(), 1);
  lib.setThreads(was);
  assert.match(lib.config(), /OpenBLAS/);
});

test('the addon rejects mismatched sizes instead of reading past an array', { skip }, () => {
  const lib = loadBlasAddon()!;
  const a = new Float32Array(6);
  const b = new Float32Array(6);
  const c = new Float32Array(3);
  const range = { name: 'RangeError', code: NativeErrorCode.RANGE };
  assert.throws(() => lib.gemm(false, false, 2, 2, 3, a, b, c, null, 0, 0), range);
  assert.throws(() => lib.gemm(false, false, 2, 2, 3, a, b, new Float32Array(4), new Float32Array(3), 0, 0), range);
  assert.throws(() => lib.gemm(false, false, 2, 2, 3, a, b, new Float32Array(4), null, 9 as ActivationCode, 0), range);
  assert.throws(
    () =>
      lib.gemm(
        false,
        false,
        2,
        2,
        3,
        new Float64Array(6) as unknown as Float32Array,
        b,
        new Float32Array(4),
        null,
        0,
        0,
      ),
    { name: 'TypeError', code: NativeErrorCode.ARG },
  );
});
