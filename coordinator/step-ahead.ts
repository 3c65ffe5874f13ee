/**
 * Adam on a network piece by piece, while a phase is still in progress: under a relay plan of one
 * zone, a piece's sum is final as soon as its relay's total is in (every shard is in before relays
 * are flushed, and integers add the same in any order), so its new weights can go back down while
 * other pieces are still coming up. Elementwise Adam on a piece is the same arithmetic as on the
 * whole network, so the bits do not change.
 *
 * The phase may still be run again (a relay lost, a rescale): what the pieces overwrote is kept
 * until `commit`, and `rollback` puts it back, so that Adam never steps a piece twice.
 */
import { type FixedLayout, type FixedSum, fixedKernels, layoutRange } from '../shared/fixed.js';
import { adamStepFromSum, type AdamOptions, type AdamState } from './optimizer.js';

export class StepAhead {
  /** Elements stepped so far. */
  private stepped = 0;
  /** Each stepped piece's range and its params, m and v before the step. */
  private readonly undo: Array<{ a: number; params: Float32Array; m: Float32Array; v: Float32Array }> = [];
  /** Time spent in Adam (for the step's timings). */
  adamMs = 0;

  constructor(
    private readonly params: Float32Array,
    private readonly state: AdamState,
    private readonly opts: AdamOptions,
    /** The exact sum being formed (final over a piece once its total is in), its layout, and a float64 buffer. */
    private readonly acc: FixedSum,
    private readonly layout: FixedLayout,
    private readonly sum64: Float64Array,
    /** The phase's batch size (the mean's divisor). */
    private readonly divisor: number,
  ) {}

  /** Steps elements [a, b) (their sum is final); the new weights there, to send, and the old ones. */
  step(a: number, b: number): { next: Float32Array; previous: Float32Array } {
    const t0 = performance.now();
    const { params, state } = this;
    const previous = params.slice(a, b);
    this.undo.push({ a, params: previous, m: state.m.slice(a, b), v: state.v.slice(a, b) });
    const sum = this.sum64.subarray(a, b);
    fixedKernels.toFloat64(this.acc.view(a, b), layoutRange(this.layout, a, b), sum);
    // The state's step as it will be after this phase: bias corrections are those of the whole step.
    const piece: AdamState = { m: state.m.subarray(a, b), v: state.v.subarray(a, b), step: state.step };
    adamStepFromSum(params.subarray(a, b), sum, this.divisor, piece, this.opts);
    this.stepped += b - a;
    this.adamMs += performance.now() - t0;
    return { next: params.subarray(a, b), previous };
  }

  /** Every element was stepped: the network's Adam step is done. */
  get complete(): boolean {
    return this.stepped === this.params.length;
  }

  /** Whether any piece was stepped. */
  get started(): boolean {
    return this.stepped > 0;
  }

  /** The phase is done: the state counts the step, and nothing is kept to undo. */
  commit(): void {
    if (!this.complete) throw new Error(`step-ahead: ${this.stepped} of ${this.params.length} elements stepped`);
    this.state.step += 1;
    this.undo.length = 0;
  }

  /** The phase runs again: every stepped piece back as it was. */
  rollback(): void {
    for (const u of this.undo.splice(0)) {
      this.params.set(u.params, u.a);
      this.state.m.set(u.m, u.a);
      this.state.v.set(u.v, u.a);
    }
    this.stepped = 0;
  }
}
