/**
 * Checkpoints as standard safetensors files. Both networks are stored under the seed's PyTorch
 * names and layout (`gen.0.weight` as [out, in], …), so the seed's modules can `load_state_dict`
 * them; Adam's moments sit beside them as `optim.<name>.exp_avg` / `.exp_avg_sq`, and everything
 * else (step, seed, config, Adam step counts) is string metadata.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '../shared/atomic-file.js';
import { CheckpointError } from '../shared/errors.js';
import { MODEL, NETS, type Model, type NetName } from '../shared/model.js';
import { asFloat32, decodeSafetensors, encodeSafetensors, f32Tensor, type SafeTensor } from '../shared/safetensors.js';
import type { AdamState } from './optimizer.js';
import type { GradDtype } from '../shared/dtype.js';

export const CHECKPOINT_FORMAT = 'ganfleet-checkpoint';
export const CHECKPOINT_VERSION = '1';

/** Everything needed to continue a run exactly. */
export interface CheckpointState {
  /** The next step to run (steps 0 … step−1 are applied). */
  step: number;
  epoch: number;
  seed: number;
  params: Record<NetName, Float32Array>;
  adam: Record<NetName, AdamState>;
  /** The exact reduction's shifts for the next phase of each network (absent in older checkpoints). */
  shifts?: Record<NetName, Int32Array>;
  /** The run's configuration, stored as JSON metadata (its gradDtype is the reduction mode). */
  config: Record<string, unknown>;
}

/** Serialises a checkpoint (see the module comment for the layout). */
export function encodeCheckpoint(s: CheckpointState, model: Model = MODEL): Buffer {
  const tensors: Array<[string, SafeTensor]> = [];
  for (const net of NETS) {
    for (const p of model.manifests[net].params)
      tensors.push([p.name, f32Tensor(p.shape, s.params[net].subarray(p.offset, p.offset + p.length))]);
  }
  for (const net of NETS) {
    for (const p of model.manifests[net].params) {
      tensors.push([
        `optim.${p.name}.exp_avg`,
        f32Tensor(p.shape, s.adam[net].m.subarray(p.offset, p.offset + p.length)),
      ]);
      tensors.push([
        `optim.${p.name}.exp_avg_sq`,
        f32Tensor(p.shape, s.adam[net].v.subarray(p.offset, p.offset + p.length)),
      ]);
    }
  }
  return encodeSafetensors(tensors, {
    sha256: digest(tensors.map(([, t]) => t.data)),
    format: CHECKPOINT_FORMAT,
    format_version: CHECKPOINT_VERSION,
    step: String(s.step),
    epoch: String(s.epoch),
    seed: String(s.seed),
    'optim.gen.step': String(s.adam.gen.step),
    'optim.dis.step': String(s.adam.dis.step),
    ...(s.shifts === undefined
      ? {}
      : {
          'exact.gen.shifts': JSON.stringify([...s.shifts.gen]),
          'exact.dis.shifts': JSON.stringify([...s.shifts.dis]),
        }),
    config: JSON.stringify(s.config),
  });
}

/** sha256 over every tensor's bytes in file order: a flipped bit anywhere in the data is caught. */
function digest(parts: Iterable<Uint8Array>): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex');
}

/** The tensor names of a checkpoint, in the order they are written. */
function tensorNames(model: Model): string[] {
  const names: string[] = [];
  for (const net of NETS) for (const p of model.manifests[net].params) names.push(p.name);
  for (const net of NETS)
    for (const p of model.manifests[net].params) names.push(`optim.${p.name}.exp_avg`, `optim.${p.name}.exp_avg_sq`);
  return names;
}

/** Writes a checkpoint atomically (temp file, fsync, rename). */
export async function writeCheckpoint(path: string, s: CheckpointState, model: Model = MODEL): Promise<void> {
  await writeFileAtomic(path, encodeCheckpoint(s, model));
}

function int(meta: Record<string, string>, key: string, file: string): number {
  const v = Number(meta[key]);
  if (meta[key] === undefined || !Number.isSafeInteger(v) || v < 0)
    throw new CheckpointError(`${file}: metadata "${key}" is missing or not a non-negative integer`);
  return v;
}

/** Decodes and validates a checkpoint; every fault names the file. */
export function decodeCheckpoint(buf: Uint8Array, file: string, model: Model = MODEL): CheckpointState {
  const { tensors, metadata } = decodeSafetensors(buf, file);
  if (metadata.format !== CHECKPOINT_FORMAT)
    throw new CheckpointError(
      `${file}: not a ganfleet checkpoint (metadata "format" is ${JSON.stringify(metadata.format)})`,
    );
  if (metadata.format_version !== CHECKPOINT_VERSION)
    throw new CheckpointError(
      `${file}: checkpoint format version ${metadata.format_version} is not supported (expected ${CHECKPOINT_VERSION})`,
    );
  const missing = tensorNames(model).find((n) => !tensors.has(n));
  if (missing !== undefined) throw new CheckpointError(`${file}: tensor "${missing}" is missing`);
  if (digest(tensorNames(model).map((n) => tensors.get(n)!.data)) !== metadata.sha256) {
    throw new CheckpointError(
      `${file}: checksum mismatch: the tensor data is corrupted (sha256 differs from the one recorded)`,
    );
  }
  const take = (name: string, length: number): Float32Array => {
    const t = tensors.get(name);
    if (t === undefined) throw new CheckpointError(`${file}: tensor "${name}" is missing`);
    const a = asFloat32(t, `${file}: tensor "${name}"`);
    if (a.length !== length)
      throw new CheckpointError(`${file}: tensor "${name}" has ${a.length} values, expected ${length}`);
    return a;
  };
  const params = {} as Record<NetName, Float32Array>;
  const adam = {} as Record<NetName, AdamState>;
  for (const net of NETS) {
    const m = model.manifests[net];
    params[net] = new Float32Array(m.size);
    adam[net] = {
      m: new Float32Array(m.size),
      v: new Float32Array(m.size),
      step: int(metadata, `optim.${net}.step`, file),
    };
    for (const p of m.params) {
      params[net].set(take(p.name, p.length), p.offset);
      adam[net].m.set(take(`optim.${p.name}.exp_avg`, p.length), p.offset);
      adam[net].v.set(take(`optim.${p.name}.exp_avg_sq`, p.length), p.offset);
    }
  }
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(metadata.config ?? '{}') as Record<string, unknown>;
  } catch {
    throw new CheckpointError(`${file}: metadata "config" is not valid JSON`);
  }
  const step = int(metadata, 'step', file);
  const shifts =
    metadata['exact.gen.shifts'] === undefined && metadata['exact.dis.shifts'] === undefined
      ? {}
      : { shifts: { gen: shiftsOf(metadata, 'gen', file, model), dis: shiftsOf(metadata, 'dis', file, model) } };
  return {
    step,
    epoch: int(metadata, 'epoch', file),
    seed: int(metadata, 'seed', file),
    params,
    adam,
    config,
    ...shifts,
  };
}

/** A network's exact-reduction shifts from the metadata: one integer per tensor. */
function shiftsOf(meta: Record<string, string>, net: NetName, file: string, model: Model): Int32Array {
  const key = `exact.${net}.shifts`;
  let v: unknown;
  try {
    v = JSON.parse(meta[key] ?? 'null');
  } catch {
    v = null;
  }
  const n = model.manifests[net].params.length;
  if (!Array.isArray(v) || v.length !== n || !v.every((x) => Number.isInteger(x) && Math.abs(x) <= 1000))
    throw new CheckpointError(`${file}: metadata "${key}" must be a list of ${n} integers`);
  return Int32Array.from(v as number[]);
}

/**
 * Checks that a checkpoint can be resumed: steps are applied D then G, so G has taken `step`
 * optimizer steps and D the same or one more (a stop between the two phases).
 */
export function assertResumable(s: CheckpointState, file: string, gradDtype: GradDtype): void {
  // Checkpoints from before the exact reduction were made with float32 sums.
  const mode = typeof s.config.gradDtype === 'string' ? s.config.gradDtype : 'f32';
  if (mode !== gradDtype) {
    throw new CheckpointError(
      `${file}: cannot resume: the run was trained with --grad-dtype ${mode}, this one asks for ${gradDtype}; ` +
        `a run keeps one reduction mode (resume with --grad-dtype ${mode})`,
    );
  }
  if (s.adam.gen.step !== s.step || (s.adam.dis.step !== s.step && s.adam.dis.step !== s.step + 1)) {
    throw new CheckpointError(
      `${file}: cannot resume: inconsistent optimizer steps ` +
        `(step ${s.step}, gen ${s.adam.gen.step}, dis ${s.adam.dis.step})`,
    );
  }
}

/** Reads a checkpoint file. */
export async function readCheckpoint(path: string, model: Model = MODEL): Promise<CheckpointState> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (err) {
    throw new CheckpointError(
      `${path}: cannot read checkpoint (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
      err,
    );
  }
  return decodeCheckpoint(buf, path, model);
}
