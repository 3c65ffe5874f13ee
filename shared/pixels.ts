/**
 * Pixel scaling shared by workers (training inputs) and the coordinator (the real-image grid).
 * MNIST stays as bytes in memory; a shard's rows are scaled as they are gathered, through a
 * 256-entry table, so a worker holds 47 MB instead of 188 MB of floats.
 */
import { IMAGE_SIZE } from './model.js';

/** `minus1to1` (default): x/255·2−1, the range of G's Tanh. `seed`: the seed's Normalize((0.1307,), (0.3081,)). */
export type Normalization = 'minus1to1' | 'seed';
export const NORMALIZATIONS: readonly Normalization[] = ['minus1to1', 'seed'];

/** The float value of each byte value under a normalisation, computed like torchvision (float32 ops). */
export function pixelTable(mode: Normalization): Float32Array {
  const t = new Float32Array(256);
  for (let v = 0; v < 256; v++) {
    const x = Math.fround(v / 255);
    t[v] =
      mode === 'seed'
        ? Math.fround(Math.fround(x - 0.1307) / Math.fround(0.3081))
        : Math.fround(Math.fround(x * 2) - 1);
  }
  return t;
}

/** Gathers images `indices` from a byte array of images into scaled floats (n × 784). */
export function gatherImages(
  images: Uint8Array,
  indices: ArrayLike<number>,
  table: Float32Array,
  out?: Float32Array,
): Float32Array {
  const n = indices.length;
  const x = out ?? new Float32Array(n * IMAGE_SIZE);
  for (let k = 0; k < n; k++) {
    const src = indices[k]! * IMAGE_SIZE;
    const dst = k * IMAGE_SIZE;
    for (let p = 0; p < IMAGE_SIZE; p++) x[dst + p] = table[images[src + p]!]!;
  }
  return x;
}
