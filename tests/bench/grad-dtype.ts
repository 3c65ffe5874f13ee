/**
 * Effect of the gradient wire dtype on training: the same run (seed, 2 workers, N steps) with f32,
 * f16 and bf16 gradients, and how far each one's final weights are from the f32 run's. Not a test:
 *
 *   node dist/tests/bench/grad-dtype.js [--steps 200] [--workers 2]
 */
import { parseArgs } from 'node:util';
import type { GradDtype } from '../../shared/dtype.js';
import { coordinator, spawnWorker, exited } from '../support/cluster.js';

const { values } = parseArgs({
  options: { steps: { type: 'string', default: '200' }, workers: { type: 'string', default: '2' } },
});
const steps = Number(values.steps);
const workers = Number(values.workers);

async function run(gradDtype: GradDtype) {
  const c = await coordinator({ maxSteps: steps, minWorkers: workers, seed: 1234, gradDtype });
  const kids = Array.from({ length: workers }, () => spawnWorker(c.url));
  const s = await c.done;
  await Promise.all(kids.map(exited));
  return s;
}

const ref = await run('f32');
console.log(
  `${steps} steps, ${workers} workers, seed 1234; f32: d_loss ${ref.final.d_loss.toFixed(4)} g_loss ` +
    `${ref.final.g_loss.toFixed(4)}`,
);
for (const dtype of ['f16', 'bf16'] as const) {
  const s = await run(dtype);
  for (const net of ['gen', 'dis'] as const) {
    const a = ref.params[net];
    const b = s.params[net];
    let max = 0;
    let num = 0;
    let den = 0;
    for (let i = 0; i < a.length; i++) {
      const d = Math.abs(a[i]! - b[i]!);
      max = Math.max(max, d);
      num += d * d;
      den += a[i]! * a[i]!;
    }
    console.log(`${dtype} ${net}: max |Δw| ${max.toExponential(2)}, ‖Δw‖/‖w‖ ${Math.sqrt(num / den).toExponential(2)}`);
  }
  console.log(
    `${dtype}: d_loss ${s.final.d_loss.toFixed(4)} g_loss ${s.final.g_loss.toFixed(4)} (f32 ` +
      `${ref.final.d_loss.toFixed(4)} / ${ref.final.g_loss.toFixed(4)})`,
  );
}
