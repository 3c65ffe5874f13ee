/**
 * The coordinator's liveness check, one verdict per worker per tick. A worker that answered the
 * last ping gets a new one; one that did not is dropped — unless that ping cannot have reached it
 * yet: a ping leaves behind every byte already queued on the connection, and a welcome (both
 * networks whole) or a star's weights crossing a slow, shared link can take longer than an
 * interval. So each ping remembers how many bytes were sent before it, and a worker still short of
 * them is kept while they keep arriving (its link is moving, its kernel acknowledging). A hung
 * process stops reading, its receive window closes, the bytes stop arriving, and it is dropped at
 * the next tick; one whose bytes stopped arriving with nothing acknowledged is dropped as before.
 */

/** What the tick reads off a worker's connection (coordinator/session.ts). */
export interface LinkProgress {
  /** Bytes sent to the worker since it connected (frames handed to the socket). */
  readonly sentBytes: number;
  /** Of those, the ones it has not acknowledged yet (queued here or held by the kernel). */
  readonly inFlightBytes: number;
}

export type HeartbeatVerdict =
  | { kind: 'ping' }
  /** The ping is still behind `ahead` bytes, and bytes arrived since the last tick. */
  | { kind: 'wait'; ahead: number; first: boolean }
  | { kind: 'drop' };

interface Pending {
  /** Bytes sent before the ping: the worker has it once it acknowledged that many. */
  readonly before: number;
  /** What it had acknowledged at the last tick. */
  delivered: number;
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
    const p = this.pending.get(key);
    if (p === undefined) {
      this.pending.set(key, { before: link.sentBytes, delivered, waited: false });
      return { kind: 'ping' };
    }
    if (delivered < p.before && delivered > p.delivered) {
      p.delivered = delivered;
      const first = !p.waited;
      p.waited = true;
      return { kind: 'wait', ahead: p.before - delivered, first };
    }
    return { kind: 'drop' };
  }
}
