/**
 * What a relay keeps: the contributions to its slice (exact integer totals, shared/fixed.ts), by
 * phase and by part (start, count, worker), until the coordinator says which parts to add
 * (`flush`). Pure (no sockets): the relay server feeds it and sends what it returns.
 *
 * A part counts once whoever sent it twice; a flush waits for parts still in flight, and answers
 * as soon as the last one comes. Adding integers, the total is the same bits in any order.
 */
import { compact, type FixedKernels, fixedKernels, FixedSum, type FixedWire } from '../shared/fixed.js';
import type { Phase } from '../shared/protocol.js';

/** One slice of the phases this relay sums. */
export interface SliceDuty {
  plan: number;
  slice: number;
  /** The slice's element range per network. */
  range: Record<Phase, [number, number]>;
}

interface Pending {
  step: number;
  phase: Phase;
  parts: Int32Array;
}

/** A finished slice total, for the coordinator. */
export interface SliceReady {
  plan: number;
  step: number;
  phase: Phase;
  slice: number;
  parts: Int32Array;
  start: number;
  total: FixedWire;
}

const key = (step: number, phase: Phase) => `${step}/${phase}`;
const partKey = (start: number, count: number, worker: number) => `${start}:${count}:${worker}`;

export class RelaySums {
  private duty: SliceDuty | undefined;
  /** "step/phase" → part → contribution. */
  private readonly parts = new Map<string, Map<string, FixedWire>>();
  private pending: Pending | undefined;

  constructor(private readonly kernels: FixedKernels = fixedKernels) {}

  /** The slice this relay sums under a new plan (undefined: none); contributions of older plans go. */
  setDuty(duty: SliceDuty | undefined): void {
    this.duty = duty;
    this.parts.clear();
    this.pending = undefined;
  }

  get current(): SliceDuty | undefined {
    return this.duty;
  }

  /**
   * A contribution; '' when taken, or why it was refused (another plan or slice, a wrong length).
   * May complete a waiting flush (then returned in `ready`).
   */
  add(c: {
    plan: number;
    slice: number;
    step: number;
    phase: Phase;
    start: number;
    count: number;
    worker: number;
    total: FixedWire;
  }): { refused: string; ready?: SliceReady } {
    const d = this.duty;
    if (d === undefined || c.plan !== d.plan)
      return { refused: `plan ${c.plan} is not this relay's (${d?.plan ?? 'none'})` };
    if (c.slice !== d.slice) return { refused: `slice ${c.slice} is not this relay's (${d.slice})` };
    const [a, b] = d.range[c.phase];
    if (c.total.low.length !== b - a) return { refused: `${c.total.low.length} values for a slice of ${b - a}` };
    const k = key(c.step, c.phase);
    // Only the phase in progress is kept: contributions of a phase already flushed are late copies.
    for (const old of this.parts.keys()) if (old !== k && this.isOlder(old, c.step, c.phase)) this.parts.delete(old);
    const m = this.parts.get(k) ?? new Map<string, FixedWire>();
    this.parts.set(k, m);
    const pk = partKey(c.start, c.count, c.worker);
    if (!m.has(pk)) m.set(pk, c.total);
    return { refused: '', ready: this.tryFlush() };
  }

  /** The coordinator's flush; the total at once if every part is here, else when the last comes. */
  flush(f: { plan: number; slice: number; step: number; phase: Phase; parts: Int32Array }): {
    refused: string;
    ready?: SliceReady;
  } {
    const d = this.duty;
    if (d === undefined || f.plan !== d.plan || f.slice !== d.slice)
      return { refused: `flush for plan ${f.plan} slice ${f.slice}: not this relay's` };
    this.pending = { step: f.step, phase: f.phase, parts: f.parts };
    return { refused: '', ready: this.tryFlush() };
  }

  /** Parts a waiting flush still lacks (for the log when it waits long). */
  missing(): string[] {
    const p = this.pending;
    if (p === undefined) return [];
    const m = this.parts.get(key(p.step, p.phase));
    const out: string[] = [];
    for (let i = 0; i < p.parts.length; i += 3) {
      const pk = partKey(p.parts[i]!, p.parts[i + 1]!, p.parts[i + 2]!);
      if (!m?.has(pk)) out.push(pk);
    }
    return out;
  }

  private tryFlush(): SliceReady | undefined {
    const p = this.pending;
    const d = this.duty;
    if (p === undefined || d === undefined) return undefined;
    const m = this.parts.get(key(p.step, p.phase));
    if (m === undefined) return undefined;
    const wires: FixedWire[] = [];
    for (let i = 0; i < p.parts.length; i += 3) {
      const w = m.get(partKey(p.parts[i]!, p.parts[i + 1]!, p.parts[i + 2]!));
      if (w === undefined) return undefined;
      wires.push(w);
    }
    const [a, b] = d.range[p.phase];
    const sum = new FixedSum(b - a);
    for (const w of wires) this.kernels.addWire(sum, w, false);
    this.pending = undefined;
    this.parts.delete(key(p.step, p.phase));
    return {
      plan: d.plan,
      step: p.step,
      phase: p.phase,
      slice: d.slice,
      parts: p.parts,
      start: a,
      total: compact(sum, this.kernels),
    };
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
