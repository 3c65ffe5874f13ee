#!/usr/bin/env node
// Builds ganfleet's optional native addons into native/build/Release/:
//   ganfleet_reduce.node  the coordinator's gradient sum and Adam (needs only a C compiler);
//   ganfleet_blas.node    the workers' OpenBLAS kernel pack (needs OpenBLAS, libopenblas-dev).
// Run by `npm install`; it never fails the install: where there is no C compiler, no Node headers
// or no OpenBLAS, it says so and the JavaScript / tfjs code paths are used instead (same results,
// slower). GANFLEET_NATIVE=0 skips both; GANFLEET_NATIVE=1 makes a failed build an error and every
// compiler warning one (CI uses that to be sure both are tested and stay clean).
//
// Each old .node is removed before its build: a failed build must leave nothing behind that the
// loader would take for current (it also compares ABI numbers, shared/native-addon.ts).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const mode = process.env.GANFLEET_NATIVE ?? 'auto';
const cc = process.env.CC ?? 'cc';

const ADDONS = [
  {
    name: 'ganfleet_reduce',
    what: 'coordinator kernels',
    libs: ['-lm', '-lpthread'],
    extra: ['-fno-math-errno', '-ffp-contract=off', '-D_POSIX_C_SOURCE=200809L', '-pthread'],
    needs: 'a C compiler, e.g. apt-get install build-essential',
  },
  {
    name: 'ganfleet_blas',
    what: 'worker kernels',
    libs: ['-lopenblas', '-lm', '-lpthread'],
    // -ffp-contract=off: the exact step's quanta must be formed exactly as shared/fixed.ts does.
    extra: [
      '-I/usr/include/openblas',
      '-I/usr/local/opt/openblas/include',
      '-ffp-contract=off',
      '-D_POSIX_C_SOURCE=200809L',
      '-pthread',
    ],
    needs: 'a C compiler and OpenBLAS, e.g. apt-get install build-essential libopenblas-dev',
  },
];

if (mode === '0') {
  console.warn('ganfleet native addons not built (optional): GANFLEET_NATIVE=0');
  process.exit(0);
}
// Node's own headers: the install prefix of this node (Debian's nodejs puts them in /usr/include/node).
const prefixes = [join(dirname(process.execPath), '..'), '/usr', '/usr/local'];
const include = prefixes.map((p) => join(p, 'include', 'node')).find((d) => existsSync(join(d, 'node_api.h')));

let failed = 0;
for (const a of ADDONS) {
  const out = join(here, 'build', 'Release', `${a.name}.node`);
  rmSync(out, { force: true });
  const fail = (msg) => {
    failed++;
    rmSync(out, { force: true });
    console[mode === '1' ? 'error' : 'warn'](
      `ganfleet ${a.what} (${a.name}) not built${mode === '1' ? '' : ' (optional)'}: ${msg}`,
    );
  };
  if (include === undefined) {
    fail('node_api.h not found (install the Node headers)');
    continue;
  }
  const args = [
    '-O3',
    '-shared',
    '-fPIC',
    '-std=c11',
    '-Wall',
    '-Wextra',
    ...(mode === '1' ? ['-Werror'] : []),
    '-DNAPI_VERSION=8',
    `-DNODE_GYP_MODULE_NAME=${a.name}`,
    `-I${include}`,
    ...a.extra,
    join(here, `${a.name}.c`),
    '-o',
    out,
    ...a.libs,
  ];
  if (process.platform === 'darwin')
    args.push('-undefined', 'dynamic_lookup', '-L/usr/local/opt/openblas/lib', '-L/opt/homebrew/opt/openblas/lib');
  try {
    mkdirSync(dirname(out), { recursive: true });
    execFileSync(cc, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  } catch (err) {
    fail(`${cc} failed (needs ${a.needs}): ${err instanceof Error ? err.message.split('\n')[0] : err}`);
    continue;
  }
  try {
    const probe = `if (typeof require(${JSON.stringify(out)}).ABI !== 'number') process.exit(1)`;
    execFileSync(process.execPath, ['-e', probe], { stdio: 'ignore' });
  } catch {
    fail(`${out} was built but does not load or exports no ABI number`);
    continue;
  }
  console.log(`ganfleet ${a.what} built: ${out}`);
}
if (failed > 0 && mode === '1') process.exit(1);
