/**
 * Runs the exact commands that deploy/ gives its containers (Dockerfile ENTRYPOINT + CMD, Compose,
 * the kustomize-rendered Kubernetes manifests, the Slurm script) here on loopback: a coordinator and two
 * workers train a few steps, /healthz answers while it runs, and all exit 0.
 *
 * What is changed, and only this: the image's entrypoint path /app/dist/cli/main.js becomes this
 * checkout's dist/cli/main.js; service host names and 0.0.0.0 become 127.0.0.1 and the port a free one
 * (after checking both sides agree on it); the token and output paths become temporary files; the
 * worker backend becomes wasm (no GPU here). Appended: `--max-steps 3` (the manifests train 50 epochs)
 * and `--min-workers 2` (so both workers take part), and to workers `--max-retries 50` (so a stray
 * worker gives up instead of retrying forever). Flags are otherwise passed as written, so a renamed flag
 * makes the CLI exit 2 and the test fail.
 */
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  CLI,
  exitWithin,
  freePort,
  httpStatus,
  killAll,
  start,
  stepsDone,
  tempDir,
  until,
  type Proc,
} from '../support/cluster.js';
import {
  DEPLOY,
  REPO,
  composeLaunches,
  dockerLaunches,
  flagValue,
  k8sLaunches,
  subcommand,
  type Launch,
} from './lib.js';

const CONTAINER_CLI = '/app/dist/cli/main.js';
const HEALTHCHECK = join(DEPLOY, 'docker/healthcheck.mjs');
const STEPS = 3;

interface Local {
  port: number;
  out: string;
  token: string;
}

/** The launch's argv, localized as the header says. */
function localize(l: Launch, local: Local, serviceHosts: string[]): string[] {
  const a = [...l.argv];
  assert.equal(a[0], 'node', `${l.what}: expected the entrypoint to start with node: ${a.join(' ')}`);
  a[0] = process.execPath;
  assert.equal(a[1], CONTAINER_CLI, `${l.what}: expected the CLI at ${CONTAINER_CLI}`);
  a[1] = CLI;
  const role = subcommand(a);
  for (let i = 2; i < a.length; i++) {
    const flag = a[i]!;
    const set = (v: string) => (a[++i] = v);
    const v = a[i + 1];
    if (flag === '--port') set(String(local.port));
    else if (flag === '--host') set('127.0.0.1');
    else if (flag === '--backend') set('wasm');
    else if (flag === '--token-file') set(local.token);
    else if (flag === '--out') set(local.out);
    else if (flag === '--connect') {
      const u = new URL(v!);
      assert.ok(
        serviceHosts.includes(u.hostname),
        `${l.what}: --connect host ${u.hostname} is none of ${serviceHosts.join(', ')}`,
      );
      set(`${u.protocol}//127.0.0.1:${local.port}`);
    }
  }
  for (const x of a.slice(2))
    assert.ok(
      !x.startsWith('/') || x.startsWith(local.out) || x === local.token,
      `${l.what}: path ${x} has no local stand-in; extend localize()`,
    );
  if (role === 'coordinator') a.push('--max-steps', String(STEPS), '--min-workers', '2');
  if (role === 'worker') {
    if (!a.includes('--backend')) a.push('--backend', 'wasm');
    a.push('--max-retries', '50');
  }
  return a;
}

/** Runs deploy/docker/healthcheck.mjs as if `pid` were the container's main process. */
function healthcheck(pid: number): { code: number | null; out: string } {
  const r = spawnSync(process.execPath, [HEALTHCHECK], {
    encoding: 'utf8',
    env: { ...process.env, GANFLEET_HEALTHCHECK_PID: String(pid) },
    timeout: 10_000,
  });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

function checkpointsIn(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else if (e.name.endsWith('.safetensors')) out.push(join(d, e.name));
    }
  };
  walk(dir);
  return out;
}

/** Starts the coordinator, waits for /healthz, starts two workers, and checks the run. */
async function runCluster(coordinator: Launch, worker: Launch, serviceHosts: string[]): Promise<void> {
  const dir = tempDir('ganfleet-deploy-');
  const local: Local = { port: await freePort(), out: join(dir, 'run'), token: join(dir, 'token') };
  writeFileSync(local.token, randomBytes(32).toString('hex') + '\n');
  chmodSync(local.token, 0o600);
  const c = { argv: localize(coordinator, local, serviceHosts) };
  const w = { argv: localize(worker, local, serviceHosts) };
  const base = `http://127.0.0.1:${local.port}`;
  const procs: Proc[] = [];
  try {
    const coord = start(c.argv);
    procs.push(coord);
    await until(
      async () => {
        if (coord.exitCode !== null)
          throw new Error(
            `coordinator exited ${coord.exitCode} before listening: ` + `${c.argv.join(' ')}\n${coord.output()}`,
          );
        return (await httpStatus(`${base}/healthz`)) === 200;
      },
      20_000,
      `${coordinator.what}: GET /healthz = 200`,
    );

    // The Docker/Compose healthcheck, run against this coordinator's command line.
    const hc = healthcheck(coord.pid!);
    assert.equal(hc.code, 0, `healthcheck.mjs on the coordinator: ${hc.out}`);
    assert.match(hc.out, new RegExp(`healthy: GET http://127\\.0\\.0\\.1:${local.port}/healthz -> 200`));

    // The Kubernetes readiness probe's path answers (ready or not yet, depending on the moment).
    const ready = await httpStatus(`${base}/readyz`);
    assert.ok(ready === 200 || ready === 503, `/readyz answered ${ready}`);

    const workers = [start(w.argv), start(w.argv)];
    procs.push(...workers);
    const whc = healthcheck(workers[0]!.pid!);
    assert.equal(whc.code, 0, `healthcheck.mjs on a worker: ${whc.out}`);
    assert.match(whc.out, /not a coordinator/);

    // /healthz keeps answering while it trains (sampled until the coordinator exits).
    let answered = 0;
    while (coord.exitCode === null && answered < 3) {
      if ((await httpStatus(`${base}/healthz`)) === 200) answered++;
    }

    const code = await exitWithin(coord, 60_000, `${coordinator.what}: coordinator`);
    assert.equal(code, 0, `coordinator exited ${code}:\n${coord.output().slice(-3000)}`);
    assert.equal(stepsDone(coord.output()), STEPS, coord.output().slice(-2000));
    for (const wk of workers) {
      const wc = await exitWithin(wk, 30_000, `${worker.what}: worker`);
      assert.equal(wc, 0, `worker exited ${wc}:\n${wk.output().slice(-3000)}`);
    }
    assert.ok(checkpointsIn(local.out).length > 0, `no checkpoint in ${local.out}`);
  } finally {
    killAll(procs);
  }
}

test("the Dockerfiles' default commands (CPU image: coordinator, GPU image: worker) train on loopback", {
  timeout: 90_000,
}, async () => {
  const l = dockerLaunches();
  await runCluster(l.coordinator, l.worker, ['coordinator']);
});

test("compose.yaml's coordinator and 2 workers (as with --scale worker=2) train on loopback", {
  timeout: 90_000,
}, async () => {
  const l = composeLaunches();
  await runCluster(l.coordinator, l.worker, ['coordinator']);
});

test("Kubernetes base (CPU workers): the rendered Deployments' commands train on loopback", {
  timeout: 90_000,
}, async () => {
  const l = k8sLaunches('base');
  await runCluster(l.coordinator, l.worker, ['ganfleet-coordinator']);
});

test("Kubernetes GPU overlay: the rendered Deployments' commands train on loopback (wasm for the GPU)", {
  timeout: 90_000,
}, async () => {
  const l = k8sLaunches('overlays/gpu');
  assert.equal(flagValue(l.worker.argv, 'backend'), 'tensorflow', 'the GPU overlay names the tensorflow backend');
  await runCluster(l.coordinator, l.worker, ['ganfleet-coordinator']);
});

test('the Slurm script runs a coordinator and one worker per task, with srun and scontrol stood in for', {
  timeout: 90_000,
}, async () => {
  const dir = tempDir('ganfleet-deploy-');
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  writeFileSync(
    join(bin, 'srun'),
    `#!/bin/sh\nexec "${process.execPath}" "${join(REPO, 'dist/tests/deploy/fake-srun.js')}" "$@"\n`,
    { mode: 0o755 },
  );
  // Every node name of the allocation resolves to this machine.
  writeFileSync(
    join(bin, 'scontrol'),
    '#!/bin/sh\n[ "$1 $2" = "show hostnames" ] || { echo "fake scontrol: $*" >&2; exit 2; }\necho 127.0.0.1\n',
    { mode: 0o755 },
  );
  const port = await freePort();
  const out = join(dir, 'shared', 'run');
  const log = join(dir, 'srun.jsonl');
  const env = {
    PATH: `${bin}:${process.env.PATH}`,
    SLURM_JOB_ID: '4242',
    SLURM_JOB_NODELIST: 'gpu[01-02]',
    SLURM_NTASKS: '2',
    SLURM_SUBMIT_DIR: dir,
    GANFLEET_HOME: REPO,
    GANFLEET_OUT: out,
    GANFLEET_PORT: String(port),
    GANFLEET_WORKER_BACKEND: 'wasm',
    FAKE_SRUN_LOG: log,
  };
  // Arguments after the script go to the coordinator: the same two appended elsewhere.
  const job = start(
    ['bash', join(DEPLOY, 'slurm/ganfleet.sbatch'), '--max-steps', String(STEPS), '--min-workers', '2'],
    env,
  );
  try {
    await until(
      async () => {
        if (job.exitCode !== null)
          throw new Error(`the job ended (${job.exitCode}) before /healthz answered:\n${job.output()}`);
        return (await httpStatus(`http://127.0.0.1:${port}/healthz`)) === 200;
      },
      20_000,
      'the coordinator of the Slurm job: GET /healthz = 200',
    );
    const code = await exitWithin(job, 75_000, 'the Slurm job');
    assert.equal(code, 0, job.output().slice(-4000));
  } finally {
    killAll([job]);
  }
  assert.equal(stepsDone(job.output()), STEPS, job.output().slice(-2000));
  const steps = readFileSync(log, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { opts: string[]; command: string[]; ntasks: number });
  const coord = steps.find((s) => s.command.includes('coordinator'))!;
  const workers = steps.find((s) => s.command.includes('worker'))!;
  assert.ok(coord && workers, `srun steps: ${JSON.stringify(steps)}`);
  assert.equal(coord.ntasks, 1);
  assert.ok(coord.opts.includes('--nodelist=127.0.0.1'), 'the coordinator runs on the first node of the allocation');
  assert.equal(workers.ntasks, 2, 'one worker per task');
  assert.ok(workers.opts.includes('--gpus-per-task=1'), 'each worker gets one GPU');
  assert.equal(flagValue(workers.command, 'connect'), `ws://127.0.0.1:${port}`);
  assert.equal(flagValue(coord.command, 'resume'), 'latest', 'requeue-safe: --resume latest');
  assert.equal(flagValue(coord.command, 'token-file'), flagValue(workers.command, 'token-file'));
  assert.equal(flagValue(coord.command, 'out'), out);
  assert.match(readFileSync(join(out, 'token'), 'utf8'), /^[0-9a-f]{64}$/, 'the job made a token in the shared folder');
  assert.ok(checkpointsIn(out).length > 0, `no checkpoint in ${out}`);
});

test('a renamed flag in a deploy/ command line fails the CLI with exit 2 (what keeps these tests honest)', () => {
  const l = k8sLaunches('base').coordinator;
  const argv = [process.execPath, CLI, ...l.argv.slice(2)].map((a) => (a === '--min-workers' ? '--min-worker' : a));
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /--min-worker/);
});
