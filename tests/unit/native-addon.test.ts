/**
 * The checked JavaScript ↔ C boundary: the loader refuses an addon whose ABI number is not the
 * one its JavaScript interface declares (and the callers then take the JavaScript / tfjs path),
 * the interface constants are laid out once, and the addons' argument checks throw typed errors.
 * The stale build is simulated by asking for another ABI number than the built one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { reduceKernelsFrom } from '../../coordinator/reduce-kernels.js';
import { LOSSY_DTYPES } from '../../shared/dtype.js';
import { AddonErrorCode, NativeErrorCode, loadAddon } from '../../shared/native-addon.js';
import {
  ADAM,
  ADAM_LENGTH,
  DTYPE_CODE,
  REDUCE_ABI,
  REDUCE_ADDON,
  loadReduceAddon,
  packAdam,
} from '../../shared/reduce-addon.js';
import { ACTIVATION, BLAS_ABI, BLAS_ADDON, activationCode, loadBlas } from '../../worker/kernels/blas-addon.js';
import { registerNativeGemm } from '../../worker/kernels/native-gemm.js';

const reduce = loadReduceAddon();
const blas = loadBlas();
const skipReduce = reduce.addon === null ? `ganfleet_reduce not in use: ${reduce.error}` : false;
const skipBlas = blas.addon === null ? `ganfleet_blas not in use: ${blas.error}` : false;

/** Calls an addon entry point with any arguments, as a wrong caller would. */
function call(addon: object, fn: string, ...args: unknown[]): unknown {
  return (addon as Record<string, (...a: unknown[]) => unknown>)[fn]!(...args);
}

const ARG = { name: 'TypeError', code: NativeErrorCode.ARG };
const RANGE = { name: 'RangeError', code: NativeErrorCode.RANGE };

test('a built addon exports the ABI number its JavaScript interface declares', { skip: skipReduce || skipBlas }, () => {
  assert.equal(reduce.code, '');
  assert.equal(reduce.addon!.ABI, REDUCE_ABI);
  assert.equal(blas.code, '');
  assert.equal(blas.addon!.ABI, BLAS_ABI);
});

test('an addon built for another ABI is refused: the code names both numbers, the JS kernels serve', {
  skip: skipReduce,
}, () => {
  const stale = loadReduceAddon({ ...REDUCE_ADDON, abi: REDUCE_ABI + 1 });
  assert.equal(stale.addon, null);
  assert.equal(stale.code, AddonErrorCode.ABI);
  if (stale.code !== AddonErrorCode.ABI) return;
  assert.equal(stale.found, REDUCE_ABI);
  assert.equal(stale.expected, REDUCE_ABI + 1);
  assert.ok(stale.path.endsWith('ganfleet_reduce.node'));
  assert.equal(reduceKernelsFrom(stale).name, 'js');
  assert.equal(reduceKernelsFrom(reduce).name, 'native');
});

test('a stale OpenBLAS pack is refused and tfjs keeps its own kernels', { skip: skipBlas }, () => {
  const stale = loadBlas({ ...BLAS_ADDON, abi: BLAS_ABI - 1 });
  assert.equal(stale.addon, null);
  assert.equal(stale.code, AddonErrorCode.ABI);
  if (stale.code !== AddonErrorCode.ABI) return;
  assert.equal(stale.found, BLAS_ABI);
  assert.equal(stale.expected, BLAS_ABI - 1);
  assert.equal(registerNativeGemm('cpu', stale.addon), false);
});

test('an addon that was never built is MISSING, and GANFLEET_NATIVE=0 is OFF', () => {
  const missing = loadAddon({ name: 'ganfleet_no_such_addon', abi: 1, fallback: 'nothing' });
  assert.equal(missing.addon, null);
  assert.equal(missing.code, AddonErrorCode.MISSING);
  const was = process.env.GANFLEET_NATIVE;
  process.env.GANFLEET_NATIVE = '0';
  try {
    const off = loadAddon({ name: 'ganfleet_reduce', abi: -7, fallback: 'nothing' });
    assert.equal(off.addon, null);
    assert.equal(off.code, AddonErrorCode.OFF);
  } finally {
    if (was === undefined) delete process.env.GANFLEET_NATIVE;
    else process.env.GANFLEET_NATIVE = was;
  }
});

test("Adam's constants: one index each, 0 to ADAM_LENGTH − 1, and packAdam puts each at its own", () => {
  const names = Object.keys(ADAM) as (keyof typeof ADAM)[];
  assert.deepEqual(
    names.map((n) => ADAM[n]).sort((a, b) => a - b),
    Array.from({ length: ADAM_LENGTH }, (_, i) => i),
  );
  const k = { divisor: 1, stepSize: 2, bc2Sqrt: 3, beta1: 4, beta2: 5, c1: 6, c2: 7, eps: 8 };
  const packed = packAdam(k);
  for (const n of names) assert.equal(packed[ADAM[n]], k[n], n);
});

test('wire dtype and activation codes are distinct and dense (the C enums count them)', () => {
  assert.deepEqual(
    LOSSY_DTYPES.map((d) => DTYPE_CODE[d]),
    [0, 1, 2],
  );
  assert.deepEqual(Object.values(ACTIVATION), [0, 1, 2, 3, 4, 5, 6]);
  assert.equal(activationCode('tanh'), ACTIVATION.tanh);
  assert.equal(activationCode('toString'), undefined);
  assert.equal(activationCode('prelu'), undefined);
});

test('ganfleet_reduce: a wrong count or type is a TypeError ERR_NATIVE_ARG, a wrong size or code a RangeError', {
  skip: skipReduce,
}, () => {
  const r = reduce.addon!;
  const f32 = new Float32Array(4);
  const k = packAdam({ divisor: 1, stepSize: 1, bc2Sqrt: 1, beta1: 0.9, beta2: 0.999, c1: 0.1, c2: 0.001, eps: 1e-8 });
  // Count.
  assert.throws(() => call(r, 'add', new Float64Array(4), [f32], 0, [0]), ARG);
  assert.throws(() => call(r, 'finite', f32), ARG);
  assert.throws(() => call(r, 'adam', f32, f32, f32, f32, null, 1, 2, 3, 4, 5, 6, 7, 8), ARG);
  assert.throws(() => call(r, 'getThreads', 1), ARG);
  // Types.
  assert.throws(() => call(r, 'add', new Float32Array(4), [f32], 0, [0], true), ARG);
  assert.throws(() => call(r, 'add', new Float64Array(4), f32, 0, [0], true), ARG);
  assert.throws(() => call(r, 'add', new Float64Array(4), [f32], '0', [0], true), ARG);
  assert.throws(() => call(r, 'add', new Float64Array(4), [f32], 0, [0], 1), ARG);
  assert.throws(() => call(r, 'add', new Float64Array(4), [new Int32Array(4)], 0, [0], true), ARG);
  assert.throws(() => call(r, 'add', new Float64Array(4), [f32], 0, ['0'], true), ARG);
  assert.throws(() => call(r, 'adam', f32, f32, f32, f32, undefined, k), ARG);
  assert.throws(() => call(r, 'adam', f32, f32, f32, f32, null, new Float32Array(ADAM_LENGTH)), ARG);
  assert.throws(() => call(r, 'setThreads', '2'), ARG);
  // Sizes and codes.
  assert.throws(() => call(r, 'add', new Float64Array(4), [f32], 3, [0], true), RANGE);
  assert.throws(() => call(r, 'add', new Float64Array(4), [f32], -1, [0], true), RANGE);
  assert.throws(() => call(r, 'add', new Float64Array(4), [f32], 0.5, [0], true), RANGE);
  assert.throws(() => call(r, 'add', new Float64Array(4), [], 0, [], true), RANGE);
  assert.throws(() => call(r, 'add', new Float64Array(4), [f32], 0, [], true), RANGE);
  assert.throws(() => call(r, 'add', new Float64Array(4), Array(65).fill(f32), 0, Array(65).fill(0), true), RANGE);
  assert.throws(() => call(r, 'add', new Float64Array(5), [f32], 0, [0], true), RANGE);
  assert.throws(() => call(r, 'add', new Float64Array(4), [new Uint16Array(4)], 0, [0], true), RANGE);
  assert.throws(() => call(r, 'finite', f32, 1), RANGE);
  assert.throws(() => call(r, 'adam', f32, f32, f32, f32, new Float32Array(3), k), RANGE);
  assert.throws(() => call(r, 'adam', f32, f32, f32, f32, null, new Float64Array(ADAM_LENGTH - 1)), RANGE);
  assert.throws(() => call(r, 'setThreads', 17), RANGE);
  // And a right call still works after all of these.
  assert.equal(call(r, 'finite', f32, DTYPE_CODE.f32), true);
});

test('ganfleet_blas: a wrong count or type is a TypeError ERR_NATIVE_ARG, a wrong size or code a RangeError', {
  skip: skipBlas,
}, () => {
  const b = blas.addon!;
  const [a6, b6, c4] = [new Float32Array(6), new Float32Array(6), new Float32Array(4)];
  const gemm = (...args: unknown[]) => call(b, 'gemm', ...args);
  assert.throws(() => gemm(false, false, 2, 2, 3, a6, b6, c4, null, 0), ARG);
  assert.throws(() => gemm(false, false, 2, 2, 3, a6, b6, c4, null, 0, 0, 0), ARG);
  assert.throws(() => gemm(0, false, 2, 2, 3, a6, b6, c4, null, 0, 0), ARG);
  assert.throws(() => gemm(false, false, 2, 2, 3, new Float64Array(6), b6, c4, null, 0, 0), ARG);
  assert.throws(() => gemm(false, false, 2, 2, 3, a6, b6, c4, undefined, 0, 0), ARG);
  assert.throws(() => gemm(false, false, 2, 2, 3, a6, b6, c4, null, 0, '0.2'), ARG);
  assert.throws(() => gemm(false, false, 2, 2, 3, a6, b6, new Float32Array(3), null, 0, 0), RANGE);
  assert.throws(() => gemm(false, false, 2, 2, 3, a6, b6, c4, new Float32Array(3), 0, 0), RANGE);
  assert.throws(() => gemm(false, false, 2, 2, 3, a6, b6, c4, null, 7, 0), RANGE);
  assert.throws(() => gemm(false, false, 2.5, 2, 3, a6, b6, c4, null, 0, 0), RANGE);
  assert.throws(() => call(b, 'setThreads', 0), RANGE);
  assert.throws(() => call(b, 'config', 1), ARG);
  gemm(false, false, 2, 2, 3, a6.fill(1), b6.fill(1), c4, null, ACTIVATION.linear, 0);
  assert.deepEqual([...c4], [3, 3, 3, 3]);
});
