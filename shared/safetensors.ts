import { CheckpointError } from './errors.js';

/** Element types this reader and writer accept (the safetensors spelling). */
export type SafeDType = 'F32' | 'F64' | 'I32' | 'I64' | 'U8' | 'F16' | 'BF16';

/** One tensor: its element type, its shape, and its elements as raw little-endian bytes. */
export interface SafeTensor {
  dtype: SafeDType;
  shape: number[];
  /** Row-major, little-endian. Tensors from `decodeSafetensors` are views into the decoded buffer. */
  data: Uint8Array;
}

const DTYPE_BYTES: Readonly<Record<SafeDType, number>> = { F32: 4, F64: 8, I32: 4, I64: 8, U8: 1, F16: 2, BF16: 2 };
const METADATA_KEY = '__metadata__';
const PREFIX_BYTES = 8;
const IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Bytes per element of `dtype`. */
export function dtypeBytes(dtype: SafeDType): number {
  return DTYPE_BYTES[dtype];
}

/** Wraps a copy of `values` as an F32 tensor of `shape`. */
export function f32Tensor(shape: readonly number[], values: Float32Array): SafeTensor {
  checkElementCount('f32Tensor', shape, values.length);
  return { dtype: 'F32', shape: [...shape], data: toLittleEndian(values, 4, (v, o, x) => v.setFloat32(o, x, true)) };
}

/** Wraps a copy of `values` as an F64 tensor of `shape`. */
export function f64Tensor(shape: readonly number[], values: Float64Array): SafeTensor {
  checkElementCount('f64Tensor', shape, values.length);
  return { dtype: 'F64', shape: [...shape], data: toLittleEndian(values, 8, (v, o, x) => v.setFloat64(o, x, true)) };
}

/**
 * The elements of an F32 tensor as a new Float32Array. Always copies: decoded tensors sit at
 * arbitrary byte offsets, which a Float32Array view cannot start at, and a copy cannot alias the
 * file buffer. `what` names the tensor in the error thrown for another dtype.
 */
export function asFloat32(t: SafeTensor, what = 'tensor'): Float32Array {
  const n = checkTyped(t, 'F32', what);
  const out = new Float32Array(n);
  fromLittleEndian(t.data, out, 4, (v, o) => v.getFloat32(o, true));
  return out;
}

/** The elements of an F64 tensor as a new Float64Array (see `asFloat32`). */
export function asFloat64(t: SafeTensor, what = 'tensor'): Float64Array {
  const n = checkTyped(t, 'F64', what);
  const out = new Float64Array(n);
  fromLittleEndian(t.data, out, 8, (v, o) => v.getFloat64(o, true));
  return out;
}

/**
 * Serialises tensors in the safetensors format: an 8-byte little-endian header length, a JSON
 * header padded with spaces to a multiple of 8 bytes, then the tensors' bytes back to back in the
 * order given. Throws `CheckpointError` for an empty, duplicate or reserved name, a bad shape,
 * a byte count that disagrees with shape × dtype, or a metadata value that is not a string.
 */
export function encodeSafetensors(
  tensors: Map<string, SafeTensor> | Array<[string, SafeTensor]>,
  metadata: Record<string, string>,
): Buffer {
  const entries = [...tensors];
  const meta: Record<string, string> = {};
  for (const [key, value] of Object.entries(metadata)) {
    if (typeof value !== 'string')
      throw new CheckpointError(`cannot encode safetensors: metadata '${key}' is not a string`);
    // defineProperty so a key named '__proto__' stays a plain key.
    define(meta, key, value);
  }
  // The header is assembled by hand because a JS object would hoist integer-like tensor names
  // ('0', '12') ahead of the rest, breaking "header order = given order".
  const parts = [`${JSON.stringify(METADATA_KEY)}:${JSON.stringify(meta)}`];
  const seen = new Set<string>();
  let offset = 0;
  for (const [name, t] of entries) {
    if (typeof name !== 'string' || name.length === 0)
      throw new CheckpointError('cannot encode safetensors: empty tensor name');
    if (name === METADATA_KEY) throw new CheckpointError(`cannot encode safetensors: '${METADATA_KEY}' is reserved`);
    if (seen.has(name)) throw new CheckpointError(`cannot encode safetensors: duplicate tensor name '${name}'`);
    seen.add(name);
    if (!Object.hasOwn(DTYPE_BYTES, t.dtype)) {
      throw new CheckpointError(`cannot encode safetensors: tensor '${name}' has unknown dtype ${String(t.dtype)}`);
    }
    const expected = Array.isArray(t.shape) ? shapeElements(t.shape) * DTYPE_BYTES[t.dtype] : NaN;
    if (Number.isNaN(expected)) {
      throw new CheckpointError(
        `cannot encode safetensors: tensor '${name}' has invalid shape ${JSON.stringify(t.shape)}`,
      );
    }
    if (expected !== t.data.byteLength) {
      throw new CheckpointError(
        `cannot encode safetensors: tensor '${name}' (${t.dtype} ${JSON.stringify(t.shape)}) ` +
          `needs ${expected} bytes, has ${t.data.byteLength}`,
      );
    }
    const info = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + expected] };
    parts.push(`${JSON.stringify(name)}:${JSON.stringify(info)}`);
    offset += expected;
  }

  const json = `{${parts.join(',')}}`;
  const jsonBytes = Buffer.byteLength(json, 'utf8');
  const headerBytes = Math.ceil(jsonBytes / 8) * 8;
  const out = Buffer.alloc(PREFIX_BYTES + headerBytes + offset, 0x20);
  out.writeBigUInt64LE(BigInt(headerBytes), 0);
  out.write(json, PREFIX_BYTES, 'utf8');
  let at = PREFIX_BYTES + headerBytes;
  for (const [, t] of entries) {
    out.set(t.data, at);
    at += t.data.byteLength;
  }
  return out;
}

/**
 * Parses a safetensors buffer. `file` only names the source in errors. Tensors come back in data
 * order (for files from `encodeSafetensors`, the order given there); their data are views into
 * `buf`, not copies. Throws `CheckpointError` for a buffer shorter than 8 bytes, a header length
 * beyond the buffer, a header that is not valid UTF-8 JSON of an object, an entry that is not an
 * object, an unknown dtype, a bad shape, a byte span that disagrees with shape × dtype, offsets
 * that are out of range, overlap, or leave bytes uncovered, and metadata values that are not strings.
 */
export function decodeSafetensors(
  buf: Uint8Array,
  file: string,
): { tensors: Map<string, SafeTensor>; metadata: Record<string, string> } {
  const fail = (fault: string): never => {
    throw new CheckpointError(`${file}: not a valid safetensors file: ${fault}`);
  };
  if (buf.byteLength < PREFIX_BYTES) fail(`${buf.byteLength} bytes, shorter than the 8-byte header length`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const declared = view.getBigUint64(0, true);
  if (declared > BigInt(buf.byteLength - PREFIX_BYTES)) {
    fail(`header length ${declared} runs beyond the file (${buf.byteLength} bytes)`);
  }
  const headerLen = Number(declared);
  const dataStart = PREFIX_BYTES + headerLen;
  const dataLen = buf.byteLength - dataStart;

  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(PREFIX_BYTES, dataStart)));
  } catch (err) {
    fail(`header is not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  if (!isObject(header)) fail('header is not a JSON object');

  let metadata: Record<string, string> = {};
  const spans: Array<{ name: string; begin: number; end: number; tensor: SafeTensor }> = [];
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === METADATA_KEY) {
      metadata = readMetadata(entry, fail);
      continue;
    }
    if (!isObject(entry)) fail(`entry '${name}' is not an object`);
    const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
    if (typeof dtype !== 'string' || !Object.hasOwn(DTYPE_BYTES, dtype)) {
      fail(`tensor '${name}' has unknown dtype ${JSON.stringify(dtype)}`);
    }
    const elements = Array.isArray(shape) ? shapeElements(shape) : NaN;
    if (Number.isNaN(elements)) fail(`tensor '${name}' has invalid shape ${JSON.stringify(shape)}`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
      fail(`tensor '${name}' has invalid data_offsets ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    if (begin > end || end > dataLen) {
      fail(`tensor '${name}' data_offsets [${begin}, ${end}] are out of range (data section is ${dataLen} bytes)`);
    }
    const bytes = elements * DTYPE_BYTES[dtype as SafeDType];
    if (bytes !== end - begin) {
      const span = end - begin;
      fail(`tensor '${name}' (${dtype} ${JSON.stringify(shape)}) needs ${bytes} bytes but data_offsets span ${span}`);
    }
    const data = buf.subarray(dataStart + begin, dataStart + end);
    spans.push({ name, begin, end, tensor: { dtype: dtype as SafeDType, shape: [...(shape as number[])], data } });
  }

  // Tensors must tile the data section exactly: a gap or overlap means a corrupt or forged file.
  spans.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  const tensors = new Map<string, SafeTensor>();
  for (const span of spans) {
    if (span.begin < covered)
      fail(`tensor '${span.name}' data_offsets [${span.begin}, ${span.end}] overlap another tensor`);
    if (span.begin > covered) fail(`bytes ${covered}..${span.begin} of the data section belong to no tensor`);
    covered = span.end;
    tensors.set(span.name, span.tensor);
  }
  if (covered !== dataLen) fail(`bytes ${covered}..${dataLen} of the data section belong to no tensor`);
  return { tensors, metadata };
}

function readMetadata(entry: unknown, fail: (fault: string) => never): Record<string, string> {
  if (!isObject(entry)) fail(`'${METADATA_KEY}' is not an object`);
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(entry as Record<string, unknown>)) {
    if (typeof value !== 'string') fail(`metadata '${key}' is not a string (${JSON.stringify(value)})`);
    define(out, key, value as string);
  }
  return out;
}

/** Product of a shape's dimensions, or NaN when a dimension is not a non-negative safe integer. */
function shapeElements(shape: readonly unknown[]): number {
  let n = 1;
  for (const d of shape) {
    if (!isCount(d)) return NaN;
    n *= d;
  }
  return Number.isSafeInteger(n) ? n : NaN;
}

function checkElementCount(fn: string, shape: readonly number[], length: number): void {
  const n = shapeElements(shape);
  if (n !== length) {
    throw new CheckpointError(`${fn}: shape ${JSON.stringify(shape)} holds ${n} elements, values has ${length}`);
  }
}

function checkTyped(t: SafeTensor, dtype: SafeDType, what: string): number {
  if (t.dtype !== dtype) throw new CheckpointError(`${what} has dtype ${t.dtype}, expected ${dtype}`);
  const size = DTYPE_BYTES[dtype];
  if (t.data.byteLength % size !== 0)
    throw new CheckpointError(`${what} has ${t.data.byteLength} bytes, not a multiple of ${size}`);
  return t.data.byteLength / size;
}

type Typed = Float32Array | Float64Array;

function toLittleEndian<T extends Typed>(
  values: T,
  size: number,
  set: (v: DataView, o: number, x: number) => void,
): Uint8Array {
  if (IS_LITTLE_ENDIAN) return new Uint8Array(values.buffer, values.byteOffset, values.byteLength).slice();
  const out = new Uint8Array(values.length * size);
  const view = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) set(view, i * size, values[i]!);
  return out;
}

function fromLittleEndian<T extends Typed>(
  data: Uint8Array,
  out: T,
  size: number,
  get: (v: DataView, o: number) => number,
): void {
  if (IS_LITTLE_ENDIAN) {
    new Uint8Array(out.buffer).set(data);
    return;
  }
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  for (let i = 0; i < out.length; i++) out[i] = get(view, i * size);
}

function isCount(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
}

function isObject(x: unknown): boolean {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function define(target: object, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}
