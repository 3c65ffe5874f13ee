/**
 * A worker's connections to the relays of its zone's plan (coordinator/topology.ts): one per relay
 * other than itself, authenticated with the run's token (and a private CA for wss://), each opened
 * with a peer hello. Frames sent before a connection is open wait for it; the weights' slices the
 * relays pass on come back on the same connections.
 */
import { WebSocket } from 'ws';
import type { Logger } from '../shared/log.js';
import type { Egress } from './egress.js';
import {
  decodeRelayMessage,
  encode,
  maxPayload,
  PROTOCOL_VERSION,
  type WeightsSliceMessage,
} from '../shared/protocol.js';

interface Link {
  readonly ws: WebSocket;
  readonly queue: Buffer[];
  open: boolean;
}

export interface PeerLinksOptions {
  token?: string;
  ca?: Buffer;
  log: Logger;
  /** Contributions leave through this worker's egress queue. */
  egress: Egress;
  /** A weights slice from a relay. */
  weights: (m: WeightsSliceMessage) => void;
  /** A relay's connection failed or closed: the coordinator will replan; the owner just notes it. */
  lost: (relay: number, why: string) => void;
}

export class PeerLinks {
  private links = new Map<number, Link>();
  private plan = 0;
  /** Bytes of frames sent to and received from relays. */
  bytesOut = 0;
  bytesIn = 0;

  constructor(private readonly o: PeerLinksOptions) {}

  /** Connects to the relays of a new plan (closing the old links), as worker `self`. */
  connect(plan: number, relays: readonly { worker: number; url: string }[], self: number): void {
    this.close();
    this.plan = plan;
    for (const r of relays) {
      if (r.worker === self) continue;
      const ws = new WebSocket(r.url, {
        maxPayload: maxPayload(),
        perMessageDeflate: false,
        generateMask: (mask: Buffer) => void mask.fill(0),
        headers: this.o.token === undefined ? {} : { authorization: `Bearer ${this.o.token}` },
        ...(this.o.ca ? { ca: this.o.ca } : {}),
      });
      const link: Link = {
        ws,
        queue: [encode({ t: 'peer-hello', protocol: PROTOCOL_VERSION, worker: self, plan })],
        open: false,
      };
      this.links.set(r.worker, link);
      ws.on('open', () => {
        link.open = true;
        const [hello, ...rest] = link.queue.splice(0);
        this.write(link, hello!);
        for (const f of rest) this.write(link, f, true);
      });
      ws.on('message', (data) => {
        this.bytesIn += (data as Buffer).length;
        try {
          this.o.weights(decodeRelayMessage(data as Buffer));
        } catch (err) {
          this.o.log.warn(
            { relay: r.worker, err: (err as Error).message },
            'a relay sent a bad frame; closing the link',
          );
          ws.close(4000, 'bad frame');
        }
      });
      ws.on('error', (err) =>
        this.o.log.warn({ relay: r.worker, url: r.url, err: err.message }, `link to relay ${r.worker}: ${err.message}`),
      );
      ws.on('close', (code, reason) => {
        if (this.links.get(r.worker)?.ws !== ws) return;
        this.links.delete(r.worker);
        this.o.lost(r.worker, `${code} ${reason.toString() || 'closed'}`);
      });
    }
  }

  /** Sends a frame to relay `worker` (after the hello; waits while the link opens). */
  send(worker: number, frame: Buffer): boolean {
    const link = this.links.get(worker);
    if (link === undefined) return false;
    if (link.open) this.write(link, frame, true);
    else link.queue.push(frame);
    return true;
  }

  /** The plan these links serve. */
  get current(): number {
    return this.plan;
  }

  close(): void {
    const old = this.links;
    this.links = new Map();
    for (const l of old.values()) l.ws.terminate();
    this.plan = 0;
  }

  private write(link: Link, frame: Buffer, bulk = false): void {
    if (bulk) this.o.egress.send(link.ws, frame, 'contrib');
    else link.ws.send(frame, { binary: true });
    this.bytesOut += frame.length;
  }
}
