/**
 * The reducer: collects the shard results of one phase and adds them into the batch-mean
 * gradient. Pure (no I/O, no clocks): it only decides what a result is worth.
 *
 * Shards are added in shard order (by `start`), whatever order they arrive in, so the sum is the
 * same for every arrival order. The sum is kept in float64 and divided by the global batch once.
 */
import type { Phase, ResultMessage } from '../shared/protocol.js';

/** One contiguous piece of a phase's global batch. */
export interface Shard {
  readonly start: number;
  readonly count: number;
}

/** Why a result was not accepted. */
export type Rejection =
  | 'stale' // for another step or phase than the one being reduced
  | 'unknown-shard' // no shard starts there with that count
  | 'duplicate' // that shard is already in (e.g. a late speculative copy)
  | 'wrong-length' // gradient length differs from the manifest
  | 'non-finite'; // NaN or ±Inf in the gradient or the sums

export type Verdict = { accepted: true; complete: boolean } | { accepted: false; reason: Rejection };

/** The averaged outcome of a phase. */
export interface PhaseMean {
  /** Mean gradient over the global batch (float32, manifest order). */
  grad: Float32Array;
  /** Mean per-sample loss (D phase: BCE real + BCE fake, as the seed's d_loss). */
  loss: number;
  dReal: number;
  dFake: number;
}

/** Accumulates one phase's shard results. */
export class PhaseReducer {
  private readonly results = new Map<number, ResultMessage>();
  private readonly byStart = new Map<number, Shard>();

  constructor(
    readonly step: number,
    readonly phase: Phase,
    readonly shards: readonly Shard[],
    readonly gradLength: number,
  ) {
    for (const s of shards) this.byStart.set(s.start, s);
  }

  get complete(): boolean {
    return this.results.size === this.shards.length;
  }

  /** Whether the shard starting at `start` has its result. */
  has(start: number): boolean {
    return this.results.has(start);
  }

  /** Shards still without a result. */
  missing(): Shard[] {
    return this.shards.filter((s) => !this.results.has(s.start));
  }

  /** Offers a result; it counts only if it is for this phase, a known shard not yet filled, and finite. */
  offer(r: ResultMessage): Verdict {
    if (r.step !== this.step || r.phase !== this.phase) return { accepted: false, reason: 'stale' };
    const shard = this.byStart.get(r.start);
    if (shard === undefined || shard.count !== r.count) return { accepted: false, reason: 'unknown-shard' };
    if (this.results.has(r.start)) return { accepted: false, reason: 'duplicate' };
    if (r.grad.length !== this.gradLength) return { accepted: false, reason: 'wrong-length' };
    if (!allFinite(r.grad) || !Number.isFinite(r.lossSum + r.dRealSum + r.dFakeSum)) return { accepted: false, reason: 'non-finite' };
    this.results.set(r.start, r);
    return { accepted: true, complete: this.complete };
  }

  /** The batch mean, once every shard is in. */
  mean(): PhaseMean {
    if (!this.complete) throw new Error(`phase ${this.phase} of step ${this.step} is missing ${this.missing().length} shard(s)`);
    const acc = new Float64Array(this.gradLength);
    let batch = 0;
    let loss = 0;
    let dReal = 0;
    let dFake = 0;
    for (const s of [...this.shards].sort((a, b) => a.start - b.start)) {
      const r = this.results.get(s.start)!;
      const g = r.grad;
      for (let i = 0; i < acc.length; i++) acc[i]! += g[i]!;
      batch += s.count;
      loss += r.lossSum;
      dReal += r.dRealSum;
      dFake += r.dFakeSum;
    }
    const grad = new Float32Array(this.gradLength);
    for (let i = 0; i < grad.length; i++) grad[i] = acc[i]! / batch;
    return { grad, loss: loss / batch, dReal: dReal / batch, dFake: dFake / batch };
  }
}

function allFinite(a: Float32Array): boolean {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i]!)) return false;
  return true;
}
