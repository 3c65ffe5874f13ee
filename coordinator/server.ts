/**
 * The coordinator's network edge: an HTTP server whose upgrade requests become worker sessions.
 * It checks the handshake (protocol version, model manifest, dataset), validates every frame, and
 * hands valid results to the trainer. Anything invalid closes that one connection with a close
 * code and a logged reason; it never reaches the optimizer.
 */
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { chmodSync, existsSync, lstatSync, unlinkSync } from 'node:fs';
import { Admission } from '../shared/admission.js';
import { WebSocketServer, type WebSocket } from 'ws';
import { CloseCode, type CloseCodeValue, GanfleetError, ProtocolError, UsageError } from '../shared/errors.js';
import type { LogEvent, Logger } from '../shared/log.js';
import { MANIFESTS, manifestHash, type NetName } from '../shared/model.js';
import { weightSteps } from '../shared/weight-steps.js';
import {
  PROTOCOL_VERSION,
  decodeWorkerMessage,
  encode,
  maxPayload,
  type HelloMessage,
  type ResultMessage,
  weightsFrame,
} from '../shared/protocol.js';
import { Heartbeat } from './heartbeat.js';
import { WorkerSession } from './session.js';
import { type ShmOffer, ShmHub } from './shm-hub.js';
import type { FramePool } from './frame-pool.js';
import type { SessionEvent } from './events.js';
import { boundsOf, type Plan, STAR, zoneOf } from './topology.js';
import { piecesFor } from '../shared/slices.js';

/** What the server needs from the coordinator behind it. */
export interface ServerHooks {
  /** The welcome frame for a newly accepted worker (current config and weights, a shared-memory offer). */
  welcome(session: WorkerSession, shm: ShmOffer | undefined): Buffer;
  /**
   * Joins, departures and validated results, in the order they happened. The consumer queues
   * them (coordinator/event-queue.ts): an event raised while one is handled waits its turn.
   */
  event(e: SessionEvent): void;
}

export interface ServerOptions {
  host: string;
  port: number;
  datasetHash: string;
  logger: Logger;
  helloTimeoutMs?: number;
  /** Shared secret every worker must present during the upgrade. */
  token?: string;
  /** PEM certificate and key: serve wss:// and https://. */
  tls?: { cert: Buffer; key: Buffer };
  maxConnections?: number;
  handshakesPerSecond?: number;
  /** Ping interval; a worker that misses a whole interval's pong is dropped (0 disables). */
  heartbeatMs?: number;
  /**
   * Also listen on this Unix domain socket (mode 0600), for workers on the same host
   * (ws+unix://PATH): the same protocol, token and limits, without the TCP stack's cost.
   */
  socketPath?: string;
  /** Offer workers on this host shared memory for weights and gradients (default true; shared/shm.ts). */
  shm?: boolean;
}

/** Extra HTTP routes (e.g. /metrics); return false to fall through to 404. */
export type HttpRoute = (req: IncomingMessage, res: ServerResponse) => boolean;

export class CoordinatorServer {
  private readonly http: HttpServer;
  /** The Unix-socket listener, when `socketPath` is set. */
  private readonly local: HttpServer | undefined;
  private readonly wss: WebSocketServer;
  readonly sessions = new Map<number, WorkerSession>();
  private nextId = 1;
  private readonly log: Logger;
  private readonly manifest = manifestHash();
  private hooks: ServerHooks | undefined;
  private readonly admission: Admission;
  private heartbeat: NodeJS.Timeout | undefined;
  private readonly beats = new Heartbeat<WebSocket>();
  /** Bytes of WebSocket payload received from and sent to workers, in all. */
  bytesIn = 0;
  bytesOut = 0;
  /** Bytes that went through shared memory instead: results read from slots, weights read by workers. */
  bytesShmIn = 0;
  bytesShmOut = 0;
  /** Set by the trainer: true while training can proceed (for /readyz). */
  ready = false;
  readonly routes: HttpRoute[] = [];

  constructor(private readonly opts: ServerOptions) {
    this.log = opts.logger.child({ component: 'server' });
    const onRequest = (req: IncomingMessage, res: ServerResponse) => this.request(req, res);
    this.http = opts.tls
      ? createHttpsServer({ cert: opts.tls.cert, key: opts.tls.key }, onRequest)
      : createServer(onRequest);
    this.admission = new Admission(
      {
        token: opts.token,
        maxConnections: opts.maxConnections ?? 256,
        handshakesPerSecond: opts.handshakesPerSecond ?? 100,
      },
      this.log,
    );
    this.wss = new WebSocketServer({ noServer: true, maxPayload: maxPayload(), perMessageDeflate: false });
    const onUpgrade = (req: IncomingMessage, socket: Socket, head: Buffer) => {
      // Authentication and limits are decided here, on the HTTP request: a refused peer never
      // gets a WebSocket, so none of its frames can reach the protocol layer.
      const verdict = this.admission.check(req, this.wss.clients.size);
      if (!verdict.ok) {
        const text =
          verdict.status === 401
            ? 'Unauthorized'
            : verdict.status === 429
              ? 'Too Many Requests'
              : 'Service Unavailable';
        socket.end(
          `HTTP/1.1 ${verdict.status} ${text}\r\nConnection: close\r\nContent-Type: text/plain\r\n` +
            `Content-Length: ${verdict.reason.length + 1}\r\n\r\n${verdict.reason}\n`,
        );
        return;
      }
      const remote =
        req.socket.remoteAddress === undefined ? 'unix' : `${req.socket.remoteAddress}:${req.socket.remotePort}`;
      this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, remote));
    };
    this.http.on('upgrade', onUpgrade);
    if (opts.socketPath !== undefined) {
      this.local = createServer(onRequest);
      this.local.on('upgrade', onUpgrade);
    }
  }

  private request(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return;
    }
    if (path === '/readyz') {
      res
        .writeHead(this.ready ? 200 : 503, { 'content-type': 'text/plain' })
        .end(this.ready ? 'ready\n' : 'not ready\n');
      return;
    }
    for (const route of this.routes) if (route(req, res)) return;
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  }

  /**
   * Pings every worker each interval; one that did not answer the previous ping is dropped, unless
   * its link shows it alive and the pong merely late (coordinator/heartbeat.ts).
   */
  private startHeartbeat(): void {
    const every = this.opts.heartbeatMs ?? 10_000;
    if (every <= 0) return;
    this.heartbeat = setInterval(() => {
      for (const s of this.sessions.values()) {
        if (s.state === 'closed') continue;
        const verdict = this.beats.tick(s.ws, s.link);
        switch (verdict.kind) {
          case 'ping':
            s.ws.ping();
            break;
          case 'wait':
            if (verdict.first)
              s.log.info(
                { event: 'heartbeat-deferred' satisfies LogEvent, heartbeatMs: every, bytesAhead: verdict.ahead },
                'no pong yet, but its link is moving (bytes still ahead of the ping, or its own arriving): kept',
              );
            break;
          case 'drop':
            s.log.warn(
              { event: 'heartbeat-missed' satisfies LogEvent, heartbeatMs: every },
              'worker missed a heartbeat; dropping it',
            );
            this.refuse(
              s,
              new ProtocolError('ERR_HEARTBEAT', `no pong within ${every} ms`, CloseCode.HEARTBEAT_TIMEOUT),
            );
            s.ws.terminate();
            break;
          default:
            verdict satisfies never;
        }
      }
    }, every);
    this.heartbeat.unref();
  }

  /** Starts listening; resolves with the bound port (useful with port 0). */
  async listen(hooks: ServerHooks): Promise<number> {
    this.hooks = hooks;
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(this.opts.port, this.opts.host, () => resolve());
    });
    const port = (this.http.address() as AddressInfo).port;
    if (this.local !== undefined) {
      try {
        await listenUnix(this.local, this.opts.socketPath!);
      } catch (err) {
        await new Promise<void>((resolve) => this.http.close(() => resolve()));
        throw err;
      }
    }
    this.startHeartbeat();
    if (this.opts.shm !== false) this.shm = ShmHub.start(this.log);
    this.log.info(
      { host: this.opts.host, port, tls: this.opts.tls !== undefined, auth: this.opts.token !== undefined },
      `listening for workers on ${this.opts.tls ? 'wss' : 'ws'}://${hostForUrl(this.opts.host)}:${port}`,
    );
    if (this.local !== undefined)
      this.log.info(
        { socket: this.opts.socketPath },
        `listening for workers on this host on ws+unix://${this.opts.socketPath}`,
      );
    return port;
  }

  /** Where weights are written when no frame or segment needs them (relays only). */
  private readonly scratch: Partial<Record<NetName, Float32Array>> = {};

  /** Which sessions use shared memory (undefined where it is off or cannot be made). */
  private shm: ShmHub | undefined;

  /** Whether a session takes weights and gives results through shared memory. */
  usesShm(session: WorkerSession): boolean {
    return this.shm?.ready(session) ?? false;
  }

  /** How the active workers reach this coordinator: shared memory, the Unix socket, or TCP. */
  transports(): { shm: number; unix: number; tcp: number } {
    const t = { shm: 0, unix: 0, tcp: 0 };
    for (const s of this.active()) {
      if (this.shm?.ready(s)) t.shm++;
      else if (s.remote === 'unix') t.unix++;
      else t.tcp++;
    }
    return t;
  }

  /** Active sessions, in join order. */
  active(): WorkerSession[] {
    return [...this.sessions.values()].filter((s) => s.state === 'active');
  }

  /**
   * Sends one already-encoded frame to every active worker (the same buffer, no re-encoding).
   * `written` is called once every socket is done with the buffer (written out or failed).
   */
  broadcast(frame: Buffer, written?: () => void): void {
    let outstanding = 1;
    const one = written && (() => --outstanding === 0 && written());
    for (const s of this.sessions.values()) {
      if (s.state !== 'active') continue;
      outstanding++;
      s.send(frame, one);
      this.bytesOut += frame.length;
    }
    one?.();
  }

  /**
   * Sends every active worker version `version` of `net`, as `fill` writes it: once into the
   * shared-memory weights segment when some workers use it (they get a small notice), and into one
   * frame for the others (from a pool: `frames`), whichever are needed; `fill` runs once.
   */
  broadcastWeights(
    net: NetName,
    version: number,
    fill: (out: Float32Array) => void,
    frames: FramePool,
    topology: Plan = STAR,
    /** The relays have every piece already (stepped and sent as their totals came in). */
    piecesSent = false,
  ): void {
    const active = this.active();
    const viaShm = this.shm === undefined ? [] : active.filter((s) => this.shm!.ready(s));
    // Workers of a relay zone get their weights slice by slice from the zone's relays.
    const viaRelays = active.filter((s) => !viaShm.includes(s) && zoneOf(topology, s.id) !== undefined);
    const viaSocket = active.filter((s) => !viaShm.includes(s) && !viaRelays.includes(s));
    const shmOut = viaShm.length > 0 ? this.shm!.beginWeights(net, version) : undefined;
    const frame = viaSocket.length > 0 ? weightsFrame(net, version, MANIFESTS[net].size, frames.alloc) : undefined;
    const out = shmOut ?? frame?.data ?? (this.scratch[net] ??= new Float32Array(MANIFESTS[net].size));
    fill(out);
    if (frame !== undefined && frame.data !== out) frame.data.set(out);
    for (const zone of piecesSent ? [] : topology.zones) {
      const bounds = boundsOf(zone, MANIFESTS[net].size);
      const pieces = piecesFor(MANIFESTS[net].size, zone.relays.length);
      for (const [r, relay] of zone.relays.entries()) {
        const s = viaRelays.find((x) => x.id === relay.worker);
        for (let p = r * pieces; s !== undefined && p < (r + 1) * pieces; p++)
          this.sendPiece(s, topology.id, net, version, bounds[p]!, out.subarray(bounds[p]!, bounds[p + 1]!));
      }
    }
    if (shmOut !== undefined) {
      this.shm!.endWeights(net, version);
      const notice = encode({ t: 'weights-shm', net, version });
      for (const s of viaShm) this.sendTo(s, notice);
      this.bytesShmOut += viaShm.length * shmOut.byteLength;
    }
    if (frame !== undefined) {
      let outstanding = 1;
      const one = () => --outstanding === 0 && frames.release(frame.frame);
      for (const s of viaSocket) {
        outstanding++;
        s.send(frame.frame, one);
        this.bytesOut += frame.frame.length;
      }
      one();
    }
  }

  /** Closes a worker's connection for `err` (its close code and message) and hands it to `left`. */
  disconnect(session: WorkerSession, err: GanfleetError): void {
    if (session.state !== 'closed') this.refuse(session, err);
  }

  /**
   * Sends a relay one piece of new weights, to pass on to its zone: whole, or — given the version
   * before, which every worker of the zone holds — as the steps from it.
   */
  sendPiece(
    relay: WorkerSession,
    plan: number,
    net: NetName,
    version: number,
    start: number,
    data: Float32Array,
    previous?: Float32Array,
  ): void {
    const head = { t: 'weights-slice', plan, net, version, start } as const;
    const msg = previous === undefined ? { ...head, data } : { ...head, steps: weightSteps(previous, data) };
    this.sendTo(relay, encode(msg));
  }

  /** Sends a frame to one worker, counting its bytes. */
  sendTo(session: WorkerSession, frame: Buffer): void {
    session.send(frame);
    this.bytesOut += frame.length;
  }

  /** Closes every connection with `code` and stops listening. */
  async close(code: CloseCodeValue = CloseCode.GOING_AWAY, reason = 'coordinator shutting down'): Promise<void> {
    clearInterval(this.heartbeat);
    this.ready = false;
    for (const s of this.sessions.values()) s.close(code, reason);
    this.shm?.close();
    await new Promise<void>((resolve) => {
      // Give close frames a moment to flush before the sockets are torn down.
      const t = setTimeout(() => {
        for (const c of this.wss.clients) c.terminate();
      }, 1000);
      this.wss.close(() => {
        // Closing the Unix listener also removes its socket file.
        this.local?.close();
        this.local?.closeAllConnections();
        this.http.close(() => {
          clearTimeout(t);
          resolve();
        });
        this.http.closeAllConnections?.();
      });
      if (this.wss.clients.size === 0) clearTimeout(t);
    });
  }

  private accept(ws: WebSocket, remote: string): void {
    const session = new WorkerSession(this.nextId++, ws, remote, this.log);
    this.sessions.set(session.id, session);
    ws.on('pong', () => this.beats.answered(ws));
    session.log.info({ event: 'session-opened' satisfies LogEvent, remote }, 'worker connected; waiting for hello');
    const helloTimer = setTimeout(() => {
      if (session.state === 'awaiting-hello')
        this.refuse(
          session,
          new ProtocolError(
            'ERR_HELLO_TIMEOUT',
            `no hello within ${this.opts.helloTimeoutMs ?? 10_000} ms`,
            CloseCode.HELLO_TIMEOUT,
          ),
        );
    }, this.opts.helloTimeoutMs ?? 10_000);
    ws.on('message', (data, isBinary) => {
      if (session.state === 'closed') return;
      this.bytesIn += (data as Buffer).length;
      session.bytes.in += (data as Buffer).length;
      try {
        if (!isBinary)
          throw new ProtocolError('ERR_BAD_FRAME', 'text frame; the protocol is binary', CloseCode.BAD_FRAME);
        const msg = decodeWorkerMessage(data as Buffer);
        if (msg.t === 'hello') {
          if (session.state !== 'awaiting-hello')
            throw new ProtocolError('ERR_UNEXPECTED_MESSAGE', 'second hello', CloseCode.UNEXPECTED_MESSAGE);
          clearTimeout(helloTimer);
          this.handshake(session, msg);
          return;
        }
        if (session.state !== 'active')
          throw new ProtocolError('ERR_UNEXPECTED_MESSAGE', `"${msg.t}" before hello`, CloseCode.UNEXPECTED_MESSAGE);
        switch (msg.t) {
          case 'shm':
            if (this.shm === undefined)
              throw new ProtocolError(
                'ERR_UNEXPECTED_MESSAGE',
                'a shared-memory answer without an offer',
                CloseCode.UNEXPECTED_MESSAGE,
              );
            this.shm.answer(session, msg);
            return;
          case 'shm-result': {
            if (this.shm === undefined)
              throw new ProtocolError(
                'ERR_UNEXPECTED_MESSAGE',
                'a shared-memory result without a link',
                CloseCode.UNEXPECTED_MESSAGE,
              );
            const result = this.shm.result(session, msg);
            this.bytesShmIn += resultBytes(result);
            this.hooks!.event({ kind: 'result', session, msg: result });
            return;
          }
          case 'relayed':
            session.bytes.peerIn = msg.peerIn;
            session.bytes.peerOut = msg.peerOut;
            this.hooks!.event({ kind: 'result', session, msg });
            return;
          case 'result':
          case 'failed':
          case 'slice-total':
            this.hooks!.event({ kind: 'result', session, msg });
            return;
          default: {
            const never: never = msg;
            throw new Error(`unhandled message ${JSON.stringify(never)}`);
          }
        }
      } catch (err) {
        this.refuse(session, err);
      }
    });
    ws.on('error', (err) => session.log.warn({ err: err.message }, 'socket error'));
    ws.on('close', (code, reason) => {
      clearTimeout(helloTimer);
      // A session refused while active was already reported as left by `refuse`.
      const wasActive = session.state === 'active' && this.sessions.get(session.id) === session;
      session.close();
      this.sessions.delete(session.id);
      this.shm?.drop(session);
      session.log.info({ code, reason: reason.toString() }, 'worker disconnected');
      if (wasActive) this.hooks!.event({ kind: 'left', session, code, reason: reason.toString() });
    });
  }

  private handshake(session: WorkerSession, hello: HelloMessage): void {
    if (hello.protocol !== PROTOCOL_VERSION) {
      throw new ProtocolError(
        'ERR_PROTOCOL_VERSION',
        `protocol version ${hello.protocol} is not supported; the coordinator speaks ${PROTOCOL_VERSION}`,
        CloseCode.PROTOCOL_VERSION,
      );
    }
    if (hello.manifest !== this.manifest) {
      throw new ProtocolError(
        'ERR_MANIFEST_MISMATCH',
        `model manifest ${hello.manifest.slice(0, 12)}… differs from the coordinator's ${this.manifest.slice(0, 12)}…`,
        CloseCode.MANIFEST_MISMATCH,
      );
    }
    if (hello.dataset !== this.opts.datasetHash) {
      throw new ProtocolError(
        'ERR_DATASET_MISMATCH',
        `dataset ${hello.dataset.slice(0, 12)}… differs from the coordinator's ${this.opts.datasetHash.slice(0, 12)}…`,
        CloseCode.DATASET_MISMATCH,
      );
    }
    this.sendTo(session, this.hooks!.welcome(session, this.shm?.offer(session)));
    session.activate(hello.backend, hello.device, relayUrl(hello, session.remote), hello.zone);
    session.log.info(
      { event: 'session-joined' satisfies LogEvent, backend: hello.backend, device: hello.device },
      'worker joined',
    );
    this.hooks!.event({ kind: 'joined', session });
  }

  private refuse(session: WorkerSession, err: unknown): void {
    const e =
      err instanceof GanfleetError
        ? err
        : new GanfleetError('ERR_INTERNAL', String((err as Error)?.message ?? err), {
            closeCode: CloseCode.INTERNAL_ERROR,
          });
    session.log.warn(
      { event: 'session-closed' satisfies LogEvent, code: e.code, closeCode: e.closeCode },
      `closing worker connection: ${e.message}`,
    );
    const wasActive = session.state === 'active';
    session.close(e.closeCode ?? CloseCode.BAD_FRAME, e.message);
    if (wasActive) {
      this.sessions.delete(session.id);
      this.hooks!.event({ kind: 'left', session, code: e.closeCode ?? CloseCode.BAD_FRAME, reason: e.message });
    }
  }
}

/**
 * Listens on a Unix domain socket readable and writable by this user only. A socket file left
 * by a coordinator that died is replaced; one that still answers is refused as in use.
 */
async function listenUnix(server: HttpServer, path: string): Promise<void> {
  if (existsSync(path)) {
    if (!lstatSync(path).isSocket()) throw new UsageError(`--socket ${path}: exists and is not a socket`);
    const alive = await new Promise<boolean>((resolve) => {
      const probe = connect(path);
      probe.once('connect', () => {
        probe.destroy();
        resolve(true);
      });
      probe.once('error', () => resolve(false));
    });
    if (alive) throw new UsageError(`--socket ${path}: another process is listening there`);
    unlinkSync(path);
  }
  const umask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    });
  } finally {
    process.umask(umask);
  }
  chmodSync(path, 0o600);
}

/** A host as it goes into a URL: IPv6 addresses in brackets. */
function hostForUrl(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/** Payload bytes of a result's gradient. */
function resultBytes(r: ResultMessage): number {
  const g = r.grad;
  return g.dtype === 'exact' ? g.total.low.byteLength + g.total.exIndex.byteLength * 2 : g.values.byteLength;
}

/** Where a worker's relay is reached: the address it named, else the one it connected from. */
function relayUrl(hello: HelloMessage, remote: string): string | undefined {
  if (hello.relay === undefined) return undefined;
  const from = remote === 'unix' ? '127.0.0.1' : remote.replace(/:\d+$/, '').replace(/^::ffff:/, '');
  const host = hello.relay.host ?? from;
  const bracketed = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return `${hello.relay.tls ? 'wss' : 'ws'}://${bracketed}:${hello.relay.port}`;
}
