/**
 * A worker's relay: a server the other workers of its zone connect to, guarded like the
 * coordinator's (the run's token checked at the upgrade, the same connection limits, TLS with the
 * worker's certificate, every frame validated by shared/protocol.ts). Peers send it their totals'
 * slice; it sums them (worker/relay-sums.ts) when the coordinator flushes, and passes the new
 * weights' slice it gets from the coordinator on to every peer.
 */
import { createServer, type IncomingMessage, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { Admission } from '../shared/admission.js';
import { CloseCode, GanfleetError, ProtocolError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import type { NetName } from '../shared/model.js';
import { decodePeerMessage, maxPayload, PROTOCOL_VERSION } from '../shared/protocol.js';
import { rotateAfter } from '../shared/slices.js';
import type { Egress } from './egress.js';
import type { RelaySums, SliceReady } from './relay-sums.js';

export interface RelayServerOptions {
  /** Address to listen on. */
  host: string;
  port: number;
  token?: string;
  tls?: { cert: Buffer; key: Buffer };
  log: Logger;
  sums: RelaySums;
  /** Weights passed on leave through this worker's egress queue. */
  egress: Egress;
  /** A slice total is ready: the owner sends it to the coordinator. */
  ready: (r: SliceReady) => void;
}

type PeerState = 'awaiting-hello' | 'open' | 'closed';

export class RelayServer {
  private readonly http: HttpServer;
  private readonly wss: WebSocketServer;
  private readonly peers = new Map<WebSocket, PeerState>();
  /** The worker each open peer said it is (its hello). */
  private readonly peerIds = new Map<WebSocket, number>();
  private readonly admission: Admission;
  /** Bytes of frames received from and sent to peers. */
  bytesIn = 0;
  bytesOut = 0;
  private waitTimer: NodeJS.Timeout | undefined;
  /** The pieces of the last weights passed on, per network (plan, version, frames). */
  private readonly latest: Partial<Record<NetName, { plan: number; version: number; frames: Buffer[] }>> = {};

  constructor(private readonly o: RelayServerOptions) {
    this.http = o.tls ? createHttpsServer({ cert: o.tls.cert, key: o.tls.key }) : createServer();
    this.http.on('request', (_req, res) => res.writeHead(404).end());
    this.admission = new Admission({ token: o.token, maxConnections: 1024, handshakesPerSecond: 1000 }, o.log);
    this.wss = new WebSocketServer({ noServer: true, maxPayload: maxPayload(), perMessageDeflate: false });
    this.http.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      const verdict = this.admission.check(req, this.wss.clients.size);
      if (!verdict.ok) {
        socket.end(`HTTP/1.1 ${verdict.status} Refused\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws));
    });
  }

  /** Starts listening; the port actually bound. */
  async listen(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(this.o.port, this.o.host, () => resolve());
    });
    return (this.http.address() as AddressInfo).port;
  }

  /**
   * A piece of new weights, for every open peer; kept, for a peer whose link opens later (pieces
   * may come before a new plan's links are up). Relay `self` starts with the next worker id up:
   * every relay passes its pieces on at once, and so each peer's link takes one of them at a time.
   */
  broadcast(m: { plan: number; net: NetName; version: number }, frame: Buffer, self: number): void {
    const l = this.latest[m.net];
    if (l === undefined || l.plan !== m.plan || l.version !== m.version)
      this.latest[m.net] = { plan: m.plan, version: m.version, frames: [frame] };
    else l.frames.push(frame);
    const byId = new Map([...this.peerIds].map(([ws, id]) => [id, ws]));
    for (const id of rotateAfter([...byId.keys()], self)) {
      const ws = byId.get(id)!;
      if (this.peers.get(ws) !== 'open') continue;
      this.o.egress.send(ws, frame, 'forward');
      this.bytesOut += frame.length;
    }
  }

  /** The coordinator's flush, through the owner. */
  flush(f: Parameters<RelaySums['flush']>[0]): void {
    const r = this.o.sums.flush(f);
    if (r.refused !== '') throw new ProtocolError('ERR_BAD_FLUSH', r.refused, CloseCode.UNEXPECTED_MESSAGE);
    for (const x of r.ready) this.o.ready(x);
    // Contributions normally follow within a transfer's time: say which are missing if they do not.
    clearTimeout(this.waitTimer);
    this.waitTimer = setTimeout(() => {
      const missing = this.o.sums.missing();
      if (missing.length > 0)
        this.o.log.warn(
          { step: f.step, phase: f.phase, missing },
          `relay: step ${f.step} ${f.phase}: still waiting for ${missing.length} contribution(s) (start:count:worker)`,
        );
    }, 3_000).unref();
  }

  /** This worker's own contribution to its slice. */
  addOwn(c: Parameters<RelaySums['add']>[0]): void {
    const r = this.o.sums.add(c);
    if (r.refused !== '') this.o.log.warn({ reason: r.refused }, 'own contribution refused');
    for (const x of r.ready) this.o.ready(x);
  }

  /** Peers in `state` (tests). */
  peerCount(state: PeerState): number {
    return [...this.peers.values()].filter((s) => s === state).length;
  }

  /**
   * A new run: the weights passed on belong to the old one. Its peers' links close from their end
   * (they reset too), and a contribution of another plan is dropped anyway; a new run's peer may
   * already be here (its plan can overtake this relay's welcome), so no link is closed from here.
   */
  reset(): void {
    clearTimeout(this.waitTimer);
    for (const k of Object.keys(this.latest)) delete this.latest[k as NetName];
  }

  async close(): Promise<void> {
    clearTimeout(this.waitTimer);
    for (const ws of this.peers.keys()) ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
  }

  private accept(ws: WebSocket): void {
    this.peers.set(ws, 'awaiting-hello');
    ws.on('message', (data, isBinary) => {
      if (this.peers.get(ws) === 'closed') return;
      this.bytesIn += (data as Buffer).length;
      try {
        if (!isBinary)
          throw new ProtocolError('ERR_BAD_FRAME', 'text frame; the protocol is binary', CloseCode.BAD_FRAME);
        const msg = decodePeerMessage(data as Buffer);
        switch (msg.t) {
          case 'peer-hello':
            if (this.peers.get(ws) !== 'awaiting-hello')
              throw new ProtocolError('ERR_UNEXPECTED_MESSAGE', 'second hello', CloseCode.UNEXPECTED_MESSAGE);
            if (msg.protocol !== PROTOCOL_VERSION)
              throw new ProtocolError(
                'ERR_PROTOCOL_VERSION',
                `protocol ${msg.protocol}, this relay speaks ${PROTOCOL_VERSION}`,
                CloseCode.PROTOCOL_VERSION,
              );
            this.peers.set(ws, 'open');
            this.peerIds.set(ws, msg.worker);
            for (const l of Object.values(this.latest))
              for (const frame of l.plan === msg.plan ? l.frames : []) {
                this.o.egress.send(ws, frame, 'forward');
                this.bytesOut += frame.length;
              }
            return;
          case 'contrib': {
            if (this.peers.get(ws) !== 'open')
              throw new ProtocolError(
                'ERR_UNEXPECTED_MESSAGE',
                'a contribution before hello',
                CloseCode.UNEXPECTED_MESSAGE,
              );
            const r = this.o.sums.add(msg);
            // Another plan's contribution (the plans just changed) is dropped, not an offence.
            if (r.refused !== '' && msg.plan === this.o.sums.current?.plan)
              throw new ProtocolError('ERR_BAD_RESULT', `contribution refused: ${r.refused}`, CloseCode.BAD_RESULT);
            for (const x of r.ready) this.o.ready(x);
            return;
          }
          default: {
            const never: never = msg;
            throw new Error(`unhandled peer message ${JSON.stringify(never)}`);
          }
        }
      } catch (err) {
        const e =
          err instanceof GanfleetError
            ? err
            : new GanfleetError('ERR_INTERNAL', String(err), { closeCode: CloseCode.INTERNAL_ERROR });
        this.o.log.warn({ code: e.code, closeCode: e.closeCode }, `closing a peer connection: ${e.message}`);
        this.peers.set(ws, 'closed');
        this.peerIds.delete(ws);
        ws.close(e.closeCode ?? CloseCode.BAD_FRAME, e.message.slice(0, 120));
      }
    });
    ws.on('error', () => undefined);
    ws.on('close', () => {
      this.peers.delete(ws);
      this.peerIds.delete(ws);
    });
  }
}
