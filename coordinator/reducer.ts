/**
 * The reducer: collects the shard results of one phase and adds them into the batch-mean
 * gradient. Pure (no I/O, no clocks): it only decides what a result is worth.
 *
 * Shards are added in shard order (by `start`), whatever order they arrive in, so the sum is the
 * same for every arrival order. The sum is kept in float64 and divided by the global batch once.
 *
 * Shards are added as soon as every shard before them is in (so most of the adding overlaps the
 * wait for the last result), in one pass that also checks finiteness; f16/bf16 gradients are
 * decoded to float32 on the way (the sum stays float64, rounded once to float32 at the end). The
 * float64 accumulator can be lent by the caller and reused phase after phase.
 */
import type { Phase, ResultMessage } from '../shared/protocol.js';
import { bf16ToF32, f16ToF32, type GradDtype } from '../shared/dtype.js';

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

/** The sums of a complete phase: the float64 gradient sum and the statistics' sums. */
export interface PhaseSum {
  /** Σ of every shard's gradient (float64, manifest order); owned by the reducer's accumulator. */
  sum: Float64Array;
  batch: number;
  loss: number;
  dReal: number;
  dFake: number;
}

/** Accumulates one phase's shard results. */
export class PhaseReducer {
  private readonly results = new Map<number, ResultMessage>();
  private readonly byStart = new Map<number, Shard>();
  /** Shards in the order they are added. */
  private readonly ordered: Shard[];
  /** Shards of `ordered` already added into `acc`. */
  private added = 0;
  private readonly acc: Float64Array;
  private scratch: Float32Array | undefined;

  constructor(
    readonly step: number,
    readonly phase: Phase,
    readonly shards: readonly Shard[],
    readonly gradLength: number,
    /** A float64 accumulator of `gradLength` to reuse (its contents are overwritten). */
    acc?: Float64Array,
  ) {
    for (const s of shards) this.byStart.set(s.start, s);
    this.ordered = [...shards].sort((a, b) => a.start - b.start);
    if (acc !== undefined && acc.length !== gradLength) throw new RangeError(`accumulator has ${acc.length} elements, expected ${gradLength}`);
    this.acc = acc ?? new Float64Array(gradLength);
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
    if (!Number.isFinite(r.lossSum + r.dRealSum + r.dFakeSum)) return { accepted: false, reason: 'non-finite' };
    const next = this.ordered[this.added];
    if (next !== undefined && next.start === r.start) {
      // The next shard in order: add it now, checking finiteness in the same pass.
      if (!this.add(r, this.added === 0)) {
        this.rebuild();
        return { accepted: false, reason: 'non-finite' };
      }
      this.added++;
      this.results.set(r.start, r);
      this.advance();
    } else {
      if (!allFinite(this.f32(r))) return { accepted: false, reason: 'non-finite' };
      this.results.set(r.start, r);
    }
    return { accepted: true, complete: this.complete };
  }

  /** The float64 sums, once every shard is in (the gradient sum is the reducer's accumulator). */
  sum(): PhaseSum {
    if (!this.complete) throw new Error(`phase ${this.phase} of step ${this.step} is missing ${this.missing().length} shard(s)`);
    this.advance();
    let batch = 0;
    let loss = 0;
    let dReal = 0;
    let dFake = 0;
    for (const s of this.ordered) {
      const r = this.results.get(s.start)!;
      batch += s.count;
      loss += r.lossSum;
      dReal += r.dRealSum;
      dFake += r.dFakeSum;
    }
    return { sum: this.acc, batch, loss, dReal, dFake };
  }

  /** The batch mean, once every shard is in. */
  mean(): PhaseMean {
    const { sum, batch, loss, dReal, dFake } = this.sum();
    const grad = new Float32Array(this.gradLength);
    for (let i = 0; i < grad.length; i++) grad[i] = sum[i]! / batch;
    return { grad, loss: loss / batch, dReal: dReal / batch, dFake: dFake / batch };
  }

  /** Adds every shard whose predecessors are all in. */
  private advance(): void {
    for (let s = this.ordered[this.added]; s !== undefined && this.results.has(s.start); s = this.ordered[this.added]) {
      this.add(this.results.get(s.start)!, this.added === 0);
      this.added++;
    }
  }

  /** Re-adds the shards added so far (after a shard turned out non-finite halfway through its add). */
  private rebuild(): void {
    if (this.added === 0) return;
    for (let k = 0; k < this.added; k++) this.add(this.results.get(this.ordered[k]!.start)!, k === 0);
  }

  /** The result's gradient as float32 (a decode into scratch for f16/bf16). */
  private f32(r: ResultMessage): Float32Array {
    const dtype: GradDtype = r.dtype ?? 'f32';
    if (dtype === 'f32') return r.grad as Float32Array;
    this.scratch ??= new Float32Array(this.gradLength);
    return dtype === 'f16' ? f16ToF32(r.grad as Uint16Array, this.scratch, r.scaleExp ?? 0) : bf16ToF32(r.grad as Uint16Array, this.scratch);
  }

  /** acc (=|+=) g; false when g holds a NaN or ±Inf. */
  private add(r: ResultMessage, first: boolean): boolean {
    const g = this.f32(r);
    const acc = this.acc;
    const n = acc.length;
    let ok = true;
    if (first) {
      for (let i = 0; i < n; i++) {
        const x = g[i]!;
        if (x - x !== 0) ok = false;
        acc[i] = x;
      }
    } else {
      for (let i = 0; i < n; i++) {
        const x = g[i]!;
        if (x - x !== 0) ok = false;
        acc[i] += x;
      }
    }
    return ok;
  }
}

function allFinite(a: Float32Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i]! - a[i]! !== 0) return false;
  return true;
}
