/**
 * The worker's connection to the coordinator, as an explicit state machine:
 *
 *   connecting ──open──▶ handshaking ──welcome──▶ ready ⇄ (assign → compute → result)
 *       ▲                     │                     │
 *       └──── backoff ◀───────┴──── lost ◀──────────┘        refused / done ──▶ closed
 *
 * A lost connection is retried with capped, jittered exponential backoff; a refusal (wrong
 * protocol, model or data) or the coordinator's "done" ends the worker, since retrying cannot help.
 */
import { WebSocket } from 'ws';
import { CloseCode, GanfleetError, ProtocolError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { MANIFESTS, manifestHash, type NetName } from '../shared/model.js';
import type { MnistSet } from '../shared/mnist.js';
import { pixelTable } from '../shared/pixels.js';
import {
  PROTOCOL_VERSION,
  decodeCoordinatorMessage,
  encode,
  maxPayload,
  type AssignMessage,
  type RunConfig,
  type WorkerMessage,
} from '../shared/protocol.js';
import { backoffDelay } from '../shared/backoff.js';
import type { BackendInfo } from './backend.js';
import { TrainStep } from './train-step.js';
import { type ExactEngine, ExactStep, rowsIndependent } from './exact-step.js';
import { CHUNK } from '../shared/fixed.js';
import { NativeExactStep } from './kernels/native-exact.js';
import { setNativeThreads } from './kernels/native-gemm.js';
import { answerFrame, ShardComputer, type ShardAnswer, syntheticAnswer } from './shard.js';
import { RelayRole } from './relay-role.js';
import { ShmLink } from './shm-link.js';
import { FaultPlan } from './faults.js';

export type WorkerState = 'connecting' | 'handshaking' | 'ready' | 'closed';

export interface WorkerOptions {
  url: string;
  data: MnistSet;
  backend: BackendInfo;
  logger: Logger;
  /** First retry delay; doubles up to `retryCapMs`. */
  retryBaseMs?: number;
  retryCapMs?: number;
  /** Give up after this many failed connection attempts in a row (default: never). */
  maxRetries?: number;
  /** Shared secret, sent as `Authorization: Bearer …` during the upgrade. */
  token?: string;
  /** PEM certificate(s) to trust for wss:// (a private CA). */
  ca?: Buffer;
  /** Take the coordinator's shared-memory offer when on its host (default true). */
  shm?: boolean;
  /**
   * Take other workers' contributions as a relay (worker/relay-server.ts): where to listen, and
   * the address the others reach it at (default: the one the coordinator sees it connect from).
   */
  relay?: { host: string; port: number; advertise?: string; tls?: { cert: Buffer; key: Buffer } };
  /** The rack or zone this worker is in (relays group the workers of one zone). */
  zone?: string;
}

/** How a worker's run ended. */
export interface WorkerOutcome {
  /**
   * `done`: the coordinator finished training; `refused`: it will not accept this worker;
   * `gave-up`: retries exhausted.
   */
  reason: 'done' | 'refused' | 'gave-up' | 'stopped';
  detail: string;
  shardsComputed: number;
}

/** Runs one worker until the coordinator finishes, refuses it, or `stop()` is called. */
export class WorkerClient {
  state: WorkerState = 'connecting';
  private ws: WebSocket | undefined;
  private readonly step = new TrainStep();
  private config: RunConfig | undefined;
  private computer: ShardComputer | undefined;
  /** Whether this backend computes a chunk's rows alike inside any shard (probed once: worker/exact-step.ts). */
  private rows: boolean | undefined;
  /** The shared-memory link this connection was offered and could map (else the socket carries all). */
  private shm: ShmLink | undefined;
  private readonly shmWeights: Partial<Record<NetName, Float32Array>> = {};
  private versions = { gen: -1, dis: -1 };
  private shards = 0;
  private attempt = 0;
  private log: Logger;
  private settle: ((o: WorkerOutcome) => void) | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly faults = FaultPlan.fromEnv();
  /** This worker's part in relay plans (worker/relay-role.ts). */
  private readonly role: RelayRole;
  /** The port its relay listens on (undefined: a leaf). */
  private relayPort: number | undefined;
  private workerId = -1;
  /** An assign that waits for the weights it needs, still coming slice by slice from relays. */
  private waiting: AssignMessage | undefined;

  constructor(private opts: WorkerOptions) {
    this.log = opts.logger.child({ component: 'worker' });
    this.role = new RelayRole({
      listen: opts.relay,
      token: opts.token,
      ca: opts.ca,
      log: this.log,
      faults: this.faults,
      coordinator: () => (this.ws?.readyState === 1 ? this.ws : undefined),
      weights: (net, version, data) => this.wholeWeights(net, version, data),
      outOfStep: (why) =>
        this.fail(
          new GanfleetError('ERR_WEIGHTS_STEP', `cannot follow the weights: ${why}; rejoining`, {
            closeCode: CloseCode.WORKER_FAILED,
          }),
        ),
    });
  }

  /** Connects (and reconnects) until the run ends; resolves with why it ended. */
  run(): Promise<WorkerOutcome> {
    return new Promise((resolve) => {
      this.settle = (o) => {
        this.state = 'closed';
        this.step.dispose();
        resolve(o);
      };
      // Where exact sums will go through tfjs, find out once, before joining, whether the backend's
      // rows are independent of their neighbours (slow on a CPU-emulated GPU: not during a run).
      if (this.opts.backend.native !== true) this.rows = rowsIndependent(this.step, CHUNK);
      this.role.start().then(
        (port) => {
          this.relayPort = port;
          if (port !== undefined) this.log.info({ port }, `relay: taking other workers' contributions on port ${port}`);
          this.connect();
        },
        (err: Error) => {
          this.log.warn({ err: err.message }, `relay: cannot listen (${err.message}); this worker stays a leaf`);
          this.connect();
        },
      );
    });
  }

  /** Ends the worker: closes the socket and resolves `run()` with `stopped`. */
  stop(): void {
    clearTimeout(this.retryTimer);
    this.ws?.close(CloseCode.GOING_AWAY, 'worker stopping');
    this.finish({ reason: 'stopped', detail: 'stopped by signal', shardsComputed: this.shards });
  }

  private finish(o: WorkerOutcome): void {
    const s = this.settle;
    this.settle = undefined;
    void this.role.close();
    s?.(o);
  }

  private connect(): void {
    if (this.settle === undefined) return;
    this.state = 'connecting';
    this.log.info({ url: this.opts.url, attempt: this.attempt }, 'connecting to coordinator');
    const ws = new WebSocket(this.opts.url, {
      maxPayload: maxPayload(),
      perMessageDeflate: false,
      // RFC 6455 masks client frames so that a browser's script cannot steer the bytes a proxy
      // sees (cache poisoning). A worker is not a browser, and a zero mask lets ws skip the copy and
      // XOR of every 1 MB result here and the unmasking pass on the coordinator (no bufferutil).
      generateMask: (mask: Buffer) => void mask.fill(0),
      headers: this.opts.token === undefined ? {} : { authorization: `Bearer ${this.opts.token}` },
      ...(this.opts.ca ? { ca: this.opts.ca } : {}),
    });
    this.ws = ws;
    let opened = false;
    ws.on('unexpected-response', (_req, res) => {
      // The coordinator answered the upgrade with an HTTP status instead of a socket.
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString().slice(0, 200)));
      res.on('end', () => {
        const why = `coordinator answered ${res.statusCode}: ${body.trim() || res.statusMessage}`;
        ws.terminate();
        if (this.ws !== ws) return;
        this.ws = undefined;
        if (res.statusCode === 401) {
          this.log.error(`${why}; check the token (--token-file or GANFLEET_TOKEN)`);
          this.finish({ reason: 'refused', detail: why, shardsComputed: this.shards });
        } else {
          this.retry(why);
        }
      });
    });
    ws.on('open', () => {
      opened = true;
      this.state = 'handshaking';
      this.attempt = 0;
      this.send({
        t: 'hello',
        protocol: PROTOCOL_VERSION,
        manifest: manifestHash(),
        dataset: this.opts.data.hash,
        backend: this.opts.backend.name,
        device: this.opts.backend.device,
        ...(this.relayPort === undefined
          ? {}
          : {
              relay: {
                port: this.relayPort,
                tls: this.opts.relay?.tls !== undefined,
                ...(this.opts.relay?.advertise === undefined ? {} : { host: this.opts.relay.advertise }),
              },
            }),
        ...(this.opts.zone === undefined ? {} : { zone: this.opts.zone }),
      });
    });
    ws.on('message', (data, isBinary) => {
      if (ws.readyState !== ws.OPEN) return; // frames still queued after we decided to close
      try {
        if (!isBinary)
          throw new ProtocolError('ERR_BAD_FRAME', 'text frame; the protocol is binary', CloseCode.BAD_FRAME);
        this.onFrame(data as Buffer);
      } catch (err) {
        this.fail(err);
      }
    });
    ws.on('error', (err) => {
      // 'close' follows; the error says why, so log it there.
      this.log.debug({ err: err.message }, 'socket error');
      (ws as unknown as { lastError?: string }).lastError = err.message;
    });
    ws.on('close', (code, reasonBuf) => {
      if (this.ws !== ws) return;
      const reason = reasonBuf.toString() || (ws as unknown as { lastError?: string }).lastError || 'no reason given';
      if (this.settle === undefined) return;
      if (code === CloseCode.SHM_REFUSED) {
        // Mapped segments that were not the ones offered: never try shared memory again.
        this.opts = { ...this.opts, shm: false };
      }
      if (code === CloseCode.DONE) {
        this.log.info({ shards: this.shards }, `coordinator finished training: ${reason}`);
        this.finish({ reason: 'done', detail: reason, shardsComputed: this.shards });
        return;
      }
      if (
        code === CloseCode.PROTOCOL_VERSION ||
        code === CloseCode.MANIFEST_MISMATCH ||
        code === CloseCode.DATASET_MISMATCH
      ) {
        this.log.error({ code }, `coordinator refused this worker: ${reason}`);
        this.finish({ reason: 'refused', detail: `${code} ${reason}`, shardsComputed: this.shards });
        return;
      }
      this.retry(opened ? `connection lost (${code} ${reason})` : `cannot connect (${reason})`);
    });
  }

  private retry(why: string): void {
    this.state = 'connecting';
    this.versions = { gen: -1, dis: -1 };
    const max = this.opts.maxRetries ?? Infinity;
    if (this.attempt >= max) {
      this.log.error(`${why}; giving up after ${this.attempt} retries`);
      this.finish({ reason: 'gave-up', detail: why, shardsComputed: this.shards });
      return;
    }
    const delay = backoffDelay(this.attempt++, this.opts.retryBaseMs ?? 250, this.opts.retryCapMs ?? 10_000);
    this.log.warn({ retryInMs: delay, attempt: this.attempt }, `${why}; retrying`);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  private fail(err: unknown): void {
    const e =
      err instanceof GanfleetError
        ? err
        : new GanfleetError('ERR_WORKER', (err as Error)?.message ?? String(err), {
            closeCode: CloseCode.WORKER_FAILED,
          });
    this.log.error({ code: e.code }, `closing connection: ${e.message}`);
    this.ws?.close(e.closeCode ?? CloseCode.WORKER_FAILED, e.message.slice(0, 120));
  }

  private send(msg: WorkerMessage): void {
    this.ws?.send(encode(msg), { binary: true });
  }

  private onFrame(frame: Buffer): void {
    const msg = decodeCoordinatorMessage(frame);
    switch (msg.t) {
      case 'welcome': {
        if (this.state !== 'handshaking') throw unexpected('welcome', this.state);
        this.config = msg.config;
        if (msg.config.syntheticComputeMs === undefined) {
          this.computer = new ShardComputer(
            this.opts.data,
            this.step,
            msg.config,
            pixelTable(msg.config.normalize),
            msg.config.gradDtype === 'exact' ? this.exactEngine(msg.config.chunk) : undefined,
          );
          this.computer.setWeights('gen', msg.gen);
          this.computer.setWeights('dis', msg.dis);
        }
        this.shm = undefined;
        if (msg.shm !== undefined) {
          const { link, reply } = this.opts.shm === false ? { reply: declined } : ShmLink.open(msg.shm);
          this.shm = link;
          this.send(reply);
          if (!reply.ok)
            this.log.info(
              { reason: reply.reason },
              `shared memory not used: ${reply.reason}; the socket carries everything`,
            );
        }
        this.role.reset();
        this.role.whole('gen', msg.genVersion, msg.gen);
        this.role.whole('dis', msg.disVersion, msg.dis);
        this.versions = { gen: msg.genVersion, dis: msg.disVersion };
        this.workerId = msg.workerId;
        this.waiting = undefined;
        this.state = 'ready';
        this.log = this.opts.logger.child({ component: 'worker', workerId: msg.workerId });
        this.log.info(
          { seed: msg.config.seed, batchSize: msg.config.batchSize, normalize: msg.config.normalize },
          'joined the run',
        );
        return;
      }
      case 'weights':
        if (this.state !== 'ready') throw unexpected('weights', this.state);
        this.role.whole(msg.net, msg.version, msg.data);
        this.wholeWeights(msg.net, msg.version, msg.data);
        return;
      case 'weights-slice':
        if (this.state !== 'ready') throw unexpected('weights-slice', this.state);
        this.role.relayWeights(frame, msg);
        return;
      case 'plan':
        if (this.state !== 'ready') throw unexpected('plan', this.state);
        this.role.setPlan(msg, this.workerId);
        this.log.info({ plan: msg.id, relays: msg.relays.length }, `relay plan ${msg.id}: ${msg.relays.length} relays`);
        return;
      case 'flush':
        if (this.state !== 'ready') throw unexpected('flush', this.state);
        this.role.flush(msg);
        return;
      case 'weights-shm': {
        if (this.state !== 'ready' || this.shm === undefined) throw unexpected('weights-shm', this.state);
        if (this.computer !== undefined) {
          const into = (this.shmWeights[msg.net] ??= new Float32Array(MANIFESTS[msg.net].size));
          const why = this.shm.readWeights(msg.net, msg.version, into);
          if (why !== '')
            throw new GanfleetError('ERR_SHM_WEIGHTS', `weights v${msg.version} in shared memory: ${why}`, {
              closeCode: CloseCode.WORKER_FAILED,
            });
          this.computer.setWeights(msg.net, into);
        }
        this.role.whole(msg.net, msg.version, undefined);
        this.versions[msg.net] = msg.version;
        return;
      }
      case 'assign':
        if (this.state !== 'ready') throw unexpected('assign', this.state);
        this.compute(msg);
        return;
    }
  }

  /** Computes one shard and sends its answer (held back by a fault plan's delay, in tests). */
  private compute(a: AssignMessage): void {
    const cfg = this.config!;
    // The coordinator sends a plan before the shards that use it; a shard of an older plan was
    // overtaken by a replan (its phase runs again under the new one), so its answer would be moot.
    if (a.plan !== 0 && a.plan !== this.role.planId) {
      this.log.info(
        { step: a.step, phase: a.phase, plan: a.plan, current: this.role.planId },
        `step ${a.step} ${a.phase}: a shard of plan ${a.plan}, replaced by plan ${this.role.planId}; not computed`,
      );
      return;
    }
    // Under a relay plan the weights come slice by slice, possibly after the assign: it waits for them.
    const newer = a.genVersion > this.versions.gen || a.disVersion > this.versions.dis;
    if (newer && this.role.planned) {
      this.waiting = a;
      // Slices normally come within a transfer's time; say so if they do not.
      const ws = this.ws;
      setTimeout(() => {
        if (this.waiting === a && this.ws === ws)
          this.log.warn(
            { step: a.step, phase: a.phase, gen: a.genVersion, dis: a.disVersion, have: this.versions },
            `step ${a.step} ${a.phase}: still waiting for the weights' slices from the relays`,
          );
      }, 5_000).unref();
      return;
    }
    if (a.genVersion !== this.versions.gen || a.disVersion !== this.versions.dis) {
      throw new ProtocolError(
        'ERR_VERSION_SKEW',
        `shard needs weights gen v${a.genVersion}/dis v${a.disVersion}, ` +
          `worker has v${this.versions.gen}/v${this.versions.dis}`,
        CloseCode.UNEXPECTED_MESSAGE,
      );
    }
    this.faults?.onAssign(a.step, a.phase);
    if (cfg.syntheticComputeMs !== undefined) {
      const ws = this.ws;
      setTimeout(() => {
        if (this.ws !== ws || this.state !== 'ready') return;
        this.shards++;
        this.deliver(this.answerOf(a, syntheticAnswer(a, cfg, cfg.syntheticComputeMs!)), ws);
      }, cfg.syntheticComputeMs);
      return;
    }
    const answer = this.computer!.answer(a, (z) => this.faults?.corrupt(a.step, a.phase, z));
    const out = this.answerOf(a, answer);
    this.shards++;
    const delay = this.faults?.delayMs(a.step, a.phase) ?? 0;
    const hold = this.faults?.released(a.step, a.phase);
    const ws = this.ws;
    if (hold !== undefined) void hold.then(() => setTimeout(() => this.deliver(out, ws), delay));
    else if (delay > 0) setTimeout(() => this.deliver(out, ws), delay);
    else this.deliver(out, ws);
  }

  /**
   * Exact runs need a chunk's sums to be a property of the chunk. With the OpenBLAS kernels the C
   * engine computes every chunk on its own (OpenBLAS on one thread: its results depend on its
   * thread count; the chunks are spread over threads of the engine's own). Elsewhere tfjs does,
   * the shard at once where the backend's rows do not depend on their neighbours (probed once).
   */
  private exactEngine(chunk: number): ExactEngine {
    const native = this.opts.backend.native
      ? NativeExactStep.load(this.step.model, chunk, this.opts.backend.threads ?? 1)
      : null;
    if (native !== null) {
      setNativeThreads(1);
      this.log.info({ engine: native.name, threads: native.threads }, 'exact sums: C engine, chunk by chunk');
      return native;
    }
    if (chunk !== CHUNK) this.rows = undefined;
    this.rows ??= rowsIndependent(this.step, chunk);
    this.log.info(
      { engine: 'tfjs', rowsIndependent: this.rows },
      this.rows ? 'exact sums: shard at once, weight gradients per chunk' : 'exact sums: chunk by chunk',
    );
    return new ExactStep(this.step, this.rows, chunk);
  }

  /** An answer's frame (its pieces go to the plan's relays), through shared memory, or whole on the socket. */
  private answerOf(a: AssignMessage, answer: ShardAnswer): { frame: Buffer; send?: () => void } {
    if (a.plan !== 0 && answer.kind === 'exact')
      return this.role.contribute(a.plan, answer.id, answer.total, answer.stats, answer.computeMs);
    return { frame: answerFrame(answer, this.shm, () => this.faults?.midWrite(a.step, a.phase)) };
  }

  /** Sends an answer on the connection that assigned it, then its pieces to the relays (if any). */
  private deliver(out: { frame: Buffer; send?: () => void }, ws: WebSocket | undefined): void {
    if (ws === undefined || ws !== this.ws) return;
    this.sendFrame(out.frame, ws);
    out.send?.();
  }

  /** A network's weights, whole (from the coordinator, shared memory, or the relays' slices). */
  private wholeWeights(net: NetName, version: number, data: Float32Array): void {
    if (version < this.versions[net]) return; // late pieces of weights this worker has already
    this.computer?.setWeights(net, data);
    this.versions[net] = version;
    const w = this.waiting;
    if (w !== undefined && w.genVersion === this.versions.gen && w.disVersion === this.versions.dis) {
      this.waiting = undefined;
      this.compute(w);
    }
  }

  /** Sends a shard's answer on the connection that assigned it (never on a later one). */
  private sendFrame(frame: Buffer, ws = this.ws): void {
    if (ws !== undefined && ws === this.ws && ws.readyState === ws.OPEN) ws.send(frame, { binary: true });
  }
}

const declined = { t: 'shm', ok: false, reason: 'shared memory turned off on this worker (--no-shm)' } as const;

function unexpected(what: string, state: WorkerState): ProtocolError {
  return new ProtocolError(
    'ERR_UNEXPECTED_MESSAGE',
    `"${what}" is not allowed while ${state}`,
    CloseCode.UNEXPECTED_MESSAGE,
  );
}
