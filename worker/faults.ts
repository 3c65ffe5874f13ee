/**
 * Fault injection for the reliability tests: a worker started with GANFLEET_FAULTS set to a JSON
 * object misbehaves on purpose at a chosen (step, phase). Unset (the normal case) it does nothing.
 *
 *   {"kill": {"step": 3, "phase": "gen"}}                SIGKILL itself on receiving that shard
 *   {"nan": {"step": 2, "phase": "dis", "times": 1}}     NaN in the noise (so in the gradient) `times` times
 *   {"delay": {"step": 2, "phase": "dis", "ms": 3000}}   hold that result back for `ms`
 *   {"slow": {"ms": 100}}                                 hold every result back for `ms` (a slow node)
 */
import type { Phase } from '../shared/protocol.js';

interface At {
  step: number;
  phase: Phase;
}

export interface Faults {
  kill?: At;
  nan?: At & { times?: number };
  delay?: At & { ms: number };
  slow?: { ms: number };
}

const matches = (at: At | undefined, step: number, phase: Phase): boolean =>
  at !== undefined && at.step === step && at.phase === phase;

export class FaultPlan {
  private nanLeft: number;

  constructor(private readonly f: Faults) {
    this.nanLeft = f.nan?.times ?? 1;
  }

  /** Reads GANFLEET_FAULTS; a malformed value is an error rather than a silently healthy worker. */
  static fromEnv(env = process.env.GANFLEET_FAULTS): FaultPlan | undefined {
    if (env === undefined || env === '') return undefined;
    try {
      return new FaultPlan(JSON.parse(env) as Faults);
    } catch (err) {
      throw new Error(`GANFLEET_FAULTS is not valid JSON: ${(err as Error).message}`);
    }
  }

  /** Called when a shard arrives. */
  onAssign(step: number, phase: Phase): void {
    if (matches(this.f.kill, step, phase)) process.kill(process.pid, 'SIGKILL');
  }

  /** Possibly spoils a shard's input (its noise), so that its gradient comes out NaN. */
  corrupt(step: number, phase: Phase, z: Float32Array): void {
    if (matches(this.f.nan, step, phase) && this.nanLeft > 0) {
      this.nanLeft--;
      z[0] = NaN;
    }
  }

  /** How long to hold a result back. */
  delayMs(step: number, phase: Phase): number {
    return (matches(this.f.delay, step, phase) ? this.f.delay!.ms : 0) + (this.f.slow?.ms ?? 0);
  }
}
