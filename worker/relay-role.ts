/**
 * A worker's part in a relay plan (coordinator/topology.ts): it sends each slice of its shards'
 * totals to the slice's relay and only the statistics to the coordinator; where it is a relay
 * itself it sums its slice (worker/relay-server.ts) and passes its slice of the new weights on; and
 * it puts the weights back together from the relays' slices.
 */
import type { FixedWire } from '../shared/fixed.js';
import type { Logger } from '../shared/log.js';
import { MANIFESTS, type NetName } from '../shared/model.js';
import {
  encode,
  type FlushMessage,
  type PlanMessage,
  type ShardId,
  type WeightsSliceMessage,
} from '../shared/protocol.js';
import { pieceBounds, piecesFor, sendOrder } from '../shared/slices.js';
import { applySteps } from '../shared/weight-steps.js';
import { shortenSendQueue, unackedBytes } from '../shared/socket-queue.js';
import { Egress, type EgressSink } from './egress.js';
import { PeerLinks } from './peer-links.js';
import { RelayServer } from './relay-server.js';
import { type Contribution, RelaySums, type SliceReady, sliceOf } from './relay-sums.js';
import type { FaultPlan } from './faults.js';

/** What a worker's bulk frames may have out: handed to sockets, or unacknowledged (worker/egress.ts). */
export const EGRESS_WINDOW_BYTES = 64 * 1024;
/** The unsent bytes a socket's kernel queue may hold (shared/socket-queue.ts). */
export const EGRESS_LOWAT_BYTES = 16 * 1024;

export interface RelayRoleOptions {
  /** Where this worker listens as a relay (undefined: a leaf). */
  listen?: { host: string; port: number; tls?: { cert: Buffer; key: Buffer } };
  token?: string;
  ca?: Buffer;
  log: Logger;
  /** The socket to the coordinator, while open (piece totals go there). */
  coordinator: () => EgressSink | undefined;
  /** Misbehaviour on purpose, in tests (worker/faults.ts). */
  faults?: FaultPlan;
  /**
   * Weights came as steps from a version this worker does not hold (it missed one): it cannot follow
   * and should rejoin (the coordinator's welcome carries both networks whole).
   */
  outOfStep: (why: string) => void;
  /** A network's weights are whole again, at `version`. */
  weights: (net: NetName, version: number, data: Float32Array) => void;
}

/** Weights being put back together from the pieces of one plan. */
interface Assembly {
  plan: number;
  version: number;
  data: Float32Array;
  /** Slice starts received for this version. */
  got: Set<number>;
  covered: number;
}

export class RelayRole {
  private server: RelayServer | undefined;
  private readonly sums = new RelaySums();
  private readonly links: PeerLinks;
  private plan: PlanMessage | undefined;
  private self = -1;
  private readonly assembly: Partial<Record<NetName, Assembly>> = {};
  /**
   * The newest whole weights of each network this worker holds: the base of the next version's steps
   * (`own`: put together here, not a view of a frame's buffer).
   */
  private readonly held: Partial<Record<NetName, { version: number; data: Float32Array; own: boolean }>> = {};
  /**
   * Each network's array of two versions back, which the next assembly fills again: a fresh one
   * per phase (a megabyte, zeroed) cost page faults and garbage collections on every step. Only
   * arrays this worker put together come here, and the engines copy what they are given
   * (`setWeights`), so nothing else still reads them.
   */
  private readonly spare: Partial<Record<NetName, Float32Array>> = {};
  /** This worker's bulk frames, most urgent first (worker/egress.ts). */
  private readonly egress: Egress;
  /** Why a socket's kernel queue could not be shortened, once said. */
  private unshortened = '';

  constructor(private readonly o: RelayRoleOptions) {
    this.egress = new Egress({
      windowBytes: EGRESS_WINDOW_BYTES,
      prepare: (ws) => this.shorten(ws),
      kernelBytes: unackedBytes,
    });
    this.links = new PeerLinks({
      egress: this.egress,
      token: o.token,
      ca: o.ca,
      log: o.log,
      weights: (m) => this.assemble(m),
      lost: (relay, why) => o.log.info({ relay, why }, 'lost the link to a relay; the coordinator replans'),
    });
  }

  /** Starts the relay server, if this worker relays; the port it listens on. */
  async start(): Promise<number | undefined> {
    if (this.o.listen === undefined) return undefined;
    this.server = new RelayServer({
      ...this.o.listen,
      token: this.o.token,
      log: this.o.log,
      sums: this.sums,
      egress: this.egress,
      ready: (r) => this.sendTotal(r),
    });
    return this.server.listen();
  }

  /** Bytes this worker moved with its peers (both ways), for the bench. */
  get peerBytes(): { in: number; out: number } {
    return {
      in: this.links.bytesIn + (this.server?.bytesIn ?? 0),
      out: this.links.bytesOut + (this.server?.bytesOut ?? 0),
    };
  }

  /** A new plan for this worker's zone: this worker's slice duty, and links to the other relays. */
  setPlan(msg: PlanMessage, self: number): void {
    this.plan = msg;
    this.self = self;
    const k = msg.relays.length;
    const mine = msg.relays.findIndex((r) => r.worker === self);
    const bounds = (net: NetName) => {
      const pieces = piecesFor(MANIFESTS[net].size, k);
      return pieceBounds(MANIFESTS[net].size, k).slice(mine * pieces, (mine + 1) * pieces + 1);
    };
    this.sums.setDuty(
      mine < 0 ? undefined : { plan: msg.id, slice: mine, bounds: { gen: bounds('gen'), dis: bounds('dis') } },
    );
    this.links.connect(msg.id, msg.relays, self);
  }

  /**
   * A shard's exact total, cut into its relays' pieces: the frame telling the coordinator where it
   * goes, to send first (so that the coordinator can flush the relays while the pieces travel:
   * behind a megabyte of pieces on this worker's link it would come late), then `send` for the
   * pieces (this worker's own slice straight to its sums).
   */
  contribute(
    plan: number,
    id: ShardId,
    total: FixedWire,
    stats: { lossSum: number; dRealSum: number; dFakeSum: number },
    computeMs: number,
  ): { frame: Buffer; send: () => void } {
    const p = this.plan;
    if (p === undefined || p.id !== plan)
      throw new Error(`a shard for plan ${plan}, but this worker has ${p?.id ?? 'none'}`);
    const n = MANIFESTS[id.phase].size;
    const b = pieceBounds(n, p.relays.length);
    const pieces = piecesFor(n, p.relays.length);
    const out: Array<{ relay: number; c: Contribution }> = [];
    const mine = p.relays.findIndex((r) => r.worker === this.self);
    for (const { slice, piece } of sendOrder(p.relays.length, pieces, mine >= 0 ? mine : this.self)) {
      const relay = p.relays[slice]!;
      const at = slice * pieces + piece;
      const c = { plan, slice, piece, worker: this.self, ...id, total: sliceOf(total, b[at]!, b[at + 1]!) };
      out.push({ relay: relay.worker, c });
    }
    const peer = this.peerBytes;
    return {
      frame: encode({ t: 'relayed', ...id, plan, ...stats, computeMs, peerIn: peer.in, peerOut: peer.out }),
      send: () => {
        this.egress.nextPhase();
        for (const c of out)
          if (c.relay === this.self) this.server?.addOwn(c.c);
          else this.links.send(c.relay, encode({ t: 'contrib', ...c.c }));
      },
    };
  }

  /** The coordinator's flush (this worker is a relay of the plan). */
  flush(msg: FlushMessage): void {
    if (this.server === undefined) throw new Error('a flush, but this worker does not relay');
    this.o.faults?.onFlush(msg.step, msg.phase);
    this.server.flush(msg);
  }

  /** The coordinator sent this relay its slice of new weights: pass it on, and keep it. */
  relayWeights(frame: Buffer, msg: WeightsSliceMessage): void {
    this.server?.broadcast(msg, frame, this.self);
    this.assemble(msg);
  }

  /**
   * Whether newer weights of `net` than the worker has may still come slice by slice (it has a
   * plan): an assign for them waits. Whole weights come on the coordinator's socket before any
   * assign that needs them, so without a plan there is nothing to wait for.
   */
  get planned(): boolean {
    return this.plan !== undefined;
  }

  /** The plan this worker works under (0: none, the star). */
  get planId(): number {
    return this.plan?.id ?? 0;
  }

  /** A new connection to the coordinator (a new run, maybe): the old plan, links and pieces go. */
  reset(): void {
    this.plan = undefined;
    this.self = -1;
    for (const net of Object.keys(MANIFESTS) as NetName[]) {
      delete this.assembly[net];
      delete this.held[net];
    }
    this.links.close();
    this.egress.clear();
    this.sums.reset();
    this.server?.reset();
  }

  /**
   * Whole weights came by another way (welcome, a full broadcast): slices of that version are moot,
   * and `data` (never changed afterwards; undefined: not kept) is what the next version's steps
   * start from.
   */
  whole(net: NetName, version: number, data: Float32Array | undefined): void {
    const a = this.assembly[net];
    if (a !== undefined && a.version <= version) delete this.assembly[net];
    const h = this.held[net];
    if (h !== undefined && h.version > version) return;
    if (h?.data !== data) this.retire(net);
    if (data === undefined) delete this.held[net];
    else this.held[net] = { version, data, own: false };
  }

  async close(): Promise<void> {
    this.links.close();
    await this.server?.close();
  }

  private shorten(ws: EgressSink): void {
    const why = shortenSendQueue(ws, EGRESS_LOWAT_BYTES);
    if (why === '' || why === this.unshortened) return;
    this.unshortened = why;
    this.o.log.warn(
      { why },
      `relay: cannot keep a socket's kernel queue short (${why}); urgent frames may wait behind bulk ones`,
    );
  }

  private sendTotal(r: SliceReady): void {
    const fault = this.o.faults?.sliceTotal(r.step, r.phase) ?? 'send';
    if (fault === 'hold') return;
    const total = fault === 'short' ? { ...r.total, low: r.total.low.subarray(1) } : r.total;
    const ws = this.o.coordinator();
    if (ws !== undefined) this.egress.send(ws, encode({ t: 'slice-total', ...r, total }), 'total');
  }

  /** An array to put `net`'s next version together in: the spare one, or a new one. */
  private buffer(net: NetName): Float32Array {
    const spare = this.spare[net];
    if (spare !== undefined) {
      delete this.spare[net];
      return spare;
    }
    return new Float32Array(MANIFESTS[net].size);
  }

  /** The held version of `net` is being replaced: its array, if this worker's own, is the spare. */
  private retire(net: NetName): void {
    const old = this.held[net];
    if (old?.own) this.spare[net] = old.data;
  }

  private assemble(m: WeightsSliceMessage): void {
    const n = MANIFESTS[m.net].size;
    let a = this.assembly[m.net];
    // Pieces of a newer version, or of a newer plan (other bounds), start again.
    if (a === undefined || a.version < m.version || (a.version === m.version && a.plan < m.plan)) {
      a = { plan: m.plan, version: m.version, data: a?.data ?? this.buffer(m.net), got: new Set(), covered: 0 };
      this.assembly[m.net] = a;
    }
    if (m.version !== a.version || m.plan !== a.plan || a.got.has(m.start)) return;
    const length = m.data?.length ?? m.steps!.length;
    if (m.data !== undefined) a.data.set(m.data, m.start);
    else {
      // Steps from the version before: this worker must hold exactly that one.
      const base = this.held[m.net];
      if (base?.version !== m.version - 1) {
        delete this.assembly[m.net];
        this.o.outOfStep(
          `${m.net} v${m.version} came as steps from v${m.version - 1}, and this worker holds ` +
            `${base === undefined ? 'no whole weights' : `v${base.version}`}`,
        );
        return;
      }
      const at = m.start;
      applySteps(base.data.subarray(at, at + length), m.steps!, a.data.subarray(at, at + length));
    }
    a.got.add(m.start);
    a.covered += length;
    if (a.covered === n) {
      delete this.assembly[m.net];
      this.retire(m.net);
      this.held[m.net] = { version: m.version, data: a.data, own: true };
      this.o.weights(m.net, m.version, a.data);
    }
  }
}
