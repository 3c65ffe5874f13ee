/**
 * Lints deploy/docker/Dockerfile.* without a Docker engine: the dockerfile-utils validator (the one
 * behind the VS Code Docker extension; a devDependency, skipped where absent) plus this project's rules,
 * a subset of hadolint's (which is not packaged for Debian or npm) and of what issue 6 asks for.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  DEPLOY,
  REPO,
  dockerfileByImage,
  execForm,
  filesUnder,
  imageCommand,
  readDockerfile,
  type Instruction,
} from './lib.js';

const dockerfiles = filesUnder(join(DEPLOY, 'docker'), /^Dockerfile/);
const rel = (p: string) => p.slice(REPO.length + 1);

test('deploy/docker has a CPU and a GPU Dockerfile, both built by compose.yaml', () => {
  assert.deepEqual(dockerfiles.map(rel), ['deploy/docker/Dockerfile.cpu', 'deploy/docker/Dockerfile.gpu']);
  assert.deepEqual([...dockerfileByImage().values()].map((v) => rel(v.dockerfile)).sort(), dockerfiles.map(rel));
});

let validate:
  | ((text: string) => Array<{ message: string; severity?: number; range: { start: { line: number } } }>)
  | undefined;
try {
  // A specifier in a variable: tsc must not need the package to compile this file.
  const pkg = 'dockerfile-utils';
  validate = ((await import(pkg)) as { validate: typeof validate }).validate;
} catch {
  validate = undefined;
}

test('dockerfile-utils finds no problem', {
  skip: validate ? false : 'dockerfile-utils is not installed (npm devDependency)',
}, () => {
  for (const f of dockerfiles) {
    const problems = validate!(readFileSync(f, 'utf8'));
    assert.deepEqual(
      problems.map((p) => `${rel(f)}:${p.range.start.line + 1}: ${p.message}`),
      [],
    );
  }
});

for (const f of dockerfiles) {
  test(`${rel(f)}: multi-stage, non-root, pinned, exec-form, npm ci --omit=dev, the ganfleet entrypoint`, () => {
    const ins = readDockerfile(f);
    const stages = ins.filter((i) => i.keyword === 'FROM');
    const last = stages.length - 1;
    const final = ins.filter((i) => i.stage === last);
    const args = new Map(
      ins.filter((i) => i.keyword === 'ARG' && i.stage === -1).map((i) => i.args.split('=') as [string, string]),
    );
    const image = (from: Instruction) =>
      from.args.split(/\s+/)[0]!.replace(/^\$\{(\w+)\}$/, (_, n: string) => args.get(n) ?? `\${${n}}`);
    const names = new Set(stages.map((s) => /\sAS\s+(\S+)/i.exec(s.args)?.[1]).filter(Boolean));

    assert.ok(stages.length >= 2, 'multi-stage');
    for (const s of stages) {
      const from = image(s);
      if (names.has(from)) continue;
      assert.match(
        from,
        /^[\w./-]+:[\w.-]+$/,
        `line ${s.line}: pin the base image's tag (hadolint DL3006/DL3007): ${from}`,
      );
      assert.doesNotMatch(from, /:latest$/, `line ${s.line}: no :latest`);
    }
    // Non-root, numerically (so Kubernetes' runAsNonRoot can verify it), and last.
    const user = imageCommand(f).user;
    assert.match(user ?? '', /^[1-9]\d*:[1-9]\d*$/, 'USER uid:gid, not root');
    // Exec form for what Docker runs (signals reach node; hadolint DL3025).
    for (const i of ins.filter((x) => x.keyword === 'ENTRYPOINT' || x.keyword === 'CMD')) execForm(i.args);
    assert.deepEqual(
      imageCommand(f).entrypoint,
      ['node', '/app/dist/cli/main.js'],
      'the entrypoint is the ganfleet CLI',
    );
    // Production dependencies only in the final image, installed from the lockfile; dist/ from the build stage.
    const runs = ins.filter((i) => i.keyword === 'RUN').map((i) => i.args);
    assert.ok(
      runs.some((r) => /npm ci\b[^&]*--omit=dev/.test(r)),
      'npm ci --omit=dev',
    );
    assert.ok(!runs.some((r) => /npm install\b/.test(r)), 'npm ci, not npm install');
    assert.ok(
      ins.some((i) => i.stage < last && i.keyword === 'RUN' && /\btsc\b/.test(i.args)),
      'tsc runs in an earlier stage',
    );
    assert.ok(
      final.some((i) => i.keyword === 'COPY' && /--from=build\s+\S*\/dist\s/.test(i.args)),
      'dist/ is copied from the build stage',
    );
    assert.ok(
      !final.some((i) => i.keyword === 'COPY' && /^\.\s/.test(i.args)),
      'the final stage does not copy the whole context',
    );
    // apt hygiene (hadolint DL3009/DL3015) and no sudo, no ADD of URLs.
    for (const r of runs.filter((x) => /apt-get install/.test(x))) {
      assert.match(r, /--no-install-recommends/, r);
      assert.match(r, /rm -rf \/var\/lib\/apt\/lists/, r);
      assert.match(r, /apt-get install -y/, r);
    }
    assert.ok(!ins.some((i) => i.keyword === 'ADD'), 'COPY, not ADD');
    assert.ok(!runs.some((r) => /\bsudo\b/.test(r)), 'no sudo');
    assert.ok(!ins.some((i) => i.keyword === 'MAINTAINER'), 'no MAINTAINER');
    // Sources that COPY takes from the context exist and are not excluded by .dockerignore.
    const ignore = readFileSync(join(REPO, '.dockerignore'), 'utf8');
    for (const c of ins.filter((i) => i.keyword === 'COPY' && !i.args.includes('--from='))) {
      const srcs = c.args.split(/\s+/).slice(0, -1);
      for (const s of srcs.filter((x) => x !== '.')) {
        assert.ok(existsSync(join(REPO, s)), `line ${c.line}: COPY source ${s} does not exist`);
        if (s.startsWith('deploy/'))
          assert.match(
            ignore,
            new RegExp(`^!${s.replace(/[.]/g, '\\.')}$`, 'm'),
            `.dockerignore excludes deploy/ but must let ${s} in`,
          );
      }
    }
  });
}

test('the CPU image: HEALTHCHECK on /healthz via healthcheck.mjs, port 8787 exposed, a coordinator by default', () => {
  const f = join(DEPLOY, 'docker/Dockerfile.cpu');
  const ins = readDockerfile(f);
  const hc = ins.filter((i) => i.keyword === 'HEALTHCHECK').pop();
  assert.ok(hc, 'HEALTHCHECK');
  assert.deepEqual(execForm(hc.args.replace(/^.*?CMD\s+/, '')), ['node', '/app/healthcheck.mjs']);
  assert.match(readFileSync(join(DEPLOY, 'docker/healthcheck.mjs'), 'utf8'), /path: '\/healthz'/);
  assert.ok(ins.some((i) => i.keyword === 'EXPOSE' && i.args === '8787'));
  assert.equal(imageCommand(f).cmd[0], 'coordinator');
});

test('the GPU image: CUDA 11.2 + cuDNN 8 (libtensorflow 2.9.1 of tfjs-node-gpu 4.22), tfjs-node-gpu checked', () => {
  const f = join(DEPLOY, 'docker/Dockerfile.gpu');
  const text = readFileSync(f, 'utf8');
  assert.match(text, /^ARG CUDA_IMAGE=nvidia\/cuda:11\.2\.\d+-cudnn8-runtime-ubuntu\d+\.\d+$/m);
  const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as {
    optionalDependencies?: Record<string, string>;
  };
  assert.equal(
    pkg.optionalDependencies?.['@tensorflow/tfjs-node-gpu'],
    '4.22.0',
    'the CUDA pin above is for tfjs-node-gpu 4.22.0: revisit it on upgrade',
  );
  assert.match(text, /npm rebuild @tensorflow\/tfjs-node-gpu/);
  assert.match(text, /test -f node_modules\/@tensorflow\/tfjs-node-gpu\/deps\/lib\/libtensorflow\.so\.2\.9\.1/);
  assert.match(text, /TF_FORCE_GPU_ALLOW_GROWTH=true/);
  assert.equal(imageCommand(f).cmd[0], 'worker');
});

test('the GPU image runs webgpu too: glibc >= 2.34, the Vulkan loader, the graphics capability, Dawn loaded', () => {
  const f = join(DEPLOY, 'docker/Dockerfile.gpu');
  const ins = readDockerfile(f);
  const last = Math.max(...ins.map((i) => i.stage));
  const final = ins.filter((i) => i.stage === last);
  const args = new Map(
    ins.filter((i) => i.keyword === 'ARG' && i.stage === -1).map((i) => i.args.split('=') as [string, string]),
  );
  // dawn.node (npm webgpu 0.6.2) needs GLIBC_2.34 and GLIBCXX_3.4.30: Ubuntu 22.04 or later, not
  // the CUDA 11.2 images' Ubuntu 20.04.
  const base = final
    .find((i) => i.keyword === 'FROM')!
    .args.split(/\s+/)[0]!
    .replace(/^\$\{(\w+)\}$/, (_, n) => String(args.get(n)));
  const ubuntu = /^ubuntu:(\d+)\.(\d+)$/.exec(base);
  assert.ok(ubuntu && Number(ubuntu[1]) >= 22, `final stage base ${base}: Ubuntu 22.04 or later`);
  const runs = final.filter((i) => i.keyword === 'RUN').map((i) => i.args);
  assert.ok(
    runs.some((r) => /apt-get install -y --no-install-recommends [^&]*\blibvulkan1\b/.test(r)),
    'libvulkan1 (the Vulkan loader Dawn opens) in the final stage',
  );
  const env = final
    .filter((i) => i.keyword === 'ENV')
    .map((i) => i.args)
    .join(' ');
  const caps = /NVIDIA_DRIVER_CAPABILITIES=(\S+)/.exec(env)?.[1]?.split(',') ?? [];
  assert.deepEqual([...caps].sort(), ['compute', 'graphics', 'utility'], 'Vulkan needs the graphics capability');
  // CUDA and cuDNN for libtensorflow come from the CUDA 11.2 image; both native parts load at build.
  const copies = final.filter((i) => i.keyword === 'COPY').map((i) => i.args);
  assert.ok(
    copies.some((c) => /^--from=deps \/usr\/local\/cuda-11\.2 /.test(c)),
    'CUDA 11.2 copied in',
  );
  assert.ok(
    copies.some((c) => /^--from=deps \S*libcudnn\S*\.so\.8\S* /.test(c)),
    'cuDNN 8 copied in',
  );
  assert.ok(
    runs.some((r) => r.includes(`node --input-type=module -e "await import('webgpu')"`)),
    'dawn.node loads',
  );
  assert.ok(
    runs.some((r) => r.includes(`node -e "require('@tensorflow/tfjs-node-gpu')"`)),
    'the binding loads',
  );
  const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as {
    optionalDependencies?: Record<string, string>;
  };
  assert.equal(
    pkg.optionalDependencies?.webgpu,
    '0.6.2',
    "the glibc floor above is webgpu 0.6.2's: recheck on upgrade",
  );
});
