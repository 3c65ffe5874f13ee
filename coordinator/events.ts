/**
 * What the trainer reports as it runs, for whoever watches: progress display, Prometheus metrics,
 * the dashboard, benchmarks. Observers are called synchronously on the training path, so they must
 * be cheap; an observer that throws is logged and ignored, never allowed to stop training.
 */
import type { Phase } from '../shared/protocol.js';

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
}

export interface TrainerObserver {
  onStep?(e: StepEvent): void;
  onShard?(e: ShardEvent): void;
  onWorker?(e: WorkerEvent): void;
  onSamples?(e: { epoch: number; path: string }): void;
  onCheckpoint?(e: { path: string; step: number }): void;
}
