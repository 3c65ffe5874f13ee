import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { envName, flagsOf, helpText, persistedSettings, resolveOptions } from '../../cli/flags.js';
import { FLAGS } from '../../cli/flag-table.js';
import { COMMANDS } from '../../cli/flag-values.js';
import { trainerConfig } from '../../cli/train-options.js';
import { UsageError } from '../../shared/errors.js';
import { tempDir } from '../support/cluster.js';

function file(name: string, text: string): string {
  const p = join(tempDir('ganfleet-config-'), name);
  writeFileSync(p, text);
  return p;
}

const usage = (pattern: RegExp) => (e: unknown) => e instanceof UsageError && pattern.test(e.message);

test('env names: GANFLEET_ + the flag in upper case with underscores', () => {
  assert.equal(envName('batch-size'), 'GANFLEET_BATCH_SIZE');
  assert.equal(envName('no-samples'), 'GANFLEET_NO_SAMPLES');
});

test('precedence: flags > env > file > defaults, per setting, with the source of each', () => {
  const yaml = file('run.yaml', 'seed: 11\nepochs: 3\nbatch-size: 64\nlr: 0.001\nno-samples: true\n');
  const env = { GANFLEET_EPOCHS: '4', GANFLEET_BATCH_SIZE: '32' };
  const o = resolveOptions('coordinator', ['--config', yaml, '--batch-size', '16'], { env });
  const cfg = trainerConfig(o);
  assert.equal(cfg.batchSize, 16, 'flag beats env and file');
  assert.equal(cfg.epochs, 4, 'env beats file');
  assert.equal(cfg.seed, 11, 'file beats default');
  assert.equal(cfg.adam.lr, 0.001);
  assert.equal(cfg.samples, false, 'a boolean from the file');
  assert.equal(cfg.logEvery, 100, 'default');
  assert.deepEqual(o.sources, { 'batch-size': 'flag', epochs: 'env', seed: 'file', lr: 'file', 'no-samples': 'file' });
  assert.equal(o.configFile, yaml);
});

test('per-command defaults come from the table', () => {
  const local = resolveOptions('local', [], { env: {} });
  const coord = resolveOptions('coordinator', [], { env: {} });
  assert.deepEqual([local.get('epochs'), local.get('port'), local.get('workers')], [1, 0, 2]);
  assert.deepEqual([coord.get('epochs'), coord.get('port'), coord.get('minWorkers')], [50, 8787, 1]);
  assert.equal(resolveOptions('bench', [], { env: {} }).get('logLevel'), 'warn');
  assert.deepEqual(resolveOptions('bench', ['--workers', '1,4'], { env: {} }).get('benchWorkers'), [1, 4]);
  assert.equal(resolveOptions('sample', ['--checkpoint', 'c'], { env: {} }).get('sampleSeed'), 1);
  assert.ok(resolveOptions('local', ['--workers', '3'], { env: {} }).get('threadsPerWorker')! >= 1);
});

test('JSON config files, camelCase keys, GANFLEET_CONFIG, and booleans from env', () => {
  const json = file('run.json', JSON.stringify({ batchSize: 256, maxSteps: 10, 'log-every': 5 }));
  const o = resolveOptions('local', [], { env: { GANFLEET_CONFIG: json, GANFLEET_NO_SAMPLES: 'yes' } });
  const cfg = trainerConfig(o);
  assert.deepEqual([cfg.batchSize, cfg.maxSteps, cfg.logEvery, cfg.samples], [256, 10, 5, false]);
  // A boolean turned off in the environment is the flag left out, even when the file turns it on.
  const yaml = file('b.yaml', 'no-samples: true\n');
  const off = resolveOptions('local', ['--config', yaml], { env: { GANFLEET_NO_SAMPLES: 'false' } });
  assert.equal(trainerConfig(off).samples, true);
});

test("one config file serves several commands: another command's key is skipped, a typo is an error", () => {
  const shared = file('shared.yaml', 'epochs: 2\nconnect: ws://h:1\nbackend: wasm\n');
  assert.equal(resolveOptions('worker', ['--config', shared], { env: {} }).get('backend'), 'wasm');
  assert.equal(resolveOptions('coordinator', ['--config', shared], { env: {} }).get('epochs'), 2);
  const typo = file('typo.yaml', 'epochs: 2\nbacth-size: 64\n');
  assert.throws(() => resolveOptions('local', ['--config', typo], { env: {} }), usage(/unknown setting "bacth-size"/));
});

test('values from env and files are checked like flags, and errors name the flag, the file and the key', () => {
  assert.throws(
    () => resolveOptions('local', [], { env: { GANFLEET_BATCH_SIZE: 'many' } }),
    usage(/^--batch-size must be an integer, got "many" \(from GANFLEET_BATCH_SIZE\)$/),
  );
  const bad = file('bad.yaml', 'epochs: 0\n');
  assert.throws(() => resolveOptions('local', ['--config', bad], { env: {} }), usage(/--epochs.*from --config .*bad/));
  const list = file('list.yaml', 'seed: [1, 2]\n');
  assert.throws(() => resolveOptions('local', ['--config', list], { env: {} }), usage(/"seed" must be a string or a/));
  const missing = join(tempDir(), 'missing.yaml');
  assert.throws(() => resolveOptions('local', ['--config', missing], { env: {} }), usage(/cannot read \(ENOENT\)/));
  const broken = file('broken.yaml', 'seed: [1,\n');
  assert.throws(() => resolveOptions('local', ['--config', broken], { env: {} }), usage(/not valid YAML/));
  assert.throws(
    () => resolveOptions('local', [], { env: { GANFLEET_NO_SAMPLES: 'maybe' } }),
    usage(/GANFLEET_NO_SAMPLES must be true or false/),
  );
  assert.throws(() => resolveOptions('local', ['--bacth-size', '3'], { env: {} }), usage(/'--bacth-size'/));
  assert.throws(() => resolveOptions('export', ['--format', 'tfjs'], { env: {} }), usage(/--checkpoint PATH is req/));
});

test('negative numbers are values: --lr -1 says the rate must be positive', () => {
  for (const argv of [['--lr', '-1'], ['--lr=-1'], ['--lr', '-.5'], ['--lr', '0']])
    assert.throws(() => resolveOptions('coordinator', argv, { env: {} }), usage(/^--lr must be positive/), argv.join());
  assert.throws(() => resolveOptions('local', ['--seed', '-3'], { env: {} }), usage(/^--seed must be between 0 and/));
  assert.equal(resolveOptions('local', ['--lr', '1e-3'], { env: {} }).get('lr'), 0.001);
});

test('the token is never taken from GANFLEET_TOKEN by name (it keeps its own, lower precedence)', () => {
  const o = resolveOptions('coordinator', ['--token', 's3cret'], {
    env: { GANFLEET_TOKEN: 'other', GANFLEET_PORT: '9000' },
  });
  assert.equal(o.get('token'), 's3cret');
  assert.equal(o.get('port'), 9000);
  assert.equal(resolveOptions('coordinator', [], { env: { GANFLEET_TOKEN: 'other' } }).get('token'), undefined);
});

test('persisted settings are an allow-list: every persisted row with its value, no secret, no source of one', () => {
  const key = file('key.pem', 'not really a key');
  const o = resolveOptions('coordinator', ['--token', 's3cret', '--tls-key', key, '--epochs', '3'], { env: {} });
  const s = persistedSettings(o) as { values: Record<string, unknown>; sources: Record<string, string> };
  assert.equal(s.values.epochs, 3);
  assert.equal(s.values['handshakes-per-second'], 100);
  assert.deepEqual(s.sources, { epochs: 'flag' });
  const persisted = flagsOf('coordinator', FLAGS)
    .filter(([, f]) => f.persist)
    .map(([, f]) => f.name);
  assert.deepEqual(Object.keys(s.values).sort(), persisted.filter((n) => s.values[n] !== undefined).sort());
  const json = JSON.stringify(s);
  assert.ok(!json.includes('s3cret') && !json.includes(key), json);
});

test('the table: one row per flag name and command; secrets are never persisted; --help lists every flag', () => {
  for (const command of COMMANDS) {
    const rows = flagsOf(command, FLAGS); // throws on a name twice
    const help = helpText(command);
    for (const [key, f] of rows) {
      assert.ok(help.includes(`--${f.name}`), `${command} --help lacks --${f.name}`);
      assert.ok(!(f.secret && f.persist), key);
    }
    assert.match(help, new RegExp(`^ganfleet ${command} — `));
    assert.match(help, /\nExamples:\n {2}ganfleet /);
    for (const line of help.split('\n')) assert.ok(line.length <= 120, `${command} --help: ${line}`);
  }
  assert.match(helpText('coordinator'), /--handshakes-per-second N +.*\(default 100\)/);
  assert.match(helpText('local'), /--epochs N +.*\(default 1\)/);
  assert.match(helpText('coordinator'), /--epochs N +.*\(default 50\)/);
});
