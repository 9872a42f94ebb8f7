// Kubernetes → weft object conversion, case by case (no API server): protocols, names,
// readiness, named target ports, and what is skipped and why.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1EndpointSlice, V1Pod, V1Service } from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { READY_LABEL, portProtocol, toPolicyObjects, toPolicyTexts, workloadName } from '../../agent/discovery/kubernetes-objects';
import { compile, forNode, formatDiagnostic, loadPolicyTexts } from '../../agent/policy';

test('portProtocol: appProtocol wins, then the Istio name prefix, then TCP', () => {
  const cases: [Parameters<typeof portProtocol>[0], string | undefined][] = [
    [{ appProtocol: 'http' }, 'HTTP'],
    [{ appProtocol: 'HTTP', name: 'grpc' }, 'HTTP'],
    [{ appProtocol: 'kubernetes.io/h2c' }, 'HTTP2'],
    [{ appProtocol: 'grpc' }, 'GRPC'],
    [{ appProtocol: 'https', name: 'http-tls' }, 'TCP'],
    [{ appProtocol: 'kubernetes.io/ws' }, 'TCP'],
    [{ name: 'http' }, 'HTTP'],
    [{ name: 'http-web' }, 'HTTP'],
    [{ name: 'http2-api' }, 'HTTP2'],
    [{ name: 'grpc' }, 'GRPC'],
    [{ name: 'httpx' }, 'TCP'],
    [{ name: 'metrics' }, 'TCP'],
    [{}, 'TCP'],
    [{ protocol: 'UDP', name: 'http' }, 'UDP'],
    [{ protocol: 'SCTP' }, undefined],
  ];
  for (const [p, want] of cases) assert.equal(portProtocol(p), want, JSON.stringify(p));
});

test('workloadName: DNS labels pass through, others are flattened and hashed', () => {
  assert.equal(workloadName('catalog-v1-7d9f8b6c5d-4xq2m'), 'catalog-v1-7d9f8b6c5d-4xq2m');
  const dotted = workloadName('netshoot.debug');
  assert.match(dotted, /^netshoot-debug-[0-9a-f]{8}$/);
  const long1 = workloadName(`${'a'.repeat(70)}-1`);
  const long2 = workloadName(`${'a'.repeat(70)}-2`);
  for (const n of [long1, long2]) assert.match(n, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
  assert.ok(long1.length <= 63);
  assert.notEqual(long1, long2, 'names that share a long prefix stay distinct');
});

const svc = (name: string, spec: V1Service['spec']): V1Service => ({ metadata: { name, namespace: 'ns' }, spec });
const pod = (name: string, o: { ready?: boolean; labels?: Record<string, string>; ip?: string; node?: string; phase?: string; hostNetwork?: boolean; ports?: { name: string; containerPort: number }[]; deleting?: boolean } = {}): V1Pod => ({
  metadata: { name, namespace: 'ns', uid: `00000000-0000-4000-8000-${String(name.length).padStart(12, '0')}`, labels: o.labels ?? { app: 'a' }, ...(o.deleting ? { deletionTimestamp: new Date() } : {}) },
  spec: { containers: [{ name: 'c', ports: o.ports }], nodeName: o.node ?? 'node-1', hostNetwork: o.hostNetwork ?? false },
  status: { phase: o.phase ?? 'Running', podIP: o.ip ?? '10.0.0.1', conditions: [{ type: 'Ready', status: o.ready === false ? 'False' : 'True' }] },
});

test('toPolicyObjects: readiness is a label that Service selectors require', () => {
  const r = toPolicyObjects({
    services: [
      svc('a', { clusterIP: '10.96.1.1', selector: { app: 'a' }, ports: [{ port: 80 }] }),
      svc('sts', { clusterIP: '10.96.1.2', selector: { app: 'a' }, ports: [{ port: 80, name: 'p' }], publishNotReadyAddresses: true }),
    ],
    endpointSlices: [],
    pods: [pod('ready'), pod('starting', { ready: false }), pod('terminating', { deleting: true })],
  });
  assert.deepEqual(r.services.map((s) => s.spec.selector), [{ app: 'a', [READY_LABEL]: 'true' }, { app: 'a' }]);
  assert.deepEqual(r.services[0]!.spec.ports, [{ name: 'port-80', port: 80, protocol: 'TCP' }], 'unnamed port gets a name; no targetPort stays absent');
  assert.deepEqual(r.workloads.map((w) => [w.metadata.name, w.metadata.labels?.[READY_LABEL]]), [
    ['ready', 'true'], ['starting', undefined], ['terminating', undefined],
  ]);
});

test('toPolicyObjects: named targetPorts stay names, resolved per pod: EndpointSlice ports first, else container ports', () => {
  // Two pods expose "http" on different numbers; the slice resolved pod q's (8081, which
  // wins over its container port) and says nothing about p (its container port counts).
  const slice: V1EndpointSlice = {
    metadata: { name: 'web-abc', namespace: 'ns', labels: { 'kubernetes.io/service-name': 'web' } },
    addressType: 'IPv4',
    endpoints: [{ addresses: ['10.0.0.2'], targetRef: { kind: 'Pod', namespace: 'ns', name: 'q' } }],
    ports: [{ name: 'web', port: 8081, protocol: 'TCP' }],
  };
  const r = toPolicyObjects({
    services: [
      svc('web', { clusterIP: '10.96.1.1', selector: { app: 'a' }, ports: [{ name: 'web', port: 80, targetPort: 'http' }] }),
      svc('other', { clusterIP: '10.96.1.3', selector: { app: 'a' }, ports: [{ name: 'admin', port: 80, targetPort: 'admin' }, { name: 'ok', port: 81, targetPort: '9000' }] }),
    ],
    endpointSlices: [slice],
    pods: [
      pod('p', { ports: [{ name: 'http', containerPort: 8080 }] }),
      pod('q', { ip: '10.0.0.2', ports: [{ name: 'http', containerPort: 7070 }] }),
    ],
  });
  const ports = Object.fromEntries(r.services.map((s) => [s.metadata.name, s.spec.ports.map((p) => p.targetPort)]));
  assert.deepEqual(ports, { other: ['admin', 9000], web: ['http'] });
  assert.deepEqual(r.skipped, [], 'an unresolvable name is a port without backends, not a reason to drop the Service');
  const declared = Object.fromEntries(r.workloads.map((w) => [w.metadata.name, w.spec.ports]));
  assert.deepEqual(declared, {
    // the numeric targetPort 9000 of a selecting Service is declared too (containerPorts are informational)
    p: [{ name: 'http', port: 8080 }, { port: 9000 }],
    q: [{ name: 'http', port: 8081 }, { port: 9000 }],
  });
  // Through the compiler: each endpoint has its own number; nobody declares "admin".
  const set = loadPolicyTexts(toPolicyTexts({ ...r, nodes: [] }));
  assert.deepEqual(set.diagnostics.map(formatDiagnostic), []);
  const snap = compile(set);
  const web = snap.services.find((s) => s.key === 'ns/web')!;
  assert.deepEqual(web.ports, [{ name: 'web', port: 80, targetPort: 0, targetPortName: 'http', protocol: 'TCP' }]);
  assert.deepEqual(web.endpoints.map((e) => [e.workload, e.ports]), [['ns/p', { web: 8080 }], ['ns/q', { web: 8081 }]]);
  const other = snap.services.find((s) => s.key === 'ns/other')!;
  assert.deepEqual(other.endpoints.map((e) => e.ports), [{ ok: 9000 }, { ok: 9000 }], 'no endpoint serves the undeclared "admin"');
  const view = forNode(snap, 'node-1');
  assert.deepEqual(view.datapath.filter((d) => d.service === 'ns/other').map((d) => [d.portName, d.backends.map((b) => b.port)]), [['admin', []], ['ok', [9000, 9000]]]);
  assert.deepEqual(view.datapath.find((d) => d.service === 'ns/web')!.backends, [{ ip: '10.0.0.1', port: 8080, weight: 1 }, { ip: '10.0.0.2', port: 8081, weight: 1 }]);
});

test('toPolicyObjects: what is skipped, with reasons', () => {
  const r = toPolicyObjects({
    services: [
      svc('ext', { type: 'ExternalName', externalName: 'db.example.com' }),
      svc('headless-portless', { clusterIP: 'None', selector: { app: 'a' } }),
      svc('manual', { clusterIP: '10.96.1.4', ports: [{ port: 80 }] }),
      svc('v6only', { clusterIP: 'fd00::10', clusterIPs: ['fd00::10'], selector: { app: 'a' }, ports: [{ port: 80 }] }),
      svc('sctp', { clusterIP: '10.96.1.5', selector: { app: 'a' }, ports: [{ port: 80, protocol: 'SCTP' }] }),
      svc('dual', { clusterIP: 'fd00::11', clusterIPs: ['fd00::11', '10.96.1.6'], selector: { app: 'a' }, ports: [{ port: 80 }] }),
    ],
    endpointSlices: [],
    pods: [
      pod('done', { phase: 'Succeeded' }), pod('unscheduled', { node: '' }),
      pod('noip', { ip: '' }), pod('v6', { ip: 'fd00::1' }), pod('fine'),
    ],
  });
  assert.deepEqual(r.services.map((s) => [s.metadata.name, s.spec.vip]), [['dual', '10.96.1.6']]);
  assert.deepEqual(r.workloads.map((w) => w.metadata.name), ['fine']);
  const reasons = Object.fromEntries(r.skipped.map((s) => [s.key, s.reason]));
  assert.match(reasons['ns/ext']!, /ExternalName/);
  assert.match(reasons['ns/headless-portless']!, /headless without ports/);
  assert.match(reasons['ns/manual']!, /no selector/);
  assert.match(reasons['ns/v6only']!, /IPv4/);
  assert.match(reasons['ns/sctp']!, /no usable ports/);
  assert.match(reasons['ns/done']!, /Succeeded/);
  assert.match(reasons['ns/unscheduled']!, /not scheduled/);
  assert.match(reasons['ns/noip']!, /no IPv4/);
  assert.match(reasons['ns/v6']!, /no IPv4/);
});

test('toPolicyObjects: the cgroup lookup fills the annotation only when it resolves', () => {
  const r = toPolicyObjects({ services: [], endpointSlices: [], pods: [pod('one'), pod('three')] },
    (p) => (p.metadata?.name === 'one' ? 18446744073709551557n : undefined));
  assert.deepEqual(r.workloads.map((w) => w.metadata.annotations?.['weft.dev/cgroup-id']), ['18446744073709551557', undefined]);
});

test('toPolicyObjects: an object weft\'s schema rejects is skipped, not passed on', () => {
  const p = pod('bad-sa');
  p.spec!.serviceAccountName = 'Not_A_Name';
  const r = toPolicyObjects({ services: [], endpointSlices: [], pods: [p, pod('fine')] });
  assert.deepEqual(r.workloads.map((w) => w.metadata.name), ['fine']);
  assert.equal(r.skipped.length, 1);
  assert.match(r.skipped[0]!.reason, /^not a valid weft Workload: \/spec\/serviceAccount /);
});

test('toPolicyObjects: Kubernetes node names and service accounts are DNS subdomains (EKS nodes, dotted service accounts)', () => {
  const long = `${'n'.repeat(120)}.${'a'.repeat(120)}.internal`;
  assert.equal(long.length, 250);
  const p1 = pod('on-eks', { node: 'ip-10-0-1-2.ec2.internal' });
  p1.spec!.serviceAccountName = 'build.bot';
  const r = toPolicyObjects({
    services: [], endpointSlices: [], pods: [p1, pod('on-long', { node: long, ip: '10.0.0.9' })],
    nodes: [{ metadata: { name: 'ip-10-0-1-2.ec2.internal' }, status: { addresses: [{ type: 'InternalIP', address: '10.0.1.2' }] } }],
  });
  assert.deepEqual(r.skipped, []);
  assert.deepEqual(r.workloads.map((w) => [w.spec.node, w.spec.serviceAccount]), [['ip-10-0-1-2.ec2.internal', 'build.bot'], [long, 'default']]);
  const set = loadPolicyTexts(toPolicyTexts(r));
  assert.deepEqual(set.diagnostics.map(formatDiagnostic), []);
  const snap = compile(set);
  const eks = snap.workloads.find((w) => w.node === 'ip-10-0-1-2.ec2.internal')!;
  assert.equal(eks.identity, 'spiffe://weft.local/ns/ns/sa/build.bot');
  assert.deepEqual(snap.nodes.find((n) => n.name === 'ip-10-0-1-2.ec2.internal'), { name: 'ip-10-0-1-2.ec2.internal', address: '10.0.1.2', source: 'policy' });
  assert.equal(forNode(snap, long).localWorkloads.length, 1);
});

test('toPolicyObjects: Nodes: InternalIP, else ExternalIP; zone label; no IPv4 address is skipped', () => {
  const r = toPolicyObjects({
    services: [], endpointSlices: [], pods: [],
    nodes: [
      { metadata: { name: 'b', labels: { 'failure-domain.beta.kubernetes.io/zone': 'z-old' } }, status: { addresses: [{ type: 'Hostname', address: 'b' }, { type: 'ExternalIP', address: '198.51.100.2' }] } },
      { metadata: { name: 'a', labels: { 'topology.kubernetes.io/zone': 'z1' } }, status: { addresses: [{ type: 'ExternalIP', address: '198.51.100.1' }, { type: 'InternalIP', address: 'fd00::1' }, { type: 'InternalIP', address: '10.0.0.1' }] } },
      { metadata: { name: 'v6' }, status: { addresses: [{ type: 'InternalIP', address: 'fd00::2' }] } },
    ],
  });
  assert.deepEqual(r.nodes.map((n) => [n.metadata.name, n.spec]), [['a', { address: '10.0.0.1', zone: 'z1' }], ['b', { address: '198.51.100.2', zone: 'z-old' }]]);
  assert.deepEqual(r.skipped.map((s) => [s.kind, s.key]), [['Node', 'v6']]);
  assert.match(r.skipped[0]!.reason, /no IPv4 InternalIP or ExternalIP/);
});

test('toPolicyObjects: hostNetwork pods are plaintext backends at the node address, without identity', () => {
  const r = toPolicyObjects({
    services: [svc('ingress', { clusterIP: '10.96.1.7', selector: { app: 'a' }, ports: [{ name: 'web', port: 80, targetPort: 8080 }] })],
    endpointSlices: [],
    pods: [pod('host-a', { hostNetwork: true, ip: '192.168.56.11' }), pod('host-b', { hostNetwork: true, ip: '192.168.56.11' }), pod('meshed', { node: 'node-2', ip: '10.244.2.5' })],
    nodes: [
      { metadata: { name: 'node-1' }, status: { addresses: [{ type: 'InternalIP', address: '192.168.56.11' }] } },
      { metadata: { name: 'node-2' }, status: { addresses: [{ type: 'InternalIP', address: '192.168.56.12' }] } },
    ],
  }, () => 42n);
  const host = r.workloads.find((w) => w.metadata.name === 'host-a')!;
  assert.equal(host.spec.hostNetwork, true);
  assert.equal(host.metadata.annotations?.['weft.dev/cgroup-id'], undefined);
  const set = loadPolicyTexts(toPolicyTexts(r));
  assert.deepEqual(set.diagnostics.map(formatDiagnostic), [], 'two hostNetwork pods may share the node address');
  const snap = compile(set);
  const w = snap.workloads.find((x) => x.name === 'host-a')!;
  assert.equal(w.identity, '');
  assert.equal(w.hostNetwork, true);
  const ingress = snap.services.find((s) => s.key === 'ns/ingress')!;
  assert.deepEqual(ingress.endpoints.map((e) => [e.workload, e.address, e.hostNetwork ?? false, e.identity]), [
    ['ns/host-a', '192.168.56.11', true, ''], ['ns/host-b', '192.168.56.11', true, ''], ['ns/meshed', '10.244.2.5', false, 'spiffe://weft.local/ns/ns/sa/default'],
  ]);
  // node-1 has no local (meshed) workloads: nothing to issue a certificate for.
  const v1 = forNode(snap, 'node-1');
  assert.deepEqual(v1.localWorkloads, []);
  assert.deepEqual(v1.nodes, { 'node-1': { address: '192.168.56.11' }, 'node-2': { address: '192.168.56.12' } });
  // Seen from node-2, the remote hostNetwork backends need no mTLS hop, but the meshed
  // one is local: kernel. Seen from node-1, the meshed backend is remote: redirect.
  assert.equal(forNode(snap, 'node-2').datapath[0]!.mode, 'l4');
  assert.equal(v1.datapath[0]!.mode, 'redirect');
});

test('discovered objects load and compile with the policy engine: only ready pods are endpoints', () => {
  const fixture = (name: string): unknown[] => (JSON.parse(readFileSync(join(__dirname, 'fixtures', 'k8s', name), 'utf8')) as { items: unknown[] }).items;
  const discovered = toPolicyObjects({
    services: fixture('services.json') as V1Service[],
    endpointSlices: fixture('endpointslices.json') as V1EndpointSlice[],
    pods: fixture('pods.json') as V1Pod[],
  });
  const mesh = { file: 'mesh.yaml', text: 'apiVersion: weft.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec: {trustDomain: cluster.local}\n' };
  const texts = [mesh, ...toPolicyTexts(discovered)];
  assert.ok(texts.some((f) => f.file === 'kubernetes/Service/shop/catalog.yaml'));
  const set = loadPolicyTexts(texts);
  assert.deepEqual(set.diagnostics.map(formatDiagnostic), []);
  const snap = compile(set);
  const endpoints = Object.fromEntries(snap.services.map((s) => [s.key, s.endpoints.map((e) => e.workload)]));
  assert.deepEqual(endpoints, {
    'kube-system/kube-dns': [],
    'shop/catalog': ['shop/catalog-v1-7d9f8b6c5d-4xq2m'],       // v2 is not ready
    'shop/catalog-headless': ['shop/catalog-v1-7d9f8b6c5d-4xq2m'],
    'shop/frontend': ['shop/frontend-6b7c8d9e0f-abcde'],
    'shop/payments': ['shop/payments-0'],                       // publishNotReadyAddresses
  });
  const catalog = snap.services.find((s) => s.key === 'shop/catalog')!;
  assert.equal(catalog.vip, '10.96.0.20');
  assert.deepEqual(catalog.ports, [{ name: 'http', port: 80, targetPort: 0, targetPortName: 'http', protocol: 'HTTP' }]);
  assert.deepEqual(catalog.endpoints[0]!.ports, { http: 8080 }, 'the named targetPort resolved for this pod');
  const dns = snap.services.find((s) => s.key === 'kube-system/kube-dns')!;
  assert.deepEqual(dns.ports.map((p) => [p.name, p.port, p.protocol]), [['dns', 53, 'UDP'], ['dns-tcp', 53, 'TCP'], ['metrics', 9153, 'TCP']]);
  const headless = snap.services.find((s) => s.key === 'shop/catalog-headless')!;
  assert.equal(headless.headless, true);
  assert.equal(headless.vip, '');
  // kube-dns is in every view with both 53s; the headless Service is in none.
  const view = forNode(snap, 'node-1');
  assert.deepEqual(view.datapath.filter((d) => d.vip === '10.96.0.10').map((d) => `${d.port}/${d.protocol}`), ['53/tcp', '53/udp', '9153/tcp']);
  assert.equal(view.services.some((s) => s.key === 'shop/catalog-headless'), false);
  assert.equal(view.datapath.some((d) => d.service === 'shop/catalog-headless'), false);
  const v1 = snap.workloads.find((w) => w.key === 'shop/catalog-v1-7d9f8b6c5d-4xq2m')!;
  assert.equal(v1.identity, 'spiffe://cluster.local/ns/shop/sa/catalog');
  assert.equal(v1.node, 'node-1');
});
