/**
 * A stand-in for Slurm's `srun`, for running deploy/slurm/ganfleet.sbatch on this machine: it reads
 * the options (written --name=value in the script), logs them with the command to $FAKE_SRUN_LOG, and
 * starts --ntasks copies of the command here with SLURM_PROCID/SLURM_LOCALID set, forwarding SIGTERM
 * and SIGINT to them like srun does. It exits with the first non-zero exit code of its tasks.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync } from 'node:fs';

const BOOLEAN_OPTIONS = new Set(['--overlap', '--exclusive', '--exact']);

const args = process.argv.slice(2);
const opts: string[] = [];
let i = 0;
while (i < args.length && args[i]!.startsWith('-')) opts.push(args[i++]!);
const command = args.slice(i);
for (const o of opts) {
  if (!o.startsWith('--') || (!o.includes('=') && !BOOLEAN_OPTIONS.has(o))) {
    process.stderr.write(`fake srun: write srun options as --name=value (got "${o}")\n`);
    process.exit(2);
  }
}
if (command.length === 0) {
  process.stderr.write('fake srun: no command\n');
  process.exit(2);
}
const ntasks = Number(opts.find((o) => o.startsWith('--ntasks='))?.slice('--ntasks='.length) ?? '1');
if (!Number.isInteger(ntasks) || ntasks < 1) {
  process.stderr.write(`fake srun: bad --ntasks in ${opts.join(' ')}\n`);
  process.exit(2);
}
const log = process.env.FAKE_SRUN_LOG;
if (log) appendFileSync(log, JSON.stringify({ opts, command, ntasks }) + '\n');

const children: ChildProcess[] = [];
for (let k = 0; k < ntasks; k++) {
  const exe = command[0] === 'node' ? process.execPath : command[0]!;
  children.push(
    spawn(exe, command.slice(1), {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, SLURM_PROCID: String(k), SLURM_LOCALID: String(k), SLURM_STEP_NUM_TASKS: String(ntasks) },
    }),
  );
}
for (const sig of ['SIGTERM', 'SIGINT'] as const)
  process.on(sig, () => {
    for (const c of children) c.kill(sig);
  });
const codes = await Promise.all(
  children.map((c) => new Promise<number>((res) => c.once('exit', (code, signal) => res(code ?? (signal ? 128 : 1))))),
);
process.exit(codes.find((c) => c !== 0) ?? 0);
