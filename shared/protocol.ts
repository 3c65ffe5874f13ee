/**
 * The wire protocol between coordinator and workers: every message type, its encoding and its
 * validation live here, so both sides agree by construction.
 *
 * Frames are binary WebSocket messages holding one msgpack map. Float arrays travel as msgpack
 * `bin` (raw little-endian bytes, no per-element framing), so a frame is the payload plus a few
 * dozen bytes. Every decoded frame is validated before anything acts on it: an invalid one is a
 * `ProtocolError` whose close code ends that connection.
 *
 * One training step (W = any number of workers, each with its own contiguous shard):
 *
 *   coordinator                                   worker k
 *       |-- assign {step, phase:'dis', start, count, indices} -->|
 *       |                                          | z ← Philox(seed, step, dis, start…start+count)
 *       |                                          | Σ ∇D over real (label 1) + G(z) (label 0)
 *       |<-- result {step, 'dis', grad Σ, loss Σ, D(x) Σ} ------|
 *       | add shards in shard order, ÷ batch, Adam(D)
 *       |== weights {net:'dis', version} (one buffer, every worker) ==>|
 *       |-- assign {step, phase:'gen', start, count} ------------>|
 *       |                                          | z ← Philox(seed, step, gen, …); Σ ∇G of BCE(D(G(z)),1)
 *       |<-- result {step, 'gen', grad Σ, loss Σ} ----------------|
 *       | add, ÷ batch, Adam(G)
 *       |== weights {net:'gen', version} =====================>|
 *
 * A connection starts with hello → welcome (protocol version, manifest hash and dataset hash must
 * match; the welcome carries the run's config and both networks' weights).
 */
import { Packr } from 'msgpackr';
import { CloseCode } from './errors.js';
import { ProtocolError } from './errors.js';
import { MANIFESTS, type NetName } from './model.js';
import { GRAD_DTYPES, dtypeBytes, f16Scale, f32ToBf16, f32ToF16, type GradDtype } from './dtype.js';
import { NORMALIZATIONS, type Normalization } from './pixels.js';

/** Bumped on any incompatible change of the messages below. */
export const PROTOCOL_VERSION = 2;

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
}

/** What a worker must know of the run to compute its shards. */
export interface RunConfig {
  seed: number;
  normalize: Normalization;
  batchSize: number;
  /** Wire dtype of result gradients (absent: f32). */
  gradDtype?: GradDtype;
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
}

/** coordinator → every worker: a network's new weights after an optimizer step. */
export interface WeightsMessage {
  t: 'weights';
  net: NetName;
  /** Number of optimizer steps applied to this network so far. */
  version: number;
  data: Float32Array;
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
}

/** worker → coordinator: the sums for one assigned shard. */
export interface ResultMessage {
  t: 'result';
  step: number;
  phase: Phase;
  start: number;
  count: number;
  /**
   * Σ of per-sample gradients of the phase's network, manifest order: float32, or the raw 16-bit
   * elements of `dtype` (f16 holding Σ·2^scaleExp).
   */
  grad: Float32Array | Uint16Array;
  /** Wire dtype of `grad` (absent: f32). */
  dtype?: GradDtype;
  /** f16 only: `grad` holds the sums times 2^scaleExp (0 otherwise). */
  scaleExp?: number;
  lossSum: number;
  dRealSum: number;
  dFakeSum: number;
  /** Wall time the worker spent computing, for throughput-proportional sharding. */
  computeMs: number;
}

export type WorkerMessage = HelloMessage | ResultMessage;
export type CoordinatorMessage = WelcomeMessage | WeightsMessage | AssignMessage;
export type Message = WorkerMessage | CoordinatorMessage;

/** Largest shard: bounds `count` and the indices array. */
export const MAX_BATCH = 65536;

/**
 * `maxPayload` for both sides' sockets: the largest legal frame (the welcome, with both
 * networks) plus room for the map's keys. Anything bigger is refused by ws before it is buffered.
 */
export function maxPayload(): number {
  return (MANIFESTS.gen.size + MANIFESTS.dis.size) * 4 + MAX_BATCH * 4 + 64 * 1024;
}

const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true });

/**
 * Encodes a message into one binary frame. Float arrays go out as raw bytes. Weights and results
 * (the frames that carry a model-sized array) are laid out by `payloadFrame`, so that the array's
 * bytes start 8-byte aligned and the receiver can view them without a copy.
 */
export function encode(msg: Message, alloc?: (byteLength: number) => Buffer): Buffer {
  if (msg.t === 'weights') {
    const { data, ...head } = msg;
    const { frame, payload } = payloadFrame(head, 'data', data.byteLength, alloc);
    payload.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    return frame;
  }
  if (msg.t === 'result') {
    const { grad, ...head } = msg;
    const { frame, payload } = payloadFrame(head, 'grad', grad.byteLength);
    payload.set(new Uint8Array(grad.buffer, grad.byteOffset, grad.byteLength));
    return frame;
  }
  return packr.pack(msg);
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

/**
 * A frame for a result whose float32 gradient sums travel as `dtype`: converted straight into the
 * frame (one pass, no intermediate array). f16 sums are scaled by a power of two (see dtype.ts).
 */
export function encodeResult(
  msg: Omit<ResultMessage, 'grad' | 'dtype' | 'scaleExp'> & { grad: Float32Array },
  dtype: GradDtype = 'f32',
): Buffer {
  const { grad, ...rest } = msg;
  if (dtype === 'f32') return encode({ ...rest, grad, dtype, scaleExp: 0 });
  const scaleExp = dtype === 'f16' ? f16Scale(grad) : 0;
  const { frame, payload } = payloadFrame({ ...rest, dtype, scaleExp }, 'grad', grad.length * dtypeBytes(dtype));
  const out = new Uint16Array(payload.buffer, payload.byteOffset, grad.length);
  if (dtype === 'f16') f32ToF16(grad, out, scaleExp);
  else f32ToBf16(grad, out);
  return frame;
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

/** Reinterprets little-endian bytes as float32s, copying only when the bytes are misaligned. */
function f32(o: Obj, key: string, length: number): Float32Array {
  const b = bytes(o, key);
  if (b.byteLength !== length * 4)
    throw bad(`field "${key}" has ${b.byteLength} bytes, expected ${length * 4} (${length} float32)`);
  if (b.byteOffset % 4 === 0) return new Float32Array(b.buffer, b.byteOffset, length);
  return new Float32Array(alignedCopy(b));
}

function u16(o: Obj, key: string, length: number): Uint16Array {
  const b = bytes(o, key);
  if (b.byteLength !== length * 2)
    throw bad(`field "${key}" has ${b.byteLength} bytes, expected ${length * 2} (${length} 16-bit)`);
  if (b.byteOffset % 2 === 0) return new Uint16Array(b.buffer, b.byteOffset, length);
  return new Uint16Array(alignedCopy(b));
}

function u32(o: Obj, key: string, length: number): Uint32Array {
  const b = bytes(o, key);
  if (b.byteLength !== length * 4)
    throw bad(`field "${key}" has ${b.byteLength} bytes, expected ${length * 4} (${length} uint32)`);
  if (b.byteOffset % 4 === 0) return new Uint32Array(b.buffer, b.byteOffset, length);
  return new Uint32Array(alignedCopy(b));
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
      };
    case 'result': {
      const phase = oneOf(o, 'phase', NET_NAMES);
      const dtype: GradDtype = field(o, 'dtype') === undefined ? 'f32' : oneOf(o, 'dtype', GRAD_DTYPES);
      const size = MANIFESTS[phase].size;
      return {
        t,
        step: int(o, 'step', 0, Number.MAX_SAFE_INTEGER),
        phase,
        start: int(o, 'start', 0, MAX_BATCH),
        count: int(o, 'count', 1, MAX_BATCH),
        grad: dtype === 'f32' ? f32(o, 'grad', size) : u16(o, 'grad', size),
        dtype,
        scaleExp: dtype === 'f16' && field(o, 'scaleExp') !== undefined ? int(o, 'scaleExp', -64, 64) : 0,
        lossSum: finite(o, 'lossSum'),
        dRealSum: finite(o, 'dRealSum'),
        dFakeSum: finite(o, 'dFakeSum'),
        computeMs: finite(o, 'computeMs'),
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
          ...(field(config, 'gradDtype') === undefined ? {} : { gradDtype: oneOf(config, 'gradDtype', GRAD_DTYPES) }),
          ...(field(config, 'syntheticComputeMs') === undefined
            ? {}
            : { syntheticComputeMs: finiteIn(config, 'syntheticComputeMs', 0, 600_000) }),
        },
        genVersion: int(o, 'genVersion', 0, Number.MAX_SAFE_INTEGER),
        gen: f32(o, 'gen', MANIFESTS.gen.size),
        disVersion: int(o, 'disVersion', 0, Number.MAX_SAFE_INTEGER),
        dis: f32(o, 'dis', MANIFESTS.dis.size),
      };
    }
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
      const phase = oneOf(o, 'phase', NET_NAMES);
      const count = int(o, 'count', 1, MAX_BATCH);
      return {
        t,
        step: int(o, 'step', 0, Number.MAX_SAFE_INTEGER),
        phase,
        start: int(o, 'start', 0, MAX_BATCH),
        count,
        indices: u32(o, 'indices', phase === 'dis' ? count : 0),
        genVersion: int(o, 'genVersion', 0, Number.MAX_SAFE_INTEGER),
        disVersion: int(o, 'disVersion', 0, Number.MAX_SAFE_INTEGER),
      };
    }
    default:
      throw bad(`unknown message type ${JSON.stringify(t)?.slice(0, 40)} from the coordinator`);
  }
}
