#!/usr/bin/env node
// Builds ganfleet's optional OpenBLAS kernel pack (native/ganfleet_blas.c) into
// native/build/Release/ganfleet_blas.node. Run by `npm install`; it never fails the install:
// where there is no C compiler, no Node headers or no OpenBLAS (Debian: libopenblas-dev), it says
// so and the workers use tfjs's own kernels. GANFLEET_NATIVE=0 skips it; GANFLEET_NATIVE=1 makes a
// failed build an error (CI uses that to be sure the pack is tested).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, 'build', 'Release', 'ganfleet_blas.node');
const mode = process.env.GANFLEET_NATIVE ?? 'auto';

function fail(msg) {
  if (mode === '1') {
    console.error(`ganfleet native kernels: ${msg}`);
    process.exit(1);
  }
  console.warn(`ganfleet native kernels not built (optional): ${msg}`);
  process.exit(0);
}

if (mode === '0') fail('GANFLEET_NATIVE=0');
// Node's own headers: the install prefix of this node (Debian's nodejs puts them in /usr/include/node).
const prefixes = [join(dirname(process.execPath), '..'), '/usr', '/usr/local'];
const include = prefixes.map((p) => join(p, 'include', 'node')).find((d) => existsSync(join(d, 'node_api.h')));
if (include === undefined) fail('node_api.h not found (install the Node headers)');
const cc = process.env.CC ?? 'cc';
const args = [
  '-O3', '-shared', '-fPIC', '-std=c11', '-DNAPI_VERSION=8', '-DNODE_GYP_MODULE_NAME=ganfleet_blas',
  `-I${include}`, '-I/usr/include/openblas', '-I/usr/local/opt/openblas/include',
  join(here, 'ganfleet_blas.c'), '-o', out, '-lopenblas',
];
if (process.platform === 'darwin') args.push('-undefined', 'dynamic_lookup', '-L/usr/local/opt/openblas/lib', '-L/opt/homebrew/opt/openblas/lib');
try {
  mkdirSync(dirname(out), { recursive: true });
  execFileSync(cc, args, { stdio: ['ignore', 'inherit', 'inherit'] });
} catch (err) {
  fail(`${cc} failed (needs a C compiler and OpenBLAS, e.g. apt-get install build-essential libopenblas-dev): ${err instanceof Error ? err.message.split('\n')[0] : err}`);
}
try {
  execFileSync(process.execPath, ['-e', `require(${JSON.stringify(out)}).config()`], { stdio: 'ignore' });
} catch {
  fail(`${out} was built but does not load`);
}
console.log(`ganfleet native kernels built: ${out}`);
