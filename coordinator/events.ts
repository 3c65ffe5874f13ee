/**
 * What happens on the coordinator, as events: what the sessions report (joined, left, a result),
 * which the dispatcher consumes in order, and what the trainer reports as it runs, for whoever
 * watches (run files, progress display, Prometheus metrics, the dashboard, benchmarks).
 */
import type { Logger } from '../shared/log.js';
import type { FailedMessage, Phase, RelayedMessage, ResultMessage, SliceTotalMessage } from '../shared/protocol.js';
import type { WorkerSession } from './session.js';

/** What the server reports of a connection, in the order it happened. */
export type SessionEvent =
  | { readonly kind: 'joined'; readonly session: WorkerSession }
  | { readonly kind: 'left'; readonly session: WorkerSession; readonly code: number; readonly reason: string }
  | {
      readonly kind: 'result';
      readonly session: WorkerSession;
      readonly msg: ResultMessage | FailedMessage | RelayedMessage | SliceTotalMessage;
    };

/** Where one step's coordinator-side time went (milliseconds). */
export interface StepTimings {
  /** Wall time of the D phase: assign → every shard reduced. */
  dPhaseMs: number;
  gPhaseMs: number;
  /** Adding shard gradients and dividing (both phases). */
  reduceMs: number;
  /** Adam on both networks. */
  adamMs: number;
  /** Encoding the two weight broadcasts. */
  encodeMs: number;
  /** Handing the broadcast frames to every socket. */
  sendMs: number;
}

export interface StepEvent {
  step: number;
  epoch: number;
  totalSteps: number;
  stepsPerEpoch: number;
  /** Samples in this step's batch. */
  images: number;
  d_loss: number;
  g_loss: number;
  d_real: number;
  d_fake: number;
  workers: number;
  timings: StepTimings;
}

export interface ShardEvent {
  workerId: number;
  step: number;
  phase: Phase;
  count: number;
  /** Worker-reported compute time. */
  computeMs: number;
  /** Assign sent → result received, as the coordinator saw it. */
  roundTripMs: number;
}

export interface WorkerEvent {
  kind: 'joined' | 'left';
  workerId: number;
  backend: string;
  device: string;
  /** 'left': the shard the worker was computing when it left, if any. */
  held?: { step: number; phase: Phase; start: number; count: number };
}

/** The end of an epoch (or of the run, part-way through one: `partial`). */
export interface EpochEvent {
  /** 1-based: the epoch just finished. */
  epoch: number;
  /** Steps applied so far. */
  step: number;
  /** G's weights now (the trainer's own buffer: copy what is kept past the call). */
  gen: Float32Array;
  partial: boolean;
}

export interface RunStartEvent {
  startStep: number;
  totalSteps: number;
  stepsPerEpoch: number;
}

export interface RunEndEvent {
  /** Steps applied in all. */
  step: number;
  /** A stop request ended the run before its last step. */
  stopped: boolean;
}

/**
 * A watcher of the run. Handlers run on the training path, one after another; one may return a
 * promise (a file to write), which the trainer awaits before it goes on, so what it reads does not
 * change under it. A handler that throws is logged and training goes on, unless the observer is
 * `critical` (checkpoints): then the run fails.
 */
export interface TrainerObserver {
  readonly critical?: boolean;
  onRunStart?(e: RunStartEvent): void | Promise<void>;
  onStep?(e: StepEvent): void | Promise<void>;
  onShard?(e: ShardEvent): void;
  onWorker?(e: WorkerEvent): void;
  onEpochEnd?(e: EpochEvent): void | Promise<void>;
  onSamples?(e: { epoch: number; path: string }): void;
  onCheckpoint?(e: { path: string; step: number }): void;
  onRunEnd?(e: RunEndEvent): void | Promise<void>;
}

type Handler<K extends keyof TrainerObserver> = Exclude<TrainerObserver[K], undefined | boolean>;
type EventOf<K extends keyof TrainerObserver> = Handler<K> extends (e: infer E) => unknown ? E : never;

/** Delivers trainer events to every observer, in the order they were added. */
export class EventBus {
  private readonly observers: TrainerObserver[] = [];

  constructor(private readonly log: Logger) {}

  add(o: TrainerObserver): void {
    this.observers.push(o);
  }

  /** Calls every observer's handler for `kind`, awaiting the ones that return a promise. */
  async emit<K extends Exclude<keyof TrainerObserver, 'critical'>>(kind: K, event: EventOf<K>): Promise<void> {
    for (const o of this.observers) {
      const h = o[kind] as ((e: EventOf<K>) => void | Promise<void>) | undefined;
      if (h === undefined) continue;
      try {
        await h.call(o, event);
      } catch (err) {
        if (o.critical) throw err;
        this.log.warn({ err: (err as Error).message, observer: kind }, 'an observer failed; training goes on');
      }
    }
  }

  /** `emit` for handlers that never wait (shards, workers): synchronous, in order. */
  notify<K extends 'onShard' | 'onWorker' | 'onSamples' | 'onCheckpoint'>(kind: K, event: EventOf<K>): void {
    for (const o of this.observers) {
      try {
        (o[kind] as ((e: EventOf<K>) => void) | undefined)?.call(o, event);
      } catch (err) {
        this.log.warn({ err: (err as Error).message, observer: kind }, 'an observer failed; training goes on');
      }
    }
  }
}
