// compile() and forNode(): determinism and versions, VIP allocation stability, the
// L4-vs-redirect decision, Gateway API route merge order, and what each node receives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { compile, forNode, loadPolicyDir, loadPolicyTexts, type Snapshot } from '../../agent/policy';
import { allocateVips } from '../../agent/policy/vip';
import { parseCidr, type Cidr } from '../../agent/lib/ip';
import { isWeftError } from '../../agent/lib/errors';
import { packageRoot } from '../../agent/lib/paths';

const NOW = new Date('2026-01-01T00:00:00Z');
const HEAD = 'apiVersion: weft.dev/v1alpha1\n';

function doc(kind: string, meta: string, spec: string): string {
  return `${HEAD}kind: ${kind}\nmetadata: ${meta}\nspec: ${spec}\n`;
}
function set(...docs: string[]) {
  const r = loadPolicyTexts([{ file: 'test.yaml', text: docs.join('---\n') }]);
  assert.deepEqual(r.diagnostics, [], 'test policy set must be valid');
  return r;
}
const svc = (name: string, proto: string, extra = '') =>
  doc('Service', `{name: ${name}, namespace: ns}`, `{selector: {app: ${name}}, ports: [{name: p, port: 80, targetPort: 8080, protocol: ${proto}}]${extra}}`);
const wl = (name: string, app: string, node: string, addr: string) =>
  doc('Workload', `{name: ${name}, namespace: ns, labels: {app: ${app}}}`, `{address: ${addr}, node: ${node}, serviceAccount: ${app}}`);

test('the shop examples compile deterministically; version is a content hash unless named', () => {
  const policies = loadPolicyDir([join(packageRoot(), 'policies')]);
  assert.deepEqual(policies.diagnostics, []);
  const a = compile(policies, [], { now: NOW });
  const b = compile(loadPolicyDir([join(packageRoot(), 'policies')]), [], { now: new Date(0) });
  assert.equal(a.version, b.version, 'createdAt is not part of the version');
  assert.equal(JSON.stringify({ ...a, createdAt: '' }), JSON.stringify({ ...b, createdAt: '' }));
  assert.match(a.version, /^[0-9a-f]{16}$/);
  assert.equal(compile(policies, [], { version: 'abc123' }).version, 'abc123');
  // JSON round trip loses nothing (the control API sends it as JSON).
  assert.deepEqual(JSON.parse(JSON.stringify(a)), a);
  const catalog = a.services.find((s) => s.key === 'shop/catalog');
  assert.equal(catalog?.endpoints.length, 3);
  assert.equal(catalog?.endpoints[0]?.identity, 'spiffe://weft.local/ns/shop/sa/catalog');
});

test('a set with errors is rejected whole with its diagnostics', () => {
  const bad = loadPolicyTexts([{ file: 'bad.yaml', text: svc('a', 'HTTP') + '---\n' + doc('HTTPRoute', '{name: r, namespace: ns}', '{parentRefs: [{name: a}], rules: [{backendRefs: [{name: nope}]}]}') }]);
  assert.equal(bad.diagnostics.length, 1);
  assert.throws(() => compile(bad), (e: unknown) => isWeftError(e, 'WEFT_ERR_INVALID_POLICY')
    && /unknown backend Service "ns\/nope"/.test(e.message)
    && Array.isArray(e.details?.diagnostics) && (e.details.diagnostics as unknown[]).length === 1);
  // Schema errors alone (no semantic problem left in the valid remainder) also block it.
  const schemaOnly = loadPolicyTexts([{ file: 's.yaml', text: svc('a', 'HTTP') + '---\n' + svc('b', 'HTTPS') }]);
  assert.equal(schemaOnly.objects.length, 1);
  assert.throws(() => compile(schemaOnly), (e: unknown) => isWeftError(e, 'WEFT_ERR_INVALID_POLICY'));
});

test('registered workloads become endpoints; a policy Workload of the same name wins', () => {
  const s = set(svc('api', 'TCP'), wl('api-0', 'api', 'n1', '10.250.0.1'),
    doc('MeshConfig', '{name: m}', '{trustDomain: weft.local, registrations: [{node: n2, namespaces: [ns]}, {node: n9, namespaces: [ns]}, {node: n1, namespaces: [elsewhere]}]}'));
  const snap = compile(s, [
    { name: 'api-1', namespace: 'ns', labels: { app: 'api' }, address: '10.250.0.2', node: 'n2', serviceAccount: 'api' },
    { name: 'api-0', namespace: 'ns', labels: { app: 'api' }, address: '10.250.0.9', node: 'n9' },
    { name: 'other', namespace: 'elsewhere', labels: { app: 'api' }, address: '10.250.0.3', node: 'n1' },
  ], { now: NOW });
  const api = snap.services.find((x) => x.key === 'ns/api');
  assert.deepEqual(api?.endpoints.map((e) => [e.workload, e.address, e.ports.p]), [['ns/api-0', '10.250.0.1', 8080], ['ns/api-1', '10.250.0.2', 8080]]);
  assert.deepEqual(snap.workloads.map((w) => [w.key, w.source]), [['elsewhere/other', 'registered'], ['ns/api-0', 'policy'], ['ns/api-1', 'registered']]);
  assert.notEqual(snap.version, compile(s, [], { now: NOW }).version);
});

// ---------------------------------------------------------------- VIP allocation

test('allocated VIPs do not move when unrelated services come and go', () => {
  const base = [svc('keep', 'TCP')];
  const alone = compile(set(...base), [], { now: NOW }).services.find((s) => s.key === 'ns/keep')?.vip;
  assert.ok(alone);
  const others = Array.from({ length: 200 }, (_, i) => svc(`other-${i}`, 'TCP'));
  const crowded = compile(set(...base, ...others), [], { now: NOW });
  assert.equal(crowded.services.find((s) => s.key === 'ns/keep')?.vip, alone);
  const vips = crowded.services.map((s) => s.vip);
  assert.equal(new Set(vips).size, vips.length, 'VIPs are unique');
  const range = parseCidr('10.96.0.0/16') as Cidr;
  for (const v of vips) assert.match(v, /^10\.96\.\d+\.\d+$/);
  assert.ok(crowded.services.every((s) => s.vipAllocated));
  void range;
});

test('a previous snapshot pins allocations even when a newcomer hashes onto the same slot', () => {
  const range = parseCidr('10.0.0.0/29') as Cidr; // 6 usable addresses: collisions are certain
  const first = allocateVips(range, ['a', 'b', 'c'], new Set(), new Map());
  // Find a newcomer whose first-choice slot is one of the existing VIPs and sorts first.
  let newcomer = '';
  for (let i = 0; i < 1000 && !newcomer; i++) {
    const name = `0-${i}`;
    const solo = allocateVips(range, [name], new Set(), new Map()).get(name);
    if ([...first.values()].includes(solo as string)) newcomer = name;
  }
  assert.ok(newcomer, 'found a colliding name');
  const withoutPrevious = allocateVips(range, ['a', 'b', 'c', newcomer], new Set(), new Map());
  assert.ok(['a', 'b', 'c'].some((k) => withoutPrevious.get(k) !== first.get(k)), 'the collision does move someone without stickiness');
  const sticky = allocateVips(range, ['a', 'b', 'c', newcomer], new Set(), first);
  for (const k of ['a', 'b', 'c']) assert.equal(sticky.get(k), first.get(k));
  assert.ok(![...first.values()].includes(sticky.get(newcomer) as string));
});

test('static VIPs are never handed out; a full range fails validation, not allocation', () => {
  const mesh = doc('MeshConfig', '{name: m}', '{trustDomain: t.local, vipRange: 10.0.0.0/30}');
  const s = set(mesh, svc('a', 'TCP', ', vip: 10.0.0.1'), svc('b', 'TCP'));
  const snap = compile(s, [], { now: NOW });
  assert.equal(snap.services.find((x) => x.key === 'ns/b')?.vip, '10.0.0.2');
  const full = loadPolicyTexts([{ file: 'f.yaml', text: [mesh, svc('a', 'TCP', ', vip: 10.0.0.1'), svc('b', 'TCP'), svc('c', 'TCP')].join('---\n') }]);
  assert.equal(full.diagnostics.length, 1);
  assert.match(full.diagnostics[0]?.message ?? '', /2 Services need a VIP but the mesh VIP range 10\.0\.0\.0\/30 has only 1 free addresses/);
});

test('compiling again with the previous snapshot keeps every allocated VIP', () => {
  const names = Array.from({ length: 50 }, (_, i) => svc(`s-${i}`, 'TCP'));
  const prev = compile(set(...names), [], { now: NOW });
  const next = compile(set(svc('aaa-new', 'TCP'), ...names), [], { now: NOW, previous: prev });
  const before = new Map(prev.services.map((s) => [s.key, s.vip]));
  for (const s of next.services) if (before.has(s.key)) assert.equal(s.vip, before.get(s.key));
});

// ---------------------------------------------------------------- L4 vs redirect

function mode(snap: Snapshot, node: string, service: string) {
  const d = forNode(snap, node).datapath.find((x) => x.service === service);
  assert.ok(d, `no datapath entry for ${service}`);
  return d;
}

test('which path a connection takes (DESIGN.md rule)', () => {
  const cases: { name: string; docs: string[]; node: string; want: 'l4' | 'redirect'; reason: RegExp }[] = [
    { name: 'TCP, every backend local', docs: [svc('db', 'TCP'), wl('db-0', 'db', 'n1', '10.250.0.1')], node: 'n1', want: 'l4', reason: /every backend is on this node/ },
    { name: 'TCP, a backend remote, STRICT', docs: [svc('db', 'TCP'), wl('db-0', 'db', 'n1', '10.250.0.1'), wl('db-1', 'db', 'n2', '10.250.0.2')], node: 'n1', want: 'redirect', reason: /on n2: needs an mTLS hop/ },
    { name: 'TCP, remote, mTLS disabled for it (PERMISSIVE mesh)', docs: [
      doc('MeshConfig', '{name: m}', '{trustDomain: t.local, mtls: {mode: PERMISSIVE}}'),
      svc('db', 'TCP'), wl('db-1', 'db', 'n2', '10.250.0.2'),
      doc('TrafficPolicy', '{name: db, namespace: ns}', '{targetRef: {name: db}, tls: {mode: DISABLE}, loadBalancer: {type: MAGLEV}}')], node: 'n1', want: 'l4', reason: /mTLS is disabled/ },
    { name: 'HTTP is always proxied', docs: [svc('web', 'HTTP'), wl('web-0', 'web', 'n1', '10.250.0.1')], node: 'n1', want: 'redirect', reason: /protocol HTTP/ },
    { name: 'GRPC is always proxied', docs: [svc('rpc', 'GRPC'), wl('rpc-0', 'rpc', 'n1', '10.250.0.1')], node: 'n1', want: 'redirect', reason: /protocol GRPC/ },
    { name: 'UDP stays in the kernel even when remote', docs: [svc('dns', 'UDP'), wl('dns-0', 'dns', 'n2', '10.250.0.2')], node: 'n1', want: 'l4', reason: /UDP/ },
    { name: 'TCP local but an AuthorizationPolicy guards the backend', docs: [svc('db', 'TCP'), wl('db-0', 'db', 'n1', '10.250.0.1'),
      doc('AuthorizationPolicy', '{name: db, namespace: ns}', '{selector: {matchLabels: {app: db}}, rules: [{from: [{source: {namespaces: [ns]}}]}]}')], node: 'n1', want: 'redirect', reason: /authorization policy applies to backend ns\/db-0/ },
    { name: 'TCP local but outlier detection needs the agent', docs: [svc('db', 'TCP'), wl('db-0', 'db', 'n1', '10.250.0.1'),
      doc('TrafficPolicy', '{name: db, namespace: ns}', '{targetRef: {name: db}, loadBalancer: {type: RANDOM}, outlierDetection: {consecutive5xx: 3}}')], node: 'n1', want: 'redirect', reason: /outlier detection/ },
    { name: 'TCP local with a kernel load balancer only', docs: [svc('db', 'TCP'), wl('db-0', 'db', 'n1', '10.250.0.1'),
      doc('TrafficPolicy', '{name: db, namespace: ns}', '{targetRef: {name: db}, loadBalancer: {type: MAGLEV}}')], node: 'n1', want: 'l4', reason: /every backend is on this node/ },
    { name: 'TCP local with the default (P2C) balancer policy object', docs: [svc('db', 'TCP'), wl('db-0', 'db', 'n1', '10.250.0.1'),
      doc('TrafficPolicy', '{name: db, namespace: ns}', '{targetRef: {name: db}}')], node: 'n1', want: 'redirect', reason: /P2C_PEAK_EWMA/ },
    { name: 'no endpoints', docs: [svc('db', 'TCP')], node: 'n1', want: 'l4', reason: /no endpoints/ },
  ];
  for (const c of cases) {
    const snap = compile(set(...c.docs), [], { now: NOW });
    const d = mode(snap, c.node, c.docs.some((x) => x.includes('name: web,')) ? 'ns/web' : c.docs.some((x) => x.includes('name: rpc,')) ? 'ns/rpc' : c.docs.some((x) => x.includes('name: dns,')) ? 'ns/dns' : 'ns/db');
    assert.equal(d.mode, c.want, c.name);
    assert.match(d.reason, c.reason, c.name);
    // A MAGLEV policy reaches the kernel as its balancing mode; anything else is random.
    assert.equal(d.lb, c.docs.some((x) => x.includes('type: MAGLEV')) ? 'maglev' : undefined, `${c.name}: lb`);
  }
});

test('the decision is per node: the same service is l4 where its backends are, redirect elsewhere', () => {
  const snap = compile(set(svc('db', 'TCP'), wl('db-0', 'db', 'n1', '10.250.0.1')), [], { now: NOW });
  assert.equal(mode(snap, 'n1', 'ns/db').mode, 'l4');
  assert.equal(mode(snap, 'n2', 'ns/db').mode, 'redirect');
  assert.deepEqual(mode(snap, 'n1', 'ns/db').backends, [{ ip: '10.250.0.1', port: 8080, weight: 1 }]);
});

// ---------------------------------------------------------------- route merge order

test('several HTTPRoutes on one Service merge in Gateway API precedence order', () => {
  const route = (name: string, rules: string) => doc('HTTPRoute', `{name: ${name}, namespace: ns}`, `{parentRefs: [{name: web}], rules: ${rules}}`);
  const b = '[{name: web}]';
  const s = set(
    svc('web', 'HTTP'),
    route('zeta', `[
      {matches: [{path: {type: PathPrefix, value: /}}], backendRefs: ${b}},
      {matches: [{path: {type: PathPrefix, value: /api}, method: GET}], backendRefs: ${b}},
      {matches: [{path: {type: PathPrefix, value: /api}, headers: [{name: X-A, value: "1"}, {name: x-b, value: "2"}]}], backendRefs: ${b}},
      {matches: [{path: {type: PathPrefix, value: /s}, queryParams: [{name: v, value: "2"}]}], backendRefs: ${b}}]`),
    route('alpha', `[
      {matches: [{path: {type: PathPrefix, value: /api}, headers: [{name: x-a, value: "1"}]}], backendRefs: ${b}},
      {matches: [{path: {type: Exact, value: /api/health}}], backendRefs: ${b}},
      {matches: [{path: {type: RegularExpression, value: "/items/[0-9]+"}}], backendRefs: ${b}},
      {matches: [{path: {type: PathPrefix, value: /api/v1}}], backendRefs: ${b}},
      {matches: [{path: {type: PathPrefix, value: /s}, queryParams: [{name: v, value: "1"}]}], backendRefs: ${b}}]`),
  );
  const table = compile(s, [], { now: NOW }).routes.find((t) => t.service === 'ns/web');
  const order = table?.routes.map((r) => `${r.route}#${r.rule}`);
  assert.deepEqual(order, [
    'ns/alpha#1',  // Exact /api/health
    'ns/alpha#2',  // RegularExpression
    'ns/alpha#3',  // PathPrefix /api/v1 (longest prefix)
    'ns/zeta#1',   // /api + method outranks /api + headers
    'ns/zeta#2',   // /api with 2 headers outranks 1 header
    'ns/alpha#0',
    'ns/alpha#4',  // /s + one query param: a tie with zeta#3, the alphabetically first route wins
    'ns/zeta#3',
    'ns/zeta#0',   // catch-all last
  ]);
  assert.deepEqual(table?.routes[4]?.match.headers.map((h) => h.name), ['x-a', 'x-b'], 'header names are lower-cased');
});

test('GRPCRoute method matches compile to path matches; zero-weight backends are dropped', () => {
  const s = set(
    svc('pay', 'GRPC'), svc('pay-v2', 'GRPC'),
    doc('GRPCRoute', '{name: pay, namespace: ns}', `{parentRefs: [{name: pay}], rules: [
      {matches: [{method: {service: shop.Pay}}], backendRefs: [{name: pay}]},
      {matches: [{method: {service: shop.Pay, method: Charge}}], backendRefs: [{name: pay, weight: 0}, {name: pay-v2, weight: 5}]},
      {matches: [{method: {method: Refund}}], backendRefs: [{name: pay}]}]}`),
  );
  const t = compile(s, [], { now: NOW }).routes[0];
  assert.equal(t?.protocol, 'grpc');
  assert.deepEqual(t?.routes.map((r) => r.match.path), [
    { type: 'Exact', value: '/shop.Pay/Charge' },
    { type: 'RegularExpression', value: '/[^/]+/Refund' },
    { type: 'PathPrefix', value: '/shop.Pay' },
  ]);
  assert.deepEqual(t?.routes[0]?.backends, [{ service: 'ns/pay-v2', port: 80, weight: 5 }]);
});

// ---------------------------------------------------------------- forNode

test('forNode gives each agent its local workloads, their authorization, and routes it may use', () => {
  const snap = compile(loadPolicyDir([join(packageRoot(), 'policies')]), [], { now: NOW });
  const n1 = forNode(snap, 'node-1');
  const n2 = forNode(snap, 'node-2');
  assert.deepEqual(n1.localWorkloads.map((w) => w.key), ['shop/cache-0', 'shop/catalog-v1-0', 'shop/frontend-0']);
  assert.deepEqual(n2.localWorkloads.map((w) => w.key), ['shop/catalog-v1-1', 'shop/payments-0']);
  // payments is guarded on node-2 only.
  assert.deepEqual(n1.authorizationPolicies, []);
  assert.deepEqual(n2.authorizationPolicies.map((a) => a.key), ['shop/payments-from-frontend']);
  assert.deepEqual(n2.authorizationPolicies[0]?.rules[0]?.from[0]?.principals, ['spiffe://weft.local/ns/shop/sa/frontend']);
  // cache is plain TCP with its backend on node-1: in-kernel there, redirected elsewhere.
  assert.equal(n1.datapath.find((d) => d.service === 'shop/cache')?.mode, 'l4');
  assert.equal(n2.datapath.find((d) => d.service === 'shop/cache')?.mode, 'redirect');
  // Routes: catalog (HTTP) and payments (GRPC) are redirected everywhere.
  assert.deepEqual(n1.routes.map((r) => `${r.service}:${r.port}`), ['shop/catalog:80', 'shop/payments:50051']);
  assert.deepEqual(n1.trafficPolicies.map((t) => t.service), ['shop/catalog']);
  assert.equal(n1.version, snap.version);
  // The datapath table is sorted numerically by VIP and has the service's target ports.
  const vips = n1.datapath.map((d) => d.vip.split('.').map(Number).reduce((a, o) => a * 256 + o, 0));
  assert.deepEqual(vips, [...vips].sort((a, b) => a - b));
  assert.deepEqual(n1.datapath.find((d) => d.service === 'shop/catalog')?.backends.map((b) => b.port), [8080, 8080, 8080]);
  // A node with nothing local still gets the service table.
  const empty = forNode(snap, 'node-9');
  assert.deepEqual(empty.localWorkloads, []);
  assert.equal(empty.datapath.length, n1.datapath.length);
});
