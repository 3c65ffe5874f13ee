/**
 * The coordinator's liveness check, one verdict per worker per tick. A worker that answered the
 * last ping gets a new one; one that did not is dropped — unless its link shows it alive and the
 * pong merely late. A ping leaves behind every byte already queued on the connection, and a pong
 * behind every byte the worker queued before it: a welcome (both networks whole) or a star's
 * weights or gradients crossing a slow, shared link can take longer than an interval. So each ping
 * remembers how many bytes were sent before it, and a worker is kept while it is still short of
 * them and they keep arriving (its kernel acknowledging), or while its own bytes keep arriving
 * here. A hung process stops reading and sending: its receive window closes, both counts stop,
 * and it is dropped at the next tick.
 */

/** What the tick reads off a worker's connection (coordinator/session.ts). */
export interface LinkProgress {
  /** Bytes sent to the worker since it connected (frames handed to the socket). */
  readonly sentBytes: number;
  /** Of those, the ones it has not acknowledged yet (queued here or held by the kernel). */
  readonly inFlightBytes: number;
  /** Bytes received from the worker since it connected. */
  readonly receivedBytes: number;
}

export type HeartbeatVerdict =
  | { kind: 'ping' }
  /** No pong yet, but bytes moved since the last tick: `ahead` of the ping still, or from the worker. */
  | { kind: 'wait'; ahead: number; first: boolean }
  | { kind: 'drop' };

interface Pending {
  /** Bytes sent before the ping: the worker has it once it acknowledged that many. */
  readonly before: number;
  /** What it had acknowledged, and what had come from it, at the last tick. */
  delivered: number;
  received: number;
  waited: boolean;
}

export class Heartbeat<K extends object> {
  private readonly pending = new WeakMap<K, Pending>();

  /** The worker answered: its next tick pings it again. */
  answered(key: K): void {
    this.pending.delete(key);
  }

  /** One tick for one worker; a 'ping' verdict means the caller sends the ping now. */
  tick(key: K, link: LinkProgress): HeartbeatVerdict {
    const delivered = link.sentBytes - link.inFlightBytes;
    const received = link.receivedBytes;
    const p = this.pending.get(key);
    if (p === undefined) {
      this.pending.set(key, { before: link.sentBytes, delivered, received, waited: false });
      return { kind: 'ping' };
    }
    const behind = delivered < p.before && delivered > p.delivered;
    const sending = received > p.received;
    if (behind || sending) {
      p.delivered = delivered;
      p.received = received;
      const first = !p.waited;
      p.waited = true;
      return { kind: 'wait', ahead: Math.max(0, p.before - delivered), first };
    }
    return { kind: 'drop' };
  }
}
