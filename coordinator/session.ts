/**
 * One worker's connection as the coordinator sees it, with its one state machine:
 *
 *   awaiting-hello ──activate()──▶ active ──close() / socket closed──▶ closed
 *
 * Only this class changes `state` (as ws does with `readyState`); the server calls `activate` and
 * `close`, the dispatcher `take` and `finish` for the shard the worker computes. Log bindings are
 * values the coordinator assigns (the worker id), never client input.
 */
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import type { CloseCodeValue } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import type { Phase } from '../shared/protocol.js';
import { unackedBytes, unsentBytes } from '../shared/socket-queue.js';
import type { LinkProgress } from './heartbeat.js';

export type SessionState = 'awaiting-hello' | 'active' | 'closed';

/** The shard a worker computes now (at most one at a time). */
export interface Assignment {
  readonly step: number;
  readonly phase: Phase;
  readonly start: number;
  readonly count: number;
  /** Which run of the phase it belongs to (a phase redone with coarser quanta starts a new one). */
  readonly attempt: number;
  readonly sentAt: number;
}

/** After this many rejected results in a row a worker is disconnected. */
export const MAX_STRIKES = 3;

export class WorkerSession {
  private current: SessionState = 'awaiting-hello';
  private held: Assignment | undefined;
  private strikeCount = 0;
  /** Its socket is corked until the end of this tick (`coalesce`). */
  private corked = false;
  backend = 'unknown';
  device = 'unknown';
  /** Where it takes other workers' contributions (coordinator/topology.ts), if it can relay. */
  relayUrl: string | undefined;
  zone = '';
  /** Bytes of frames on this worker's socket, each way, and what it last said it moved with its peers. */
  readonly bytes = { in: 0, out: 0, peerIn: 0, peerOut: 0 };
  /** Samples per millisecond, smoothed; 0 until the first result. */
  throughput = 0;
  readonly log: Logger;

  constructor(
    readonly id: number,
    readonly ws: WebSocket,
    readonly remote: string,
    parentLog: Logger,
  ) {
    this.log = parentLog.child({ workerId: id });
  }

  get state(): SessionState {
    return this.current;
  }

  get assignment(): Assignment | undefined {
    return this.held;
  }

  get idle(): boolean {
    return this.current === 'active' && this.held === undefined;
  }

  /** The handshake succeeded: the worker may take shards. */
  activate(backend: string, device: string, relayUrl?: string, zone = ''): void {
    if (this.current !== 'awaiting-hello') throw new Error(`session ${this.id}: activate while ${this.current}`);
    this.backend = backend;
    this.device = device;
    this.relayUrl = relayUrl;
    this.zone = zone;
    this.current = 'active';
  }

  /** Hands the worker a shard; it must be idle. */
  take(a: Assignment): void {
    if (!this.idle) throw new Error(`session ${this.id}: take while ${this.current}, holding ${this.held?.start}`);
    this.held = a;
  }

  /** The worker answered (or left): returns the shard it held. */
  finish(): Assignment | undefined {
    const a = this.held;
    this.held = undefined;
    return a;
  }

  /** Counts a rejected result; true once that makes MAX_STRIKES in a row. */
  strike(): boolean {
    return ++this.strikeCount >= MAX_STRIKES;
  }

  get strikes(): number {
    return this.strikeCount;
  }

  /** A result of this worker went into a completed sum: its strikes start over. */
  clearStrikes(): void {
    this.strikeCount = 0;
  }

  /** Folds a shard's measured compute time into the throughput estimate used for sharding. */
  recordThroughput(count: number, computeMs: number): void {
    const rate = count / Math.max(computeMs, 0.01);
    this.throughput = this.throughput === 0 ? rate : 0.7 * this.throughput + 0.3 * rate;
  }

  /**
   * Bytes sent to this worker that it has not acknowledged: what this process has not handed to
   * the kernel yet plus what the kernel still holds (where the native addon can read it). A worker
   * whose welcome (both networks whole) is still crossing a slow link cannot answer before it
   * arrives: the dispatcher's wait log says so.
   */
  get inFlightBytes(): number {
    return unsentBytes(this.ws) + Math.max(0, unackedBytes(this.ws));
  }

  /** Bytes sent, still in flight and received, for the heartbeat (coordinator/heartbeat.ts). */
  get link(): LinkProgress {
    return { sentBytes: this.bytes.out, inFlightBytes: this.inFlightBytes, receivedBytes: this.bytes.in };
  }

  /** Sends a frame; `done` runs once the socket has written it out or failed to (or at once when closed). */
  send(frame: Buffer, done?: () => void): void {
    if (this.current === 'closed') {
      if (done) queueMicrotask(done);
      return;
    }
    this.bytes.out += frame.length;
    this.coalesce();
    this.ws.send(frame, { binary: true }, done && (() => done()));
  }

  /**
   * Frames sent to this worker in one turn of the event loop (a weights notice, then the next
   * assign) leave in one write: a write is a system call, and small frames cost little else.
   */
  private coalesce(): void {
    const socket = (this.ws as unknown as { _socket?: Socket })._socket;
    if (this.corked || socket === undefined || socket.destroyed) return;
    this.corked = true;
    socket.cork();
    process.nextTick(() => {
      this.corked = false;
      socket.uncork();
    });
  }

  /** Ends the session (idempotent); with a code, the socket is closed with it. */
  close(code?: CloseCodeValue | 1011, reason = ''): void {
    if (this.current === 'closed') return;
    this.current = 'closed';
    // Close reasons are limited to 123 bytes by RFC 6455.
    if (code !== undefined) this.ws.close(code, Buffer.from(reason).subarray(0, 123).toString());
  }
}
