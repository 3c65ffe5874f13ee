/**
 * The `webgpu` worker backend: tfjs's WebGPU backend (`@tensorflow/tfjs-backend-webgpu`) on Dawn,
 * the WebGPU implementation that npm `webgpu` ships prebuilt (`dawn.node`), over whatever Vulkan
 * driver the machine has. Both packages are optional dependencies that install from npm alone.
 *
 * What a browser would provide is set up here, once per process: the WebGPU globals tfjs-webgpu
 * refers to (`GPUBufferUsage`, `GPUBuffer`, … from the package's `globals`) and `navigator.gpu`
 * (from its `create()`). ganfleet requests the adapter and the device itself, so that `auto` can
 * pass over a CPU-emulated adapter, and registers the tfjs backend over that device with one
 * change: `readSync` (tfjs's `dataSync()`), which in a browser reads through a canvas, maps a
 * staging buffer and waits for it synchronously (./dawn-tick.ts). The device is destroyed when the
 * process exits, or earlier by `releaseWebgpu()`.
 */
import { existsSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { BackendError } from '../../shared/errors.js';
import { describeAdapter, isSoftwareAdapter, type AdapterInfoLike } from './adapter.js';
import { dawnCall, installDawnTickHook, mapReadSync, type MappableBuffer } from './dawn-tick.js';

/** Chromium's SwiftShader Vulkan driver (Debian's `chromium` package): the one CI tests on. */
export const CHROMIUM_SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

// ---------------------------------------------------------------- the parts of WebGPU used here

interface GpuBufferLike extends MappableBuffer {
  readonly size: number;
  getMappedRange(): ArrayBuffer;
  unmap(): void;
}

interface DeviceLike {
  destroy(): void;
  onuncapturederror: ((ev: { error?: { message?: string } }) => void) | null;
}

interface AdapterLike {
  readonly info: AdapterInfoLike;
  readonly features: ReadonlySet<string>;
  readonly limits: Record<string, number>;
  requestDevice(descriptor: {
    requiredFeatures: string[];
    requiredLimits: Record<string, number>;
  }): Promise<DeviceLike>;
}

interface GpuLike {
  requestAdapter(options: { powerPreference: 'high-performance' }): Promise<AdapterLike | null>;
}

interface DawnModule {
  create(flags: string[]): GpuLike;
  globals: Record<string, unknown>;
}

/** tfjs-webgpu's backend class, as far as ganfleet touches it (its fields are public in JS). */
interface WebGpuBackendLike extends tf.KernelBackend {
  tensorMap: {
    get(
      dataId: object,
    ): { values: tf.backend_util.BackendValues | null; dtype: tf.DataType; resource?: unknown } | undefined;
  };
  bufferManager: {
    acquireBuffer(size: number, usage: number): GpuBufferLike;
    releaseBuffer(buffer: GpuBufferLike, reuse?: boolean): void;
  };
  commandEncoder: { copyBufferToBuffer(s: GpuBufferLike, so: number, d: GpuBufferLike, o: number, n: number): void };
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
  convertAndCacheOnCPU(dataId: object, values: tf.backend_util.BackendValues): void;
  readSync(dataId: object): tf.backend_util.BackendValues;
}

interface TfjsWebgpuModule {
  WebGPUBackend: new (device: DeviceLike, adapterInfo: AdapterInfoLike) => WebGpuBackendLike;
}

// ---------------------------------------------------------------- process-wide state

/** Dawn's entry point (one per process) and an adapter not yet turned into a device. */
let gpu: GpuLike | undefined;
let spare: AdapterLike | undefined;
/** The device tfjs's `webgpu` backend runs on, and its description, while it lives. */
let live: { device: DeviceLike; description: string; software: boolean } | undefined;
/**
 * The first error the device reported since the last read (a validation error, out of memory):
 * WebGPU reports them as events, not exceptions, and the results of that work are garbage.
 */
let deviceError: string | undefined;

/** Loads Dawn and puts WebGPU's globals where tfjs-webgpu looks for them (once). */
async function dawn(): Promise<GpuLike> {
  if (gpu !== undefined) return gpu;
  // A specifier in a variable: the package is optional, and tsc must not need it.
  const pkg = 'webgpu';
  const { create, globals } = (await import(pkg)) as DawnModule;
  installDawnTickHook();
  const g = globalThis as Record<string, unknown>;
  for (const [name, value] of Object.entries(globals)) if (!(name in g)) g[name] = value;
  gpu = create([]);
  // Node 20 has no navigator; later Node versions have one without `gpu`.
  const nav = (g.navigator ??= {}) as Record<string, unknown>;
  if (nav.gpu === undefined) Object.defineProperty(nav, 'gpu', { value: gpu, configurable: true });
  return gpu;
}

/** Why Dawn may have found no adapter, and what to set. */
function noAdapterHint(): string {
  const icd = process.env.VK_DRIVER_FILES ?? process.env.VK_ICD_FILENAMES;
  if (icd !== undefined) return `with VK_ICD_FILENAMES/VK_DRIVER_FILES=${icd}`;
  if (existsSync(CHROMIUM_SWIFTSHADER_ICD))
    return `for Chromium's CPU-emulated SwiftShader set VK_ICD_FILENAMES=${CHROMIUM_SWIFTSHADER_ICD}`;
  return 'on a GPU node: libvulkan1 and the driver with the graphics capability (docs/gpu.md)';
}

/** Dawn's preferred adapter, kept until it is used or refused. */
async function adapter(): Promise<AdapterLike> {
  const g = await dawn();
  spare ??= (await dawnCall(() => g.requestAdapter({ powerPreference: 'high-performance' }))) ?? undefined;
  if (spare === undefined)
    throw new Error(`no WebGPU adapter: no Vulkan driver that Dawn accepts (${noAdapterHint()})`);
  return spare;
}

/** The device limits tfjs-webgpu asks for in a browser: as large as the adapter allows. */
const LIMITS = [
  'maxComputeWorkgroupStorageSize',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupSizeX',
  'maxComputeInvocationsPerWorkgroup',
] as const;

/** WebGPU's constants and buffer class, from the globals `dawn()` installed. */
function webgpuGlobals(): {
  GPUBufferUsage: { COPY_DST: number; MAP_READ: number };
  GPUMapMode: { READ: number };
  GPUBuffer: abstract new (...args: never[]) => unknown;
} {
  return globalThis as unknown as ReturnType<typeof webgpuGlobals>;
}

/** tfjs's `dataSync()` on this backend: copy to a staging buffer, map it, wait (see dawn-tick.ts). */
function readSyncMapped(
  backend: WebGpuBackendLike,
  browserReadSync: WebGpuBackendLike['readSync'],
  dataId: object,
): tf.backend_util.BackendValues {
  const data = backend.tensorMap.get(dataId);
  const { GPUBufferUsage, GPUMapMode, GPUBuffer } = webgpuGlobals();
  // Values already on the CPU, strings, complex numbers (two tensors), textures: tfjs's own path.
  if (data === undefined || data.values != null || !(data.resource instanceof GPUBuffer))
    return browserReadSync.call(backend, dataId);
  const source = data.resource as GpuBufferLike;
  const staging = backend.bufferManager.acquireBuffer(source.size, GPUBufferUsage.COPY_DST | GPUBufferUsage.MAP_READ);
  backend.ensureCommandEncoderReady();
  backend.endComputePassEncoder();
  backend.commandEncoder.copyBufferToBuffer(source, 0, staging, 0, source.size);
  backend.submitQueue();
  try {
    mapReadSync(staging, GPUMapMode.READ);
  } catch (err) {
    backend.bufferManager.releaseBuffer(staging, false); // not back into the pool: destroyed
    throw err;
  }
  const bytes = staging.getMappedRange().slice(0);
  staging.unmap();
  backend.bufferManager.releaseBuffer(staging);
  // Dawn reports errors from the call that failed or from its tick, which mapReadSync ran: by now.
  if (deviceError !== undefined) {
    const message = deviceError;
    deviceError = undefined;
    throw new BackendError(`webgpu: the device reported an error, so this result is not used: ${message}`);
  }
  const values = tf.util.convertBackendValuesAndArrayBuffer(bytes, data.dtype);
  backend.convertAndCacheOnCPU(dataId, values);
  return values;
}

/** Makes the device and registers tfjs's `webgpu` backend on it (replacing tfjs's own factory). */
async function startBackend(a: AdapterLike): Promise<DeviceLike> {
  const requiredFeatures = a.features.has('timestamp-query') ? ['timestamp-query'] : [];
  const requiredLimits = Object.fromEntries(LIMITS.map((k) => [k, a.limits[k]!]));
  spare = undefined; // an adapter gives one device
  const device = await dawnCall(() => a.requestDevice({ requiredFeatures, requiredLimits }));
  deviceError = undefined;
  // The property, not addEventListener: dawn.node 0.6.2 calls only the former (synchronously, from
  // the call that failed or from its tick).
  device.onuncapturederror = (ev) => {
    deviceError ??= ev.error?.message?.split('\n')[0] ?? 'unknown GPU error';
  };
  // Imported after the globals exist: at import it registers a factory of its own (which would
  // request another adapter), replaced here by one over this device.
  const pkg = '@tensorflow/tfjs-backend-webgpu';
  const { WebGPUBackend } = (await import(pkg)) as TfjsWebgpuModule;
  if (tf.findBackendFactory('webgpu') !== null) tf.removeBackend('webgpu');
  tf.registerBackend('webgpu', () => {
    const backend = new WebGPUBackend(device, a.info);
    const browserReadSync = backend.readSync;
    backend.readSync = (dataId: object) => readSyncMapped(backend, browserReadSync, dataId);
    return backend;
  });
  return device;
}

/**
 * Makes tfjs's `webgpu` backend current, on Dawn's preferred adapter. A CPU-emulated adapter
 * (SwiftShader, llvmpipe) is refused unless `allowSoftware`: `auto` would rather run wasm.
 * Returns the adapter's one-line description.
 */
export async function loadWebgpu(allowSoftware: boolean): Promise<{ device: string; software: boolean }> {
  if (live === undefined) {
    const a = await adapter();
    if (isSoftwareAdapter(a.info) && !allowSoftware)
      throw new Error(`only a CPU-emulated adapter (${describeAdapter(a.info)}); --backend webgpu would use it`);
    const device = await startBackend(a);
    live = { device, description: describeAdapter(a.info), software: isSoftwareAdapter(a.info) };
    process.once('exit', releaseWebgpu);
  } else if (live.software && !allowSoftware) {
    throw new Error(`only a CPU-emulated adapter (${live.description}); --backend webgpu would use it`);
  }
  if (!(await tf.setBackend('webgpu'))) throw new BackendError('backend "webgpu" did not initialise');
  return { device: live.description, software: live.software };
}

/**
 * Disposes tfjs's `webgpu` backend (its buffers) and destroys the device; a later `loadWebgpu`
 * starts a new one. Runs at process exit by itself.
 */
export function releaseWebgpu(): void {
  if (live === undefined) return;
  const { device } = live;
  live = undefined;
  process.removeListener('exit', releaseWebgpu);
  if (tf.findBackendFactory('webgpu') !== null) tf.removeBackend('webgpu');
  device.destroy();
}
