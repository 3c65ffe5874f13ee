#!/usr/bin/env node
// Lint's second half (Biome formats and lints the code): no tracked source line over 120 characters,
// comments and strings included, which the formatter leaves alone.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const MAX = 120;
const patterns = ['*.ts', '*.mjs', '*.c', '*.h', '*.sh', '*.yaml', '*.yml', '*.py'];
const files = execFileSync('git', ['ls-files', ...patterns], { encoding: 'utf8' })
  .split('\n')
  .filter(Boolean);
let bad = 0;
for (const f of files) {
  readFileSync(f, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      if ([...line].length > MAX) {
        bad++;
        console.error(`${f}:${i + 1}: ${[...line].length} characters (max ${MAX})`);
      }
    });
}
if (bad > 0) {
  console.error(`${bad} line(s) over ${MAX} characters`);
  process.exit(1);
}
