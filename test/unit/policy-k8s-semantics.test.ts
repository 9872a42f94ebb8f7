// Kubernetes Service semantics in the policy model, compile and per-node views:
// (port, protocol) keys, named targetPorts per workload, sessionAffinity ClientIP,
// internalTrafficPolicy Local, topology hints, headless Services, hostNetwork backends,
// and the node table (Node objects, agent reports, the Workload fallback) as it travels
// through the "node" resource of delta sync.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compile, forNode, formatDiagnostic, loadPolicyTexts, nodeAddress, type NodeView, type Snapshot, type WorkloadRegistration } from '../../agent/policy';
import type { CompileOptions } from '../../agent/policy/compile';
import { ViewResourceCache } from '../../agent/policy/view-cache';
import { NODE_RESOURCE, checkNodeResource, nodeResources } from '../../agent/policy/view-resources';
import { assemble, mergeDelta, type HeldResource } from '../../agent/sync/resource-set';
import { allowedIdentities } from '../../agent/control/certificates';
import { identitiesForNode } from '../../agent/identity/allowed';

const MESH = 'apiVersion: weft.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec: {trustDomain: cluster.local}\n';

function doc(kind: string, name: string, spec: string, extra = ''): string {
  return `apiVersion: weft.dev/v1alpha1\nkind: ${kind}\nmetadata: {name: ${name}, namespace: shop${extra}}\nspec: ${spec}\n`;
}
const workload = (name: string, node: string, address: string, more = '') => doc('Workload', name, `{address: ${address}, node: ${node}${more}}`, ', labels: {app: web}');
const nodeDoc = (name: string, address: string, zone?: string) =>
  `apiVersion: weft.dev/v1alpha1\nkind: Node\nmetadata: {name: ${name}}\nspec: {address: ${address}${zone ? `, zone: ${zone}` : ''}}\n`;

function load(docs: string[]) {
  return loadPolicyTexts([{ file: 'p.yaml', text: [MESH, ...docs].join('---\n') }]);
}

function build(docs: string[], opts: CompileOptions = {}, registered: WorkloadRegistration[] = []): Snapshot {
  const set = load(docs);
  assert.deepEqual(set.diagnostics.map(formatDiagnostic), []);
  return compile(set, registered, opts);
}

const backends = (v: NodeView, port: number, protocol: 'tcp' | 'udp' = 'tcp') =>
  v.datapath.find((d) => d.port === port && d.protocol === protocol)?.backends.map((b) => `${b.ip}:${b.port}`);

test('ports are keyed by (port, protocol): 53/UDP and 53/TCP both reach the datapath; a real duplicate is an error', () => {
  const snap = build([
    doc('Service', 'dns', '{vip: 10.96.0.10, selector: {app: web}, ports: [{name: dns, port: 53, protocol: UDP}, {name: dns-tcp, port: 53, protocol: TCP}, {name: web, port: 443, protocol: HTTP}, {name: quic, port: 443, protocol: UDP}]}'),
    workload('a', 'n1', '10.1.0.1'),
    doc('HTTPRoute', 'r', '{parentRefs: [{name: dns, port: 443}], rules: [{backendRefs: [{name: dns, port: 443}]}]}'),
  ]);
  const v = forNode(snap, 'n1');
  assert.deepEqual(v.datapath.map((d) => `${d.port}/${d.protocol}:${d.mode}`), ['53/tcp:l4', '53/udp:l4', '443/tcp:redirect', '443/udp:l4']);
  assert.deepEqual(v.routes.map((r) => r.port), [443], 'the route attaches to the TCP 443');
  const dup = load([doc('Service', 'x', '{vip: 10.96.0.11, selector: {app: web}, ports: [{name: a, port: 53, protocol: TCP}, {name: b, port: 53, protocol: GRPC}]}')]);
  assert.deepEqual(dup.diagnostics.map((d) => d.message), ['spec.ports[1].port: port 53 over TCP is already used by spec.ports[0]']);
});

test('named targetPorts resolve per workload; a workload without the name is not a backend of that port', () => {
  const snap = build([
    doc('Service', 'web', '{vip: 10.96.0.20, selector: {app: web}, ports: [{name: http, port: 80, targetPort: http}, {name: admin, port: 81, targetPort: 9000}]}'),
    workload('a', 'n1', '10.1.0.1', ', ports: [{name: http, port: 8080}, {port: 9000}]'),
    workload('b', 'n1', '10.1.0.2', ', ports: [{name: http, port: 8081}, {port: 9000}]'),
    workload('c', 'n1', '10.1.0.3'), // declares nothing: serves the numeric port only
  ]);
  const v = forNode(snap, 'n1');
  assert.deepEqual(backends(v, 80), ['10.1.0.1:8080', '10.1.0.2:8081']);
  assert.deepEqual(backends(v, 81), ['10.1.0.1:9000', '10.1.0.2:9000', '10.1.0.3:9000']);
  // A numeric targetPort missing from declared ports is still a policy error.
  const bad = load([doc('Service', 'web', '{vip: 10.96.0.20, selector: {app: web}, ports: [{name: p, port: 80, targetPort: 7000}]}'), workload('a', 'n1', '10.1.0.1', ', ports: [{name: http, port: 8080}]')]);
  assert.match(bad.diagnostics.map((d) => d.message).join('\n'), /does not listen on target port 7000/);
});

test('sessionAffinity ClientIP: Maglev in the kernel and an implicit MAGLEV traffic policy; an explicit load balancer wins', () => {
  const svc = (name: string, vip: string) => doc('Service', name, `{vip: ${vip}, selector: {app: web}, sessionAffinity: ClientIP, ports: [{name: p, port: 80, protocol: HTTP}]}`);
  const snap = build([
    svc('sticky', '10.96.0.30'), svc('tuned', '10.96.0.31'), svc('random', '10.96.0.32'),
    doc('TrafficPolicy', 'tuned', '{targetRef: {name: tuned}, connectionPool: {maxConnections: 10}}'),
    doc('TrafficPolicy', 'random', '{targetRef: {name: random}, loadBalancer: {type: RANDOM}}'),
    workload('a', 'n1', '10.1.0.1'), workload('b', 'n2', '10.1.0.2'),
  ]);
  assert.deepEqual(snap.trafficPolicies.map((t) => [t.service, t.loadBalancer, t.implicit ?? '']), [
    ['shop/random', 'RANDOM', ''], ['shop/sticky', 'MAGLEV', 'sessionAffinity'], ['shop/tuned', 'MAGLEV', ''],
  ]);
  const v = forNode(snap, 'n1');
  assert.deepEqual(v.datapath.map((d) => [d.service, d.lb ?? '']), [['shop/sticky', 'maglev'], ['shop/tuned', 'maglev'], ['shop/random', '']]);
  assert.equal(v.trafficPolicies.find((t) => t.service === 'shop/sticky')?.loadBalancer, 'MAGLEV', 'the L7 balancer sees it too');
});

test('internalTrafficPolicy Local: each node balances over its own endpoints only; none there refuses', () => {
  const snap = build([
    doc('Service', 'local', '{vip: 10.96.0.40, selector: {app: web}, internalTrafficPolicy: Local, ports: [{name: p, port: 80}]}'),
    workload('a', 'n1', '10.1.0.1'), workload('b', 'n2', '10.1.0.2'), workload('c', 'n2', '10.1.0.3'),
  ]);
  const n1 = forNode(snap, 'n1');
  assert.deepEqual(backends(n1, 80), ['10.1.0.1:80']);
  assert.equal(n1.datapath[0]!.mode, 'l4', 'the only backend is local: no mTLS hop, kernel path');
  assert.deepEqual(n1.services[0]!.endpoints.map((e) => e.workload), ['shop/a'], 'the L7 balancer sees the same set');
  assert.deepEqual(backends(forNode(snap, 'n2'), 80), ['10.1.0.2:80', '10.1.0.3:80']);
  const n3 = forNode(snap, 'n3');
  assert.deepEqual(backends(n3, 80), []);
  assert.equal(n3.datapath[0]!.mode, 'l4');
  assert.match(n3.datapath[0]!.reason, /internalTrafficPolicy Local and no endpoint on this node/);
  assert.equal(snap.services[0]!.endpoints.length, 3, 'the snapshot keeps every endpoint');
});

test('topology hints: a node in zone Z uses endpoints hinted for Z, all when none is, all when hints are partial', () => {
  const hinted = (hints: string) => build([
    nodeDoc('n1', '192.168.0.1', 'zone-a'), nodeDoc('n2', '192.168.0.2', 'zone-b'), nodeDoc('n3', '192.168.0.3', 'zone-c'), nodeDoc('n4', '192.168.0.4'),
    doc('Service', 'web', `{vip: 10.96.0.50, selector: {app: web}, ports: [{name: p, port: 80}], zoneHints: ${hints}}`),
    workload('a', 'n1', '10.1.0.1'), workload('b', 'n2', '10.1.0.2'), workload('c', 'n2', '10.1.0.3'),
  ]);
  const snap = hinted('{a: [zone-a], b: [zone-b, zone-c], c: [zone-b]}');
  assert.deepEqual(snap.services[0]!.endpoints.map((e) => e.forZones), [['zone-a'], ['zone-b', 'zone-c'], ['zone-b']]);
  assert.deepEqual(backends(forNode(snap, 'n1'), 80), ['10.1.0.1:80']);
  assert.equal(forNode(snap, 'n1').datapath[0]!.mode, 'l4', 'the hinted endpoint is local');
  assert.deepEqual(backends(forNode(snap, 'n2'), 80), ['10.1.0.2:80', '10.1.0.3:80']);
  assert.deepEqual(backends(forNode(snap, 'n3'), 80), ['10.1.0.2:80']);
  assert.deepEqual(backends(forNode(snap, 'n4'), 80), ['10.1.0.1:80', '10.1.0.2:80', '10.1.0.3:80'], 'a node without a zone uses all');
  const none = hinted('{a: [zone-a], b: [zone-a], c: [zone-a]}');
  assert.deepEqual(backends(forNode(none, 'n2'), 80), ['10.1.0.1:80', '10.1.0.2:80', '10.1.0.3:80'], 'nothing hinted for zone-b: all');
  const partial = hinted('{a: [zone-a]}');
  assert.deepEqual(backends(forNode(partial, 'n1'), 80), ['10.1.0.1:80', '10.1.0.2:80', '10.1.0.3:80'], 'hints on some endpoints only are ignored');
});

test('headless Services: in the snapshot (authorization targetRef works), never in a view or the datapath; a VIP is refused', () => {
  const snap = build([
    doc('Service', 'db', '{headless: true, selector: {app: web}, ports: [{name: pg, port: 5432}]}'),
    doc('AuthorizationPolicy', 'db', '{targetRef: {name: db}, rules: [{from: [{source: {namespaces: [shop]}}]}]}'),
    workload('a', 'n1', '10.1.0.1'),
  ]);
  const db = snap.services.find((s) => s.key === 'shop/db')!;
  assert.deepEqual([db.vip, db.headless, db.vipAllocated, db.endpoints.map((e) => e.workload)], ['', true, false, ['shop/a']]);
  assert.deepEqual(snap.authorizationPolicies[0]!.workloads, ['shop/a']);
  const v = forNode(snap, 'n1');
  assert.deepEqual([v.services.length, v.datapath.length], [0, 0]);
  assert.equal(v.localWorkloads[0]!.identity, 'spiffe://cluster.local/ns/shop/sa/default', 'its pods keep their identities');
  assert.equal(v.authorizationPolicies.length, 1);
  const bad = load([doc('Service', 'db', '{headless: true, vip: 10.96.0.60, selector: {app: web}, ports: [{name: pg, port: 5432}]}')]);
  assert.deepEqual(bad.diagnostics.map((d) => d.message), ['spec.vip: a headless Service has no VIP (remove spec.vip or spec.headless)']);
});

test('node table: Node objects, then agent reports, then the one address a node\'s Workloads share; nodeAddress()', () => {
  const snap = build([
    nodeDoc('ip-10-0-1-2.ec2.internal', '10.0.1.2', 'us-east-1a'),
    workload('vm-a', 'vm-1', '192.168.1.10'),                                              // a VM: one address (+ a registration below)
    workload('pod-a', 'k-1', '10.244.1.2'), workload('pod-b', 'k-1', '10.244.1.3'),       // pods: no fallback
    workload('x', 'reported', '10.244.2.2'),
    workload('y', 'ip-10-0-1-2.ec2.internal', '10.244.3.2'),
  ], { nodes: [{ node: 'reported', address: '192.168.2.1' }, { node: 'ip-10-0-1-2.ec2.internal', address: '10.9.9.9' }] },
  [{ name: 'vm-b', namespace: 'shop', address: '192.168.1.10', node: 'vm-1' }]);
  assert.deepEqual(snap.nodes, [
    { name: 'ip-10-0-1-2.ec2.internal', address: '10.0.1.2', zone: 'us-east-1a', source: 'policy' },
    { name: 'reported', address: '192.168.2.1', source: 'agent' },
    { name: 'vm-1', address: '192.168.1.10', source: 'workload' },
  ]);
  const v = forNode(snap, 'k-1');
  assert.deepEqual(v.nodes, { 'ip-10-0-1-2.ec2.internal': { address: '10.0.1.2', zone: 'us-east-1a' }, reported: { address: '192.168.2.1' }, 'vm-1': { address: '192.168.1.10' } });
  assert.equal(nodeAddress(v, 'vm-1'), '192.168.1.10');
  assert.equal(nodeAddress(v, 'k-1'), undefined);
  assert.equal(nodeAddress(v, 'toString'), undefined, 'no prototype keys');
  assert.equal(nodeAddress({ nodes: undefined as unknown as NodeView['nodes'] }, 'vm-1'), undefined);
  const dup = load([nodeDoc('n1', '10.0.0.1'), nodeDoc('n1', '10.0.0.2').replace('{name: n1}', '{name: n1, namespace: other}')]);
  assert.match(dup.diagnostics.map((d) => d.message).join('\n'), /duplicate Node "n1"/);
});

test('node table through delta sync: in the "node" resource, checked, absent from old control APIs; a zone change recomputes paths', () => {
  const docs = (zone: string) => [
    nodeDoc('n1', '192.168.0.1', zone), nodeDoc('n2', '192.168.0.2', 'zone-b'),
    doc('Service', 'web', '{vip: 10.96.0.70, selector: {app: web}, ports: [{name: p, port: 80}], zoneHints: {a: [zone-a], b: [zone-b]}}'),
    workload('a', 'n1', '10.1.0.1'), workload('b', 'n2', '10.1.0.2'),
  ];
  const s1 = build(docs('zone-a'));
  const cache = new ViewResourceCache();
  cache.setSnapshot(s1);
  const held = (snap: Snapshot, node: string) => {
    const m = new Map<string, HeldResource>();
    for (const [name, r] of cache.resources(node)) { const json = r.body().toString(); m.set(name, { version: r.version, json, value: JSON.parse(json) }); }
    return assemble(m, snap.version, node);
  };
  const v1 = held(s1, 'n1');
  assert.deepEqual(v1, forNode(s1, 'n1'));
  assert.deepEqual(v1.nodes, { n1: { address: '192.168.0.1', zone: 'zone-a' }, n2: { address: '192.168.0.2', zone: 'zone-b' } });
  assert.deepEqual(backends(v1, 80), ['10.1.0.1:80']);
  assert.equal(v1.datapath[0]!.mode, 'l4');
  // n1 moves to zone-b: its hinted endpoint is now remote, so the path must be redirect.
  const s2 = build(docs('zone-b'));
  cache.setSnapshot(s2);
  const v2 = held(s2, 'n1');
  assert.deepEqual(v2, forNode(s2, 'n1'));
  assert.deepEqual(backends(v2, 80), ['10.1.0.2:80']);
  assert.equal(v2.datapath[0]!.mode, 'redirect');

  // Resource checks: a malformed table is refused; a node resource without one (an older
  // control API) assembles with an empty table.
  const r = nodeResources(s1, 'n1');
  assert.throws(() => checkNodeResource({ ...r.node, nodes: { n2: { zone: 'z' } } }, 'n1'), /node 'n2' has no address/);
  assert.throws(() => checkNodeResource({ ...r.node, nodes: [] }, 'n1'), /nodes is not a table/);
  const { nodes: _dropped, ...old } = r.node;
  const merged = mergeDelta(new Map(), s1.version, 'n1', [NODE_RESOURCE, ...r.services.map((s) => `service/${s.service.key}`)].map((name, i) => ({
    name, version: `v${i}`, body: Buffer.from(JSON.stringify(i === 0 ? old : r.services[i - 1])),
  })), []);
  assert.deepEqual(merged.view.nodes, {});
  assert.equal(nodeAddress(merged.view, 'n2'), undefined);
});

test('hostNetwork workloads: no identity, never local workloads, no certificate for them', () => {
  const snap = build([
    doc('Service', 'ingress', '{vip: 10.96.0.80, selector: {app: web}, ports: [{name: p, port: 80}]}'),
    workload('host-a', 'n1', '192.168.0.1', ', hostNetwork: true'),
    workload('host-b', 'n1', '192.168.0.1', ', hostNetwork: true'),
    workload('meshed', 'n1', '10.1.0.1'),
  ]);
  assert.deepEqual(snap.workloads.map((w) => [w.name, w.identity, w.hostNetwork ?? false]), [
    ['host-a', '', true], ['host-b', '', true], ['meshed', 'spiffe://cluster.local/ns/shop/sa/default', false],
  ]);
  assert.deepEqual(forNode(snap, 'n1').localWorkloads.map((w) => w.name), ['meshed']);
  assert.deepEqual([...allowedIdentities(snap, 'n1')].sort(), ['spiffe://cluster.local/ns/shop/sa/default', 'spiffe://cluster.local/ns/weft-system/sa/node-n1']);
  assert.deepEqual([...identitiesForNode(snap, 'n1')].sort(), ['spiffe://cluster.local/ns/shop/sa/default', 'spiffe://cluster.local/ns/weft-system/sa/node-n1']);
  assert.deepEqual(backends(forNode(snap, 'n2'), 80), ['192.168.0.1:80', '192.168.0.1:80', '10.1.0.1:80']);
  assert.equal(forNode(snap, 'n2').datapath[0]!.mode, 'redirect', 'the meshed remote backend still needs the tunnel');
});
