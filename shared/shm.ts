/**
 * Shared memory between the coordinator and the workers on its host: the bulk arrays of a step
 * (weights down, gradient totals up) through POSIX segments instead of sockets, while every control
 * message (assign, result header, versions) stays on the WebSocket, with its validation and close
 * codes. Both sides agree here on the segments' layout.
 *
 * Two kinds of segment, both made by the coordinator (mode 0600, under an unguessable name):
 *
 *   weights  one per run: per network two buffers, alternating by version, each a header (seq,
 *            version) and the float32 weights. Adam writes a version once; every same-host worker
 *            reads it.
 *   slot     one per same-host worker: the header of its last result and the result's payload (the
 *            exact total's words, or a lossy dtype's values), written by that worker only.
 *
 * Every header starts with a magic and a nonce the coordinator wrote: a worker proves that it mapped
 * the very segments offered (not one of the same name elsewhere) by echoing both nonces over its
 * WebSocket; only then are they used. A buffer is written between two seq updates (odd while
 * writing, the next even number when done): a reader that sees an odd seq, or a different seq
 * after reading than before, has a torn or stale copy and never uses it.
 *
 * Node cannot map memory itself: the coordinator's addon does (native/ganfleet_reduce.c); without
 * it shared memory is simply not offered and the sockets carry everything.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { loadReduceAddon } from './reduce-addon.js';
import { MANIFESTS, type NetName, NETS } from './model.js';
import { GRAD_DTYPES, type GradDtype } from './dtype.js';

/** Why shared memory cannot be used in this process ('' when it can). */
export function shmUnavailable(): string {
  if (process.platform !== 'linux') return `shared memory is only wired for Linux (this is ${process.platform})`;
  const a = loadReduceAddon();
  return a.addon === null ? `the coordinator addon is not available (${a.error})` : '';
}

const MAGIC_WEIGHTS = 0x57534647; // "GFSW"
const MAGIC_SLOT = 0x53534647; // "GFSS"
/** Bytes of a segment's header: magic, layout version, nonce. */
const HEADER = 64;
const NONCE = 16;
/** Bytes of a buffer's or slot's own header (seq, version or result fields), before its data. */
const BUFFER_HEADER = 64;

/** Where one network's two weight buffers live in the weights segment. */
function weightsLayout(): { bytes: number; at: Record<NetName, [number, number]> } {
  let at = HEADER;
  const out = {} as Record<NetName, [number, number]>;
  for (const net of NETS) {
    const size = BUFFER_HEADER + MANIFESTS[net].size * 4;
    out[net] = [at, at + size];
    at += 2 * size;
  }
  return { bytes: at, at: out };
}

/** A slot: the segment header, the result header at SLOT_HEADER, the payload at SLOT_DATA. */
const SLOT_HEADER = HEADER;
const SLOT_DATA = HEADER + 64;

/** A slot holds the largest result: an exact total whose every element needs its high word (12 bytes). */
export function slotBytes(): number {
  return SLOT_DATA + 12 * Math.max(MANIFESTS.gen.size, MANIFESTS.dis.size);
}

export const WEIGHTS_BYTES = weightsLayout().bytes;
export const SLOT_BYTES = slotBytes();

/** A segment's name: the coordinator's pid (so stale ones can be told from live ones) and 128 random bits. */
function segmentName(kind: 'w' | 's'): string {
  return `/ganfleet-${process.pid}-${kind}-${randomBytes(16).toString('hex')}`;
}

function addon() {
  const a = loadReduceAddon().addon;
  if (a === null) throw new Error(shmUnavailable());
  return a;
}

/** A mapped segment: its name, its bytes, and whether this side made it (and so removes it). */
export class Segment {
  private state: 'mapped' | 'removed' = 'mapped';

  private constructor(
    readonly name: string,
    readonly buffer: ArrayBuffer,
    readonly owner: boolean,
  ) {}

  /** Makes a new segment with its header (magic, nonce); the caller removes it. */
  static create(kind: 'weights' | 'slot'): Segment {
    const bytes = kind === 'weights' ? WEIGHTS_BYTES : SLOT_BYTES;
    const name = segmentName(kind === 'weights' ? 'w' : 's');
    const s = new Segment(name, addon().shmCreate(name, bytes), true);
    const h = new DataView(s.buffer);
    h.setUint32(0, kind === 'weights' ? MAGIC_WEIGHTS : MAGIC_SLOT, true);
    h.setUint32(4, 1, true);
    new Uint8Array(s.buffer, 8, NONCE).set(randomBytes(NONCE));
    return s;
  }

  /** Maps a segment the coordinator offered; throws naming what is wrong. */
  static open(kind: 'weights' | 'slot', name: string): Segment {
    if (!/^\/ganfleet-\d+-[ws]-[0-9a-f]{32}$/.test(name)) throw new Error(`"${name}" is not a ganfleet segment name`);
    const s = new Segment(name, addon().shmOpen(name, kind === 'weights' ? WEIGHTS_BYTES : SLOT_BYTES), false);
    const magic = new DataView(s.buffer).getUint32(0, true);
    if (magic !== (kind === 'weights' ? MAGIC_WEIGHTS : MAGIC_SLOT))
      throw new Error(`${name} is not a ganfleet ${kind} segment (magic ${magic.toString(16)})`);
    return s;
  }

  /** The nonce the coordinator wrote, hex. */
  get nonce(): string {
    return Buffer.from(this.buffer, 8, NONCE).toString('hex');
  }

  /** Removes the name (the owner does; mappings stay valid until collected). Idempotent. */
  remove(): void {
    if (this.state === 'removed') return;
    this.state = 'removed';
    if (this.owner) addon().shmUnlink(this.name);
  }
}

/** A buffer's header: seq at 0 (u32), a version at 4 (u32). */
function seqView(buffer: ArrayBuffer, at: number): Uint32Array {
  return new Uint32Array(buffer, at, 2);
}

/** The weights segment: two buffers per network, the one for version v at v % 2. */
export class WeightsSegment {
  private readonly at = weightsLayout().at;

  constructor(readonly segment: Segment) {}

  /** The float32 view to write version `version` of `net` into (between begin and end). */
  data(net: NetName, version: number): Float32Array {
    const at = this.at[net][version % 2];
    return new Float32Array(this.segment.buffer, at + BUFFER_HEADER, MANIFESTS[net].size);
  }

  /** Marks the buffer of `version` as being written (odd seq). */
  begin(net: NetName, version: number): void {
    const h = seqView(this.segment.buffer, this.at[net][version % 2]);
    h[0] = (h[0]! | 1) >>> 0;
  }

  /** Marks it complete: the next even seq, and its version. */
  end(net: NetName, version: number): void {
    const h = seqView(this.segment.buffer, this.at[net][version % 2]);
    h[1] = version;
    h[0] = (h[0]! + 1) >>> 0;
  }

  /**
   * Copies version `version` of `net` into `into` (a worker's own copy), or says why it cannot: a
   * buffer being written, or holding another version, or changed while it was copied.
   */
  read(net: NetName, version: number, into: Float32Array): '' | string {
    const h = seqView(this.segment.buffer, this.at[net][version % 2]);
    const seq = h[0]!;
    if (seq & 1) return 'being written';
    if (h[1] !== version) return `holds version ${h[1]}, not ${version}`;
    into.set(this.data(net, version));
    if (h[0] !== seq || h[1] !== version) return 'changed while it was read';
    return '';
  }
}

/** What a result header in a slot says. */
export interface SlotHeader {
  seq: number;
  step: number;
  phase: NetName;
  start: number;
  count: number;
  /** Bytes of the payload after the header. */
  bytes: number;
  /** Exact totals: how many elements need their high word. */
  exceptions: number;
  /** f16 values: their power-of-two scale (0 otherwise). */
  scaleExp: number;
  /** The payload's wire dtype. */
  dtype: GradDtype;
  lossSum: number;
  dRealSum: number;
  dFakeSum: number;
}

/** The result header's fields: their byte offsets from SLOT_HEADER. */
const F = {
  seq: 0,
  phase: 4,
  step: 8,
  start: 16,
  count: 20,
  bytes: 24,
  exceptions: 28,
  loss: 32,
  dReal: 40,
  dFake: 48,
  scale: 56,
  dtype: 60,
};

/** A worker's result slot. */
export class ResultSlot {
  private readonly v: DataView;

  constructor(readonly segment: Segment) {
    this.v = new DataView(segment.buffer, SLOT_HEADER, SLOT_DATA - SLOT_HEADER);
  }

  /** The payload area (after the headers). */
  payload(bytes: number): Uint8Array {
    if (!Number.isInteger(bytes) || bytes < 0 || bytes > SLOT_BYTES - SLOT_DATA)
      throw new RangeError(`a slot holds at most ${SLOT_BYTES - SLOT_DATA} bytes, not ${bytes}`);
    return new Uint8Array(this.segment.buffer, SLOT_DATA, bytes);
  }

  /** Worker: marks the slot as being written; returns the seq the finished result will carry. */
  begin(): number {
    const seq = (this.v.getUint32(F.seq, true) | 1) >>> 0;
    this.v.setUint32(F.seq, seq, true);
    return (seq + 1) >>> 0;
  }

  /** Worker: writes the header, then the even seq that marks the result complete. */
  end(h: Omit<SlotHeader, 'seq'>, seq: number): void {
    const v = this.v;
    v.setUint32(F.phase, h.phase === 'dis' ? 1 : 0, true);
    v.setFloat64(F.step, h.step, true);
    v.setUint32(F.start, h.start, true);
    v.setUint32(F.count, h.count, true);
    v.setUint32(F.bytes, h.bytes, true);
    v.setUint32(F.exceptions, h.exceptions, true);
    v.setFloat64(F.loss, h.lossSum, true);
    v.setFloat64(F.dReal, h.dRealSum, true);
    v.setFloat64(F.dFake, h.dFakeSum, true);
    v.setInt32(F.scale, h.scaleExp, true);
    v.setUint32(F.dtype, GRAD_DTYPES.indexOf(h.dtype), true);
    v.setUint32(F.seq, seq, true);
  }

  /** Coordinator: the complete result's header, or why there is none (being written, impossible sizes). */
  header(): SlotHeader | string {
    const v = this.v;
    const seq = v.getUint32(F.seq, true);
    if (seq & 1) return 'the slot is being written';
    const bytes = v.getUint32(F.bytes, true);
    if (bytes > SLOT_BYTES - SLOT_DATA) return `the slot claims ${bytes} bytes`;
    const dtype = GRAD_DTYPES[v.getUint32(F.dtype, true)];
    if (dtype === undefined) return 'the slot names no known dtype';
    return {
      seq,
      step: v.getFloat64(F.step, true),
      phase: v.getUint32(F.phase, true) === 1 ? 'dis' : 'gen',
      start: v.getUint32(F.start, true),
      count: v.getUint32(F.count, true),
      bytes,
      exceptions: v.getUint32(F.exceptions, true),
      lossSum: v.getFloat64(F.loss, true),
      dRealSum: v.getFloat64(F.dReal, true),
      dFakeSum: v.getFloat64(F.dFake, true),
      scaleExp: v.getInt32(F.scale, true),
      dtype,
    };
  }

  /** Coordinator: whether the seq is still `seq` (no write began while the payload was read). */
  unchanged(seq: number): boolean {
    return this.v.getUint32(F.seq, true) === seq;
  }
}

/**
 * Removes segments that coordinators now dead left behind in /dev/shm (their pid is in the name).
 * Returns the names removed. Only this user's segments can be removed, others are left.
 */
export function removeStaleSegments(dir = '/dev/shm'): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return removed;
  }
  for (const n of names) {
    const m = /^ganfleet-(\d+)-[ws]-[0-9a-f]{32}$/.exec(n);
    if (!m || alive(Number(m[1]))) continue;
    try {
      if (statSync(`${dir}/${n}`).uid !== process.getuid?.()) continue;
      if (addon().shmUnlink(`/${n}`)) removed.push(n);
    } catch {
      // Gone meanwhile, or not ours.
    }
  }
  return removed;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
