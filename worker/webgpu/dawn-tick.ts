/**
 * Synchronous waits on Dawn (npm `webgpu`) in Node.
 *
 * tfjs's `dataSync()` must return the values now, and ganfleet's training step reads each phase's
 * result that way. A browser's WebGPU backend does it by drawing through a canvas, which Node has
 * not. Mapping a buffer needs Dawn to notice that the GPU finished, which it does only in its
 * "tick": a native function dawn.node queues with the *global* `setImmediate` while asynchronous
 * work is outstanding (its AsyncRunner looks `setImmediate` up on every queueing). A spin on
 * `mapState` alone never ends: the event loop, which would run the tick, is blocked by the spin.
 *
 * So `setImmediate` is wrapped once, before the first device exists: a function queued while
 * ganfleet itself is inside a Dawn call (requesting a device, mapping, or running the tick) is
 * Dawn's tick. It is kept, queued only once at a time, and `mapReadSync` calls it directly until the
 * buffer is mapped. Every other `setImmediate` call goes straight to Node's.
 */
import { BackendError } from '../../shared/errors.js';

type Tick = () => void;
type SetImmediate = typeof globalThis.setImmediate;

/** The part of a GPUBuffer that a synchronous read needs. */
export interface MappableBuffer {
  readonly mapState: 'unmapped' | 'pending' | 'mapped';
  mapAsync(mode: number, offset?: number, size?: number): Promise<void>;
}

let nodeSetImmediate: SetImmediate | undefined;
let tick: Tick | undefined;
let queued: NodeJS.Immediate | undefined;
/** > 0 while ganfleet is inside a call into Dawn that may queue its tick. */
let inDawn = 0;

/** Runs `f` (a call into Dawn) so that a tick it queues is recognised as Dawn's. */
export function dawnCall<T>(f: () => T): T {
  inDawn++;
  try {
    return f();
  } finally {
    inDawn--;
  }
}

function runTick(): void {
  const t = tick;
  if (t !== undefined) dawnCall(t);
}

/** Wraps the global `setImmediate` (once per process); call before the first Dawn device is made. */
export function installDawnTickHook(): void {
  if (nodeSetImmediate !== undefined) return;
  const original = globalThis.setImmediate;
  nodeSetImmediate = original;
  const hooked = function setImmediate(callback: (...a: unknown[]) => void, ...args: unknown[]) {
    if (inDawn > 0 && args.length === 0) {
      tick = callback;
      // One queued tick at a time: direct calls from mapReadSync re-queue it, and each queued copy
      // would otherwise add a turn of the event loop for as long as Dawn has work outstanding.
      queued ??= original(() => {
        queued = undefined;
        runTick();
      });
      return queued;
    }
    return original(callback, ...args);
  };
  // Keeps util.promisify's custom form and the rest of the original's own properties.
  Object.defineProperties(hooked, Object.getOwnPropertyDescriptors(original));
  globalThis.setImmediate = hooked as unknown as SetImmediate;
}

const nap = new Int32Array(new SharedArrayBuffer(4));

/**
 * Starts mapping `buffer` for reading and returns once it is mapped, running Dawn's tick itself.
 * It spins for the first millisecond (a GPU's copy back is usually done by then), then naps 0.1 ms
 * between ticks so that a CPU-emulated device (SwiftShader), whose threads need the cores, is not
 * starved by the wait. Throws a BackendError when mapping fails or takes longer than `timeoutMs`.
 */
export function mapReadSync(buffer: MappableBuffer, mapModeRead: number, timeoutMs = 120_000): void {
  if (nodeSetImmediate === undefined) throw new BackendError('the Dawn tick hook is not installed');
  // The promise settles on a later turn of the event loop; mapState says now whether it worked.
  dawnCall(() => buffer.mapAsync(mapModeRead)).catch(() => undefined);
  const t0 = performance.now();
  while (buffer.mapState === 'pending') {
    runTick();
    if (buffer.mapState !== 'pending') break;
    const elapsed = performance.now() - t0;
    if (elapsed > timeoutMs)
      throw new BackendError(`webgpu: reading a result back took over ${timeoutMs / 1000} s (device hung or lost?)`);
    if (elapsed > 1) Atomics.wait(nap, 0, 0, 0.1);
  }
  if (buffer.mapState !== 'mapped')
    throw new BackendError('webgpu: reading a result back failed: the device refused to map the buffer (lost?)');
}
