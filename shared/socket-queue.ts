/**
 * A TCP socket's kernel send queue, kept short (TCP_NOTSENT_LOWAT, through the native addon: Node
 * has no API for it). Without it the kernel takes megabytes per socket at once and sends them flow
 * by flow, fairly, whatever order the process wrote them in; with it a write completes only once
 * the socket's unsent bytes fall under the limit, so a frame the process holds back can still be
 * overtaken by a more urgent one (worker/egress.ts).
 */
import type { Socket } from 'node:net';
import { loadReduceAddon } from './reduce-addon.js';

/** The TCP socket under a WebSocket (ws keeps it as `_socket`; under TLS, the wrapped one). */
function fdOf(socket: Socket | undefined): number {
  type Handle = { fd?: number; _parent?: { fd?: number } };
  const s = socket as unknown as { _handle?: Handle; _parent?: { _handle?: Handle } } | undefined;
  for (const fd of [s?._handle?.fd, s?._handle?._parent?.fd, s?._parent?._handle?.fd])
    if (typeof fd === 'number' && fd >= 0) return fd;
  return -1;
}

/** The fd of the TCP socket under a WebSocket (-1: none). */
const fdUnder = (ws: unknown): number => fdOf((ws as { _socket?: Socket })._socket);

/**
 * Limits the unsent bytes of `ws`'s TCP socket to `bytes`: '' when set, else why not (no addon, no
 * TCP socket under it, the kernel refused).
 */
export function shortenSendQueue(ws: unknown, bytes: number): string {
  const { addon, error } = loadReduceAddon();
  if (addon === null) return error;
  const fd = fdUnder(ws);
  if (fd < 0) return 'no TCP socket under this connection';
  try {
    const set = addon.tcpNotsentLowat(fd, bytes);
    return set === bytes ? '' : `the kernel keeps ${set} bytes, not ${bytes}`;
  } catch (err) {
    return (err as Error).message;
  }
}

/** The limit on `ws`'s TCP socket (-1: none can be read); for tests. */
export function sendQueueLimit(ws: unknown): number {
  const { addon } = loadReduceAddon();
  const fd = fdUnder(ws);
  return addon === null || fd < 0 ? -1 : addon.tcpNotsentLowat(fd, 0);
}

/**
 * How many bytes `ws`'s TCP socket still holds: written and not yet acknowledged (-1: unknown — no
 * addon, no TCP socket under it, or the socket is gone).
 */
export function unackedBytes(ws: unknown): number {
  const { addon } = loadReduceAddon();
  const fd = fdUnder(ws);
  if (addon === null || fd < 0) return -1;
  try {
    return addon.tcpUnacked(fd);
  } catch {
    return -1;
  }
}

/**
 * How many bytes written to `ws` its kernel has not taken yet: ws's own queue, the chunks its
 * socket buffers, and what libuv still holds of the one being written. ws's `bufferedAmount` counts
 * a chunk whole until its last byte is in the kernel, so a megabyte frame on a slow link looked
 * unsent until the end; libuv's count falls as the kernel takes bytes (under TLS, the TCP handle's
 * beneath: ciphertext, a little more than was written, so never more than ws counts). Where
 * libuv's count cannot be read, `bufferedAmount`.
 */
export function unsentBytes(ws: unknown): number {
  type State = { length: number; writing: boolean; writelen: number };
  type Handle = { writeQueueSize?: unknown; _parent?: { writeQueueSize?: unknown } };
  const w = ws as {
    bufferedAmount: number;
    _sender?: { _bufferedBytes?: number };
    _socket?: { _writableState?: State; _handle?: Handle };
  };
  const state = w._socket?._writableState;
  const handle = w._socket?._handle;
  const libuv = handle?._parent?.writeQueueSize ?? handle?.writeQueueSize;
  if (state === undefined || typeof libuv !== 'number') return w.bufferedAmount;
  const unsent = (w._sender?._bufferedBytes ?? 0) + state.length - (state.writing ? state.writelen : 0) + libuv;
  return Math.min(unsent, w.bufferedAmount);
}
