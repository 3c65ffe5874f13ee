/**
 * The wire protocol between coordinator and workers: every message type, its encoding and its
 * validation live here, so both sides agree by construction.
 *
 * Frames are binary WebSocket messages holding one msgpack map. Float arrays travel as msgpack
 * `bin` (raw little-endian bytes, no per-element framing), so a frame is the payload plus a few
 * dozen bytes. Every decoded frame is validated before anything acts on it: an invalid one is a
 * `ProtocolError` whose close code ends that connection.
 *
 * One training step, star shape (W = any number of workers, each with whole micro-chunks of the batch):
 *
 *   coordinator                                   worker k
 *       |-- assign {step, phase:'dis', start, count, indices} -->|
 *       |                                          | z ← Philox(seed, step, dis, start…start+count)
 *       |                                          | per chunk: Σ ∇D over real (label 1) + G(z) (label 0),
 *       |                                          | as integers of a per-tensor quantum (exact mode)
 *       |<-- result {step, 'dis', grad Σ, loss Σ, D(x) Σ} ------|
 *       | add the integer totals (any order: same bits), ÷ batch, Adam(D)
 *       |== weights {net:'dis', version} (one buffer, every worker) ==>|
 *       |-- assign {step, phase:'gen', start, count} ------------>|
 *       |                                          | z ← Philox(seed, step, gen, …); Σ ∇G of BCE(D(G(z)),1)
 *       |<-- result {step, 'gen', grad Σ, loss Σ} ----------------|
 *       | add, ÷ batch, Adam(G)
 *       |== weights {net:'gen', version} =====================>|
 *
 * Slices shape: a plan names the relays; each worker sends relay i slice i of its total (in pieces),
 * the relay adds them and sends its slice's total up (`slice-total`), the coordinator runs Adam on the
 * slice and sends its weights to the relay (`weights-slice`), which passes them on to the others.
 *
 * A connection starts with hello → welcome (protocol version, manifest hash and dataset hash must
 * match; the welcome carries the run's config and both networks' weights).
 */
import { Packr } from 'msgpackr';
import { CloseCode } from './errors.js';
import { ProtocolError } from './errors.js';
import { MANIFESTS, type NetName } from './model.js';
import { GRAD_DTYPES, f16Scale, f32ToBf16, f32ToF16, type GradDtype, type LossyDtype } from './dtype.js';
import type { FixedWire } from './fixed.js';
import {
  laneBytes,
  lanesWithExceptions,
  packLanes,
  packWithExceptions,
  unpackLanes,
  unpackWithExceptions,
} from './lanes.js';
import { NORMALIZATIONS, type Normalization } from './pixels.js';
import { MAX_PIECES } from './slices.js';

/** Bumped on any incompatible change of the messages below. */
export const PROTOCOL_VERSION = 4;

export type Phase = NetName;

/** worker → coordinator: the first frame of every connection. */
export interface HelloMessage {
  t: 'hello';
  protocol: number;
  /** `manifestHash()` of the worker's model definition. */
  manifest: string;
  /** `MnistSet.hash` of the worker's local training data. */
  dataset: string;
  backend: string;
  device: string;
  /** Where this worker takes other workers' contributions as a relay (absent: a leaf). */
  relay?: { port: number; tls: boolean; host?: string };
  /** The rack or zone this worker is in: relays group the workers of one zone. */
  zone?: string;
}

/** What a worker must know of the run to compute its shards. */
export interface RunConfig {
  seed: number;
  normalize: Normalization;
  batchSize: number;
  /** How results carry their gradient sums: exact integers (see shared/fixed.ts) or a lossy float. */
  gradDtype: GradDtype;
  /** Exact: samples per chunk (shards are whole chunks but the batch's last). */
  chunk: number;
  /** Benchmarks: answer every shard after this many ms with deterministic gradients, no tfjs. */
  syntheticComputeMs?: number;
}

/** coordinator → worker: accepted; the run's config and the current weights of both networks. */
export interface WelcomeMessage {
  t: 'welcome';
  workerId: number;
  config: RunConfig;
  genVersion: number;
  gen: Float32Array;
  disVersion: number;
  dis: Float32Array;
  /** For a worker on the coordinator's host: shared-memory segments to use (shared/shm.ts). */
  shm?: { weights: string; slot: string };
}

/** coordinator → every worker: a network's new weights after an optimizer step. */
export interface WeightsMessage {
  t: 'weights';
  net: NetName;
  /** Number of optimizer steps applied to this network so far. */
  version: number;
  data: Float32Array;
}

/** coordinator → a worker using shared memory: version `version` of `net` is in the weights segment. */
export interface WeightsShmMessage {
  t: 'weights-shm';
  net: NetName;
  version: number;
}

/** coordinator → worker: compute one shard of one phase. */
export interface AssignMessage {
  t: 'assign';
  step: number;
  phase: Phase;
  /** Position of the shard's first sample in the step's global batch (keys its noise). */
  start: number;
  count: number;
  /** Dataset indices of the shard's real images (D phase only; empty in the G phase). */
  indices: Uint32Array;
  /** Weight versions the shard must be computed with (the worker checks it has them). */
  genVersion: number;
  disVersion: number;
  /** Exact: each tensor's shift (quantum 2^−s) for the phase's network; empty otherwise. */
  shifts: Int32Array;
  /** The relay plan the shard's total goes through (its slices to the plan's relays); 0: straight here. */
  plan: number;
}

/**
 * coordinator → the workers of a zone: relays sum slices of everyone's totals (shared/slices.ts).
 * Relay r sums slice r of both networks; a worker sends slice r of its totals to relay r.
 */
export interface PlanMessage {
  t: 'plan';
  id: number;
  /** In slice order: each relay's worker id and where to reach it. */
  relays: Array<{ worker: number; url: string }>;
}

/**
 * coordinator → a relay: the phase's shards are in; send the total of your slice over exactly
 * these parts (start, count, worker), flattened.
 */
export interface FlushMessage {
  t: 'flush';
  plan: number;
  step: number;
  phase: Phase;
  slice: number;
  parts: Int32Array;
}

/**
 * coordinator → a relay → the relay's peers: one piece of a network's new weights, whole (`data`) or
 * as each weight's step from version − 1 (`steps`: float32 bit patterns' difference, which every
 * worker turns back into the weights from the version it holds; shared/weight-steps.ts).
 */
export type WeightsSliceMessage = {
  t: 'weights-slice';
  /** The relay plan whose pieces these are (pieces of one plan tile the network). */
  plan: number;
  net: NetName;
  version: number;
  /** The piece's first element. */
  start: number;
} & ({ data: Float32Array; steps?: never } | { steps: Int32Array; data?: never });

/** A result's gradient sums (Σ of per-sample gradients, manifest order) as its wire dtype carries them. */
export type ResultGrad =
  /** Integers of each tensor's quantum (shared/fixed.ts), exact. */
  | { readonly dtype: 'exact'; readonly total: FixedWire }
  | { readonly dtype: 'f32'; readonly values: Float32Array }
  /** f16 holding Σ · 2^scaleExp. */
  | { readonly dtype: 'f16'; readonly values: Uint16Array; readonly scaleExp: number }
  | { readonly dtype: 'bf16'; readonly values: Uint16Array };

/** What identifies a shard's answer. */
export interface ShardId {
  step: number;
  phase: Phase;
  start: number;
  count: number;
}

/** worker → coordinator: the sums for one assigned shard. */
export interface ResultMessage extends ShardId {
  t: 'result';
  grad: ResultGrad;
  /** Σ loss, Σ D(real), Σ D(G(z)): exact: integers of 2^−STATS_SHIFT; lossy: floats. */
  lossSum: number;
  dRealSum: number;
  dFakeSum: number;
  /** Wall time the worker spent computing, for throughput-proportional sharding. */
  computeMs: number;
}

/** Why a worker could not produce a shard's sums. */
export const FAILURES = ['non-finite', 'overflow'] as const;
export type Failure = (typeof FAILURES)[number];

/**
 * worker → coordinator: the shard's sums could not be formed: a NaN/±Inf, or (exact) a chunk's
 * value beyond the tensor's quantum range, which the coordinator answers with a coarser quantum.
 */
export interface FailedMessage extends ShardId {
  t: 'failed';
  reason: Failure;
  /** The tensor (manifest index) where it happened. */
  tensor: number;
}

/** worker → coordinator: the answer to a shared-memory offer: the segments' nonces, or why not. */
export type ShmReply =
  | { t: 'shm'; ok: true; weightsNonce: string; slotNonce: string }
  | { t: 'shm'; ok: false; reason: string };

/** worker → coordinator: a shard's result is in the worker's slot, under `seq`. */
export interface ShmResult extends ShardId {
  t: 'shm-result';
  seq: number;
  computeMs: number;
}

/** worker → coordinator: a shard's sums went to the plan's relays as slices; its statistics. */
export interface RelayedMessage extends ShardId {
  t: 'relayed';
  plan: number;
  lossSum: number;
  dRealSum: number;
  dFakeSum: number;
  computeMs: number;
  /** Bytes this worker has moved with its peers so far, each way (for the bench's busiest link). */
  peerIn: number;
  peerOut: number;
}

/** relay → coordinator: the total of its slice over the parts it was told to flush. */
export interface SliceTotalMessage {
  t: 'slice-total';
  plan: number;
  step: number;
  phase: Phase;
  slice: number;
  /** Which of the slice's pieces (shared/slices.ts). */
  piece: number;
  /** The parts summed, as flushed (start, count, worker, flattened). */
  parts: Int32Array;
  /** The piece's first element. */
  start: number;
  total: FixedWire;
}

/** worker → relay: the first frame on a peer connection. */
export interface PeerHelloMessage {
  t: 'peer-hello';
  protocol: number;
  worker: number;
  plan: number;
}

/** worker → relay: piece `piece` of slice `slice` of a shard's exact total (indices from the piece's start). */
export interface ContributionMessage extends ShardId {
  t: 'contrib';
  plan: number;
  worker: number;
  slice: number;
  piece: number;
  total: FixedWire;
}

export type WorkerMessage =
  | HelloMessage
  | ResultMessage
  | FailedMessage
  | ShmReply
  | ShmResult
  | RelayedMessage
  | SliceTotalMessage;
export type CoordinatorMessage =
  | WelcomeMessage
  | WeightsMessage
  | WeightsShmMessage
  | AssignMessage
  | PlanMessage
  | FlushMessage
  | WeightsSliceMessage;
export type PeerMessage = PeerHelloMessage | ContributionMessage;
export type Message = WorkerMessage | CoordinatorMessage | PeerMessage;

/** Largest shard: bounds `count` and the indices array. */
export const MAX_BATCH = 65536;

/**
 * `maxPayload` for both sides' sockets: the largest legal frame plus room for the map's keys —
 * the welcome (both networks), or an exact result whose every element needs its high word too.
 * Anything bigger is refused by ws before it is buffered.
 */
export function maxPayload(): number {
  const welcome = (MANIFESTS.gen.size + MANIFESTS.dis.size) * 4;
  const exactResult = Math.max(MANIFESTS.gen.size, MANIFESTS.dis.size) * 12;
  return Math.max(welcome, exactResult) + MAX_BATCH * 4 + 64 * 1024;
}

const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true });

/**
 * Encodes a message into one binary frame. Float arrays go out as raw bytes. Weights and results
 * (the frames that carry a model-sized array) are laid out by `payloadFrame`, so that the array's
 * bytes start 8-byte aligned and the receiver can view them without a copy.
 */
export function encode(msg: Message, alloc?: (byteLength: number) => Buffer): Buffer {
  switch (msg.t) {
    case 'weights': {
      const { data, ...head } = msg;
      const { frame, payload } = payloadFrame(head, 'data', data.byteLength, alloc);
      payload.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      return frame;
    }
    case 'result': {
      const { grad, ...head } = msg;
      return resultFrame(head, grad);
    }
    case 'weights-slice': {
      const { data, steps, ...head } = msg;
      if (steps !== undefined) {
        const { lanes, exceptions } = lanesWithExceptions(steps);
        const size = 8 * exceptions + lanes * steps.length;
        const meta = { ...head, length: steps.length, lanes, exceptions };
        const { frame, payload } = payloadFrame(meta, 'steps', size, alloc);
        packWithExceptions(steps, lanes, exceptions, payload);
        return frame;
      }
      const { frame, payload } = payloadFrame(head, 'data', data.byteLength, alloc);
      payload.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      return frame;
    }
    case 'slice-total':
    case 'contrib': {
      const { total, ...head } = msg;
      return wireFrame({ ...head, length: total.low.length }, total);
    }
    case 'relayed':
    case 'plan':
    case 'flush':
    case 'peer-hello':
    case 'hello':
    case 'failed':
    case 'shm':
    case 'shm-result':
    case 'welcome':
    case 'weights-shm':
    case 'assign':
      return packr.pack(msg);
    default: {
      const never: never = msg;
      throw new Error(`unknown message ${JSON.stringify(never)}`);
    }
  }
}

/**
 * A weights frame whose payload is left for the caller to fill: the coordinator's Adam writes the
 * new weights straight into it, so broadcasting costs no separate copy.
 */
export function weightsFrame(
  net: NetName,
  version: number,
  length: number,
  alloc?: (byteLength: number) => Buffer,
): { frame: Buffer; data: Float32Array } {
  const { frame, payload } = payloadFrame({ t: 'weights', net, version }, 'data', length * 4, alloc);
  return { frame, data: new Float32Array(payload.buffer, payload.byteOffset, length) };
}

/** Bytes of a result's gradient payload. */
function gradBytes(g: ResultGrad): number {
  switch (g.dtype) {
    case 'exact':
      return 4 * g.total.low.length + 8 * g.total.exIndex.length;
    case 'f32':
      return 4 * g.values.length;
    case 'f16':
    case 'bf16':
      return 2 * g.values.length;
    default: {
      const never: never = g;
      throw new Error(`unknown dtype ${JSON.stringify(never)}`);
    }
  }
}

/**
 * A frame of `head` and an exact total as its payload, narrowed: exception indices and high words
 * first (aligned), then the low words in `lanes` bytes each (shared/fixed.ts laneBytes).
 */
function wireFrame(head: Record<string, unknown>, w: FixedWire): Buffer {
  const lanes = laneBytes(w.low);
  const k = w.exIndex.length;
  const { frame, payload } = payloadFrame({ ...head, exceptions: k, lanes }, 'grad', 8 * k + lanes * w.low.length);
  payload.set(new Uint8Array(w.exIndex.buffer, w.exIndex.byteOffset, w.exIndex.byteLength), 0);
  payload.set(new Uint8Array(w.exHigh.buffer, w.exHigh.byteOffset, w.exHigh.byteLength), 4 * k);
  packLanes(w.low, lanes, payload.subarray(8 * k));
  return frame;
}

function resultFrame(head: Omit<ResultMessage, 'grad'>, g: ResultGrad): Buffer {
  const extra =
    g.dtype === 'exact' ? { exceptions: g.total.exIndex.length } : g.dtype === 'f16' ? { scaleExp: g.scaleExp } : {};
  const { frame, payload } = payloadFrame({ ...head, dtype: g.dtype, ...extra }, 'grad', gradBytes(g));
  const put = (a: ArrayBufferView, at: number) => payload.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), at);
  if (g.dtype === 'exact') {
    put(g.total.low, 0);
    put(g.total.exIndex, g.total.low.byteLength);
    put(g.total.exHigh, g.total.low.byteLength + g.total.exIndex.byteLength);
  } else {
    put(g.values, 0);
  }
  return frame;
}

/**
 * A result frame for float32 gradient sums sent as a lossy `dtype`: converted straight into the
 * frame (one pass, no intermediate array). f16 sums are scaled by a power of two (see dtype.ts).
 */
export function encodeLossyResult(
  head: Omit<ResultMessage, 'grad' | 't'>,
  grad: Float32Array,
  dtype: LossyDtype,
): Buffer {
  const h = { t: 'result' as const, ...head };
  switch (dtype) {
    case 'f32':
      return resultFrame(h, { dtype, values: grad });
    case 'f16': {
      const scaleExp = f16Scale(grad);
      const { frame, payload } = payloadFrame({ ...h, dtype, scaleExp }, 'grad', grad.length * 2);
      f32ToF16(grad, new Uint16Array(payload.buffer, payload.byteOffset, grad.length), scaleExp);
      return frame;
    }
    case 'bf16': {
      const { frame, payload } = payloadFrame({ ...h, dtype }, 'grad', grad.length * 2);
      f32ToBf16(grad, new Uint16Array(payload.buffer, payload.byteOffset, grad.length));
      return frame;
    }
    default: {
      const never: never = dtype;
      throw new Error(`unknown dtype ${never}`);
    }
  }
}

/** Float32 gradient sums as a lossy dtype's values (a fresh array; frames convert in place instead). */
export function lossyGrad(grad: Float32Array, dtype: LossyDtype): ResultGrad {
  switch (dtype) {
    case 'f32':
      return { dtype, values: grad };
    case 'f16': {
      const scaleExp = f16Scale(grad);
      return { dtype, values: f32ToF16(grad, undefined, scaleExp), scaleExp };
    }
    case 'bf16':
      return { dtype, values: f32ToBf16(grad) };
    default: {
      const never: never = dtype;
      throw new Error(`unknown dtype ${never}`);
    }
  }
}

const FIXMAP = 0x80;
const MAP16 = 0xde;

/**
 * A msgpack map of `head`'s fields plus `key` → bin32 of `byteLength` bytes, the bin's bytes
 * starting at an offset ≡ 0 (mod 8) of a frame that owns its whole ArrayBuffer. A string field
 * `pad` (0–7 characters, ignored by the decoders) does the aligning. Returns the frame and the
 * payload's view, for the caller to fill. `alloc` may hand out a reused buffer (it must own its
 * whole ArrayBuffer and have exactly the length asked for).
 */
export function payloadFrame(
  head: Record<string, unknown>,
  key: string,
  byteLength: number,
  alloc: (byteLength: number) => Buffer = Buffer.allocUnsafeSlow,
): { frame: Buffer; payload: Uint8Array } {
  const tail = 1 + key.length + 5; // fixstr key, then 0xc6 + u32 length
  const base = packr.pack({ ...head, pad: '' }).length;
  const pad = (8 - ((base + tail) % 8)) % 8;
  const h = packr.pack({ ...head, pad: ' '.repeat(pad) });
  const keys = Object.keys(head).length + 1;
  if (key.length > 31) throw new Error('payloadFrame: key too long');
  const offset = h.length + tail;
  const frame = alloc(offset + byteLength);
  if (frame.length !== offset + byteLength || frame.byteOffset !== 0)
    throw new Error('payloadFrame: alloc must return a whole buffer of the length asked for');
  h.copy(frame, 0);
  // The map's entry count, one more for the payload (msgpackr writes a fixmap or a map16).
  if ((h[0]! & 0xf0) === FIXMAP && keys + 1 <= 15) frame[0] = FIXMAP | (keys + 1);
  else if (h[0] === MAP16 && h.readUInt16BE(1) === keys) frame.writeUInt16BE(keys + 1, 1);
  else throw new Error('payloadFrame: head must be a small map');
  let p = h.length;
  frame[p++] = 0xa0 | key.length;
  p += frame.write(key, p, 'latin1');
  frame[p++] = 0xc6;
  frame.writeUInt32BE(byteLength, p);
  return { frame, payload: new Uint8Array(frame.buffer, frame.byteOffset + offset, byteLength) };
}

function bad(message: string): ProtocolError {
  return new ProtocolError('ERR_BAD_FRAME', message, CloseCode.BAD_FRAME);
}

type Obj = Record<string, unknown>;

function field(o: Obj, key: string): unknown {
  return Object.hasOwn(o, key) ? o[key] : undefined;
}

function int(o: Obj, key: string, min: number, max: number): number {
  const v = field(o, key);
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    throw bad(`field "${key}" must be an integer in [${min}, ${max}]`);
  return v;
}

function finite(o: Obj, key: string): number {
  const v = field(o, key);
  if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(`field "${key}" must be a finite number`);
  return v;
}

function finiteIn(o: Obj, key: string, min: number, max: number): number {
  const v = finite(o, key);
  if (v < min || v > max) throw bad(`field "${key}" must be in [${min}, ${max}]`);
  return v;
}

function str(o: Obj, key: string, maxLen = 256): string {
  const v = field(o, key);
  if (typeof v !== 'string' || v.length > maxLen)
    throw bad(`field "${key}" must be a string of at most ${maxLen} characters`);
  return v;
}

function oneOf<T extends string>(o: Obj, key: string, values: readonly T[]): T {
  const v = field(o, key);
  if (typeof v !== 'string' || !(values as readonly string[]).includes(v))
    throw bad(`field "${key}" must be one of ${values.join(', ')}`);
  return v as T;
}

function bytes(o: Obj, key: string): Uint8Array {
  const v = field(o, key);
  if (!(v instanceof Uint8Array)) throw bad(`field "${key}" must be binary`);
  return v;
}

type TypedCtor<T> = { new (b: ArrayBufferLike, offset: number, length: number): T; BYTES_PER_ELEMENT: number };

/** A view of `length` elements at `at` of a binary field, copying only when the bytes are misaligned. */
function view<T>(b: Uint8Array, at: number, length: number, ctor: TypedCtor<T>): T {
  const offset = b.byteOffset + at;
  if (offset % ctor.BYTES_PER_ELEMENT === 0) return new ctor(b.buffer, offset, length);
  return new ctor(alignedCopy(b.subarray(at, at + length * ctor.BYTES_PER_ELEMENT)), 0, length);
}

/** A binary field of exactly `length` elements of `ctor`'s kind. */
function typed<T>(o: Obj, key: string, length: number, ctor: TypedCtor<T>, what: string): T {
  const b = bytes(o, key);
  const size = ctor.BYTES_PER_ELEMENT;
  if (b.byteLength !== length * size)
    throw bad(`field "${key}" has ${b.byteLength} bytes, expected ${length * size} (${length} ${what})`);
  return view(b, 0, length, ctor);
}

const f32 = (o: Obj, key: string, length: number) => typed(o, key, length, Float32Array, 'float32');
const u16 = (o: Obj, key: string, length: number) => typed(o, key, length, Uint16Array, '16-bit');
const u32 = (o: Obj, key: string, length: number) => typed(o, key, length, Uint32Array, 'uint32');

/** Exception indices must increase strictly below `n`. */
function increasing(exIndex: Uint32Array, n: number, key: string): void {
  for (let j = 0; j < exIndex.length; j++)
    if (exIndex[j]! >= n || (j > 0 && exIndex[j]! <= exIndex[j - 1]!))
      throw bad(`field "${key}": exception indices must increase strictly below ${n}`);
}

/** An exact total: `n` int32 values, then `exceptions` strictly increasing indices and their high words. */
function fixedWire(o: Obj, key: string, n: number): FixedWire {
  const k = int(o, 'exceptions', 0, n);
  const b = bytes(o, key);
  if (b.byteLength !== 4 * n + 8 * k)
    throw bad(`field "${key}" has ${b.byteLength} bytes, expected ${4 * n + 8 * k} (${n} values, ${k} exceptions)`);
  const exIndex = view(b, 4 * n, k, Uint32Array);
  increasing(exIndex, n, key);
  return { low: view(b, 0, n, Int32Array), exIndex, exHigh: view(b, 4 * n + 4 * k, k, Int32Array) };
}

/** A narrowed exact total (wireFrame): `n` values in `lanes` bytes each, after the exceptions. */
function narrowWire(o: Obj, key: string, n: number): FixedWire {
  const k = int(o, 'exceptions', 0, n);
  const lanes = int(o, 'lanes', 1, 4);
  const b = bytes(o, key);
  const want = 8 * k + lanes * n;
  if (b.byteLength !== want)
    throw bad(`field "${key}" has ${b.byteLength} bytes, expected ${want} (${n} values of ${lanes}, ${k} exceptions)`);
  const exIndex = view(b, 0, k, Uint32Array);
  increasing(exIndex, n, key);
  const low = lanes === 4 ? view(b, 8 * k, n, Int32Array) : unpackLanes(b.subarray(8 * k), lanes, n);
  return { low, exIndex, exHigh: view(b, 4 * k, k, Int32Array) };
}

/** A result's gradient sums for a network of `size` parameters, by its wire dtype. */
function resultGrad(o: Obj, size: number): ResultGrad {
  const dtype = oneOf(o, 'dtype', GRAD_DTYPES);
  switch (dtype) {
    case 'exact':
      return { dtype, total: fixedWire(o, 'grad', size) };
    case 'f32':
      return { dtype, values: f32(o, 'grad', size) };
    case 'f16':
      return { dtype, values: u16(o, 'grad', size), scaleExp: int(o, 'scaleExp', -64, 64) };
    case 'bf16':
      return { dtype, values: u16(o, 'grad', size) };
    default: {
      const never: never = dtype;
      throw bad(`unknown dtype ${never}`);
    }
  }
}

/** A statistic: an integer of 2^−STATS_SHIFT for exact results (so that sums stay exact), else any finite number. */
function stat(o: Obj, key: string, exact: boolean): number {
  const v = finite(o, key);
  if (exact && !Number.isSafeInteger(v)) throw bad(`field "${key}" must be an integer below 2^53 (exact results)`);
  return v;
}

/** Most relays of one zone's plan. */
export const MAX_RELAYS = 256;

/** A list of (start, count, worker) triples: the parts a slice total covers. */
function parts(o: Obj): Int32Array {
  const b = bytes(o, 'parts');
  if (b.byteLength % 12 !== 0 || b.byteLength === 0 || b.byteLength > 12 * MAX_BATCH)
    throw bad('field "parts" must hold (start, count, worker) triples of int32');
  const p = view(b, 0, b.byteLength / 4, Int32Array);
  for (let i = 0; i < p.length; i += 3)
    if (p[i]! < 0 || p[i]! > MAX_BATCH || p[i + 1]! < 1 || p[i + 1]! > MAX_BATCH || p[i + 2]! < 0)
      throw bad('field "parts" holds an impossible part');
  return p;
}

function weightsSlice(o: Obj): WeightsSliceMessage {
  const net = oneOf(o, 'net', NET_NAMES);
  const size = MANIFESTS[net].size;
  const start = int(o, 'start', 0, size - 1);
  const head = {
    t: 'weights-slice',
    plan: int(o, 'plan', 1, U32),
    net,
    version: int(o, 'version', 0, Number.MAX_SAFE_INTEGER),
    start,
  } as const;
  if (field(o, 'steps') !== undefined) {
    const n = int(o, 'length', 1, size - start);
    const lanes = int(o, 'lanes', 1, 4);
    const k = int(o, 'exceptions', 0, n);
    const b = bytes(o, 'steps');
    if (b.byteLength !== 8 * k + lanes * n)
      throw bad(
        `field "steps" has ${b.byteLength} bytes, expected ${8 * k + lanes * n} (${n} of ${lanes}, ${k} exceptions)`,
      );
    try {
      return { ...head, steps: unpackWithExceptions(b, lanes, k, n) };
    } catch (err) {
      throw bad(`field "steps": ${(err as Error).message}`);
    }
  }
  const b = bytes(o, 'data');
  if (b.byteLength % 4 !== 0 || b.byteLength === 0 || start + b.byteLength / 4 > size)
    throw bad(`field "data" must hold float32 weights within ${net}'s ${size}`);
  return { ...head, data: view(b, 0, b.byteLength / 4, Float32Array) };
}

/** Decodes and validates a frame a relay receives from another worker. */
export function decodePeerMessage(frame: Uint8Array): PeerMessage {
  const o = decodeObject(frame);
  const t = field(o, 't');
  switch (t) {
    case 'peer-hello':
      return {
        t,
        protocol: int(o, 'protocol', 0, U32),
        worker: int(o, 'worker', 0, U32),
        plan: int(o, 'plan', 1, U32),
      };
    case 'contrib': {
      const id = shardId(o);
      return {
        t,
        ...id,
        plan: int(o, 'plan', 1, U32),
        worker: int(o, 'worker', 0, U32),
        slice: int(o, 'slice', 0, MAX_RELAYS - 1),
        piece: int(o, 'piece', 0, MAX_PIECES - 1),
        total: narrowWire(o, 'grad', int(o, 'length', 1, MANIFESTS[id.phase].size)),
      };
    }
    default:
      throw bad(`unknown message type ${JSON.stringify(t)?.slice(0, 40)} from a worker`);
  }
}

/** Decodes and validates a frame a worker receives from a relay: only weight slices come that way. */
export function decodeRelayMessage(frame: Uint8Array): WeightsSliceMessage {
  const o = decodeObject(frame);
  if (field(o, 't') !== 'weights-slice')
    throw bad(`unknown message type ${JSON.stringify(field(o, 't'))?.slice(0, 40)} from a relay`);
  return weightsSlice(o);
}

/** Where a worker takes contributions as a relay. */
function relayOffer(o: Obj): { port: number; tls: boolean; host?: string } {
  const v = field(o, 'relay');
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad('field "relay" must be a map');
  const r = v as Obj;
  const tls = field(r, 'tls');
  if (typeof tls !== 'boolean') throw bad('field "tls" must be a boolean');
  const host = field(r, 'host') === undefined ? {} : { host: str(r, 'host', 253) };
  if (host.host !== undefined && !/^[A-Za-z0-9.:[\]-]+$/.test(host.host))
    throw bad('field "host" must be a host name or address');
  return { port: int(r, 'port', 1, 65535), tls, ...host };
}

function zoneName(o: Obj): string {
  const z = str(o, 'zone', 64);
  if (!/^[A-Za-z0-9._-]+$/.test(z)) throw bad('field "zone" must be letters, digits, ".", "_" or "-"');
  return z;
}

function shmOffer(o: Obj): { weights: string; slot: string } {
  const v = field(o, 'shm');
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad('field "shm" must be a map');
  return { weights: str(v as Obj, 'weights', 100), slot: str(v as Obj, 'slot', 100) };
}

function shardId(o: Obj): ShardId {
  return {
    step: int(o, 'step', 0, Number.MAX_SAFE_INTEGER),
    phase: oneOf(o, 'phase', NET_NAMES),
    start: int(o, 'start', 0, MAX_BATCH),
    count: int(o, 'count', 1, MAX_BATCH),
  };
}

/** A fresh, 4-byte-aligned copy (Buffer#slice would return a view, not a copy). */
function alignedCopy(b: Uint8Array): ArrayBuffer {
  const copy = new Uint8Array(b.byteLength);
  copy.set(b);
  return copy.buffer;
}

const U32 = 0xffffffff;
const NET_NAMES: readonly NetName[] = ['gen', 'dis'];

function decodeObject(frame: Uint8Array): Obj {
  let v: unknown;
  try {
    v = packr.unpack(frame);
  } catch (err) {
    throw bad(`frame is not valid msgpack (${(err as Error).message.slice(0, 100)})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array)
    throw bad('frame is not a msgpack map');
  return v as Obj;
}

/** Decodes and validates a frame received by the coordinator. */
export function decodeWorkerMessage(frame: Uint8Array): WorkerMessage {
  const o = decodeObject(frame);
  const t = field(o, 't');
  switch (t) {
    case 'hello':
      return {
        t,
        protocol: int(o, 'protocol', 0, U32),
        manifest: str(o, 'manifest', 128),
        dataset: str(o, 'dataset', 128),
        backend: str(o, 'backend', 64),
        device: str(o, 'device', 128),
        ...(field(o, 'relay') === undefined ? {} : { relay: relayOffer(o) }),
        ...(field(o, 'zone') === undefined ? {} : { zone: zoneName(o) }),
      };
    case 'result': {
      const id = shardId(o);
      const grad = resultGrad(o, MANIFESTS[id.phase].size);
      const exact = grad.dtype === 'exact';
      return {
        t,
        ...id,
        grad,
        lossSum: stat(o, 'lossSum', exact),
        dRealSum: stat(o, 'dRealSum', exact),
        dFakeSum: stat(o, 'dFakeSum', exact),
        computeMs: finite(o, 'computeMs'),
      };
    }
    case 'failed': {
      const id = shardId(o);
      return {
        t,
        ...id,
        reason: oneOf(o, 'reason', FAILURES),
        tensor: int(o, 'tensor', 0, MANIFESTS[id.phase].params.length - 1),
      };
    }
    case 'shm': {
      if (field(o, 'ok') === true)
        return { t, ok: true, weightsNonce: str(o, 'weightsNonce', 64), slotNonce: str(o, 'slotNonce', 64) };
      if (field(o, 'ok') === false) return { t, ok: false, reason: str(o, 'reason', 300) };
      throw bad('field "ok" must be a boolean');
    }
    case 'shm-result':
      return { t, ...shardId(o), seq: int(o, 'seq', 0, U32), computeMs: finite(o, 'computeMs') };
    case 'relayed':
      return {
        t,
        ...shardId(o),
        plan: int(o, 'plan', 1, U32),
        lossSum: stat(o, 'lossSum', true),
        dRealSum: stat(o, 'dRealSum', true),
        dFakeSum: stat(o, 'dFakeSum', true),
        computeMs: finite(o, 'computeMs'),
        peerIn: int(o, 'peerIn', 0, Number.MAX_SAFE_INTEGER),
        peerOut: int(o, 'peerOut', 0, Number.MAX_SAFE_INTEGER),
      };
    case 'slice-total': {
      const phase = oneOf(o, 'phase', NET_NAMES);
      return {
        t,
        plan: int(o, 'plan', 1, U32),
        step: int(o, 'step', 0, Number.MAX_SAFE_INTEGER),
        phase,
        slice: int(o, 'slice', 0, MAX_RELAYS - 1),
        piece: int(o, 'piece', 0, MAX_PIECES - 1),
        parts: parts(o),
        start: int(o, 'start', 0, MANIFESTS[phase].size - 1),
        total: narrowWire(o, 'grad', int(o, 'length', 1, MANIFESTS[phase].size)),
      };
    }
    default:
      throw bad(`unknown message type ${JSON.stringify(t)?.slice(0, 40)} from a worker`);
  }
}

/** Decodes and validates a frame received by a worker. */
export function decodeCoordinatorMessage(frame: Uint8Array): CoordinatorMessage {
  const o = decodeObject(frame);
  const t = field(o, 't');
  switch (t) {
    case 'welcome': {
      const c = field(o, 'config');
      if (typeof c !== 'object' || c === null || Array.isArray(c)) throw bad('field "config" must be a map');
      const config = c as Obj;
      return {
        t,
        workerId: int(o, 'workerId', 0, U32),
        config: {
          seed: int(config, 'seed', 0, U32),
          normalize: oneOf(config, 'normalize', NORMALIZATIONS),
          batchSize: int(config, 'batchSize', 1, MAX_BATCH),
          gradDtype: oneOf(config, 'gradDtype', GRAD_DTYPES),
          chunk: int(config, 'chunk', 1, MAX_BATCH),
          ...(field(config, 'syntheticComputeMs') === undefined
            ? {}
            : { syntheticComputeMs: finiteIn(config, 'syntheticComputeMs', 0, 600_000) }),
        },
        genVersion: int(o, 'genVersion', 0, Number.MAX_SAFE_INTEGER),
        gen: f32(o, 'gen', MANIFESTS.gen.size),
        disVersion: int(o, 'disVersion', 0, Number.MAX_SAFE_INTEGER),
        dis: f32(o, 'dis', MANIFESTS.dis.size),
        ...(field(o, 'shm') === undefined ? {} : { shm: shmOffer(o) }),
      };
    }
    case 'weights-shm':
      return { t, net: oneOf(o, 'net', NET_NAMES), version: int(o, 'version', 0, Number.MAX_SAFE_INTEGER) };
    case 'weights-slice':
      return weightsSlice(o);
    case 'plan': {
      const relays = field(o, 'relays');
      if (!Array.isArray(relays) || relays.length === 0 || relays.length > MAX_RELAYS)
        throw bad(`field "relays" must be a list of 1 to ${MAX_RELAYS} relays`);
      return {
        t,
        id: int(o, 'id', 1, U32),
        relays: relays.map((r) => {
          if (typeof r !== 'object' || r === null) throw bad('a relay must be a map');
          const url = str(r as Obj, 'url', 300);
          if (!/^wss?:\/\/[^/]+$/.test(url)) throw bad(`relay url "${url.slice(0, 60)}" is not ws(s)://host:port`);
          return { worker: int(r as Obj, 'worker', 0, U32), url };
        }),
      };
    }
    case 'flush':
      return {
        t,
        plan: int(o, 'plan', 1, U32),
        step: int(o, 'step', 0, Number.MAX_SAFE_INTEGER),
        phase: oneOf(o, 'phase', NET_NAMES),
        slice: int(o, 'slice', 0, MAX_RELAYS - 1),
        parts: parts(o),
      };
    case 'weights': {
      const net = oneOf(o, 'net', NET_NAMES);
      return {
        t,
        net,
        version: int(o, 'version', 0, Number.MAX_SAFE_INTEGER),
        data: f32(o, 'data', MANIFESTS[net].size),
      };
    }
    case 'assign': {
      const { step, phase, start, count } = shardId(o);
      const shifts = bytes(o, 'shifts');
      const tensors = MANIFESTS[phase].params.length;
      return {
        t,
        step,
        phase,
        start,
        count,
        indices: u32(o, 'indices', phase === 'dis' ? count : 0),
        genVersion: int(o, 'genVersion', 0, Number.MAX_SAFE_INTEGER),
        disVersion: int(o, 'disVersion', 0, Number.MAX_SAFE_INTEGER),
        shifts: typed(o, 'shifts', shifts.byteLength === 0 ? 0 : tensors, Int32Array, 'int32'),
        plan: int(o, 'plan', 0, U32),
      };
    }
    default:
      throw bad(`unknown message type ${JSON.stringify(t)?.slice(0, 40)} from the coordinator`);
  }
}
