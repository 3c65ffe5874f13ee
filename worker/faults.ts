/**
 * Fault injection for the reliability tests: a worker started with GANFLEET_FAULTS set to a JSON
 * object misbehaves on purpose at a chosen (step, phase). Unset (the normal case) it does nothing.
 *
 *   {"kill": {"step": 3, "phase": "gen"}}                SIGKILL itself on receiving that shard
 *   {"nan": {"step": 2, "phase": "dis", "times": 1}}     NaN in the input (so in the gradient) `times` times
 *   {"delay": {"step": 2, "phase": "dis", "ms": 3000}}   hold that result back for `ms`
 *   {"slow": {"ms": 100}}                                 hold every result back for `ms` (a slow node)
 *   {"killMidWrite": {"step": 3, "phase": "gen"}}        SIGKILL itself half-way through writing that result
 *                                                        into its shared-memory slot
 *   {"hold": {"step": 3, "phase": "dis"}}                hold that result until the process gets SIGUSR2
 *                                                        (a test decides when: no race with a timer)
 *   {"relayKill": {"step": 3, "phase": "dis"}}           as a relay, SIGKILL itself on that phase's flush
 *                                                        (it holds other workers' contributions)
 *   {"relayHold": {"step": 3, "phase": "dis"}}           as a relay, never send that slice total (a hung relay)
 *   {"relayBad": {"step": 3, "phase": "dis"}}            as a relay, send that slice total one value short
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
  hold?: At;
  killMidWrite?: At;
  relayKill?: At;
  relayHold?: At;
  relayBad?: At;
}

const matches = (at: At | undefined, step: number, phase: Phase): boolean =>
  at !== undefined && at.step === step && at.phase === phase;

export class FaultPlan {
  private nanLeft: number;

  private signalled = false;
  private wake: (() => void) | undefined;

  constructor(private readonly f: Faults) {
    this.nanLeft = f.nan?.times ?? 1;
    // Listening from the start: SIGUSR2 would otherwise end the process if it came early.
    if (f.hold)
      process.on('SIGUSR2', () => {
        this.signalled = true;
        this.wake?.();
      });
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

  /** Called when a relay gets the coordinator's flush for (step, phase). */
  onFlush(step: number, phase: Phase): void {
    if (matches(this.f.relayKill, step, phase)) process.kill(process.pid, 'SIGKILL');
  }

  /** What a relay does with a finished slice total: send it, hold it forever, or spoil it. */
  sliceTotal(step: number, phase: Phase): 'send' | 'hold' | 'short' {
    if (matches(this.f.relayHold, step, phase)) return 'hold';
    return matches(this.f.relayBad, step, phase) ? 'short' : 'send';
  }

  /** Called half-way through writing a result into shared memory. */
  midWrite(step: number, phase: Phase): void {
    if (matches(this.f.killMidWrite, step, phase)) process.kill(process.pid, 'SIGKILL');
  }

  /**
   * Possibly spoils a shard's input so that its gradient comes out NaN: a real image's pixel in the
   * D phase (it meets a LeakyReLU first), the noise in the G phase.
   */
  corrupt(step: number, phase: Phase, input: Float32Array): void {
    if (matches(this.f.nan, step, phase) && this.nanLeft > 0) {
      this.nanLeft--;
      input[0] = NaN;
    }
  }

  /** Resolves when a held result may go (at once unless the plan holds this one). */
  released(step: number, phase: Phase): Promise<void> | undefined {
    if (!matches(this.f.hold, step, phase) || this.signalled) return undefined;
    return new Promise((resolve) => {
      this.wake = resolve;
    });
  }

  /** How long to hold a result back. */
  delayMs(step: number, phase: Phase): number {
    return (matches(this.f.delay, step, phase) ? this.f.delay!.ms : 0) + (this.f.slow?.ms ?? 0);
  }
}
