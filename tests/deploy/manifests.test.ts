/**
 * Every YAML file in deploy/ parses, and what binds the pieces together agrees: ports, probe paths,
 * env and secret names and keys, labels and selectors, volumes and mounts, image names, GPU requests.
 * Kubernetes manifests are rendered base + overlay by tests/deploy/lib.ts's kustomize, and compared
 * with `kubectl kustomize` (a pinned kubectl from npm: scripts/kubectl.sh).
 */
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  DEPLOY,
  REPO,
  composeFile,
  composeLaunches,
  containers,
  dockerfileByImage,
  filesUnder,
  find,
  flagValue,
  imageCommand,
  isObj,
  k8sLaunches,
  kustomize,
  loadYaml,
  podSpec,
  resId,
  splitImage,
  type Obj,
} from './lib.js';
import { tempDir } from '../support/cluster.js';

const PORT = 8787;
/** Rendered and checked: the CPU base, GPU workers on tfjs-node-gpu, GPU workers on webgpu. */
const K8S_DIRS = ['base', 'overlays/gpu', 'overlays/webgpu'] as const;
/** The backend each GPU overlay names (by name, so that a broken GPU setup fails instead of using wasm). */
const GPU_BACKEND: Record<string, string> = { 'overlays/gpu': 'tensorflow', 'overlays/webgpu': 'webgpu' };

test('every YAML file in deploy/ parses', () => {
  const files = filesUnder(DEPLOY, /\.ya?ml$/);
  assert.ok(files.length >= 6, files.join(', '));
  for (const f of files) assert.ok(loadYaml(f, f.includes('/k8s/') ? '1.1' : '1.2').length > 0, `${f}: empty`);
});

// scripts/kubectl.sh (run by .ci/run) puts a pinned kubectl here, from npm; else one on the PATH.
const LOCAL_KUBECTL = join(REPO, '.cache/kubectl/kubectl');
const KUBECTL = existsSync(LOCAL_KUBECTL) ? LOCAL_KUBECTL : 'kubectl';
const hasKubectl = spawnSync(KUBECTL, ['version', '--client'], { encoding: 'utf8' }).status === 0;

test("the test's kustomize renders what `kubectl kustomize` renders", {
  skip: hasKubectl ? false : 'no kubectl: run scripts/kubectl.sh (a pinned kubectl from npm into .cache/kubectl)',
}, () => {
  const copy = tempDir();
  cpSync(join(DEPLOY, 'k8s'), copy, { recursive: true });
  writeFileSync(join(copy, 'base', 'token'), 'placeholder-token\n');
  const norm = (list: Obj[]) => [...list].sort((a, b) => resId(a).localeCompare(resId(b)));
  for (const dir of K8S_DIRS) {
    const r = spawnSync(KUBECTL, ['kustomize', join(copy, dir)], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const file = join(copy, `${dir.replace('/', '-')}.rendered.yaml`);
    writeFileSync(file, r.stdout);
    assert.deepEqual(norm(kustomize(join(copy, dir))), norm(loadYaml(file, '1.1') as Obj[]), dir);
  }
});

for (const dir of K8S_DIRS) {
  test(`k8s/${dir}: Service, Deployments, PVC, Secret and probes agree`, () => {
    const res = kustomize(join(DEPLOY, 'k8s', dir));
    const coord = find(res, 'Deployment', 'ganfleet-coordinator');
    const worker = find(res, 'Deployment', 'ganfleet-worker');
    const svc = find(res, 'Service', 'ganfleet-coordinator');
    const secret = find(res, 'Secret', 'ganfleet-token');
    const pvc = find(res, 'PersistentVolumeClaim', 'ganfleet-runs');
    assert.ok(isObj(secret.data) && 'token' in secret.data, 'the Secret has key "token"');
    assert.ok(pvc);

    // Selectors select the pods, and the Service selects the coordinator only.
    for (const d of [coord, worker]) {
      const sel = ((d.spec as Obj).selector as Obj).matchLabels as Obj;
      const labels = (((d.spec as Obj).template as Obj).metadata as Obj).labels as Obj;
      for (const [k, v] of Object.entries(sel)) assert.equal(labels[k], v, `${resId(d)}: selector ${k}`);
    }
    const podLabels = (r: Obj) => (((r.spec as Obj).template as Obj).metadata as Obj).labels as Obj;
    const svcSel = (svc.spec as Obj).selector as Obj;
    const selects = (r: Obj) => Object.entries(svcSel).every(([k, v]) => podLabels(r)[k] === v);
    assert.ok(selects(coord), 'the Service selects the coordinator pods');
    assert.ok(!selects(worker), 'the Service does not select workers');
    assert.equal(
      (svc.spec as Obj).publishNotReadyAddresses,
      true,
      'workers must reach a coordinator that is not ready yet',
    );

    // One coordinator, never two at once, resuming from the PVC.
    assert.equal((coord.spec as Obj).replicas, 1);
    assert.equal(((coord.spec as Obj).strategy as Obj).type, 'Recreate');
    const [cc] = containers(coord) as [Obj];
    const [wc] = containers(worker) as [Obj];
    const cargs = (cc.args as string[]).map(String);
    const wargs = (wc.args as string[]).map(String);
    assert.equal(cargs[0], 'coordinator');
    assert.equal(wargs[0], 'worker');
    assert.equal(flagValue(cargs, 'resume'), 'latest');
    assert.equal(flagValue(cargs, 'host'), '0.0.0.0');

    // Ports: the coordinator's --port = containerPort = the Service's port and targetPort = the worker's URL.
    assert.equal(Number(flagValue(cargs, 'port')), PORT);
    const cport = (cc.ports as Obj[])[0]!;
    assert.equal(cport.containerPort, PORT);
    const sport = ((svc.spec as Obj).ports as Obj[])[0]!;
    assert.equal(sport.port, PORT);
    assert.equal(sport.targetPort, cport.name, 'Service targetPort names the container port');
    const url = new URL(flagValue(wargs, 'connect')!);
    assert.equal(url.hostname, (svc.metadata as Obj).name, 'workers connect to the Service by name');
    assert.equal(Number(url.port), sport.port);

    // Probes: HTTP on the named port, at the paths the coordinator serves.
    const live = (cc.livenessProbe as Obj).httpGet as Obj;
    const ready = (cc.readinessProbe as Obj).httpGet as Obj;
    assert.deepEqual([live.path, live.port], ['/healthz', cport.name]);
    assert.deepEqual([ready.path, ready.port], ['/readyz', cport.name]);
    for (const p of ['livenessProbe', 'readinessProbe', 'startupProbe'])
      assert.equal(wc[p], undefined, `worker ${p}: a worker has no port (see worker.yaml)`);
    const ann = (((coord.spec as Obj).template as Obj).metadata as Obj).annotations as Obj;
    assert.equal(ann['prometheus.io/port'], String(PORT));
    assert.equal(ann['prometheus.io/path'], '/metrics');

    // Volumes: every mount has a volume; the token file is the Secret's key under its mount; --out is on the PVC.
    for (const d of [coord, worker]) {
      const spec = podSpec(d)!;
      const vols = new Map(((spec.volumes as Obj[]) ?? []).map((v) => [v.name as string, v]));
      const [c] = containers(d) as [Obj];
      const args = (c.args as string[]).map(String);
      for (const m of (c.volumeMounts as Obj[]) ?? [])
        assert.ok(vols.has(m.name as string), `${resId(d)}: mount ${m.name} has no volume`);
      const tokenMount = ((c.volumeMounts as Obj[]) ?? []).find((m) => isObj(vols.get(m.name as string)?.secret))!;
      const tokenVol = vols.get(tokenMount.name as string)!.secret as Obj;
      assert.equal(tokenVol.secretName, (secret.metadata as Obj).name);
      assert.equal(
        flagValue(args, 'token-file'),
        `${tokenMount.mountPath}/token`,
        `${resId(d)}: --token-file is the Secret's key "token"`,
      );
      assert.equal(tokenVol.defaultMode, 0o440);
      // Non-root, as the images: runAsUser = the Dockerfiles' USER.
      const sc = spec.securityContext as Obj;
      assert.equal(sc.runAsNonRoot, true);
      const image = dockerfileByImage().get(splitImage(String(c.image)).name);
      assert.ok(image, `${resId(d)}: image ${c.image} is built by a Dockerfile (compose.yaml build sections)`);
      assert.equal(
        `${sc.runAsUser}:${sc.runAsGroup}`,
        imageCommand(image.dockerfile).user,
        `${resId(d)}: runAsUser/runAsGroup = the image's USER`,
      );
      assert.equal(c.image, image.image, `${resId(d)}: the same image name and tag as compose.yaml`);
      const csc = c.securityContext as Obj;
      assert.equal(csc.allowPrivilegeEscalation, false);
      assert.equal(csc.readOnlyRootFilesystem, true);
      assert.ok(
        ((c.volumeMounts as Obj[]) ?? []).some((m) => m.mountPath === '/tmp'),
        `${resId(d)}: a writable /tmp with a read-only root`,
      );
      const req = (c.resources as Obj).requests as Obj;
      assert.ok(req.cpu && req.memory, `${resId(d)}: resource requests`);
    }
    const runs = (podSpec(coord)!.volumes as Obj[]).find((v) => isObj(v.persistentVolumeClaim))!;
    assert.equal((runs.persistentVolumeClaim as Obj).claimName, (pvc.metadata as Obj).name);
    const runsMount = (cc.volumeMounts as Obj[]).find((m) => m.name === runs.name)!;
    assert.ok(flagValue(cargs, 'out')!.startsWith(`${runsMount.mountPath}/`), '--out is on the PVC');

    if (dir in GPU_BACKEND) {
      const r = wc.resources as Obj;
      assert.equal((r.limits as Obj)['nvidia.com/gpu'], 1);
      assert.equal((r.requests as Obj)['nvidia.com/gpu'], 1, 'extended resources: requests = limits');
      assert.equal(splitImage(String(wc.image)).name, 'ganfleet-gpu');
      assert.equal(flagValue(wargs, 'backend'), GPU_BACKEND[dir]);
      // Vulkan (webgpu) needs the driver's graphics capability, CUDA compute and utility.
      const caps = ((wc.env as Obj[]) ?? []).find((e) => e.name === 'NVIDIA_DRIVER_CAPABILITIES')?.value;
      assert.deepEqual(String(caps).split(',').sort(), ['compute', 'graphics', 'utility']);
      // The overlay replaces the worker's args whole: apart from --backend they must stay the base's.
      const base = k8sLaunches('base').worker.argv;
      const strip = (a: string[]) => a.filter((x, i) => x !== '--backend' && a[i - 1] !== '--backend');
      assert.deepEqual(strip(k8sLaunches(dir).worker.argv).slice(2), strip(base).slice(2));
    } else {
      assert.equal(splitImage(String(wc.image)).name, 'ganfleet', 'base workers run the CPU image');
    }
  });
}

test('compose.yaml: secret, volume, ports, GPU reservation and images agree', () => {
  const doc = composeFile();
  const services = doc.services as Obj;
  const coord = services.coordinator as Obj;
  const worker = services.worker as Obj;
  const launches = composeLaunches();
  const cargs = launches.coordinator.argv;
  const wargs = launches.worker.argv;
  for (const [name, s, args] of [
    ['coordinator', coord, cargs],
    ['worker', worker, wargs],
  ] as const) {
    const secrets = (s.secrets as string[]).map(String);
    for (const sec of secrets) assert.ok(isObj((doc.secrets as Obj)[sec]), `${name}: secret ${sec} is declared`);
    assert.equal(
      flagValue([...args], 'token-file'),
      `/run/secrets/${secrets[0]}`,
      `${name}: --token-file is the mounted secret`,
    );
    assert.ok(!JSON.stringify(s.environment ?? {}).includes('GANFLEET_TOKEN'), 'no token in the environment');
  }
  const file = ((doc.secrets as Obj).ganfleet_token as Obj).file as string;
  assert.ok(file.startsWith('./secrets/'), 'the token file is in deploy/secrets (git-ignored)');
  assert.match(readFileSync(join(DEPLOY, 'secrets/.gitignore'), 'utf8'), /^\*$/m);
  // The outputs volume holds --out.
  const vol = (coord.volumes as string[])[0]!.split(':');
  assert.ok(isObj(doc.volumes) && vol[0]! in doc.volumes, `named volume ${vol[0]} is declared`);
  assert.ok(flagValue(cargs, 'out')!.startsWith(`${vol[1]}/`), '--out is on the volume');
  assert.equal(flagValue(cargs, 'resume'), 'latest');
  // Ports and the worker's URL.
  assert.equal(Number(flagValue(cargs, 'port')), PORT);
  assert.deepEqual(coord.ports, [`${PORT}:${PORT}`]);
  const url = new URL(flagValue(wargs, 'connect')!);
  assert.deepEqual([url.hostname, Number(url.port)], ['coordinator', PORT]);
  assert.equal(((worker.depends_on as Obj).coordinator as Obj).condition, 'service_healthy');
  assert.deepEqual((coord.healthcheck as Obj).test, ['CMD', 'node', '/app/healthcheck.mjs']);
  // Workers: one GPU each, no fixed replica count or container name (so --scale works).
  const devices = ((((worker.deploy as Obj).resources as Obj).reservations as Obj).devices as Obj[])[0]!;
  assert.deepEqual([devices.driver, devices.count, devices.capabilities], ['nvidia', 1, ['gpu']]);
  assert.equal(worker.container_name, undefined);
  assert.equal(worker.ports, undefined, 'a published port would make --scale fail');
  assert.equal(splitImage(String(worker.image)).name, 'ganfleet-gpu');
  assert.equal(splitImage(String(coord.image)).name, 'ganfleet');
});

test('the same image tags everywhere: compose.yaml and the kustomize images', () => {
  const byImage = dockerfileByImage();
  const tags = new Set([...byImage.values()].map((v) => splitImage(v.image).tag));
  assert.equal(tags.size, 1, `one tag for both images: ${[...tags].join(', ')}`);
  const [tag] = [...tags];
  assert.equal(
    tag,
    (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version,
    'image tag = package version',
  );
  for (const f of K8S_DIRS) {
    const k = loadYaml(join(DEPLOY, 'k8s', f, 'kustomization.yaml'), '1.1')[0] as Obj;
    for (const img of (k.images as Obj[]) ?? []) {
      assert.ok(byImage.has(String(img.name)), `k8s/${f}: image ${img.name} is built by compose.yaml`);
      assert.equal(img.newTag, tag);
    }
  }
  for (const [name, { dockerfile }] of byImage)
    assert.match(
      readFileSync(dockerfile, 'utf8'),
      new RegExp(`-t ${name}:${tag} `),
      `${dockerfile}: its build line names ${name}:${tag}`,
    );
});
