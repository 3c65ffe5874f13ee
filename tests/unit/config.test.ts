import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { envName, givenSettings, resolveFlags, type FlagSpec } from '../../cli/flags.js';
import { TRAIN_FLAGS, trainerConfig } from '../../cli/train-options.js';
import { UsageError } from '../../shared/errors.js';
import { tempDir } from '../support/cluster.js';

const SPEC: FlagSpec = {
  ...TRAIN_FLAGS,
  port: { type: 'string' },
  token: { type: 'string' },
  'token-file': { type: 'string' },
};

function file(name: string, text: string): string {
  const p = join(tempDir('ganfleet-config-'), name);
  writeFileSync(p, text);
  return p;
}

test('env names: GANFLEET_ + the flag in upper case with underscores', () => {
  assert.equal(envName('batch-size'), 'GANFLEET_BATCH_SIZE');
  assert.equal(envName('no-samples'), 'GANFLEET_NO_SAMPLES');
});

test('precedence: flags > env > file > defaults, per setting, with the source of each', () => {
  const yaml = file('run.yaml', 'seed: 11\nepochs: 3\nbatch-size: 64\nlr: 0.001\nno-samples: true\n');
  const env = { GANFLEET_EPOCHS: '4', GANFLEET_BATCH_SIZE: '32' };
  const r = resolveFlags(['--config', yaml, '--batch-size', '16'], SPEC, env);
  const cfg = trainerConfig(r.values, { epochs: 50 });
  assert.equal(cfg.batchSize, 16, 'flag beats env and file');
  assert.equal(cfg.epochs, 4, 'env beats file');
  assert.equal(cfg.seed, 11, 'file beats default');
  assert.equal(cfg.adam.lr, 0.001);
  assert.equal(cfg.samples, false, 'a boolean from the file');
  assert.equal(cfg.logEvery, 100, 'default');
  assert.deepEqual(r.sources, { 'batch-size': 'flag', epochs: 'env', seed: 'file', lr: 'file', 'no-samples': 'file' });
  assert.equal(r.configFile, yaml);
});

test('JSON config files, camelCase keys, GANFLEET_CONFIG, and booleans from env', () => {
  const json = file('run.json', JSON.stringify({ batchSize: 256, maxSteps: 10, 'log-every': 5 }));
  const r = resolveFlags([], SPEC, { GANFLEET_CONFIG: json, GANFLEET_NO_SAMPLES: 'yes' });
  const cfg = trainerConfig(r.values, { epochs: 1 });
  assert.equal(cfg.batchSize, 256);
  assert.equal(cfg.maxSteps, 10);
  assert.equal(cfg.logEvery, 5);
  assert.equal(cfg.samples, false);
  // A boolean turned off in the environment is the flag left out, even when the file turns it on.
  const yaml = file('b.yaml', 'no-samples: true\n');
  const off = resolveFlags(['--config', yaml], SPEC, { GANFLEET_NO_SAMPLES: 'false' });
  assert.equal(trainerConfig(off.values, { epochs: 1 }).samples, true);
});

test('values from env and files are checked like flags, and errors name the flag, the file and the key', () => {
  assert.throws(
    () => trainerConfig(resolveFlags([], SPEC, { GANFLEET_BATCH_SIZE: 'many' }).values, { epochs: 1 }),
    (e: Error) => e instanceof UsageError && /--batch-size must be an integer, got "many"/.test(e.message),
  );
  const bad = file('bad.yaml', 'epochs: 2\nbacth-size: 64\n');
  assert.throws(
    () => resolveFlags(['--config', bad], SPEC, {}),
    (e: Error) => e instanceof UsageError && e.message.includes(bad) && /unknown setting "bacth-size"/.test(e.message),
  );
  const list = file('list.yaml', 'seed: [1, 2]\n');
  assert.throws(() => resolveFlags(['--config', list], SPEC, {}), /"seed" must be a string or a number, got a list/);
  assert.throws(() => resolveFlags(['--config', join(tempDir(), 'missing.yaml')], SPEC, {}), /cannot read \(ENOENT\)/);
  const broken = file('broken.yaml', 'seed: [1,\n');
  assert.throws(() => resolveFlags(['--config', broken], SPEC, {}), /not valid YAML/);
  assert.throws(
    () => resolveFlags([], SPEC, { GANFLEET_NO_SAMPLES: 'maybe' }),
    /GANFLEET_NO_SAMPLES must be true or false/,
  );
  assert.throws(() => resolveFlags(['--bacth-size', '3'], SPEC, {}), /bacth-size/);
});

test('the token is never taken from GANFLEET_TOKEN by name (it keeps its own, lower precedence) and is redacted', () => {
  const r = resolveFlags(['--token', 's3cret'], SPEC, { GANFLEET_TOKEN: 'other', GANFLEET_PORT: '9000' });
  assert.equal(r.values.token, 's3cret');
  assert.equal(r.values.port, '9000');
  assert.equal(resolveFlags([], SPEC, { GANFLEET_TOKEN: 'other' }).values.token, undefined);
  const given = givenSettings(r);
  assert.deepEqual(given.token, { value: '<redacted>', source: 'flag' });
  assert.ok(!JSON.stringify(given).includes('s3cret'));
});
