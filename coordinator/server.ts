/**
 * The coordinator's network edge: an HTTP server whose upgrade requests become worker sessions.
 * It checks the handshake (protocol version, model manifest, dataset), validates every frame, and
 * hands valid results to the trainer. Anything invalid closes that one connection with a close
 * code and a logged reason; it never reaches the optimizer.
 */
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { CloseCode, GanfleetError, ProtocolError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { manifestHash } from '../shared/model.js';
import { PROTOCOL_VERSION, decodeWorkerMessage, maxPayload, type HelloMessage, type ResultMessage } from '../shared/protocol.js';
import { WorkerSession } from './session.js';

/** What the server needs from the trainer. */
export interface ServerHooks {
  /** The welcome frame for a newly accepted worker (current config and weights). */
  welcome(session: WorkerSession): Buffer;
  /** A worker finished its handshake and can take shards. */
  joined(session: WorkerSession): void;
  /** A worker's connection ended (cleanly or not). */
  left(session: WorkerSession, code: number, reason: string): void;
  /** A validated result frame from an active worker. */
  result(session: WorkerSession, msg: ResultMessage): void;
}

export interface ServerOptions {
  host: string;
  port: number;
  datasetHash: string;
  logger: Logger;
  helloTimeoutMs?: number;
}

export class CoordinatorServer {
  private readonly http: HttpServer;
  private readonly wss: WebSocketServer;
  readonly sessions = new Map<number, WorkerSession>();
  private nextId = 1;
  private readonly log: Logger;
  private readonly manifest = manifestHash();
  private hooks: ServerHooks | undefined;

  constructor(private readonly opts: ServerOptions) {
    this.log = opts.logger.child({ component: 'server' });
    this.http = createServer((req, res) => {
      res.writeHead(req.url === '/healthz' ? 200 : 404, { 'content-type': 'text/plain' });
      res.end(req.url === '/healthz' ? 'ok\n' : 'not found\n');
    });
    this.wss = new WebSocketServer({ noServer: true, maxPayload: maxPayload(), perMessageDeflate: false });
    this.http.on('upgrade', (req, socket, head) => {
      this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, `${req.socket.remoteAddress}:${req.socket.remotePort}`));
    });
  }

  /** Starts listening; resolves with the bound port (useful with port 0). */
  async listen(hooks: ServerHooks): Promise<number> {
    this.hooks = hooks;
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(this.opts.port, this.opts.host, () => resolve());
    });
    const port = (this.http.address() as AddressInfo).port;
    this.log.info({ host: this.opts.host, port }, `listening for workers on ws://${this.opts.host.includes(':') ? `[${this.opts.host}]` : this.opts.host}:${port}`);
    return port;
  }

  /** Active sessions, in join order. */
  active(): WorkerSession[] {
    return [...this.sessions.values()].filter((s) => s.state === 'active');
  }

  /** Sends one already-encoded frame to every active worker (the same buffer, no re-encoding). */
  broadcast(frame: Buffer): void {
    for (const s of this.sessions.values()) if (s.state === 'active') s.send(frame);
  }

  /** Closes every connection with `code` and stops listening. */
  async close(code: number = CloseCode.GOING_AWAY, reason = 'coordinator shutting down'): Promise<void> {
    for (const s of this.sessions.values()) s.close(code, reason);
    await new Promise<void>((resolve) => {
      // Give close frames a moment to flush before the sockets are torn down.
      const t = setTimeout(() => {
        for (const c of this.wss.clients) c.terminate();
      }, 1000);
      this.wss.close(() => {
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
    session.log.info({ remote }, 'worker connected; waiting for hello');
    const helloTimer = setTimeout(() => {
      if (session.state === 'awaiting-hello') this.refuse(session, new ProtocolError('ERR_HELLO_TIMEOUT', `no hello within ${this.opts.helloTimeoutMs ?? 10_000} ms`, CloseCode.HELLO_TIMEOUT));
    }, this.opts.helloTimeoutMs ?? 10_000);
    ws.on('message', (data, isBinary) => {
      if (session.state === 'closed') return;
      try {
        if (!isBinary) throw new ProtocolError('ERR_BAD_FRAME', 'text frame; the protocol is binary', CloseCode.BAD_FRAME);
        const msg = decodeWorkerMessage(data as Buffer);
        if (msg.t === 'hello') {
          if (session.state !== 'awaiting-hello') throw new ProtocolError('ERR_UNEXPECTED_MESSAGE', 'second hello', CloseCode.UNEXPECTED_MESSAGE);
          clearTimeout(helloTimer);
          this.handshake(session, msg);
        } else {
          if (session.state !== 'active') throw new ProtocolError('ERR_UNEXPECTED_MESSAGE', 'result before hello', CloseCode.UNEXPECTED_MESSAGE);
          this.hooks!.result(session, msg);
        }
      } catch (err) {
        this.refuse(session, err);
      }
    });
    ws.on('error', (err) => session.log.warn({ err: err.message }, 'socket error'));
    ws.on('close', (code, reason) => {
      clearTimeout(helloTimer);
      // A session refused while active was already handed to `left` by `refuse`.
      const wasActive = session.state === 'active' && this.sessions.get(session.id) === session;
      session.state = 'closed';
      this.sessions.delete(session.id);
      session.log.info({ code, reason: reason.toString() }, 'worker disconnected');
      if (wasActive) this.hooks!.left(session, code, reason.toString());
    });
  }

  private handshake(session: WorkerSession, hello: HelloMessage): void {
    if (hello.protocol !== PROTOCOL_VERSION) {
      throw new ProtocolError('ERR_PROTOCOL_VERSION', `protocol version ${hello.protocol} is not supported; the coordinator speaks ${PROTOCOL_VERSION}`, CloseCode.PROTOCOL_VERSION);
    }
    if (hello.manifest !== this.manifest) {
      throw new ProtocolError('ERR_MANIFEST_MISMATCH', `model manifest ${hello.manifest.slice(0, 12)}… differs from the coordinator's ${this.manifest.slice(0, 12)}…`, CloseCode.MANIFEST_MISMATCH);
    }
    if (hello.dataset !== this.opts.datasetHash) {
      throw new ProtocolError('ERR_DATASET_MISMATCH', `dataset ${hello.dataset.slice(0, 12)}… differs from the coordinator's ${this.opts.datasetHash.slice(0, 12)}…`, CloseCode.DATASET_MISMATCH);
    }
    session.backend = hello.backend;
    session.device = hello.device;
    session.send(this.hooks!.welcome(session));
    session.state = 'active';
    session.log.info({ backend: hello.backend, device: hello.device }, 'worker joined');
    this.hooks!.joined(session);
  }

  private refuse(session: WorkerSession, err: unknown): void {
    const e = err instanceof GanfleetError ? err : new GanfleetError('ERR_INTERNAL', String((err as Error)?.message ?? err), { closeCode: 1011 });
    session.log.warn({ code: e.code, closeCode: e.closeCode }, `closing worker connection: ${e.message}`);
    const wasActive = session.state === 'active';
    session.close(e.closeCode ?? CloseCode.BAD_FRAME, e.message);
    if (wasActive) {
      this.sessions.delete(session.id);
      this.hooks!.left(session, e.closeCode ?? CloseCode.BAD_FRAME, e.message);
    }
  }
}
