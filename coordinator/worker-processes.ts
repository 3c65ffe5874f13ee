/** Worker processes that a coordinator starts on its own machine (`ganfleet local`, `ganfleet bench`). */
import type { ChildProcess } from 'node:child_process';

/**
 * Waits for every child to exit; one still running after `graceMs` (it had its close frame and
 * should be leaving) is SIGKILLed, so nothing outlives the command that started it.
 */
export async function reap(children: readonly ChildProcess[], graceMs = 5000): Promise<void> {
  await Promise.all(
    children.map(
      (ch) =>
        new Promise<void>((resolve) => {
          if (ch.exitCode !== null || ch.signalCode !== null) return resolve();
          const t = setTimeout(() => ch.kill('SIGKILL'), graceMs);
          ch.once('exit', () => {
            clearTimeout(t);
            resolve();
          });
        }),
    ),
  );
}
