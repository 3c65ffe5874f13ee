/**
 * One worker's connection as the coordinator sees it:
 *
 *   awaiting-hello ──valid hello──▶ active ──socket closed / protocol error──▶ closed
 *
 * Log bindings are values the coordinator assigns (the worker id), never client input.
 */
import type { WebSocket } from 'ws';
import type { Logger } from '../shared/log.js';
import type { Phase } from '../shared/protocol.js';
import type { Shard } from './reducer.js';

export type SessionState = 'awaiting-hello' | 'active' | 'closed';

/** The shard a worker is computing now. */
export interface Assignment {
  step: number;
  phase: Phase;
  shard: Shard;
  sentAt: number;
}

export class WorkerSession {
  state: SessionState = 'awaiting-hello';
  backend = 'unknown';
  device = 'unknown';
  /** Samples per millisecond, smoothed; 0 until the first result. */
  throughput = 0;
  assignment: Assignment | undefined;
  shardsDone = 0;
  readonly log: Logger;

  constructor(
    readonly id: number,
    readonly ws: WebSocket,
    readonly remote: string,
    parentLog: Logger,
  ) {
    this.log = parentLog.child({ workerId: id });
  }

  get idle(): boolean {
    return this.state === 'active' && this.assignment === undefined;
  }

  /** Folds a shard's measured compute time into the throughput estimate used for sharding. */
  recordThroughput(count: number, computeMs: number): void {
    const rate = count / Math.max(computeMs, 0.01);
    this.throughput = this.throughput === 0 ? rate : 0.7 * this.throughput + 0.3 * rate;
  }

  /** Sends a frame; `done` runs once the socket has written it out or failed to (or at once when closed). */
  send(frame: Buffer, done?: () => void): void {
    if (this.state === 'closed') {
      if (done) queueMicrotask(done);
      return;
    }
    this.ws.send(frame, { binary: true }, done && (() => done()));
  }

  close(code: number, reason: string): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    // Close reasons are limited to 123 bytes by RFC 6455.
    this.ws.close(code, Buffer.from(reason).subarray(0, 123).toString());
  }
}
