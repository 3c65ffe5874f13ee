/**
 * What is logged and persisted is an allow-list: a secret-like option added to a copy of the flag
 * table, set, and passed on to the coordinator as a new option would be, appears in no log line, in
 * no file of the run (config.json, checkpoint metadata, metrics) and in no worker output; nor does
 * the token.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { coordinatorOptions } from '../../cli/commands.js';
import { FLAGS } from '../../cli/flag-table.js';
import { text, value } from '../../cli/flag-values.js';
import { resolveOptions } from '../../cli/flags.js';
import { readCheckpoint } from '../../coordinator/checkpoint.js';
import { startCoordinator, type CoordinatorOptions } from '../../coordinator/run.js';
import { exited, spawnWorker, tempDir, testLogger } from '../support/cluster.js';

const PASSPHRASE = 'passphrase-7f3a9c1e';
const TOKEN = 'token-5b9e20d4';

const TABLE = {
  ...FLAGS,
  passphrase: value({
    name: 'passphrase',
    arg: 'TEXT',
    parse: text,
    help: 'unlocks the TLS key',
    commands: ['coordinator'],
    persist: false,
    secret: true,
  }),
};

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? filesUnder(join(dir, e.name)) : [join(dir, e.name)],
  );
}

test('a secret option added to the table reaches no log line, config.json, checkpoint or worker output', async () => {
  const out = tempDir();
  const argv = ['--passphrase', PASSPHRASE, '--token', TOKEN, '--max-steps', '1', '--out', out, '--port', '0'];
  const o = resolveOptions('coordinator', [...argv, '--no-dashboard', '--progress', 'off'], { table: TABLE, env: {} });
  assert.equal(o.get('passphrase'), PASSPHRASE);
  const lines: string[] = [];
  // The command's own path (checks, the logged configuration), plus the new option passed on.
  const opts = { ...coordinatorOptions(o, testLogger(lines)), passphrase: o.get('passphrase') } as CoordinatorOptions;
  const c = await startCoordinator(opts);
  const worker = spawnWorker(c.url, ['--token', TOKEN]);
  const summary = await c.done;
  assert.equal(await exited(worker), 0, worker.output());
  assert.equal(summary.steps, 1);

  // The paths that log and persist the configuration did run.
  const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
  assert.equal(config.settings.values['max-steps'], 1);
  assert.equal(config.settings.auth, true);
  const ckpt = await readCheckpoint(join(out, 'checkpoint.safetensors'));
  assert.equal((ckpt.config.settings as { values: Record<string, unknown> }).values['max-steps'], 1);
  const logged = lines.map((l) => JSON.parse(l)).find((l) => l.config !== undefined);
  assert.equal(logged?.config.values.out, out);

  const files = filesUnder(out);
  assert.ok(files.length >= 3, files.join(', '));
  for (const [what, body] of [
    ...files.map((f) => [f, readFileSync(f).toString('latin1')]),
    ['coordinator log', lines.join('')],
    ['worker output', worker.output()],
  ]) {
    assert.ok(!body!.includes(PASSPHRASE), `${what} holds the passphrase`);
    assert.ok(!body!.includes(TOKEN), `${what} holds the token`);
  }
});
