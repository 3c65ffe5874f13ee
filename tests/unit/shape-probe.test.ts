/** `--topology auto`'s probe (coordinator/shape-probe.ts): star steps, slices steps, the faster kept. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PROBE_LENGTH, PROBE_STEPS, ShapeProbe, type Shape, WARM_STEPS } from '../../coordinator/shape-probe.js';

/** Runs steps of `ms(shape)` until the probe settles; the shapes it asked for and its verdict. */
function probe(p: ShapeProbe, key: string, ms: (s: Shape) => number) {
  const shapes: Shape[] = [];
  for (let i = 0; i < 100; i++) {
    const s = p.shapeFor(key);
    shapes.push(s);
    const v = p.observe(s, ms(s));
    if (v !== undefined) return { shapes, verdict: v };
  }
  throw new Error('the probe never settled');
}

test('WARM_STEPS + PROBE_STEPS star steps, one untimed and PROBE_STEPS slices steps, then the faster', () => {
  const p = new ShapeProbe();
  const { shapes, verdict } = probe(p, 'zone a', (s) => (s === 'star' ? 300 : 100));
  assert.deepEqual(shapes, [
    ...Array<Shape>(WARM_STEPS + PROBE_STEPS).fill('star'),
    ...Array<Shape>(PROBE_STEPS + 1).fill('slices'),
  ]);
  assert.deepEqual(verdict, { shape: 'slices', starMs: 300, slicesMs: 100 });
  assert.equal(shapes.length, PROBE_LENGTH);
  assert.equal(p.probing, false);
  // Settled: the same members keep the shape.
  for (let i = 0; i < 5; i++) assert.equal(p.shapeFor('zone a'), 'slices');
});

test('a faster coordinator link: the star is kept; a tie keeps the star', () => {
  assert.equal(probe(new ShapeProbe(), 'k', (s) => (s === 'star' ? 110 : 240)).verdict.shape, 'star');
  assert.equal(probe(new ShapeProbe(), 'k', () => 50).verdict.shape, 'star');
});

test('the warm-up steps and the step after the switch do not count', () => {
  const p = new ShapeProbe();
  const times = { star: [...Array<number>(WARM_STEPS).fill(9999), 200, 200, 200], slices: [9999, 100, 100, 100] };
  const { verdict } = probe(p, 'k', (s) => times[s].shift()!);
  assert.deepEqual(verdict, { shape: 'slices', starMs: 200, slicesMs: 100 });
});

test('new members start a new probe; no slices possible means a star without probing', () => {
  const p = new ShapeProbe();
  probe(p, 'four workers', (s) => (s === 'star' ? 300 : 100));
  assert.equal(p.shapeFor('five workers'), 'star');
  assert.equal(p.probing, true);
  assert.equal(p.shapeFor(''), 'star');
  assert.equal(p.probing, false);
  assert.equal(p.observe('star', 10), undefined);
});

test('a step of another shape than the one probed (the members changed mid-step) is not counted', () => {
  const p = new ShapeProbe();
  assert.equal(p.shapeFor('k'), 'star');
  assert.equal(p.observe('slices', 1), undefined);
  const { verdict } = probe(p, 'k', (s) => (s === 'star' ? 300 : 100));
  assert.deepEqual(verdict, { shape: 'slices', starMs: 300, slicesMs: 100 });
});
