/** Lints deploy/'s shell scripts with shellcheck (Debian package `shellcheck`; skipped where absent). */
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { DEPLOY, filesUnder } from './lib.js';

const scripts = filesUnder(DEPLOY, /\.(sh|sbatch|bash)$/);
const hasShellcheck = spawnSync('shellcheck', ['--version']).status === 0;

test('deploy/ has its shell scripts, each with a bash shebang and strict mode', () => {
  assert.ok(
    scripts.some((s) => s.endsWith('slurm/ganfleet.sbatch')),
    scripts.join(', '),
  );
  for (const s of scripts) {
    const text = readFileSync(s, 'utf8');
    assert.match(text, /^#!\/bin\/bash\n/, s);
    assert.match(text, /^set -euo pipefail$/m, s);
  }
});

test('shellcheck finds nothing in deploy/ scripts', {
  skip: hasShellcheck ? false : 'shellcheck is not installed (apt-get install -y shellcheck)',
}, () => {
  const r = spawnSync('shellcheck', ['--severity=info', '--shell=bash', ...scripts], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
});
