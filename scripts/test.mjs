#!/usr/bin/env node
// `npm test`: node's test runner over dist/tests/ (or the files given), one file at a time, printing
// what each skipped test gave as its reason and a closing count line. With GANFLEET_CI=1 (set by
// .ci/run) any skipped test fails the run: CI installs what every test needs, so a skip there means
// that an install step is missing, not that the code is fine.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const files = process.argv.slice(2);
const dir = mkdtempSync(join(tmpdir(), 'ganfleet-test-report-'));
const tap = join(dir, 'report.tap');
const args = [
  '--test',
  '--test-concurrency=1',
  '--test-reporter=spec',
  '--test-reporter-destination=stdout',
  '--test-reporter=tap',
  `--test-reporter-destination=${tap}`,
  ...(files.length > 0 ? files : ['dist/tests/']),
];
const child = spawn(process.execPath, args, { stdio: 'inherit' });
const code = await new Promise((resolve) => child.on('exit', (c, signal) => resolve(c ?? (signal ? 128 : 1))));

let report = '';
try {
  report = readFileSync(tap, 'utf8');
} catch {
  // The runner died before writing its report: its exit code says so.
}
rmSync(dir, { recursive: true, force: true });
const count = (what) => Number(new RegExp(`^# ${what} (\\d+)$`, 'm').exec(report)?.[1] ?? Number.NaN);
const [pass, fail, cancelled, skipped] = ['pass', 'fail', 'cancelled', 'skipped'].map(count);
if (Number.isNaN(pass)) {
  console.error(`test: no report from node --test (exit ${code})`);
  process.exit(code === 0 ? 1 : code);
}
const skips = [...report.matchAll(/^\s*ok \d+ - (.*) # SKIP ?(.*)$/gm)].map((m) => `  ${m[1]}: ${m[2] || 'skipped'}`);
if (skips.length > 0) console.log(`\nskipped tests:\n${skips.join('\n')}`);
const ciSkip = process.env.GANFLEET_CI === '1' && skipped > 0;
if (ciSkip) console.log(`\nGANFLEET_CI=1: ${skipped} skipped test(s) fail the run; install what they need`);
console.log(`\ntests: ${pass} passed, ${fail + cancelled} failed, ${skipped} skipped`);
process.exit(code !== 0 ? code : ciSkip ? 1 : 0);
