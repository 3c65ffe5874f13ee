/**
 * Reading deploy/ for its tests: YAML loading, a small kustomize (resources, secretGenerator, images,
 * strategic-merge patches), a Dockerfile reader, and the command lines that deploy/ gives its
 * containers. Starting processes is tests/support/cluster.ts's job.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

/** The repository root (this file runs from dist/tests/deploy/). */
export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const DEPLOY = join(REPO, 'deploy');

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type Obj = { [k: string]: Json };

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Every file under `dir` (recursively) whose name matches `re`. */
export function filesUnder(dir: string, re: RegExp): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p, re));
    else if (re.test(name)) out.push(p);
  }
  return out.sort();
}

/**
 * All YAML documents of a file; throws on any parse error or warning. Kubernetes reads YAML 1.1
 * (`0440` is octal there), so manifests are read as 1.1, Compose files as 1.2.
 */
export function loadYaml(path: string, version: '1.1' | '1.2' = '1.2'): Json[] {
  const docs = parseAllDocuments(readFileSync(path, 'utf8'), { version, prettyErrors: true });
  const list = Array.isArray(docs) ? docs : [docs];
  const out: Json[] = [];
  for (const d of list) {
    const problems = [...d.errors, ...d.warnings];
    if (problems.length) throw new Error(`${path}: ${problems.map((e) => e.message).join('; ')}`);
    const v = d.toJS({ maxAliasCount: 100 }) as Json;
    if (v !== null && v !== undefined) out.push(v);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// kustomize, the subset deploy/k8s uses

/** List fields that strategic merge patches merge by a key (the rest are replaced whole). */
const MERGE_KEYS: Record<string, string> = {
  containers: 'name',
  initContainers: 'name',
  volumes: 'name',
  volumeMounts: 'mountPath',
  env: 'name',
  ports: 'containerPort',
  imagePullSecrets: 'name',
};

/** A strategic merge patch: maps merge, keyed lists merge by key, other lists and scalars replace. */
export function strategicMerge(base: Json, patch: Json, field = ''): Json {
  if (isObj(base) && isObj(patch)) {
    const out: Obj = { ...base };
    for (const [k, v] of Object.entries(patch)) {
      if (v === null) delete out[k];
      else out[k] = k in base ? strategicMerge(base[k]!, v, k) : v;
    }
    return out;
  }
  const key = MERGE_KEYS[field];
  if (Array.isArray(base) && Array.isArray(patch) && key) {
    const out = base.map((x) => x);
    for (const item of patch) {
      const i = out.findIndex((b) => isObj(b) && isObj(item) && b[key] === item[key]);
      if (i >= 0) out[i] = strategicMerge(out[i]!, item, '');
      else out.push(item);
    }
    return out;
  }
  return patch;
}

export function resId(r: Json): string {
  if (!isObj(r) || !isObj(r.metadata)) throw new Error(`not a Kubernetes object: ${JSON.stringify(r).slice(0, 200)}`);
  return `${r.kind}/${r.metadata.name}`;
}

/** Every container of a workload (Deployment, Job, Pod...). */
export function podSpec(r: Obj): Obj | undefined {
  const spec = r.spec;
  if (!isObj(spec)) return undefined;
  if (isObj(spec.template) && isObj(spec.template.spec)) return spec.template.spec;
  if (Array.isArray(spec.containers)) return spec;
  return undefined;
}

export function containers(r: Obj): Obj[] {
  const ps = podSpec(r);
  return ps
    ? [...((ps.initContainers as Obj[] | undefined) ?? []), ...((ps.containers as Obj[] | undefined) ?? [])]
    : [];
}

/** Splits an image reference into name and tag (digests are not used here). */
export function splitImage(image: string): { name: string; tag: string | undefined } {
  const slash = image.lastIndexOf('/');
  const colon = image.lastIndexOf(':');
  return colon > slash ? { name: image.slice(0, colon), tag: image.slice(colon + 1) } : { name: image, tag: undefined };
}

/**
 * Renders a kustomization folder like `kubectl kustomize` does for the features deploy/k8s uses:
 * resources (files and folders), secretGenerator (files; a missing file, such as the git-ignored
 * token, becomes a placeholder), generatorOptions.disableNameSuffixHash (required: no hashing here),
 * patches by path (strategic merge, target found by kind and name), and images (newName/newTag).
 */
export function kustomize(dir: string): Obj[] {
  const kfile = ['kustomization.yaml', 'kustomization.yml', 'Kustomization'].map((n) => join(dir, n)).find(existsSync);
  if (!kfile) throw new Error(`${dir}: no kustomization.yaml`);
  const k = loadYaml(kfile, '1.1')[0];
  if (!isObj(k)) throw new Error(`${kfile}: not a map`);
  const known = new Set([
    'apiVersion',
    'kind',
    'resources',
    'secretGenerator',
    'generatorOptions',
    'patches',
    'images',
  ]);
  for (const field of Object.keys(k))
    if (!known.has(field))
      throw new Error(`${kfile}: field "${field}" is not handled by the test's kustomize; extend tests/deploy/lib.ts`);
  let res: Obj[] = [];
  for (const r of (k.resources as string[] | undefined) ?? []) {
    const p = join(dir, r);
    if (statSync(p).isDirectory()) res.push(...kustomize(p));
    else res.push(...(loadYaml(p, '1.1') as Obj[]));
  }
  const gen = k.generatorOptions;
  for (const g of (k.secretGenerator as Obj[] | undefined) ?? []) {
    if (!(isObj(gen) && gen.disableNameSuffixHash === true))
      throw new Error(`${kfile}: secretGenerator without disableNameSuffixHash is not handled`);
    const data: Obj = {};
    for (const f of (g.files as string[] | undefined) ?? []) {
      const [key, file] = f.includes('=') ? (f.split('=', 2) as [string, string]) : [f.split('/').pop()!, f];
      const p = join(dir, file);
      data[key] = (existsSync(p) ? readFileSync(p) : Buffer.from('placeholder-token\n')).toString('base64');
    }
    res.unshift({ apiVersion: 'v1', kind: 'Secret', metadata: { name: g.name as string }, type: 'Opaque', data });
  }
  for (const p of (k.patches as Obj[] | undefined) ?? []) {
    if (typeof p.path !== 'string' || p.target !== undefined)
      throw new Error(`${kfile}: only "patches: - path: FILE" is handled`);
    for (const patch of loadYaml(join(dir, p.path), '1.1')) {
      const id = resId(patch);
      const i = res.findIndex((r) => resId(r) === id);
      if (i < 0) throw new Error(`${kfile}: patch ${p.path} targets ${id}, which is not among the resources`);
      res[i] = strategicMerge(res[i]!, patch) as Obj;
    }
  }
  for (const img of (k.images as Obj[] | undefined) ?? []) {
    for (const r of res) {
      for (const c of containers(r)) {
        const { name, tag } = splitImage(String(c.image));
        if (name !== img.name) continue;
        const newName = (img.newName as string | undefined) ?? name;
        const newTag = (img.newTag as string | undefined) ?? tag;
        c.image = newTag ? `${newName}:${newTag}` : newName;
      }
    }
  }
  res = res.map((r) => JSON.parse(JSON.stringify(r)) as Obj);
  return res;
}

export function find(res: Obj[], kind: string, name: string): Obj {
  const r = res.find((x) => x.kind === kind && isObj(x.metadata) && x.metadata.name === name);
  if (!r) throw new Error(`${kind}/${name} not found among ${res.map(resId).join(', ')}`);
  return r;
}

// ---------------------------------------------------------------------------------------------------
// Dockerfiles

export interface Instruction {
  keyword: string;
  args: string;
  line: number;
  stage: number;
}

/** Instructions of a Dockerfile, with line continuations joined and comments dropped. */
export function readDockerfile(path: string): Instruction[] {
  const lines = readFileSync(path, 'utf8').split('\n');
  const out: Instruction[] = [];
  let stage = -1;
  for (let i = 0; i < lines.length; i++) {
    let text = lines[i]!;
    if (/^\s*(#|$)/.test(text)) continue;
    const start = i;
    while (/\\\s*$/.test(text) && i + 1 < lines.length) {
      i++;
      if (/^\s*#/.test(lines[i]!)) continue;
      text = text.replace(/\\\s*$/, ' ') + lines[i]!;
    }
    const m = /^\s*([A-Za-z]+)\s+([\s\S]*)$/.exec(text);
    if (!m) throw new Error(`${path}:${start + 1}: cannot read "${text}"`);
    const keyword = m[1]!.toUpperCase();
    if (keyword === 'FROM') stage++;
    out.push({ keyword, args: m[2]!.trim(), line: start + 1, stage });
  }
  return out;
}

/** The exec form (JSON array) of ENTRYPOINT/CMD/HEALTHCHECK CMD; throws on the shell form. */
export function execForm(args: string): string[] {
  const v = JSON.parse(args) as unknown;
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new Error(`not an exec-form array: ${args}`);
  return v as string[];
}

/** ENTRYPOINT + CMD of a Dockerfile's last stage. */
export function imageCommand(path: string): { entrypoint: string[]; cmd: string[]; user: string | undefined } {
  const ins = readDockerfile(path);
  const last = Math.max(...ins.map((i) => i.stage));
  const final = ins.filter((i) => i.stage === last);
  const ep = final.filter((i) => i.keyword === 'ENTRYPOINT').pop();
  const cmd = final.filter((i) => i.keyword === 'CMD').pop();
  const user = final.filter((i) => i.keyword === 'USER').pop();
  if (!ep) throw new Error(`${path}: no ENTRYPOINT in the final stage`);
  return { entrypoint: execForm(ep.args), cmd: cmd ? execForm(cmd.args) : [], user: user?.args };
}

// ---------------------------------------------------------------------------------------------------
// Command lines

/** The ganfleet subcommand in an argv (the first of coordinator/worker/local). */
export function subcommand(argv: string[]): string {
  const c = argv.find((a) => a === 'coordinator' || a === 'worker' || a === 'local');
  if (!c) throw new Error(`no ganfleet command in ${argv.join(' ')}`);
  return c;
}

/** The value of `--name` in argv (the last one). */
export function flagValue(argv: string[], name: string): string | undefined {
  let v: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === `--${name}`) v = argv[i + 1];
    else if (argv[i]!.startsWith(`--${name}=`)) v = argv[i]!.slice(name.length + 3);
  }
  return v;
}

// ---------------------------------------------------------------------------------------------------
// Where deploy/ says what to run

/** Compose's `${VAR}`, `${VAR:-default}` and `${VAR-default}`, with `env` (default: none set). */
export function interpolate(s: string, env: Record<string, string> = {}): string {
  return s.replace(
    /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}/g,
    (_, name: string, def: string | undefined) => env[name] ?? def ?? '',
  );
}

export function composeFile(): Obj {
  const doc = loadYaml(join(DEPLOY, 'compose.yaml'))[0];
  if (!isObj(doc) || !isObj(doc.services)) throw new Error('deploy/compose.yaml: no services');
  return doc;
}

/** image name (without tag) -> the Dockerfile that builds it, from compose.yaml's build sections. */
export function dockerfileByImage(): Map<string, { image: string; dockerfile: string }> {
  const out = new Map<string, { image: string; dockerfile: string }>();
  for (const [name, s] of Object.entries(composeFile().services as Obj)) {
    if (!isObj(s) || !isObj(s.build) || typeof s.image !== 'string')
      throw new Error(`compose service ${name}: needs image and build`);
    const dockerfile = resolve(DEPLOY, String(s.build.context), String(s.build.dockerfile));
    out.set(splitImage(s.image).name, { image: s.image, dockerfile });
  }
  return out;
}

/** A container as deploy/ describes it: the image and the exact argv it runs. */
export interface Launch {
  what: string;
  image: string;
  argv: string[];
}

function withEntrypoint(what: string, image: string, args: string[], command?: string[]): Launch {
  const df = dockerfileByImage().get(splitImage(image).name);
  if (!df) throw new Error(`${what}: image ${image} is built by no Dockerfile in compose.yaml`);
  const { entrypoint, cmd } = imageCommand(df.dockerfile);
  // Kubernetes and Compose semantics: `command` replaces ENTRYPOINT, `args` replaces CMD.
  return { what, image, argv: [...(command ?? entrypoint), ...(args.length ? args : cmd)] };
}

/** The images' default commands: the CPU image's coordinator and the GPU image's worker. */
export function dockerLaunches(): { coordinator: Launch; worker: Launch } {
  const byImage = dockerfileByImage();
  const launch = (role: string): Launch => {
    for (const [, { image, dockerfile }] of byImage) {
      const l = withEntrypoint(`${dockerfile.slice(REPO.length + 1)} CMD`, image, []);
      if (subcommand(l.argv) === role) return l;
    }
    throw new Error(`no Dockerfile whose default command is a ${role}`);
  };
  return { coordinator: launch('coordinator'), worker: launch('worker') };
}

export function composeLaunches(): { coordinator: Launch; worker: Launch } {
  const services = composeFile().services as Obj;
  const launch = (name: string): Launch => {
    const s = services[name];
    if (!isObj(s)) throw new Error(`compose.yaml: no service ${name}`);
    const args = ((s.command as string[] | undefined) ?? []).map((a) => interpolate(String(a)));
    const command =
      s.entrypoint === undefined ? undefined : (s.entrypoint as string[]).map((a) => interpolate(String(a)));
    return withEntrypoint(`compose.yaml service ${name}`, String(s.image), args, command);
  };
  return { coordinator: launch('coordinator'), worker: launch('worker') };
}

export function k8sLaunches(dir: string): { coordinator: Launch; worker: Launch } {
  const res = kustomize(join(DEPLOY, 'k8s', dir));
  const launch = (name: string): Launch => {
    const c = containers(find(res, 'Deployment', name))[0]!;
    return withEntrypoint(
      `k8s/${dir} Deployment/${name}`,
      String(c.image),
      ((c.args as string[] | undefined) ?? []).map(String),
      c.command as string[] | undefined,
    );
  };
  return { coordinator: launch('ganfleet-coordinator'), worker: launch('ganfleet-worker') };
}
