/**
 * How workers on the coordinator's own host reach it. Over TCP loopback every model-sized message
 * goes through the whole TCP stack (here ≈ 1.5 ms of CPU per MB, 5–6 Gbit/s); a Unix domain socket
 * carries the same WebSocket bytes at about half the CPU and twice the rate, but in pieces of its
 * ≈ 208 KiB socket buffer (net.core.wmem_max), each a wake-up of the reader. Measured here (2
 * cores, `ganfleet bench --transport`): one worker's step is ≈ 7% slower over the Unix socket,
 * two workers sharing the cores with the coordinator are as fast or faster (less CPU contention).
 * TCP stays the default; workers on other hosts always use it (ws:// or wss://).
 */
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const TRANSPORTS = ['unix', 'tcp'] as const;
export type Transport = (typeof TRANSPORTS)[number];

/** The default for workers started on the coordinator's host (see above). */
export const DEFAULT_TRANSPORT: Transport = 'tcp';

/** A fresh socket path of this process's own in the temp folder (short: paths are limited to ~104 bytes). */
export function privateSocketPath(): string {
  return join(tmpdir(), `ganfleet-${process.pid}-${randomBytes(4).toString('hex')}.sock`);
}
