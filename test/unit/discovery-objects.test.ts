// Kubernetes → weft object conversion, case by case (no API server): protocols, names,
// readiness, named target ports, and what is skipped and why.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1EndpointSlice, V1Pod, V1Service } from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { READY_LABEL, portProtocol, toPolicyObjects, toPolicyTexts, workloadName } from '../../agent/discovery/kubernetes-objects';
import { compile, formatDiagnostic, loadPolicyTexts } from '../../agent/policy';

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

test('toPolicyObjects: named targetPort from EndpointSlices, else from pod container ports', () => {
  const slice: V1EndpointSlice = {
    metadata: { name: 'viaslice-abc', namespace: 'ns', labels: { 'kubernetes.io/service-name': 'viaslice' } },
    addressType: 'IPv4', endpoints: [], ports: [{ name: 'web', port: 8081 }],
  };
  const r = toPolicyObjects({
    services: [
      svc('viaslice', { clusterIP: '10.96.1.1', selector: { app: 'a' }, ports: [{ name: 'web', port: 80, targetPort: 'http' }] }),
      svc('viapod', { clusterIP: '10.96.1.2', selector: { app: 'a' }, ports: [{ name: 'web', port: 80, targetPort: 'http' }] }),
      svc('unresolved', { clusterIP: '10.96.1.3', selector: { app: 'a' }, ports: [{ name: 'web', port: 80, targetPort: 'admin' }, { name: 'ok', port: 81, targetPort: '9000' }] }),
    ],
    endpointSlices: [slice],
    pods: [pod('p', { ports: [{ name: 'http', containerPort: 8080 }] })],
  });
  const ports = Object.fromEntries(r.services.map((s) => [s.metadata.name, s.spec.ports.map((p) => p.targetPort)]));
  assert.deepEqual(ports, { viaslice: [8081], viapod: [8080], unresolved: [9000] });
  assert.deepEqual(r.skipped.map((s) => s.key), ['ns/unresolved']);
  assert.match(r.skipped[0]!.reason, /named targetPort 'admin'/);
});

test('toPolicyObjects: what is skipped, with reasons', () => {
  const r = toPolicyObjects({
    services: [
      svc('ext', { type: 'ExternalName', externalName: 'db.example.com' }),
      svc('headless', { clusterIP: 'None', selector: { app: 'a' }, ports: [{ port: 80 }] }),
      svc('manual', { clusterIP: '10.96.1.4', ports: [{ port: 80 }] }),
      svc('v6only', { clusterIP: 'fd00::10', clusterIPs: ['fd00::10'], selector: { app: 'a' }, ports: [{ port: 80 }] }),
      svc('sctp', { clusterIP: '10.96.1.5', selector: { app: 'a' }, ports: [{ port: 80, protocol: 'SCTP' }] }),
      svc('dual', { clusterIP: 'fd00::11', clusterIPs: ['fd00::11', '10.96.1.6'], selector: { app: 'a' }, ports: [{ port: 80 }] }),
    ],
    endpointSlices: [],
    pods: [
      pod('host', { hostNetwork: true }), pod('done', { phase: 'Succeeded' }), pod('unscheduled', { node: '' }),
      pod('noip', { ip: '' }), pod('v6', { ip: 'fd00::1' }), pod('fine'),
    ],
  });
  assert.deepEqual(r.services.map((s) => [s.metadata.name, s.spec.vip]), [['dual', '10.96.1.6']]);
  assert.deepEqual(r.workloads.map((w) => w.metadata.name), ['fine']);
  const reasons = Object.fromEntries(r.skipped.map((s) => [s.key, s.reason]));
  assert.match(reasons['ns/ext']!, /ExternalName/);
  assert.match(reasons['ns/headless']!, /headless/);
  assert.match(reasons['ns/manual']!, /no selector/);
  assert.match(reasons['ns/v6only']!, /IPv4/);
  assert.match(reasons['ns/sctp']!, /no usable ports/);
  assert.match(reasons['ns/host']!, /hostNetwork/);
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
  const p = pod('on-dotted-node', { node: 'ip-10-0-1-23.ec2.internal' });
  const r = toPolicyObjects({ services: [], endpointSlices: [], pods: [p, pod('fine')] });
  assert.deepEqual(r.workloads.map((w) => w.metadata.name), ['fine']);
  assert.equal(r.skipped.length, 1);
  assert.match(r.skipped[0]!.reason, /^not a valid weft Workload: \/spec\/node /);
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
    'shop/frontend': ['shop/frontend-6b7c8d9e0f-abcde'],
    'shop/payments': ['shop/payments-0'],                       // publishNotReadyAddresses
  });
  const catalog = snap.services.find((s) => s.key === 'shop/catalog')!;
  assert.equal(catalog.vip, '10.96.0.20');
  assert.deepEqual(catalog.ports, [{ name: 'http', port: 80, targetPort: 8080, protocol: 'HTTP' }]);
  const v1 = snap.workloads.find((w) => w.key === 'shop/catalog-v1-7d9f8b6c5d-4xq2m')!;
  assert.equal(v1.identity, 'spiffe://cluster.local/ns/shop/sa/catalog');
  assert.equal(v1.node, 'node-1');
});
