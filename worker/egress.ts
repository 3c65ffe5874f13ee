/**
 * One worker's bulk frames, released onto its sockets in order of the phase's critical path. A
 * relaying worker's one link carries three kinds of bulk data at once: the piece totals it owes the
 * coordinator (everything after waits for them), its contributions to the other relays (their
 * totals wait for those), and the weights it passes on (only the phase's end waits for them).
 * Written as they come, they share the link flow by flow (TCP is fair per connection, and a worker
 * has ≈ 2W of them): a 20 KB total behind a megabyte of forwards took a second. So frames wait here,
 * by priority, and are handed to a socket only while few bytes are out: handed to sockets, or held
 * by their kernels, unacknowledged (shared/socket-queue.ts). Counting only what the kernel had not
 * yet taken was not enough: each socket's unsent queue was short (TCP_NOTSENT_LOWAT), but its
 * congestion window still let the kernel queue tens of kilobytes per connection in front of the
 * link, and with a connection per peer every piece's total waited behind all of them on its way up
 * (docs/architecture.md has the figures). No callback says when the peer acknowledges, so while the
 * window is full of such bytes the queue looks at the kernel again on a timer. Without the native
 * addon the kernel's bytes are unknown and only the first count applies.
 *
 * Phases overlap on a link: a worker whose weights were whole early starts the next phase while it
 * still passes the last weights on. Those forwards go first (`nextPhase`): every relay's next total
 * waits for the slowest worker's contributions, and that worker cannot compute before the forwards
 * reach it, so a new phase's contributions ahead of the old phase's forwards delay everyone.
 *
 * Small control frames do not come here: they are written at once.
 */

/** Bulk frame kinds, most urgent first. */
export const EGRESS_PRIORITIES = ['total', 'contrib', 'forward'] as const;
export type EgressPriority = (typeof EGRESS_PRIORITIES)[number];

/** Where a frame goes: a WebSocket (its send calls back once the kernel has taken the frame). */
export interface EgressSink {
  readonly readyState: number;
  send(data: Buffer, options: { binary: boolean }, cb: (err?: Error) => void): void;
}

const OPEN = 1;

interface Queued {
  sink: EgressSink;
  frame: Buffer;
}

export interface EgressOptions {
  /**
   * Bytes out (handed to sockets and not yet taken, or held by the kernel unacknowledged) beyond
   * which nothing but a total is released: enough to keep a link busy between two looks, few
   * enough that an urgent frame does not queue behind many others.
   */
  windowBytes: number;
  /** Called once for each socket before its first frame (to shorten its kernel queue). */
  prepare?: (sink: EgressSink) => void;
  /**
   * Bytes a socket's kernel still holds (written, not yet acknowledged; < 0: unknown). Given, they
   * count against the window too: the kernel sends what it holds flow by flow, fairly, so an urgent
   * frame waits behind all of it, however few bytes are still to hand out.
   */
  kernelBytes?: (sink: EgressSink) => number;
  /** Timers and clock (tests): how the queue looks again at the kernel while it waits for the window. */
  setTimer?: (fn: () => void, ms: number) => void;
  now?: () => number;
}

/** How long to wait before looking at the kernel's bytes again, at most and at first (ms). */
const MAX_POLL_MS = 40;
const FIRST_POLL_MS = 4;
/** The window is at least this long at the link's measured rate (ms). */
const WINDOW_MS = 8;

type Queues = Record<EgressPriority, Queued[]>;
const emptyQueues = (): Queues => ({ total: [], contrib: [], forward: [] });

export class Egress {
  /** Waiting frames by phase, oldest first (the last one takes new frames), then by priority. */
  private phases: Queues[] = [emptyQueues()];
  /** Sinks with a frame handed out and not yet taken: one at a time each. */
  private readonly busy = new Set<EgressSink>();
  private readonly seen = new WeakSet<EgressSink>();
  private handedOut = 0;
  /** Sockets whose kernel may still hold bytes of ours. */
  private readonly inKernel = new Set<EgressSink>();
  /** What their kernels hold, as last read (plus what they took since). */
  private held = 0;
  /** A look at the kernel is scheduled. */
  private polling = false;
  /** The wait between looks (ms). */
  private pollMs = FIRST_POLL_MS;
  /** When `held` was last read from the kernel (ms). */
  private readAt = Number.NEGATIVE_INFINITY;
  private readonly now: () => number;
  /** Bytes the kernel passed on per ms while the window was full (0: not measured yet). */
  private rate = 0;
  /** Frames dropped because their socket closed before they left (the plan changes then). */
  dropped = 0;

  constructor(private readonly o: EgressOptions) {
    this.now = o.now ?? (() => performance.now());
  }

  /** Queues a bulk frame for `sink`. */
  send(sink: EgressSink, frame: Buffer, priority: EgressPriority): void {
    if (!this.seen.has(sink)) {
      this.seen.add(sink);
      this.o.prepare?.(sink);
    }
    this.phases.at(-1)![priority].push({ sink, frame });
    this.pump();
  }

  /** A new phase begins: every frame queued so far leaves before any queued from now on. */
  nextPhase(): void {
    if (this.waitingIn(this.phases.at(-1)!) > 0) this.phases.push(emptyQueues());
  }

  /** Frames waiting (tests, logs). */
  get waiting(): number {
    return this.phases.reduce((n, q) => n + this.waitingIn(q), 0);
  }

  /** Bytes handed to sockets and not yet acknowledged (as last read from the kernel). */
  get outstanding(): number {
    return this.handedOut + this.held;
  }

  /** Drops every waiting frame (a new run: they belong to the old one). */
  clear(): void {
    this.dropped += this.waiting;
    this.phases = [emptyQueues()];
  }

  private waitingIn(q: Queues): number {
    return EGRESS_PRIORITIES.reduce((n, p) => n + q[p].length, 0);
  }

  private pump(): void {
    // Phases whose frames have all left are done with (the newest stays to take frames).
    while (this.phases.length > 1 && this.waitingIn(this.phases[0]!) === 0) this.phases.shift();
    // Totals go whatever the window holds (they are few and everything waits for them); the rest
    // in order of phase, then of priority, while the window has room.
    for (const q of this.phases) this.release(q.total, false);
    for (const q of this.phases)
      if (!this.release(q.contrib, true) || !this.release(q.forward, true)) {
        this.pollLater();
        return;
      }
  }

  /** What the kernel still holds of ours, socket by socket. */
  private readKernel(): void {
    const read = this.o.kernelBytes;
    if (read === undefined) return;
    this.readAt = this.now();
    this.held = 0;
    for (const sink of this.inKernel) {
      const n = sink.readyState === OPEN ? read(sink) : 0;
      if (n > 0) this.held += n;
      else this.inKernel.delete(sink);
    }
  }

  /**
   * The window is full of bytes the kernel holds: no callback says when they leave, so look again
   * later. What left meanwhile is the link's rate (the window was full all along): the window grows
   * to WINDOW_MS of it where that is more (a fast link would idle between looks at a small one),
   * and the next look comes after about a quarter window's worth.
   */
  private pollLater(): void {
    if (this.polling || this.held === 0) return;
    this.polling = true;
    const since = this.now();
    const at = this.o.setTimer ?? ((fn: () => void, ms: number) => setTimeout(fn, ms).unref());
    at(() => {
      this.polling = false;
      const estimate = this.held;
      this.readKernel();
      const ms = this.now() - since;
      const left = estimate - this.held;
      if (ms > 0 && left > 0) this.rate = this.rate === 0 ? left / ms : (this.rate + left / ms) / 2;
      this.pollMs =
        this.rate > 0
          ? Math.min(MAX_POLL_MS, Math.max(1, this.window() / 4 / this.rate))
          : Math.min(MAX_POLL_MS, this.pollMs * 2);
      this.pump();
    }, this.pollMs);
  }

  /** The window: the configured bytes, or WINDOW_MS of the link's measured rate where that is more. */
  private window(): number {
    return Math.max(this.o.windowBytes, this.rate * WINDOW_MS);
  }

  /** Hands out `q`'s frames whose sockets are free; false when the window stopped it. */
  private release(q: Queued[], windowed: boolean): boolean {
    for (let i = 0; i < q.length; ) {
      const { sink, frame } = q[i]!;
      if (sink.readyState !== OPEN) {
        q.splice(i, 1);
        this.dropped++;
        continue;
      }
      if (this.busy.has(sink)) {
        i++;
        continue;
      }
      if (windowed && this.full(frame.length)) return false;
      q.splice(i, 1);
      this.handOut(sink, frame);
    }
    return true;
  }

  /**
   * Whether `bytes` more would overfill the window (a frame larger than it still goes alone). The
   * kernel's count is looked at again only when the last look says full and is older than the
   * current wait between looks (a look is a system call per socket, and frames are many): between
   * looks it only overstates (bytes taken are added at once, acknowledgements seen at the next look).
   */
  private full(bytes: number): boolean {
    if (!this.over(bytes)) return false;
    if (this.now() - this.readAt >= this.pollMs) this.readKernel();
    return this.over(bytes);
  }

  private over(bytes: number): boolean {
    const out = this.handedOut + this.held;
    return out > 0 && out + bytes > this.window();
  }

  private handOut(sink: EgressSink, frame: Buffer): void {
    this.busy.add(sink);
    this.handedOut += frame.length;
    sink.send(frame, { binary: true }, () => {
      this.busy.delete(sink);
      this.handedOut -= frame.length;
      // Taken by the kernel, which holds it until the peer acknowledges it.
      if (this.o.kernelBytes !== undefined) {
        this.inKernel.add(sink);
        this.held += frame.length;
      }
      // The callback comes from the socket's write completion, never from inside pump.
      this.pump();
    });
  }
}
