/** `ganfleet bench`: throughput per worker count, the step's breakdown, bytes on the wire. */
import { mkdir, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { UsageError } from '../shared/errors.js';
import { createLogger } from '../shared/log.js';
import { runBench } from '../coordinator/bench/run-bench.js';
import { markdownTable } from '../coordinator/bench/report.js';
import { SEGMENTS, renderChart } from '../coordinator/bench/chart.js';
import { persistedSettings, type Options } from './flags.js';
import { assertNotExposed, tokenFrom } from './security-options.js';

export async function benchCommand(o: Options): Promise<number> {
  const workers = o.get('benchWorkers');
  const attach = o.get('attach');
  const token = tokenFrom(o);
  if (attach) assertNotExposed(o, attach.host, token);
  const outDir = o.get('benchOut');
  const opts = {
    workers,
    steps: o.get('steps'),
    warmup: o.get('warmup'),
    batchSize: o.get('batchSize'),
    batchPerWorker: o.get('batchPerWorker'),
    seed: o.get('seed'),
    gradDtype: o.get('gradDtype'),
    topology: o.get('topology'),
    shm: !o.get('noShm'),
    syntheticComputeMs: o.get('syntheticComputeMs'),
    attach,
    token,
    backend: o.get('backend'),
    threads: o.get('threadsPerWorker'),
    transport: o.get('transport'),
    coordinatorGbit: o.get('coordinatorGbit'),
    workerGbit: o.get('workerGbit'),
    hostGbit: o.get('hostGbit'),
    overheadMs: o.get('overheadMs'),
    outDir,
    dataDir: o.get('data'),
    logger: createLogger({ level: o.get('logLevel'), name: 'bench' }),
    progress: (line: string) => process.stderr.write(`bench: ${line}\n`),
  };
  const most = Math.max(...workers);
  if (o.given('batchSize') && opts.batchPerWorker !== undefined)
    throw new UsageError('--batch-size and --batch-per-worker exclude each other: pick strong or weak scaling');
  if (opts.batchPerWorker !== undefined && opts.batchPerWorker * most > 60_000)
    throw new UsageError(`--batch-per-worker ${opts.batchPerWorker} × ${most} workers exceeds 60000 samples per step`);
  const rates = opts.workerGbit?.length ?? 1;
  if (rates !== 1 && rates !== most)
    throw new UsageError(`--worker-gbit: ${rates} rates; give one, or one per worker (${most}, the largest count)`);
  const overheads = opts.overheadMs?.length ?? 1;
  if (overheads !== 1 && overheads !== workers.length)
    throw new UsageError(`--overhead-ms: ${overheads} values; give one, or one per worker count (${workers.length})`);
  if (opts.batchPerWorker === undefined && opts.batchSize < most)
    throw new UsageError(`--batch-size ${opts.batchSize} is smaller than the largest worker count (${most})`);
  opts.logger.info({ config: persistedSettings(o, { auth: token !== undefined }) }, 'effective configuration');
  await mkdir(outDir, { recursive: true });
  const report = await runBench(opts);
  const table = markdownTable(report);
  const legend =
    '\nChart (bench.png): left, images/s; right, ms per step stacked bottom to top: ' +
    `${SEGMENTS.map((s) => s.name).join(', ')}.\n`;
  await writeFile(join(outDir, 'bench.json'), JSON.stringify(report, null, 2) + '\n');
  await writeFile(join(outDir, 'bench.md'), table + legend);
  await writeFile(join(outDir, 'bench.png'), renderChart(report));
  process.stdout.write(table);
  process.stderr.write(`bench: wrote bench.json, bench.md, bench.png in ${relative(process.cwd(), outDir) || '.'}\n`);
  return 0;
}
