/**
 * One worker's bulk frames, released onto its sockets in order of the phase's critical path. A
 * relaying worker's one link carries three kinds of bulk data at once: the piece totals it owes the
 * coordinator (everything after waits for them), its contributions to the other relays (their
 * totals wait for those), and the weights it passes on (only the phase's end waits for them).
 * Written as they come, they share the link flow by flow (TCP is fair per connection, and a worker
 * has ≈ 2W of them): a 20 KB total behind a megabyte of forwards took a second. So frames wait here,
 * by priority, and are handed to a socket only while little is handed out and not yet taken by the
 * kernel; with the kernel's own queue kept short (TCP_NOTSENT_LOWAT, shared/socket-queue.ts), what
 * leaves next is what this queue chose.
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
   * Bytes handed to sockets and not yet taken by the kernel beyond which nothing but a total is
   * released: enough to keep a link busy between two callbacks, few enough that an urgent frame
   * does not share the link with many others.
   */
  windowBytes: number;
  /** Called once for each socket before its first frame (to shorten its kernel queue). */
  prepare?: (sink: EgressSink) => void;
}

export class Egress {
  private readonly queues: Record<EgressPriority, Queued[]> = { total: [], contrib: [], forward: [] };
  /** Sinks with a frame handed out and not yet taken: one at a time each. */
  private readonly busy = new Set<EgressSink>();
  private readonly seen = new WeakSet<EgressSink>();
  private handedOut = 0;
  /** Frames dropped because their socket closed before they left (the plan changes then). */
  dropped = 0;

  constructor(private readonly o: EgressOptions) {}

  /** Queues a bulk frame for `sink`. */
  send(sink: EgressSink, frame: Buffer, priority: EgressPriority): void {
    if (!this.seen.has(sink)) {
      this.seen.add(sink);
      this.o.prepare?.(sink);
    }
    this.queues[priority].push({ sink, frame });
    this.pump();
  }

  /** Frames waiting (tests, logs). */
  get waiting(): number {
    return EGRESS_PRIORITIES.reduce((n, p) => n + this.queues[p].length, 0);
  }

  /** Bytes handed to sockets and not yet taken by the kernel. */
  get outstanding(): number {
    return this.handedOut;
  }

  /** Drops every waiting frame (a new run: they belong to the old one). */
  clear(): void {
    for (const p of EGRESS_PRIORITIES) {
      this.dropped += this.queues[p].length;
      this.queues[p] = [];
    }
  }

  private pump(): void {
    for (const p of EGRESS_PRIORITIES) {
      const q = this.queues[p];
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
        // Totals always go (they are few and everything waits for them); the rest within the window.
        if (p !== 'total' && this.handedOut > 0 && this.handedOut + frame.length > this.o.windowBytes) return;
        q.splice(i, 1);
        this.handOut(sink, frame);
      }
    }
  }

  private handOut(sink: EgressSink, frame: Buffer): void {
    this.busy.add(sink);
    this.handedOut += frame.length;
    sink.send(frame, { binary: true }, () => {
      this.busy.delete(sink);
      this.handedOut -= frame.length;
      // The callback comes from the socket's write completion, never from inside pump.
      this.pump();
    });
  }
}
