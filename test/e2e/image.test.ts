// The DaemonSet's image, built and run here without Docker: scripts/build-image.sh makes
// it with buildah from deploy/Dockerfile (on a debootstrap base plus this host's Node,
// both cached in the image store between runs), then podman runs it the way
// deploy/agent-daemonset.yaml and deploy/control.yaml do: the image's ENTRYPOINT with the
// manifests' args (read from the YAML, $(VAR)s substituted), the preStop hook's command,
// and `weft agent --cleanup` with the DaemonSet's bpffs and cgroup host mounts, which
// loads the native addon (and so libbpf) inside the image. Every BPF object in the image
// is opened with that addon; in a privileged container (when podman can start one here)
// they are also loaded into the kernel. Nothing may be left behind but the store's
// images: no containers, no dangling images, no pins or cgroups on the host. The image is
// also written with --archive (the tarball `kind load image-archive` / `ctr import` take).
//
// Store: $WEFT_IMAGE_STORE or /var/tmp/weft-image (the script's default, so a developer's
// own build warms it). Remove it with: podman $(scripts/build-image.sh --print-store)
// rmi -a -f; rm -rf /var/tmp/weft-image /run/weft-image-*
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { requires } from '../lib/privileges';
import { ROOT } from '../lib/weft';
import { cgroup2Root } from '../../agent/datapath/layout';

const SCRIPT = join(ROOT, 'scripts', 'build-image.sh');
const NODE = `weft-image-test-${process.pid}`;

interface Container {
  name: string; image: string; command?: string[]; args?: string[];
  env?: { name: string; value?: string; valueFrom?: unknown }[];
  volumeMounts?: { name: string; mountPath: string }[];
  lifecycle?: { preStop?: { exec?: { command: string[] } } };
}
interface PodSpec { containers: Container[]; volumes?: { name: string; hostPath?: { path: string } }[] }

function podSpec(file: string, kind: string): PodSpec {
  const docs = parseAllDocuments(readFileSync(join(ROOT, 'deploy', file), 'utf8')).map((d) => d.toJS());
  const w = docs.find((d) => d?.kind === kind);
  assert.ok(w, `${file}: a ${kind}`);
  return w.spec.template.spec as PodSpec;
}

/** The container's env with test values for the fieldRefs (node name, host IP, pod UID). */
function envOf(c: Container): Record<string, string> {
  const fieldValues: Record<string, string> = { 'spec.nodeName': NODE, 'status.hostIP': '192.0.2.10', 'status.podIP': '192.0.2.11', 'metadata.uid': '6f0c1a9e-3b7d-4c2e-9a51-0d8e2f4b7c10', 'metadata.name': 'weft-control-7d4b9c6f5-x2k8q', 'metadata.namespace': 'weft-system' };
  const out: Record<string, string> = {};
  for (const e of c.env ?? []) {
    if (e.value !== undefined) out[e.name] = e.value;
    else {
      const path = (e.valueFrom as { fieldRef?: { fieldPath?: string } } | undefined)?.fieldRef?.fieldPath;
      assert.ok(path && fieldValues[path], `${c.name}: env ${e.name} has a fieldRef this test knows`);
      out[e.name] = fieldValues[path];
    }
  }
  return out;
}

/** Kubernetes' $(VAR) expansion of args from the container's env. */
function expand(args: string[], env: Record<string, string>): string[] {
  return args.map((a) => a.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, v: string) => env[v] ?? m));
}

/** Soft=hard limits podman can give a container here. runc cannot raise a limit above
 *  podman's own without CAP_SYS_RESOURCE (which root lacks on some CI sandboxes), and
 *  podman asks for nofile=1048576 by default and caps its own nproc at 32768. */
function ulimitFlags(): string[] {
  const limits = readFileSync('/proc/self/limits', 'utf8');
  const hard = (name: string) => {
    const m = new RegExp(`^${name}\\s+\\S+\\s+(\\S+)`, 'm').exec(limits);
    return m && m[1] !== 'unlimited' ? Number(m[1]) : Infinity;
  };
  const nofile = Math.min(hard('Max open files'), 1048576);
  const nproc = Math.min(hard('Max processes'), 32768);
  return ['--ulimit', `nofile=${nofile}:${nofile}`, '--ulimit', `nproc=${nproc}:${nproc}`];
}

test('image: scripts/build-image.sh builds deploy/Dockerfile with buildah, and the image runs the manifests\' commands', { timeout: 20 * 60_000 }, async (t) => {
  if (!requires(t, { root: true, bpffs: true, cgroup2: true, commands: ['buildah', 'podman', 'debootstrap'] })) return;
  const store = execFileSync(SCRIPT, ['--print-store'], { encoding: 'utf8' }).trim().split('\n');
  const podman = (args: string[], opts: { input?: string } = {}): SpawnSyncReturns<string> =>
    spawnSync('podman', [...store, ...args], { encoding: 'utf8', timeout: 120_000, input: opts.input });
  const buildah = (args: string[]) => spawnSync('buildah', [...store, ...args], { encoding: 'utf8', timeout: 60_000 });
  const lines = (r: SpawnSyncReturns<string>) => r.stdout.split('\n').filter(Boolean);

  const names: string[] = [];
  let n = 0;
  /** podman run --rm, no network, named so that after() can remove it if a run hangs. */
  const run = (flags: string[], image: string, args: string[], input?: string) => {
    const name = `${NODE}-${++n}`;
    names.push(name);
    return podman(['run', '--rm', '--pull=never', '--network=none', '--name', name, ...ulimitFlags(),
      ...(input !== undefined ? ['-i'] : []), ...flags, image, ...args], { input });
  };
  const tmp = mkdtempSync(join(tmpdir(), 'wt-image-'));
  t.after(() => {
    for (const name of names) spawnSync('podman', [...store, 'rm', '-f', '--ignore', name], { stdio: 'ignore' });
    rmSync(tmp, { recursive: true, force: true });
  });

  // ---- build (warm: the bases and the layer cache are in the store)
  const started = Date.now();
  const archive = join(tmp, 'weft-dev.tar');
  const build = spawnSync(SCRIPT, ['--quiet', '--archive', archive], { cwd: ROOT, encoding: 'utf8', timeout: 18 * 60_000, stdio: ['ignore', 'pipe', 'pipe'] });
  const buildSeconds = Math.round((Date.now() - started) / 1000);
  t.diagnostic(`build-image.sh: ${buildSeconds}s\n${build.stderr.split('\n').filter((l) => l.startsWith('==>')).join('\n')}`);
  assert.equal(build.status, 0, `build-image.sh failed:\n${build.stderr}`);

  const agentSpec = podSpec('agent-daemonset.yaml', 'DaemonSet');
  const agent = agentSpec.containers.find((c) => c.name === 'agent');
  assert.ok(agent, 'DaemonSet container agent');
  const image = agent.image;
  assert.equal(image, 'weft:dev', 'the DaemonSet runs the image the script tags');
  const inspect = podman(['image', 'inspect', '--format', '{{json .Config.Entrypoint}} {{.Size}}', image]);
  assert.equal(inspect.status, 0, inspect.stderr);
  const [entrypoint, size] = inspect.stdout.trim().split(' ');
  assert.deepEqual(JSON.parse(entrypoint as string), ['weft'], 'ENTRYPOINT');
  t.diagnostic(`${image}: ${(Number(size) / 1e6).toFixed(0)} MB`);

  await t.test('the DaemonSet\'s args (with --help) and the control Deployment\'s args are accepted by the image\'s weft', () => {
    assert.equal(agent.command, undefined, 'the agent container uses the image ENTRYPOINT');
    const args = expand(agent.args ?? [], envOf(agent));
    assert.equal(args[0], 'agent');
    assert.ok(!args.some((a) => a.includes('$(')), `unexpanded variables in ${args.join(' ')}`);
    assert.ok(args.includes(`--node=${NODE}`), 'the node name came from the fieldRef');
    // --help after the manifest's flags: the strict parser rejects any flag weft does not
    // know before it prints the help, so this checks the whole arg list in the image.
    const r = run([], image, [...args, '--help']);
    assert.equal(r.status, 0, `weft ${args.join(' ')} --help: ${r.stderr}`);
    assert.match(r.stdout, /^Usage: weft agent --control HOST:PORT --node NAME/);
    const bad = run([], image, [...args, '--no-such-flag', '--help']);
    assert.notEqual(bad.status, 0, 'an unknown flag fails (so the check above means something)');

    const control = podSpec('control.yaml', 'Deployment').containers.find((c) => c.name === 'control');
    assert.ok(control, 'control Deployment container');
    assert.equal(control.image, image);
    const cargs = expand(control.args ?? [], envOf(control));
    const rc = run([], image, [...cargs, '--help']);
    assert.equal(rc.status, 0, `weft ${cargs.join(' ')} --help: ${rc.stderr}`);
    assert.match(rc.stdout, /^Usage: weft control/);
    const v = run([], image, ['--version']);
    assert.equal(v.status, 0, v.stderr);
    assert.equal(v.stdout.trim(), JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version);
  });

  await t.test('agent --cleanup and the armed preStop hook run with the DaemonSet\'s host mounts (native addon, libbpf)', () => {
    // The DaemonSet's hostPath mounts, except that /sys/fs/cgroup is the host's cgroup2
    // mount (what the README says to use on hybrid hosts), and no state dir.
    const volumes = new Map((agentSpec.volumes ?? []).map((v) => [v.name, v.hostPath?.path]));
    const mounts: string[] = [];
    for (const m of agent.volumeMounts ?? []) {
      const host = volumes.get(m.name);
      if (host === '/sys/fs/bpf') mounts.push('-v', `${host}:${m.mountPath}`);
      if (host === '/sys/fs/cgroup') mounts.push('-v', `${cgroup2Root()}:${m.mountPath}`);
    }
    assert.equal(mounts.length, 4, 'bpffs and cgroup host mounts in the DaemonSet');
    const cleanup = run(mounts, image, ['agent', '--cleanup', '--node', NODE]);
    assert.equal(cleanup.status, 0, `weft agent --cleanup: ${cleanup.stderr}`);
    assert.deepEqual(JSON.parse(cleanup.stdout), { links: [], maps: [], cgroups: [], movedPids: [] });

    const preStop = agent.lifecycle?.preStop?.exec?.command;
    assert.ok(preStop, 'the DaemonSet has a preStop exec hook');
    const env = Object.entries({ ...envOf(agent), WEFT_UNINSTALL: 'true' }).flatMap(([k, v]) => ['-e', `${k}=${v}`]);
    const hook = run([...mounts, ...env, '--entrypoint', preStop[0] as string], image, preStop.slice(1));
    assert.equal(hook.status, 0, `preStop: ${hook.stderr}`);
    assert.match(hook.stdout, /"movedPids": \[\]/, 'the armed hook ran weft agent --cleanup');

    assert.ok(!existsSync(join('/sys/fs/bpf', 'weft', NODE)), 'no pins left for the test node');
    assert.ok(!existsSync(join(cgroup2Root(), 'weft', NODE)), 'no cgroup left for the test node');
  });

  // Opens (privileged: also loads) every object in bpf/.output of the image.
  const loader = `
const native = require('/opt/weft/native');
const { readdirSync } = require('node:fs');
const dir = '/opt/weft/bpf/.output';
(async () => {
  const out = {};
  for (const f of readdirSync(dir).sort()) {
    const o = native.BpfObject.open(dir + '/' + f, { pinRoot: process.env.PIN_ROOT || undefined });
    out[f] = { programs: o.programNames };
    if (process.env.PIN_ROOT) { await o.load(); out[f].ids = o.programNames.map((p) => o.program(p).id); }
    o.close();
  }
  process.stdout.write(JSON.stringify(out));
})().catch((e) => { console.error(e.op || '', e.code || '', e.message); process.exit(1); });`;
  const objects = readdirSync(join(ROOT, 'bpf')).filter((f) => f.endsWith('.bpf.c')).map((f) => f.replace(/\.c$/, '.o')).sort();

  await t.test('every BPF object of bpf/ is in the image and opens with the image\'s addon', () => {
    const r = run(['--entrypoint', 'node'], image, ['-'], loader);
    assert.equal(r.status, 0, r.stderr);
    const seen = JSON.parse(r.stdout) as Record<string, { programs: string[] }>;
    assert.deepEqual(Object.keys(seen), objects);
    for (const [f, o] of Object.entries(seen)) assert.ok(o.programs.length > 0, `${f} has programs`);
    const ldd = run(['--entrypoint', 'ldd'], image, ['/opt/weft/native/build/Release/weft_native.node']);
    assert.equal(ldd.status, 0, ldd.stderr);
    assert.match(ldd.stdout, /libbpf\.so\.1 => \//);
    assert.doesNotMatch(ldd.stdout, /not found/);
  });

  await t.test('privileged: the image\'s libbpf loads every object into this kernel (a bpffs of its own)', (st) => {
    const probe = run(['--privileged'], image, ['--version']);
    if (probe.status !== 0) {
      // Not every sandbox lets podman start privileged containers; the DaemonSet needs it,
      // but this check does not depend on it.
      st.skip(`podman run --privileged does not work here: ${probe.stderr.trim().split('\n').pop()}`);
      return;
    }
    const script = join(tmp, 'load.js');
    writeFileSync(script, loader);
    const r = run(['--privileged', '-v', `${script}:/load.js:ro`, '-e', 'PIN_ROOT=/run/weft-bpffs', '--entrypoint', 'sh'], image,
      ['-c', 'mkdir -p /run/weft-bpffs && mount -t bpf bpf /run/weft-bpffs && exec node /load.js']);
    assert.equal(r.status, 0, r.stderr);
    const loaded = JSON.parse(r.stdout) as Record<string, { programs: string[]; ids: number[] }>;
    assert.deepEqual(Object.keys(loaded), objects);
    for (const [f, o] of Object.entries(loaded)) assert.ok(o.ids.every((id) => id > 0), `${f}: kernel program ids ${o.ids}`);
  });

  await t.test('--archive writes a docker-archive that containerd imports as the DaemonSet\'s image', () => {
    // `ctr -n k8s.io images import` and `kind load image-archive` take the RepoTags; the
    // kubelet resolves `image: weft:dev` to docker.io/library/weft:dev.
    const manifest = JSON.parse(execFileSync('tar', ['-xOf', archive, 'manifest.json'], { encoding: 'utf8' })) as { RepoTags: string[]; Layers: string[] }[];
    assert.equal(manifest.length, 1);
    assert.ok(manifest[0]!.RepoTags.includes(`docker.io/library/${image}`), `RepoTags ${manifest[0]!.RepoTags.join(' ')}`);
    assert.ok(manifest[0]!.Layers.length > 0);
  });

  await t.test('nothing left behind: no containers, no dangling images, only the cached bases, build cache and image', () => {
    assert.deepEqual(lines(podman(['ps', '-a', '--format', '{{.Names}}'])).filter((c) => c.startsWith(NODE)), []);
    assert.deepEqual(lines(buildah(['containers', '--noheading', '--format', '{{.ContainerName}}'])), [], 'no buildah working containers');
    assert.deepEqual(lines(podman(['images', '--filter', 'dangling=true', '--format', '{{.ID}}'])), [], 'no dangling images');
    const tagged = lines(podman(['images', '--format', '{{.Repository}}:{{.Tag}}'])).filter((r) => !r.startsWith('<none>'));
    for (const r of ['localhost/weft:dev', 'localhost/weft-build:cache']) assert.ok(tagged.includes(r), `${r} in ${tagged.join(' ')}`);
    const unexpected = tagged.filter((r) => !/^localhost\/(weft:dev|weft-build:cache|weft-base:[\w.-]+|weft-node:[\w.-]+)$/.test(r));
    assert.deepEqual(unexpected, [], 'images in the store');
  });
});
