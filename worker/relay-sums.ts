/**
 * What a relay keeps: the contributions to its slice (exact integer totals, shared/fixed.ts), by
 * phase, part (start, count, worker) and piece, until the coordinator says which parts to add
 * (`flush`). Pure (no sockets): the relay server feeds it and sends what it returns.
 *
 * A part counts once whoever sent it twice; a flush answers piece by piece, each as soon as its
 * last part comes (workers send their pieces in order, so the first pieces go up while later ones
 * are still arriving). Adding integers, the total is the same bits in any order.
 */
import { addAllWires, compact, type FixedKernels, fixedKernels, FixedSum, type FixedWire } from '../shared/fixed.js';
import type { ContributionMessage, Phase, SliceTotalMessage } from '../shared/protocol.js';

/** One slice of the phases this relay sums. */
export interface SliceDuty {
  plan: number;
  slice: number;
  /** The bounds of the slice's pieces per network (one more element index than pieces). */
  bounds: Record<Phase, Int32Array>;
}

interface Pending {
  step: number;
  phase: Phase;
  parts: Int32Array;
  /** Pieces already summed and sent. */
  sent: boolean[];
}

/** A finished piece total, for the coordinator: a `slice-total` frame's contents. */
export type SliceReady = Omit<SliceTotalMessage, 't'>;

/** One piece of one worker's shard total: a `contrib` frame's contents. */
export type Contribution = Omit<ContributionMessage, 't'>;

const key = (step: number, phase: Phase) => `${step}/${phase}`;
const partKey = (start: number, count: number, worker: number) => `${start}:${count}:${worker}`;

export class RelaySums {
  private duty: SliceDuty | undefined;
  /** "step/phase" → part → its contribution to each piece. */
  private readonly parts = new Map<string, Map<string, Array<FixedWire | undefined>>>();
  private pending: Pending | undefined;
  /** Contributions for plans this relay has not been told of yet, by plan. */
  private readonly early = new Map<number, Contribution[]>();

  constructor(private readonly kernels: FixedKernels = fixedKernels) {}

  /**
   * The slice this relay sums under a new plan (undefined: none); contributions of older plans go,
   * those that came early for this one (before the coordinator's plan message) are taken now.
   */
  setDuty(duty: SliceDuty | undefined): void {
    this.duty = duty;
    this.parts.clear();
    this.pending = undefined;
    for (const plan of [...this.early.keys()]) {
      if (plan > (duty?.plan ?? 0)) continue;
      const early = this.early.get(plan)!;
      this.early.delete(plan);
      if (plan === duty?.plan) for (const c of early) this.add(c);
    }
  }

  /**
   * A new run: nothing held. Contributions that came early stay: a peer of the new run may reach
   * this relay before the coordinator's welcome does (it carries both networks' weights), and they
   * are taken only if their plan becomes this relay's.
   */
  reset(): void {
    this.setDuty(undefined);
  }

  get current(): SliceDuty | undefined {
    return this.duty;
  }

  /**
   * A contribution to one piece; '' when taken, or why it was refused (another plan or slice, a
   * wrong length). May complete pieces of a waiting flush (then returned in `ready`).
   */
  add(c: Contribution): { refused: string; ready: SliceReady[] } {
    const d = this.duty;
    // Another plan than this relay's: its plan message may still be on the way, or a new run's welcome
    // (which carries both networks, megabytes behind on a slow link) has not reached this relay yet
    // and its plan ids start elsewhere: lower as often as higher. Kept until a plan says.
    if (c.plan !== d?.plan) {
      // At most two plans wait; a third pushes out the one that came first.
      if (this.early.size >= 2 && !this.early.has(c.plan)) this.early.delete(this.early.keys().next().value!);
      this.early.set(c.plan, [...(this.early.get(c.plan) ?? []), c]);
      return { refused: '', ready: [] };
    }
    if (c.slice !== d.slice) return { refused: `slice ${c.slice} is not this relay's (${d.slice})`, ready: [] };
    const b = d.bounds[c.phase];
    const want = b[c.piece + 1]! - b[c.piece]!;
    if (c.total.low.length !== want)
      return { refused: `${c.total.low.length} values for a piece of ${want}`, ready: [] };
    const k = key(c.step, c.phase);
    // Only the phase in progress is kept: contributions of a phase already flushed are late copies.
    for (const old of this.parts.keys()) if (old !== k && this.isOlder(old, c.step, c.phase)) this.parts.delete(old);
    const m = this.parts.get(k) ?? new Map<string, Array<FixedWire | undefined>>();
    this.parts.set(k, m);
    const pk = partKey(c.start, c.count, c.worker);
    const pieces = m.get(pk) ?? new Array<FixedWire | undefined>(b.length - 1).fill(undefined);
    m.set(pk, pieces);
    pieces[c.piece] ??= c.total;
    return { refused: '', ready: this.tryFlush() };
  }

  /** The coordinator's flush; the pieces whose every part is here at once, the others as they come. */
  flush(f: { plan: number; slice: number; step: number; phase: Phase; parts: Int32Array }): {
    refused: string;
    ready: SliceReady[];
  } {
    const d = this.duty;
    if (d === undefined || f.plan !== d.plan || f.slice !== d.slice)
      return { refused: `flush for plan ${f.plan} slice ${f.slice}: not this relay's`, ready: [] };
    this.pending = {
      step: f.step,
      phase: f.phase,
      parts: f.parts,
      sent: new Array(d.bounds[f.phase].length - 1).fill(false),
    };
    return { refused: '', ready: this.tryFlush() };
  }

  /** Parts a waiting flush still lacks a piece of (for the log when it waits long). */
  missing(): string[] {
    const p = this.pending;
    if (p === undefined) return [];
    const m = this.parts.get(key(p.step, p.phase));
    const out: string[] = [];
    for (let i = 0; i < p.parts.length; i += 3) {
      const pk = partKey(p.parts[i]!, p.parts[i + 1]!, p.parts[i + 2]!);
      const pieces = m?.get(pk);
      if (pieces === undefined || pieces.some((w, j) => w === undefined && !p.sent[j])) out.push(pk);
    }
    return out;
  }

  /** Sums every piece of the waiting flush whose parts are all here. */
  private tryFlush(): SliceReady[] {
    const p = this.pending;
    const d = this.duty;
    if (p === undefined || d === undefined) return [];
    const m = this.parts.get(key(p.step, p.phase));
    if (m === undefined) return [];
    const b = d.bounds[p.phase];
    const ready: SliceReady[] = [];
    for (let j = 0; j < p.sent.length; j++) {
      if (p.sent[j]) continue;
      const wires: FixedWire[] = [];
      for (let i = 0; i < p.parts.length; i += 3) {
        const w = m.get(partKey(p.parts[i]!, p.parts[i + 1]!, p.parts[i + 2]!))?.[j];
        if (w === undefined) break;
        wires.push(w);
      }
      if (wires.length * 3 !== p.parts.length) continue;
      const sum = new FixedSum(b[j + 1]! - b[j]!);
      addAllWires(this.kernels, sum, wires);
      p.sent[j] = true;
      const total = compact(sum, this.kernels);
      ready.push({
        plan: d.plan,
        step: p.step,
        phase: p.phase,
        slice: d.slice,
        piece: j,
        parts: p.parts,
        start: b[j]!,
        total,
      });
    }
    if (p.sent.every((x) => x)) {
      this.pending = undefined;
      this.parts.delete(key(p.step, p.phase));
    }
    return ready;
  }

  /** Whether phase "step/phase" `k` comes before (step, phase): D then G within a step. */
  private isOlder(k: string, step: number, phase: Phase): boolean {
    const [s, p] = k.split('/') as [string, Phase];
    const order = (x: number, y: Phase) => 2 * x + (y === 'dis' ? 0 : 1);
    return order(Number(s), p) < order(step, phase);
  }
}

/** Elements [a, b) of a total, as a total of their own (indices from a). */
export function sliceOf(w: FixedWire, a: number, b: number): FixedWire {
  let lo = 0;
  while (lo < w.exIndex.length && w.exIndex[lo]! < a) lo++;
  let hi = lo;
  while (hi < w.exIndex.length && w.exIndex[hi]! < b) hi++;
  const exIndex = w.exIndex.slice(lo, hi);
  for (let k = 0; k < exIndex.length; k++) exIndex[k]! -= a;
  return { low: w.low.subarray(a, b), exIndex, exHigh: w.exHigh.subarray(lo, hi) };
}
