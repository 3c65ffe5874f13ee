#!/usr/bin/env node
/** ganfleet's command-line entry point. Exit codes: 0 done, 1 failed, 2 bad usage. */
import { readFileSync } from 'node:fs';
import { GanfleetError, UsageError } from '../shared/errors.js';
import { coordinatorCommand, localCommand, workerCommand } from './commands.js';
import { exportCommand } from './export-command.js';
import { sampleCommand } from './sample-command.js';
import { benchCommand } from './bench-command.js';
import { evalCommand } from './eval-command.js';
import { COMMAND_HELP } from './flag-table.js';
import { COMMANDS, type Command } from './flag-values.js';
import { helpText, resolveOptions, type Options } from './flags.js';

const RUN: Record<Command, (o: Options) => Promise<number>> = {
  local: localCommand,
  coordinator: coordinatorCommand,
  worker: workerCommand,
  sample: sampleCommand,
  export: exportCommand,
  eval: evalCommand,
  bench: benchCommand,
};

const HELP = `ganfleet — data-parallel training of the seed's MNIST GAN over WebSockets

Usage: ganfleet <command> [options]      (ganfleet <command> --help for its options)

Commands:
${COMMANDS.map((c) => `  ${c.padEnd(14)}${COMMAND_HELP[c].title}`).join('\n')}

Examples:
  ganfleet local --workers 4 --epochs 5
  ganfleet coordinator --port 8787 --epochs 50 --out runs/exp1
  ganfleet worker --connect ws://coordinator-host:8787
`;

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
  if (!(COMMANDS as readonly string[]).includes(cmd))
    throw new UsageError(`unknown command "${cmd}" (expected one of: ${COMMANDS.join(', ')})`);
  const command = cmd as Command;
  const o = resolveOptions(command, rest);
  if (o.help) {
    process.stdout.write(helpText(command));
    return 0;
  }
  return RUN[command](o);
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
