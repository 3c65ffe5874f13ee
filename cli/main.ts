#!/usr/bin/env node
/** ganfleet's command-line entry point. Exit codes: 0 done, 1 failed, 2 bad usage. */
import { readFileSync } from 'node:fs';
import { GanfleetError, UsageError } from '../shared/errors.js';
import {
  COORDINATOR_HELP,
  LOCAL_HELP,
  WORKER_HELP,
  coordinatorCommand,
  localCommand,
  workerCommand,
} from './commands.js';
import { EXPORT_HELP, exportCommand } from './export-command.js';
import { SAMPLE_HELP, sampleCommand } from './sample-command.js';
import { BENCH_HELP, benchCommand } from './bench-command.js';

const HELP = `ganfleet — data-parallel training of the seed's MNIST GAN over WebSockets

Usage: ganfleet <command> [options]      (ganfleet <command> --help for its options)

Commands:
  local         a coordinator and N workers on this machine (npm start runs this)
  coordinator   own the weights and the optimizer; shard each batch across workers
  worker        compute gradient sums on a GPU (or CPU) node for a coordinator
  sample        draw a grid of images from a checkpoint's generator
  export        write the generator as a TensorFlow.js model or a safetensors file
  bench         images/s per worker count, the step broken down, bytes on the wire

Examples:
  ganfleet local --workers 4 --epochs 5
  ganfleet coordinator --port 8787 --epochs 50 --out runs/exp1
  ganfleet worker --connect ws://coordinator-host:8787
`;

const COMMANDS: Record<string, { run: (argv: string[]) => Promise<number>; help: string }> = {
  local: { run: localCommand, help: LOCAL_HELP },
  coordinator: { run: coordinatorCommand, help: COORDINATOR_HELP },
  worker: { run: workerCommand, help: WORKER_HELP },
  sample: { run: sampleCommand, help: SAMPLE_HELP },
  export: { run: exportCommand, help: EXPORT_HELP },
  bench: { run: benchCommand, help: BENCH_HELP },
};

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(HELP);
    return cmd === undefined ? 2 : 0;
  }
  if (cmd === '--version') {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    process.stdout.write(`${pkg.version}\n`);
    return 0;
  }
  const c = COMMANDS[cmd];
  if (!c) throw new UsageError(`unknown command "${cmd}" (expected one of: ${Object.keys(COMMANDS).join(', ')})`);
  return c.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`ganfleet: ${err.message}\nRun "ganfleet ${process.argv[2] ?? ''} --help" for usage.\n`);
      process.exitCode = 2;
    } else if (err instanceof GanfleetError) {
      process.stderr.write(`ganfleet: ${err.message} [${err.code}]\n`);
      process.exitCode = 1;
    } else {
      process.stderr.write(`ganfleet: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
      process.exitCode = 1;
    }
  },
);
