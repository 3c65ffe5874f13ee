/**
 * Which samples each step trains on, and how a phase's batch is cut into shards.
 * Steps run epoch after epoch over a seeded permutation; the last, partial batch of an epoch is
 * kept (60000 = 468×128 + 96), as the seed's DataLoader does.
 */
import { epochPermutation } from '../shared/random.js';
import type { Shard } from './reducer.js';

export class BatchSchedule {
  readonly stepsPerEpoch: number;
  private cachedEpoch = -1;
  private perm: Uint32Array = new Uint32Array(0);

  constructor(
    readonly seed: number,
    readonly datasetSize: number,
    readonly batchSize: number,
  ) {
    this.stepsPerEpoch = Math.ceil(datasetSize / batchSize);
  }

  epochOf(step: number): number {
    return Math.floor(step / this.stepsPerEpoch);
  }

  /** Dataset indices of step `step`'s global batch (a view into the epoch's permutation). */
  batch(step: number): Uint32Array {
    const epoch = this.epochOf(step);
    if (epoch !== this.cachedEpoch) {
      this.perm = epochPermutation(this.seed, epoch, this.datasetSize);
      this.cachedEpoch = epoch;
    }
    const i = step - epoch * this.stepsPerEpoch;
    return this.perm.subarray(i * this.batchSize, Math.min((i + 1) * this.batchSize, this.datasetSize));
  }
}

/**
 * Cuts `total` samples into contiguous shards, one per weight, with sizes proportional to the
 * weights (largest-remainder rounding, every shard at least one unit while there are units).
 * Shards are whole multiples of `unit` samples, except that the last may hold the remainder.
 * Weights are the workers' measured throughputs; equal weights give an even split.
 */
export function splitBatch(total: number, weights: readonly number[], unit = 1): Shard[] {
  if (weights.length === 0) throw new RangeError('splitBatch needs at least one weight');
  if (!Number.isInteger(unit) || unit < 1)
    throw new RangeError(`splitBatch: unit must be a positive integer, got ${unit}`);
  const units = Math.ceil(total / unit);
  const k = Math.min(weights.length, units);
  const w = weights.slice(0, k).map((x) => (Number.isFinite(x) && x > 0 ? x : 1));
  const sum = w.reduce((a, b) => a + b, 0);
  // One unit each first, then the rest by weight.
  const spare = units - k;
  const exact = w.map((x) => (spare * x) / sum);
  const counts = exact.map((x) => 1 + Math.floor(x));
  let left = units - counts.reduce((a, b) => a + b, 0);
  const order = exact.map((x, i) => [x - Math.floor(x), i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (let j = 0; left > 0; j++, left--) counts[order[j % k]![1]]! += 1;
  const shards: Shard[] = [];
  let start = 0;
  for (const c of counts) {
    const count = Math.min(c * unit, total - start);
    shards.push({ start, count });
    start += count;
  }
  return shards;
}
