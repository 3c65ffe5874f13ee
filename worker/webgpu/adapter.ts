/**
 * What a WebGPU adapter is, in the words a worker's log line and the coordinator's worker table use,
 * and whether it is a real GPU. Dawn also offers CPU implementations of Vulkan (SwiftShader, which
 * Chromium ships; Mesa's llvmpipe/lavapipe): correct, and what CI tests on, but slower than the
 * wasm backend, so `auto` passes them over and only `--backend webgpu` uses them.
 */

/** The fields of GPUAdapterInfo that ganfleet reads (all strings may be empty). */
export interface AdapterInfoLike {
  readonly vendor: string;
  readonly architecture: string;
  readonly device: string;
  readonly description: string;
  /** WebGPU's own flag for a CPU implementation (Dawn sets it for SwiftShader). */
  readonly isFallbackAdapter?: boolean;
}

/** Names of CPU implementations of Vulkan, D3D or GL that Dawn may expose as an adapter. */
const SOFTWARE = /swiftshader|llvmpipe|lavapipe|softpipe|microsoft basic render|\bwarp\b/i;

/** True where the adapter runs on the CPU rather than on a GPU. */
export function isSoftwareAdapter(info: AdapterInfoLike): boolean {
  return (
    info.isFallbackAdapter === true ||
    SOFTWARE.test(`${info.vendor} ${info.architecture} ${info.device} ${info.description}`)
  );
}

/**
 * One line naming the adapter: vendor, architecture, then the driver's description (or the device
 * name where there is none), and `cpu emulation` for a software adapter. On CI:
 * `google swiftshader (SwiftShader driver 5.0.0), cpu emulation`.
 */
export function describeAdapter(info: AdapterInfoLike): string {
  const name = [info.vendor, info.architecture].filter((s) => s !== '').join(' ') || 'unknown adapter';
  const tail = isSoftwareAdapter(info) ? ', cpu emulation' : '';
  let detail = info.description !== '' ? info.description : info.device;
  // The hello message carries at most DEVICE_MAX characters; a driver's description can be long.
  const room = DEVICE_MAX - name.length - tail.length - 3;
  if (detail.length > room) detail = `${detail.slice(0, Math.max(0, room - 1))}…`;
  return `${name}${detail !== '' ? ` (${detail})` : ''}${tail}`.slice(0, DEVICE_MAX);
}

/** The longest `device` a worker's hello may carry (shared/protocol.ts). */
export const DEVICE_MAX = 128;
