// The incremental compile (agent/policy/incremental.ts) against the reference: random
// sequences of edits to an in-memory policy tree — Workloads added, removed, moved,
// relabelled, re-weighted; Services, routes, TrafficPolicies, AuthorizationPolicies,
// Nodes and MeshConfig changed; broken files (syntax, duplicates, address clashes,
// unknown references) that must be rejected whole — and after every step the
// incremental engine's result is deep-equal to a from-scratch load and compile of the
// same files: the diagnostics of a rejected tree, the snapshot of an accepted one, and
// every node's resources (names, versions, bodies) from a long-lived ViewResourceCache
// against a fresh one. A rejected step keeps the last good snapshot on both sides.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compile, loadPolicyTexts, type Snapshot, type WorkloadRegistration } from '../../agent/policy';
import { IncrementalPolicy } from '../../agent/policy/incremental';
import { ViewResourceCache } from '../../agent/policy/view-cache';
import { mulberry32 } from '../lib/rng';

type Doc = Record<string, unknown>;
const NODES = ['node-a', 'node-b', 'node-c', 'node-d'];
const NAMESPACES = ['shop', 'bank'];
const doc = (kind: string, name: string, namespace: string | undefined, spec: unknown, labels?: Record<string, string>): Doc =>
  ({ apiVersion: 'weft.dev/v1alpha1', kind, metadata: { name, ...(namespace ? { namespace } : {}), ...(labels ? { labels } : {}) }, spec });

/** The tree: file name → documents (or raw text, for a broken file). */
type Tree = Map<string, Doc[] | string>;

class Mesh {
  readonly tree: Tree = new Map();
  private next = 0;
  constructor(readonly r: () => number) {}
  pick<T>(xs: readonly T[]): T { return xs[Math.floor(this.r() * xs.length)] as T; }
  id(): number { return this.next++; }

  files(): { file: string; text: string }[] {
    return [...this.tree.entries()].sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([file, docs]) => ({ file, text: typeof docs === 'string' ? docs : docs.map((d) => JSON.stringify(d)).join('\n---\n') + '\n' }));
  }

  docs(file: string): Doc[] { const d = this.tree.get(file); return Array.isArray(d) ? d : []; }
  workloadFiles(): string[] { return [...this.tree.keys()].filter((f) => f.startsWith('workloads-') && Array.isArray(this.tree.get(f))); }
  /** A (valid) workload file, created when there is none left. */
  workloadFile(): string {
    const files = this.workloadFiles();
    if (!files.length) { this.tree.set(`workloads-extra-${this.id()}.yaml`, []); return this.workloadFile(); }
    return this.pick(files);
  }
  services(): Doc[] { return this.docs('services.yaml'); }

  workload(app: string, ns: string, opts: { address?: string; ports?: boolean; hostNetwork?: boolean } = {}): Doc {
    const n = this.id();
    const spec: Doc = { address: opts.address ?? `10.1.${Math.floor(n / 250)}.${(n % 250) + 1}`, node: this.pick(NODES), serviceAccount: this.pick(['sa-1', 'sa-2']) };
    if (this.r() < 0.3) spec.weight = 1 + Math.floor(this.r() * 5);
    if (opts.ports) spec.ports = [{ name: 'web', port: 8080 }, { port: 9090 }];
    if (opts.hostNetwork) spec.hostNetwork = true;
    const labels: Record<string, string> = { app, ...(this.r() < 0.5 ? { tier: this.pick(['front', 'back']) } : {}) };
    return doc('Workload', `w-${n}`, ns, spec, labels);
  }

  service(i: number): Doc {
    const http = this.r() < 0.5;
    const spec: Doc = { selector: { app: `app-${i % 6}` }, ports: [{ name: 'p', port: 80, targetPort: this.r() < 0.3 ? 'web' : 8080, protocol: http ? 'HTTP' : 'TCP' }] };
    if (this.r() < 0.5) spec.vip = `10.96.1.${i + 1}`;
    if (this.r() < 0.15) spec.internalTrafficPolicy = 'Local';
    if (this.r() < 0.15) spec.sessionAffinity = 'ClientIP';
    if (this.r() < 0.2) spec.zoneHints = { [`w-${Math.floor(this.r() * 20)}`]: [this.pick(['z1', 'z2'])] };
    if (this.r() < 0.1) { spec.headless = true; delete spec.vip; }
    return doc('Service', `svc-${i}`, NAMESPACES[i % 2], spec);
  }

  init(): void {
    this.tree.set('mesh.yaml', [doc('MeshConfig', 'mesh', undefined, { trustDomain: 'test.local', mtls: { mode: 'PERMISSIVE' }, registrations: [{ node: 'node-a', namespaces: ['shop'] }] })]);
    this.tree.set('nodes.yaml', NODES.slice(0, 3).map((n, i) => doc('Node', n, undefined, { address: `192.168.0.${i + 1}`, ...(i < 2 ? { zone: `z${i + 1}` } : {}) })));
    this.tree.set('services.yaml', Array.from({ length: 8 }, (_, i) => this.service(i)));
    this.tree.set('policies.yaml', [
      doc('HTTPRoute', 'r-0', 'shop', { parentRefs: [{ name: 'svc-0' }], rules: [{ backendRefs: [{ name: 'svc-0', port: 80, weight: 3 }, { name: 'svc-2', port: 80 }] }] }),
      doc('TrafficPolicy', 'tp-1', 'bank', { targetRef: { name: 'svc-1' }, loadBalancer: { type: 'ROUND_ROBIN' } }),
      doc('AuthorizationPolicy', 'ap-sel', 'shop', { selector: { matchLabels: { tier: 'front' } }, rules: [{ from: [{ source: { namespaces: ['shop'] } }] }] }),
      doc('AuthorizationPolicy', 'ap-ns', 'bank', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin'] } }] }] }),
      doc('AuthorizationPolicy', 'ap-ref', 'shop', { targetRef: { name: 'svc-2' }, rules: [{ from: [{ source: { principals: ['spiffe://test.local/ns/shop/sa/sa-1'] } }] }] }),
    ]);
    for (const n of NODES) this.tree.set(`workloads-${n}.yaml`, []);
    for (let k = 0; k < 30; k++) this.addWorkload();
  }

  addWorkload(opts: { address?: string; ports?: boolean; hostNetwork?: boolean } = {}): void {
    const i = Math.floor(this.r() * 8);
    const w = this.workload(`app-${i % 6}`, NAMESPACES[i % 2] as string, opts);
    const file = this.workloadFile();
    this.tree.set(file, [...this.docs(file), w]);
  }

  /** Replace a document of a file (copy, so earlier trees are not changed). */
  editDoc(file: string, index: number, fn: (d: Doc) => Doc | undefined): void {
    const docs = [...this.docs(file)];
    const out = fn(structuredClone(docs[index]) as Doc);
    if (out) docs[index] = out; else docs.splice(index, 1);
    this.tree.set(file, docs);
  }

  randomWorkload(): { file: string; index: number; doc: Doc } | undefined {
    const all = this.workloadFiles().flatMap((file) => this.docs(file).map((doc, index) => ({ file, index, doc })));
    return all.length ? this.pick(all) : undefined;
  }
}

/** One random edit; returns its name. */
function edit(m: Mesh): string {
  if (m.r() < 0.05) return 'nothing (a reload of the same tree)';
  const r = m.r();
  const w = m.randomWorkload();
  const spec = (d: Doc) => d.spec as Doc;
  if (r < 0.14 || !w) { m.addWorkload({ ports: m.r() < 0.2, hostNetwork: m.r() < 0.1 }); return 'add workload'; }
  if (r < 0.24) { m.editDoc(w.file, w.index, () => undefined); return 'remove workload'; }
  if (r < 0.36) { m.editDoc(w.file, w.index, (d) => { spec(d).weight = 1 + Math.floor(m.r() * 9); return d; }); return 'reweight workload'; }
  if (r < 0.44) { m.editDoc(w.file, w.index, (d) => { (d.metadata as Doc).labels = { app: `app-${Math.floor(m.r() * 6)}`, tier: m.pick(['front', 'back']) }; return d; }); return 'relabel workload'; }
  if (r < 0.49) {
    m.editDoc(w.file, w.index, () => undefined);
    const to = m.workloadFile();
    m.tree.set(to, [...m.docs(to), w.doc]);
    return 'move workload to another file';
  }
  if (r < 0.53) { m.editDoc(w.file, w.index, (d) => { spec(d).node = m.pick(NODES); return d; }); return 'move workload to another node'; }
  if (r < 0.56) { m.tree.set(`workloads-extra-${m.id()}.yaml`, [m.workload('app-1', 'bank')]); return 'new workload file'; }
  if (r < 0.58) { const f = m.workloadFile(); m.tree.delete(f); return 'delete workload file'; }
  // Broken edits: rejected whole.
  if (r < 0.61) { m.addWorkload({ address: spec(w.doc).address as string }); return 'BROKEN duplicate address'; }
  if (r < 0.63) { const f = m.workloadFile(); m.tree.set(f, [...m.docs(f), structuredClone(w.doc)]); return 'BROKEN duplicate workload'; }
  if (r < 0.65) { m.addWorkload({ address: '10.96.7.7' }); return 'BROKEN address in the VIP range'; }
  if (r < 0.67) { const f = m.workloadFile(); m.tree.set(f, 'kind: Workload\nmetadata: {name: [\n'); return 'BROKEN syntax'; }
  if (r < 0.69) { m.editDoc(w.file, w.index, (d) => { spec(d).ports = [{ port: 1 }]; return d; }); return 'BROKEN (maybe) ports'; }
  // Other kinds: the full path.
  if (r < 0.75) { const i = Math.floor(m.r() * 8); const docs = [...m.services()]; const at = docs.findIndex((d) => (d.metadata as Doc).name === `svc-${i}`); if (at >= 0) docs[at] = m.service(i); else docs.push(m.service(i)); m.tree.set('services.yaml', docs); return 'change service'; }
  if (r < 0.78) { const docs = [...m.services()]; docs.splice(Math.floor(m.r() * docs.length), 1); m.tree.set('services.yaml', docs); return 'remove service (maybe BROKEN refs)'; }
  if (r < 0.82) {
    const docs = m.docs('policies.yaml').filter((d) => d.kind !== 'HTTPRoute');
    if (m.r() < 0.7) docs.push(doc('HTTPRoute', 'r-0', 'shop', { parentRefs: [{ name: m.pick(['svc-0', 'svc-2', 'svc-4', 'svc-9']) }], rules: [{ backendRefs: [{ name: 'svc-2', port: 80, weight: 1 + Math.floor(m.r() * 5) }] }] }));
    m.tree.set('policies.yaml', docs); return 'change route';
  }
  if (r < 0.85) {
    const docs = m.docs('policies.yaml').filter((d) => d.kind !== 'TrafficPolicy');
    if (m.r() < 0.7) docs.push(doc('TrafficPolicy', 'tp-1', 'bank', { targetRef: { name: m.pick(['svc-1', 'svc-3', 'svc-5']) }, loadBalancer: { type: m.pick(['ROUND_ROBIN', 'MAGLEV', 'RANDOM']) } }));
    m.tree.set('policies.yaml', docs); return 'change traffic policy';
  }
  if (r < 0.9) {
    const docs = m.docs('policies.yaml').filter((d) => (d.metadata as Doc).name !== 'ap-ref');
    if (m.r() < 0.7) docs.push(doc('AuthorizationPolicy', 'ap-ref', m.pick(NAMESPACES), { targetRef: { name: m.pick(['svc-2', 'svc-3', 'svc-4']) }, rules: [{ to: [{ operation: { methods: ['GET'] } }] }] }));
    m.tree.set('policies.yaml', docs); return 'change authorization policy';
  }
  if (r < 0.93) { m.tree.set('nodes.yaml', NODES.slice(0, 1 + Math.floor(m.r() * 4)).map((n, i) => doc('Node', n, undefined, { address: `192.168.0.${i + 1}`, zone: m.pick(['z1', 'z2']) }))); return 'change nodes'; }
  if (r < 0.95) { m.tree.set('mesh.yaml', [doc('MeshConfig', 'mesh', undefined, { trustDomain: m.pick(['test.local', 'other.local']), mtls: { mode: 'PERMISSIVE' }, registrations: [{ node: 'node-a', namespaces: ['shop'] }] })]); return 'change mesh config'; }
  // Repair: a broken file is replaced by valid workloads.
  for (const [f, d] of m.tree) if (typeof d === 'string') { m.tree.set(f, [m.workload('app-2', 'shop')]); return 'repair syntax'; }
  m.addWorkload();
  return 'add workload';
}

function nodeResources(views: ViewResourceCache, node: string) {
  return [...views.resources(node)].map(([name, r]) => ({ name, version: r.version, body: r.body().toString() }));
}

function run(seed: number, steps: number) {
  const m = new Mesh(mulberry32(seed));
  m.init();
  const engine = new IncrementalPolicy();
  const views = new ViewResourceCache();
  const now = new Date(0);
  let registered: WorkloadRegistration[] = [{ name: 'reg-1', namespace: 'shop', labels: { app: 'app-0' }, address: '10.2.0.1', node: 'node-a' }];
  let incSnap: Snapshot | undefined;
  let refSnap: Snapshot | undefined;
  let accepted = 0;
  for (let step = 0; step <= steps; step++) {
    const what = step === 0 ? 'initial tree' : edit(m);
    if (m.r() < 0.03) registered = [...registered, { name: `reg-${step}`, namespace: 'shop', labels: { app: 'app-2' }, address: `10.3.0.${step % 250 + 1}`, node: 'node-a' }];
    const at = `seed ${seed} step ${step} (${what})`;
    const files = m.files();
    const inc = engine.loadTexts(files);
    const ref = loadPolicyTexts(files);
    assert.deepEqual(inc.diagnostics, ref.diagnostics, `${at}: diagnostics`);
    if (ref.diagnostics.length) continue; // rejected whole: both keep their last good snapshot
    const tryCompile = (f: () => Snapshot) => { try { return f(); } catch (e) { return e as Error; } };
    const a = tryCompile(() => engine.compile(inc, registered, { now, ...(incSnap ? { previous: incSnap } : {}) }));
    const b = tryCompile(() => compile(ref, registered, { now, ...(refSnap ? { previous: refSnap } : {}) }));
    if (b instanceof Error) { assert.ok(a instanceof Error, `${at}: the reference rejects (${b.message}), the incremental engine did not`); assert.equal(a.message, b.message); continue; }
    assert.ok(!(a instanceof Error), `${at}: the incremental engine threw ${String(a)}`);
    assert.deepEqual(a, b, `${at}: snapshot`);
    // As the control API's store: a snapshot with the version being served is not
    // adopted, so the next compile's `previous` is the earlier, equal one.
    if (a.version === incSnap?.version) { assert.equal(b.version, refSnap?.version); continue; }
    incSnap = a; refSnap = b;
    accepted++;
    views.setSnapshot(a);
    const fresh = new ViewResourceCache();
    fresh.setSnapshot(b);
    for (const node of NODES) assert.deepEqual(nodeResources(views, node), nodeResources(fresh, node), `${at}: resources of ${node}`);
  }
  return { accepted, stats: engine.stats };
}

test('incremental compile: random edit sequences give exactly the full compile\'s diagnostics, snapshots and node resources', () => {
  let incremental = 0, full = 0, accepted = 0;
  for (let seed = 1; seed <= 12; seed++) {
    const r = run(seed, 120);
    incremental += r.stats.incrementalCompiles;
    full += r.stats.fullCompiles;
    accepted += r.accepted;
  }
  // The comparison means something only if both paths ran many times.
  assert.ok(incremental > accepted / 3, `incremental compiles: ${incremental} of ${accepted}`);
  assert.ok(full > accepted / 10, `full compiles: ${full} of ${accepted}`);
});

test('incremental compile: a Workload edit re-checks and recompiles only what it touches', () => {
  const m = new Mesh(mulberry32(99));
  m.init();
  const engine = new IncrementalPolicy();
  const first = engine.compile(engine.loadTexts(m.files()), [], { now: new Date(0) });
  const w = m.randomWorkload()!;
  m.editDoc(w.file, w.index, (d) => { (d.spec as Doc).weight = 77; return d; });
  const set = engine.loadTexts(m.files());
  const next = engine.compile(set, [], { now: new Date(0), previous: first });
  assert.deepEqual(engine.stats, { fullLoads: 1, incrementalLoads: 1, fullCompiles: 1, incrementalCompiles: 1 });
  assert.deepEqual(next, compile(loadPolicyTexts(m.files()), [], { now: new Date(0), previous: first }));
  const key = `${(w.doc.metadata as Doc).namespace}/${(w.doc.metadata as Doc).name}`;
  // Untouched services and workloads are the previous snapshot's objects (the other
  // workloads of the edited file were re-parsed, but are the same).
  for (const s of next.services) {
    const before = first.services.find((x) => x.key === s.key);
    assert.equal(s === before, !s.endpoints.some((e) => e.workload === key), s.key);
  }
  assert.equal(next.workloads.filter((x) => !first.workloads.includes(x)).map((x) => x.key).join(), key);
  assert.equal(next.routes, first.routes);
});
