/**
 * New weights as their steps from the previous version: each element's float32 bit pattern minus
 * the old one's, as an int32 (wrapping). Every worker holds the previous version bit for bit (the
 * weights are exact), so the step and the old bits give the new bits back exactly, whatever the
 * values (NaN payloads, signs and zeros included). An Adam step moves a weight by about the learning
 * rate, a small fraction of most weights, so most steps need far fewer than 32 bits
 * (shared/lanes.ts carries them narrow).
 */

const bits = (f: Float32Array) => new Int32Array(f.buffer, f.byteOffset, f.length);

/** `next` − `prev` in bit patterns (a fresh array, or `out`). */
export function weightSteps(prev: Float32Array, next: Float32Array, out = new Int32Array(next.length)): Int32Array {
  if (prev.length !== next.length || out.length !== next.length)
    throw new RangeError(`weightSteps: ${prev.length}, ${next.length} and ${out.length} elements`);
  const p = bits(prev);
  const n = bits(next);
  for (let i = 0; i < n.length; i++) out[i] = (n[i]! - p[i]!) | 0;
  return out;
}

/** `base` + `steps` in bit patterns, into `out` (may be `base` itself). */
export function applySteps(base: Float32Array, steps: Int32Array, out: Float32Array): void {
  if (base.length !== steps.length || out.length !== steps.length)
    throw new RangeError(`applySteps: ${base.length}, ${steps.length} and ${out.length} elements`);
  const b = bits(base);
  const o = bits(out);
  for (let i = 0; i < o.length; i++) o[i] = (b[i]! + steps[i]!) | 0;
}
