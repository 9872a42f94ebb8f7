// Invariants of the install artefacts that a typo would silently break in a cluster or
// on a VM, where nobody runs our tests: Kubernetes manifests (deploy/*.yaml), the
// kustomization, the Dockerfile, and the systemd units (deploy/systemd/).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Ajv from 'ajv';
import { parseAllDocuments } from 'yaml';
import { kindSchemas } from '../../agent/policy/kinds';
import { packageRoot } from '../../agent/lib/paths';
import { requires } from '../lib/privileges';

const ROOT = packageRoot();
const DEPLOY = join(ROOT, 'deploy');

/** The CLI contract (DESIGN.md, which the project extends): the only flags install
 *  artefacts may pass. The agent's Kubernetes mode (--kubernetes, DESIGN.md "Kubernetes
 *  mode") and its access log are extensions the DaemonSet uses; the control API's
 *  replicas keep their state in the Kubernetes API (--state-store kubernetes). */
const CONTRACT_FLAGS: Record<string, Set<string>> = {
  control: new Set(['policies', 'listen', 'state-dir', 'token-file', 'ca-bundle-out', 'kubernetes', 'admin', 'state-store']),
  agent: new Set(['control', 'node', 'admin', 'state-dir', 'token-file', 'control-ca', 'node-address', 'outbound', 'inbound', 'cgroup-root', 'cleanup', 'force',
    'kubernetes', 'access-log-sample']),
};
/** Flags the implemented commands accept (their --help text lists every flag): an
 *  unknown flag makes the strict parser exit, so a manifest must not get ahead of the
 *  code even where the contract allows the flag. */
function implementedFlags(sub: string): Set<string> {
  const { command } = require(join(ROOT, 'agent', 'cli', `${sub}.ts`)) as { command: { help: string } };
  return new Set([...command.help.matchAll(/^\s+--([a-z][a-z-]*)/gm)].map((m) => m[1] as string));
}

const PORTS = { control: 15010, agentAdmin: 15020, outbound: 15001, inbound: 15008 };
const NAMESPACE = 'weft-system';

// ------------------------------------------------------------------ loading

// Manifests are untyped YAML; the assertions below are the type checks.
type Obj = Record<string, any>;

function loadYaml(path: string): Obj[] {
  const docs = parseAllDocuments(readFileSync(path, 'utf8'));
  const out: Obj[] = [];
  for (const d of Array.isArray(docs) ? docs : [docs]) {
    assert.deepEqual(d.errors.map(String), [], `${path}: YAML errors`);
    const v = d.toJSON() as Obj | null;
    if (v !== null) out.push(v);
  }
  return out;
}

const manifestFiles = readdirSync(DEPLOY).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml').sort();
const kustomization = loadYaml(join(DEPLOY, 'kustomization.yaml'))[0] as Obj;
const objects = manifestFiles.flatMap((f) => loadYaml(join(DEPLOY, f)).map((o): Obj => ({ ...o, __file: f })));
const find = (kind: string, name: string): Obj => {
  const o = objects.find((x) => x.kind === kind && x.metadata?.name === name);
  assert.ok(o, `${kind}/${name} not found in deploy/`);
  return o;
};
const workloads = objects.filter((o) => o.kind === 'DaemonSet' || o.kind === 'Deployment');

/** `--flag=value` / `--flag value` → Map(flag → value). */
function flagsOf(args: string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (!a.startsWith('--')) continue;
    const eq = a.indexOf('=');
    if (eq > 0) m.set(a.slice(2, eq), a.slice(eq + 1));
    else if (i + 1 < args.length && !(args[i + 1] as string).startsWith('--')) m.set(a.slice(2), args[++i] as string);
    else m.set(a.slice(2), '');
  }
  return m;
}
const portOf = (hostPort: string): number => Number(hostPort.slice(hostPort.lastIndexOf(':') + 1));

// ------------------------------------------------------------------ Kubernetes manifests

test('deploy: every manifest parses, is listed in the kustomization, and lives in weft-system', () => {
  assert.ok(manifestFiles.length >= 5, `manifests found: ${manifestFiles.join(', ')}`);
  assert.deepEqual([...(kustomization.resources as string[])].sort(), manifestFiles, 'kustomization resources = the manifest files');
  assert.equal(kustomization.namespace, NAMESPACE);
  for (const o of objects) {
    assert.ok(o.apiVersion && o.kind && o.metadata?.name, `${o.__file}: apiVersion, kind and metadata.name`);
    const clusterScoped = ['Namespace', 'ClusterRole', 'ClusterRoleBinding'].includes(o.kind);
    if (!clusterScoped) assert.equal(o.metadata.namespace, NAMESPACE, `${o.kind}/${o.metadata.name} namespace`);
  }
  find('Namespace', NAMESPACE);
});

/**
 * Fields that are not in the Kubernetes API (a typo such as `mountPropogation`, a field
 * at the wrong level) are dropped or rejected only when applied to a cluster, which
 * nothing here has. The OpenAPI models generated into @kubernetes/client-node carry every
 * field name and type, so each manifest is walked against them.
 */
function apiFieldErrors(models: Record<string, unknown>, value: unknown, type: string, path: string, out: string[]): void {
  if (value === null || value === undefined) return;
  let m: RegExpExecArray | null;
  if ((m = /^Array<(.+)>$/.exec(type))) {
    if (!Array.isArray(value)) { out.push(`${path}: expected a list`); return; }
    value.forEach((v, i) => apiFieldErrors(models, v, m![1] as string, `${path}[${i}]`, out));
    return;
  }
  if ((m = /^\{ \[key: string\]: (.+); \}$/.exec(type))) {
    if (typeof value !== 'object' || Array.isArray(value)) { out.push(`${path}: expected a map`); return; }
    for (const [k, v] of Object.entries(value)) apiFieldErrors(models, v, m[1] as string, `${path}.${k}`, out);
    return;
  }
  const primitive: Record<string, (v: unknown) => boolean> = {
    string: (v) => typeof v === 'string', number: (v) => typeof v === 'number', boolean: (v) => typeof v === 'boolean',
    IntOrString: (v) => typeof v === 'string' || typeof v === 'number', Date: (v) => typeof v === 'string', any: () => true, object: () => true,
  };
  if (primitive[type]) {
    if (!primitive[type]!(value)) out.push(`${path}: expected ${type}, got ${JSON.stringify(value)}`);
    return;
  }
  const model = models[type] as { getAttributeTypeMap?: () => { baseName: string; type: string }[] } | undefined;
  if (!model?.getAttributeTypeMap) { out.push(`${path}: no API model ${type}`); return; }
  if (typeof value !== 'object' || Array.isArray(value)) { out.push(`${path}: expected a ${type} object`); return; }
  const fields = new Map(model.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
  for (const [k, v] of Object.entries(value)) {
    const t = fields.get(k);
    if (t === undefined) out.push(`${path}.${k}: not a field of ${type}`);
    else apiFieldErrors(models, v, t, `${path}.${k}`, out);
  }
}

test('deploy: every field of every manifest exists in the Kubernetes API, with the right type', async () => {
  const models = await import('@kubernetes/client-node') as unknown as Record<string, unknown>;
  const errors: string[] = [];
  for (const { __file, ...o } of objects) apiFieldErrors(models, o, `V1${o.kind}`, `${__file}:${o.kind}/${o.metadata?.name}`, errors);
  assert.deepEqual(errors, []);
  // The walker itself: a misspelt field and a wrong type are caught.
  const bad: string[] = [];
  apiFieldErrors(models, { spec: { template: { spec: { hostNetwrok: true, hostPID: 'yes' } } } }, 'V1DaemonSet', 'x', bad);
  assert.deepEqual(bad, ['x.spec.template.spec.hostNetwrok: not a field of V1PodSpec', 'x.spec.template.spec.hostPID: expected boolean, got "yes"']);
});

test('deploy: containers have resources, admin-port probes, contract flags and the weft image', () => {
  assert.deepEqual(workloads.map((w) => `${w.kind}/${w.metadata.name}`).sort(), ['DaemonSet/weft-agent', 'Deployment/weft-control']);
  for (const w of workloads) {
    const spec = w.spec.template.spec;
    assert.deepEqual(w.spec.selector.matchLabels, Object.fromEntries(Object.entries(w.spec.template.metadata.labels).filter(([k]) => k in w.spec.selector.matchLabels)), `${w.metadata.name}: selector matches the template`);
    for (const c of spec.containers as Obj[]) {
      const where = `${w.metadata.name}/${c.name}`;
      for (const kind of ['requests', 'limits']) {
        for (const r of ['cpu', 'memory']) assert.ok(c.resources?.[kind]?.[r], `${where}: resources.${kind}.${r}`);
      }
      assert.equal(c.image, 'weft:dev', `${where}: image`);
      const [sub, ...rest] = c.args as string[];
      const allowed = CONTRACT_FLAGS[sub as string];
      assert.ok(allowed, `${where}: first arg is a weft subcommand, got ${sub}`);
      const flags = flagsOf(rest);
      const implemented = implementedFlags(sub as string);
      for (const f of flags.keys()) {
        assert.ok(allowed.has(f), `${where}: --${f} is not in the DESIGN contract for 'weft ${sub}'`);
        assert.ok(implemented.has(f), `${where}: 'weft ${sub}' does not accept --${f} (yet)`);
      }
      // $(VAR) in args must be a declared env var, or Kubernetes passes it literally.
      const env = new Set((c.env ?? []).map((e: Obj) => e.name));
      for (const a of c.args as string[]) for (const m of a.matchAll(/\$\(([A-Z_]+)\)/g)) assert.ok(env.has(m[1]), `${where}: $(${m[1]}) has no env entry`);

      assert.ok(flags.has('admin'), `${where}: --admin is set explicitly (the probes depend on it)`);
      const adminPort = portOf(flags.get('admin') as string);
      const named = new Map((c.ports as Obj[]).map((p) => [p.name, p.containerPort]));
      for (const [probe, path] of [['livenessProbe', '/healthz'], ['readinessProbe', '/readyz']] as const) {
        const g = c[probe]?.httpGet;
        assert.ok(g, `${where}: ${probe}.httpGet`);
        assert.equal(g.path, path, `${where}: ${probe} path`);
        const port = typeof g.port === 'number' ? g.port : named.get(g.port);
        assert.equal(port, adminPort, `${where}: ${probe} targets the --admin port`);
      }
      if (sub === 'agent') assert.equal(adminPort, PORTS.agentAdmin);
    }
  }
});

test('deploy: the agent DaemonSet has the privileges and host mounts the datapath needs', () => {
  const ds = find('DaemonSet', 'weft-agent');
  const spec = ds.spec.template.spec;
  assert.equal(spec.hostNetwork, true);
  assert.equal(spec.hostPID, true);
  assert.equal(spec.dnsPolicy, 'ClusterFirstWithHostNet', 'hostNetwork pods need this to resolve weft-control');
  const c = spec.containers[0];
  assert.equal(c.securityContext.privileged, true);
  const flags = flagsOf(c.args.slice(1));
  const volumes = new Map((spec.volumes as Obj[]).map((v) => [v.name, v]));
  const mountAt = (path: string): { mount: Obj; volume: Obj } => {
    const mount = (c.volumeMounts as Obj[]).find((m) => m.mountPath === path);
    assert.ok(mount, `mount at ${path}`);
    const volume = volumes.get(mount.name);
    assert.ok(volume, `volume ${mount.name}`);
    return { mount, volume };
  };
  const bpf = mountAt('/sys/fs/bpf');
  assert.equal(bpf.volume.hostPath?.path, '/sys/fs/bpf');
  assert.equal(bpf.mount.mountPropagation, 'Bidirectional');
  // Without --cgroup-root the agent uses the cgroup2 mount it finds at /sys/fs/cgroup.
  const cgroupRoot = flags.get('cgroup-root') ?? '/sys/fs/cgroup';
  assert.equal(mountAt(cgroupRoot).volume.hostPath?.path, '/sys/fs/cgroup');
  assert.equal(mountAt(flags.get('state-dir') as string).volume.hostPath?.path, '/var/lib/weft', 'state survives pod restarts');
  // The bootstrap credential is the agent's own Pod-bound ServiceAccount token for the
  // control API's audience (checked there by TokenReview), not a shared Secret.
  const tokenFile = flags.get('token-file') as string;
  const tokenDir = tokenFile.slice(0, tokenFile.lastIndexOf('/'));
  const projected = (mountAt(tokenDir).volume.projected?.sources ?? []) as Obj[];
  const saToken = projected.find((s) => s.serviceAccountToken)?.serviceAccountToken;
  assert.equal(saToken?.audience, 'weft-control', 'a projected ServiceAccount token for audience weft-control');
  assert.equal(`${tokenDir}/${saToken?.path}`, tokenFile);
  assert.ok(saToken.expirationSeconds >= 600 && saToken.expirationSeconds <= 86400);
  assert.equal(ds.spec.template.spec.serviceAccountName, 'weft-agent', 'the account the control API accepts by default (--agent-service-account)');
  // The control API is TLS: agents need the CA bundle the control writes, from a ConfigMap.
  const caFile = flags.get('control-ca') as string;
  assert.ok(caFile, 'agents pass --control-ca (the control API serves TLS)');
  assert.equal(mountAt(caFile.slice(0, caFile.lastIndexOf('/'))).volume.configMap?.name, 'weft-ca-bundle');
  assert.equal(flags.get('control'), `weft-control.${NAMESPACE}.svc:${PORTS.control}`);
  assert.equal(portOf(flags.get('inbound') as string), PORTS.inbound);
  assert.equal(portOf(flags.get('outbound') as string), PORTS.outbound);
  // A rolling upgrade must never be an uninstall.
  assert.equal(ds.spec.updateStrategy.type, 'RollingUpdate');
  assert.equal(c.env.find((e: Obj) => e.name === 'WEFT_UNINSTALL')?.value, 'false');
});

test('deploy: the preStop hook cleans up only when WEFT_UNINSTALL=true', (t) => {
  const c = find('DaemonSet', 'weft-agent').spec.template.spec.containers[0];
  const cmd = c.lifecycle.preStop.exec.command as string[];
  // Run the hook's real command with a recording `weft` first in PATH.
  const dir = mkdtempSync(join(tmpdir(), `wt-prestop-${process.pid}-`));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const log = join(dir, 'calls');
  writeFileSync(join(dir, 'weft'), `#!/bin/sh\necho "$*" >> '${log}'\n`);
  chmodSync(join(dir, 'weft'), 0o755);
  const run = (uninstall: string): string => {
    rmSync(log, { force: true });
    const r = spawnSync(cmd[0] as string, cmd.slice(1), { env: { PATH: `${dir}:/usr/bin:/bin`, NODE_NAME: 'node-7', WEFT_UNINSTALL: uninstall }, encoding: 'utf8' });
    assert.equal(r.status, 0, `preStop exits 0 (WEFT_UNINSTALL=${uninstall}): ${r.stderr}`);
    return existsSync(log) ? readFileSync(log, 'utf8') : '';
  };
  assert.equal(run('false'), '', 'an upgrade or drain must not clean up');
  assert.equal(run(''), '');
  assert.equal(run('true'), 'agent --cleanup --force --node node-7\n');
  for (const f of ['cleanup', 'force', 'node']) assert.ok(CONTRACT_FLAGS.agent!.has(f) && implementedFlags('agent').has(f), `--${f}`);
});

test('deploy: the control API Deployment, its Service, state and policies', () => {
  const dep = find('Deployment', 'weft-control');
  assert.ok(dep.spec.replicas >= 2, 'several replicas, no single point');
  assert.equal(dep.spec.strategy.type, 'RollingUpdate');
  const spec = dep.spec.template.spec;
  const labels = dep.spec.template.metadata.labels as Record<string, string>;
  const selects = (sel: Record<string, string>) => Object.entries(sel).every(([k, v]) => labels[k] === v);
  const anti = (spec.affinity?.podAntiAffinity?.preferredDuringSchedulingIgnoredDuringExecution ?? []) as Obj[];
  assert.ok(anti.some((a) => a.podAffinityTerm.topologyKey === 'kubernetes.io/hostname' && selects(a.podAffinityTerm.labelSelector.matchLabels)), 'replicas spread over nodes');
  const pdb = objects.find((o) => o.kind === 'PodDisruptionBudget' && selects(o.spec.selector.matchLabels));
  assert.ok(pdb && pdb.spec.minAvailable >= 1, 'a PodDisruptionBudget keeps one replica through drains');
  const c = spec.containers[0];
  const flags = flagsOf(c.args.slice(1));
  assert.equal(portOf(flags.get('listen') as string), PORTS.control);
  const svc = find('Service', 'weft-control');
  const grpcPort = (svc.spec.ports as Obj[]).find((p) => p.port === PORTS.control);
  assert.ok(grpcPort, 'Service exposes 15010');
  const target = (c.ports as Obj[]).find((p) => p.name === grpcPort.targetPort || p.containerPort === grpcPort.targetPort);
  assert.equal(target?.containerPort, PORTS.control, 'Service targets the --listen port');
  assert.deepEqual(svc.spec.selector, Object.fromEntries(Object.entries(dep.spec.template.metadata.labels as Record<string, string>).filter(([k]) => k in svc.spec.selector)));
  const volumes = new Map((spec.volumes as Obj[]).map((v) => [v.name, v]));
  const mountFor = (path: string): Obj | undefined => volumes.get((c.volumeMounts as Obj[]).find((m) => path === m.mountPath || path.startsWith(`${m.mountPath}/`))?.name);
  // Durable state in the Kubernetes API: the state dir is a cache, no RWO volume.
  assert.equal(flags.get('state-store'), 'kubernetes');
  const state = mountFor(flags.get('state-dir') as string);
  assert.ok(state?.emptyDir, 'the state dir only caches');
  assert.equal(objects.filter((o) => o.kind === 'PersistentVolumeClaim').length, 0, 'no volume for the CA');
  const env = new Map((c.env as Obj[]).map((e) => [e.name, e]));
  assert.equal(env.get('POD_NAME')?.valueFrom?.fieldRef?.fieldPath, 'metadata.name', 'Lease holder identity');
  assert.equal(env.get('POD_NAMESPACE')?.valueFrom?.fieldRef?.fieldPath, 'metadata.namespace');
  const policies = mountFor(flags.get('policies') as string);
  const cm = find('ConfigMap', policies?.configMap?.name);
  // Agents bootstrap with ServiceAccount tokens: the control API runs with --kubernetes,
  // may create TokenReviews, and mounts no shared token.
  assert.equal(flags.get('token-file'), undefined, 'no shared bootstrap token in the cluster');
  assert.ok(flags.has('kubernetes'));
  const reviewers = objects.filter((o) => o.kind === 'ClusterRole' && (o.rules as Obj[]).some((r) => (r.apiGroups as string[]).includes('authentication.k8s.io') && (r.resources as string[]).includes('tokenreviews') && (r.verbs as string[]).includes('create')));
  assert.equal(reviewers.length, 1, 'a ClusterRole that creates TokenReviews');
  const bound = objects.filter((o) => o.kind === 'ClusterRoleBinding' && o.roleRef.name === reviewers[0].metadata.name).flatMap((b) => b.subjects as Obj[]);
  assert.deepEqual(bound.map((s) => `${s.namespace}/${s.name}`), [`${NAMESPACE}/weft-control`], 'only the control API reviews tokens');
  // Every policy in the ConfigMap is valid against the policy kinds' JSON Schemas.
  const ajv = new Ajv({ allErrors: true, strict: false });
  for (const [file, text] of Object.entries(cm.data as Record<string, string>)) {
    for (const d of parseAllDocuments(text) as unknown as { toJSON(): Obj; errors: unknown[] }[]) {
      assert.deepEqual(d.errors, [], file);
      const doc = d.toJSON();
      const schema = kindSchemas[doc.kind as keyof typeof kindSchemas];
      assert.ok(schema, `${file}: kind ${doc.kind}`);
      const validate = ajv.compile(schema.schema);
      assert.ok(validate(doc), `${file}: ${ajv.errorsText(validate.errors)}`);
    }
  }
});

test('deploy: RBAC is read-only (but for TokenReviews) and bound to the ServiceAccounts the pods use', () => {
  const roles = objects.filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role');
  assert.ok(roles.length > 0);
  // The one exception: the control API's Lease, CA Secret and token-bindings Secret, by
  // name, in its namespace.
  const state = find('Role', 'weft-control-state');
  assert.equal(state.metadata.namespace, NAMESPACE);
  assert.deepEqual((state.rules as Obj[]).map((r) => [r.apiGroups.join(), r.resources.join(), r.resourceNames.join(), [...r.verbs].sort().join()]).sort(), [
    ['', 'secrets', 'weft-control-ca,weft-control-token-bindings', 'get,update'],
    ['coordination.k8s.io', 'leases', 'weft-control', 'get,update'],
  ]);
  find('Secret', 'weft-control-ca');
  find('Secret', 'weft-control-token-bindings');
  find('Lease', 'weft-control');
  const granted = new Set<string>();
  for (const r of roles.filter((x) => x !== state)) {
    for (const rule of r.rules as Obj[]) {
      // Creating a TokenReview stores nothing: it asks whether a presented token is valid.
      const review = (rule.apiGroups as string[]).join() === 'authentication.k8s.io' && (rule.resources as string[]).join() === 'tokenreviews';
      for (const v of rule.verbs) assert.ok(['get', 'list', 'watch'].includes(v) || (review && v === 'create'), `${r.metadata.name}: verb ${v} is not read-only`);
      for (const g of rule.apiGroups) for (const res of rule.resources) {
        assert.notEqual(res, '*');
        granted.add(`${g}/${res}`);
      }
    }
  }
  // Namespaces: agents read their opt-out / opt-in label (weft.dev/dataplane-mode).
  assert.deepEqual([...granted].sort(), ['/namespaces', '/nodes', '/pods', '/services', 'authentication.k8s.io/tokenreviews', 'discovery.k8s.io/endpointslices']);
  const bound = new Set<string>();
  for (const b of objects.filter((o) => o.kind === 'ClusterRoleBinding' || o.kind === 'RoleBinding')) {
    find(b.roleRef.kind, b.roleRef.name);
    for (const s of b.subjects) { find('ServiceAccount', s.name); bound.add(s.name); }
  }
  for (const w of workloads) assert.ok(bound.has(w.spec.template.spec.serviceAccountName), `${w.metadata.name} runs as a bound ServiceAccount`);
});

test('deploy: no secret value is committed', () => {
  for (const o of objects.filter((x) => x.kind === 'Secret')) {
    assert.equal(o.data, undefined, `${o.metadata.name}: data`);
    assert.equal(o.stringData, undefined, `${o.metadata.name}: stringData`);
  }
  const ignored = readFileSync(join(DEPLOY, '.gitignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const generated = (kustomization.secretGenerator ?? []) as Obj[];
  assert.deepEqual(generated.map((g) => g.name), [], 'no bootstrap secret to generate');
  for (const g of generated) {
    for (const f of [...(g.files ?? []), ...(g.envs ?? [])] as string[]) {
      const file = f.includes('=') ? f.slice(f.indexOf('=') + 1) : f;
      assert.ok(ignored.includes(file), `secretGenerator source ${file} is git-ignored`);
      const tracked = spawnSync('git', ['ls-files', '--error-unmatch', join('deploy', file)], { cwd: ROOT });
      assert.notEqual(tracked.status, 0, `${file} must not be committed`);
    }
    assert.equal(g.literals, undefined, 'no literal secret values');
  }
});

test('deploy: every Dockerfile COPY source exists in the repository or the build stage', () => {
  const text = readFileSync(join(DEPLOY, 'Dockerfile'), 'utf8');
  // Both stages on one base, Docker Hub's node image unless --build-arg BASE=... (the
  // local buildah path, scripts/build-image.sh) swaps it.
  assert.match(text, /^ARG BASE=node:20-bookworm-slim$/m);
  assert.match(text, /^FROM \$\{BASE\} AS build$/m);
  assert.equal([...text.matchAll(/^FROM (.+)$/gm)].map((m) => m[1]).join(', '), '${BASE} AS build, ${BASE}');
  assert.match(text, /^ENTRYPOINT \["weft"\]$/m);
  assert.match(text, /npm ci/);
  assert.match(text, /npm run build/);
  for (const m of text.matchAll(/^COPY (?!--from)(.+)$/gm)) {
    const parts = (m[1] as string).trim().split(/\s+/);
    for (const src of parts.slice(0, -1)) assert.ok(existsSync(join(ROOT, src)), `COPY source ${src} exists`);
  }
});

// ------------------------------------------------------------------ systemd units

const UNITS = ['weft-control.service', 'weft-agent.service'];

function execStart(unit: string): string[] {
  const line = readFileSync(join(DEPLOY, 'systemd', unit), 'utf8').split('\n').find((l) => l.startsWith('ExecStart='));
  assert.ok(line, `${unit}: ExecStart`);
  return line.slice('ExecStart='.length).trim().split(/\s+/);
}

test('deploy/systemd: ExecStart passes only contract flags, and nothing cleans up on stop', () => {
  for (const unit of UNITS) {
    const [bin, sub, ...rest] = execStart(unit);
    assert.equal(bin, '/usr/local/bin/weft');
    const allowed = CONTRACT_FLAGS[sub as string];
    assert.ok(allowed, `${unit}: subcommand ${sub}`);
    const implemented = implementedFlags(sub as string);
    for (const f of flagsOf(rest).keys()) {
      assert.ok(allowed.has(f), `${unit}: --${f} is not in the contract`);
      assert.ok(implemented.has(f), `${unit}: 'weft ${sub}' does not accept --${f} (yet)`);
    }
    const text = readFileSync(join(DEPLOY, 'systemd', unit), 'utf8');
    assert.doesNotMatch(text.split('\n').filter((l) => !l.startsWith('#')).join('\n'), /--cleanup/, `${unit}: a stop or restart must not clean up`);
  }
});

test('deploy/systemd: units pass systemd-analyze verify', (t) => {
  // scripts/install-deps.sh installs it (Debian's systemd package): under CI=true a
  // missing systemd-analyze fails the test instead of skipping it.
  if (!requires(t, { commands: ['systemd-analyze'] })) return;
  const dir = mkdtempSync(join(tmpdir(), `wt-units-${process.pid}-`));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // verify insists that ExecStart's binary exists: point it at the repository's bin/weft.
  const paths = UNITS.map((u) => {
    const p = join(dir, u);
    writeFileSync(p, readFileSync(join(DEPLOY, 'systemd', u), 'utf8').replaceAll('/usr/local/bin/weft', join(ROOT, 'bin', 'weft')));
    return p;
  });
  const r = spawnSync('systemd-analyze', ['verify', ...paths], { encoding: 'utf8' });
  // verify reports bad directives as warnings with exit status 0: any output is a finding.
  assert.equal(`${r.stdout}${r.stderr}`.trim(), '', 'systemd-analyze verify output');
  assert.equal(r.status, 0);
});
