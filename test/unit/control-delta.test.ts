// Delta Sync over a real gRPC server with the real policy compiler, driven by hand: the
// first push carries every resource, a one-endpoint edit sends only the resources it
// changed, a NACKed delta is never taken as held (the next delta is computed against the
// ACKed state), removals are named, and a reconnect that lists the resources it holds is
// sent nothing but the version.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { unlinkSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { controlProto, controlServiceDefinition, encodeSyncResponse, PreEncodedSyncResponse, NODE_RESOURCES_TYPE_URL, RESEND_INITIAL_VERSIONS } from '../../agent/control/proto';
import { policyCompiler } from '../../agent/control/policy-adapter';
import type { PolicyCompiler } from '../../agent/control/policy-compiler';
import type { SyncResponse__Output } from '../../agent/control/generated/weft/control/v1/SyncResponse';
import type { SyncRequest } from '../../agent/control/generated/weft/control/v1/SyncRequest';
import { NODE_RESOURCE, resourceSetDigest } from '../../agent/policy/view-resources';
import { serviceYaml, nodeWorkloadsYaml, nodeName, type MeshShape } from '../bench/control-fixture';
import { startControl, tokenFor, type Harness } from '../lib/control-server';
import { waitFor } from '../lib/wait';

const SHAPE: MeshShape = { services: 6, endpoints: 12, nodes: 2 };

function openSync(t: { after: (fn: () => void) => void }, h: Harness, node: string) {
  const c = new (controlProto().weft.control.v1.Control)(h.address, grpc.credentials.createInsecure());
  const m = new grpc.Metadata();
  m.set('authorization', `Bearer ${tokenFor(node)}`);
  m.set('x-weft-node', node);
  const s = c.Sync(m);
  const status = new Promise<grpc.StatusObject>((r) => s.on('status', r));
  const pushes: SyncResponse__Output[] = [];
  const wakers = new Set<() => void>();
  s.on('data', (r: SyncResponse__Output) => { pushes.push(r); for (const w of wakers) w(); });
  s.on('error', () => undefined);
  t.after(() => { s.end(); s.cancel(); c.close(); });
  return {
    send: (r: SyncRequest) => s.write({ node, typeUrl: NODE_RESOURCES_TYPE_URL, ...r }),
    push: (n: number) => waitFor(() => pushes[n - 1], (w) => { wakers.add(w); return () => wakers.delete(w); }, 5000, `push #${n}`),
    pushes,
    status,
  };
}

const names = (p: SyncResponse__Output) => p.resources.map((r) => r.name).sort();

async function mesh(t: Parameters<typeof startControl>[0]): Promise<Harness> {
  const files: Record<string, string> = { 'services.yaml': serviceYaml(SHAPE) };
  for (let n = 0; n < SHAPE.nodes; n++) files[`workloads-${nodeName(n)}.yaml`] = nodeWorkloadsYaml(SHAPE, n);
  return startControl(t, { files, compiler: policyCompiler() as PolicyCompiler });
}

test('delta sync: everything first, then only what changed; a NACKed delta is not held; removals are named', async (t) => {
  const h = await mesh(t);
  const node = nodeName(0);
  const s = openSync(t, h, node);
  s.send({ versionInfo: '', responseNonce: '' });
  const p1 = await s.push(1);
  assert.equal(p1.typeUrl, NODE_RESOURCES_TYPE_URL);
  assert.equal(p1.versionInfo, h.server.store.snapshot()!.version);
  assert.deepEqual(names(p1), [NODE_RESOURCE, ...h.server.store.snapshot()!.services.map((x) => `service/${x.key}`)].sort());
  assert.deepEqual(p1.removedResources, []);
  s.send({ versionInfo: p1.versionInfo, responseNonce: p1.nonce });
  await waitFor(() => (h.server.agents.get(node)?.ackedVersion === p1.versionInfo ? true : undefined), (w) => h.server.sync.onAck(w), 5000, 'ACK of p1');

  // One endpoint of node-01 changes weight: this node gets that one service resource.
  h.write(`workloads-${nodeName(1)}.yaml`, nodeWorkloadsYaml(SHAPE, 1, 3));
  const p2 = await s.push(2);
  assert.equal(p2.resources.length, 1);
  const svc = p2.resources[0]!.name;
  assert.match(svc, /^service\/bench\/svc-\d+$/);
  assert.equal(JSON.parse(p2.resources[0]!.body.toString()).service.endpoints.find((e: { weight: number }) => e.weight === 4).node, nodeName(1));
  // NACK it: the server keeps what was ACKed, so the next delta carries that service again.
  s.send({ versionInfo: p1.versionInfo, responseNonce: p2.nonce, errorDetail: { code: 13, message: 'map full' } });
  await waitFor(() => (h.server.agents.get(node)?.lastNackReason === 'map full' ? true : undefined), (w) => { const i = setInterval(w, 10); return () => clearInterval(i); }, 5000, 'NACK recorded');
  assert.equal(h.server.agents.get(node)!.ackedVersion, p1.versionInfo);

  h.write(`workloads-${nodeName(1)}.yaml`, nodeWorkloadsYaml(SHAPE, 1, 7));
  const p3 = await s.push(3);
  assert.deepEqual(names(p3), [svc], 'the delta is against the ACKed state, which still has the old service');
  s.send({ versionInfo: p3.versionInfo, responseNonce: p3.nonce });
  await waitFor(() => (h.server.agents.get(node)?.ackedVersion === p3.versionInfo ? true : undefined), (w) => h.server.sync.onAck(w), 5000, 'ACK of p3');

  // node-01's workloads disappear: services that only they backed change, none is removed;
  // dropping the services file removes every service resource by name.
  unlinkSync(join(h.policies, `workloads-${nodeName(1)}.yaml`));
  const p4 = await s.push(4);
  assert.ok(p4.resources.length > 0 && p4.resources.every((r) => r.name.startsWith('service/')));
  assert.deepEqual(p4.removedResources, []);
  s.send({ versionInfo: p4.versionInfo, responseNonce: p4.nonce });
  await waitFor(() => (h.server.agents.get(node)?.ackedVersion === p4.versionInfo ? true : undefined), (w) => h.server.sync.onAck(w), 5000, 'ACK of p4');
  h.write('services.yaml', '');
  h.write(`workloads-${nodeName(0)}.yaml`, nodeWorkloadsYaml(SHAPE, 0).replace(/labels: \{app: svc-\d+\}/g, 'labels: {}'));
  const p5 = await s.push(5);
  assert.deepEqual([...p5.removedResources].sort(), names(p1).filter((n) => n !== NODE_RESOURCE));
  assert.deepEqual(names(p5), [NODE_RESOURCE], 'the local workloads lost their labels');
});

test('delta sync: a reconnect listing the resources it holds is sent only the version', async (t) => {
  const h = await mesh(t);
  const node = nodeName(1);
  const first = openSync(t, h, node);
  first.send({ versionInfo: '', responseNonce: '' });
  const p1 = await first.push(1);
  const held = Object.fromEntries(p1.resources.map((r) => [r.name, r.version]));

  const again = openSync(t, h, node);
  again.send({ versionInfo: p1.versionInfo, responseNonce: '', initialResourceVersions: held });
  const q1 = await again.push(1);
  assert.equal(q1.versionInfo, p1.versionInfo);
  assert.deepEqual(q1.resources, []);
  assert.deepEqual(q1.removedResources, []);

  // A stale resource in the hello is resent; one the view does not have is removed.
  const svc = Object.keys(held).find((n) => n.startsWith('service/'))!;
  const third = openSync(t, h, node);
  third.send({ versionInfo: p1.versionInfo, responseNonce: '', initialResourceVersions: { ...held, [svc]: 'old', 'service/bench/gone': 'x' } });
  const r1 = await third.push(1);
  assert.deepEqual(names(r1), [svc]);
  assert.deepEqual(r1.removedResources, ['service/bench/gone']);

  // One it lacks is sent; when the services go while it waits, it is told to remove only
  // what it holds (removing what it lacks would be NACKed).
  const { [svc]: _lacking, ...partial } = held;
  const fourth = openSync(t, h, node);
  fourth.send({ versionInfo: 'elsewhere', responseNonce: '', initialResourceVersions: partial });
  const f1 = await fourth.push(1);
  assert.deepEqual(names(f1), [svc]);
  assert.deepEqual(f1.removedResources, []);
  const fifth = openSync(t, h, node);
  h.write('services.yaml', '');
  await waitFor(() => (h.server.store.snapshot()!.services.length === 0 ? true : undefined), (w) => { const i = setInterval(w, 10); return () => clearInterval(i); }, 5000, 'services gone');
  fifth.send({ versionInfo: p1.versionInfo, responseNonce: '', initialResourceVersions: partial });
  const g1 = await fifth.push(1);
  assert.deepEqual([...g1.removedResources].sort(), Object.keys(partial).filter((n) => n !== NODE_RESOURCE).sort());
});

test('delta sync: oversized initial_resource_versions are refused with INVALID_ARGUMENT', async (t) => {
  const h = await mesh(t);
  const c = new (controlProto().weft.control.v1.Control)(h.address, grpc.credentials.createInsecure());
  t.after(() => c.close());
  const m = new grpc.Metadata();
  m.set('authorization', `Bearer ${tokenFor('node-00')}`);
  m.set('x-weft-node', 'node-00');
  const s = c.Sync(m);
  s.on('data', () => undefined);
  const st = new Promise<grpc.StatusObject>((r) => s.on('status', r));
  s.on('error', () => undefined);
  s.write({ node: 'node-00', typeUrl: NODE_RESOURCES_TYPE_URL, versionInfo: '', responseNonce: '', initialResourceVersions: { [`service/${'x'.repeat(700)}`]: 'v' } });
  assert.equal((await st).code, grpc.status.INVALID_ARGUMENT);
  assert.equal(h.server.agents.get('node-00'), undefined, 'nothing recorded');
});

test('delta sync: a reconnect giving the digest of what it holds resumes from it; any other digest is asked for the list', async (t) => {
  const h = await mesh(t);
  const node = nodeName(0);
  const first = openSync(t, h, node);
  first.send({ versionInfo: '', responseNonce: '' });
  const p1 = await first.push(1);
  const held = p1.resources.map((r) => [r.name, r.version] as const);
  assert.equal(resourceSetDigest(held), resourceSetDigest([...held].reverse()), 'order does not matter');

  const again = openSync(t, h, node);
  again.send({ versionInfo: p1.versionInfo, responseNonce: '', initialResourcesDigest: resourceSetDigest(held) });
  const q1 = await again.push(1);
  assert.equal(q1.versionInfo, p1.versionInfo);
  assert.deepEqual(q1.resources, []);
  assert.deepEqual(q1.removedResources, []);

  // One stale version: another digest, so the agent is asked to list what it holds.
  const stale = held.map(([n, v], i) => [n, i === 1 ? 'old' : v] as const);
  const third = openSync(t, h, node);
  third.send({ versionInfo: p1.versionInfo, responseNonce: '', initialResourcesDigest: resourceSetDigest(stale) });
  const st = await third.status;
  assert.equal(st.code, grpc.status.ABORTED);
  assert.equal(st.details, RESEND_INITIAL_VERSIONS);
  assert.equal((await h.server.metrics.digestMismatches.get()).values[0]?.value, 1);

  // A digest and a list together are refused.
  const fourth = openSync(t, h, node);
  fourth.send({ versionInfo: p1.versionInfo, responseNonce: '', initialResourcesDigest: resourceSetDigest(held), initialResourceVersions: Object.fromEntries(held) });
  assert.equal((await fourth.status).code, grpc.status.INVALID_ARGUMENT);
});

test('a pre-encoded delta push (encoded once, nonce in front) decodes exactly as the whole message encoded at once', () => {
  const plain = controlProto().weft.control.v1.Control.service.Sync;
  const served = controlServiceDefinition().Sync;
  const msg = {
    versionInfo: '0123456789abcdef', typeUrl: NODE_RESOURCES_TYPE_URL,
    trustBundle: ['-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n', 'second root'],
    resources: [
      { name: 'service/bench/svc-1', version: 'aaaa', body: Buffer.from('{"paths":[],"service":{}}') },
      { name: '~node', version: 'bbbb', body: Buffer.alloc(300_000, 0x61) },
    ],
    removedResources: ['service/bench/gone'],
  };
  // '' is written as an empty field; 200 bytes and a multi-byte character take a
  // two-byte length.
  for (const nonce of ['', 'abcd1234-1', 'n'.repeat(64), 'é'.repeat(100)]) {
    const whole = plain.responseSerialize({ ...msg, nonce });
    const pre = served.responseSerialize(new PreEncodedSyncResponse(encodeSyncResponse(msg), nonce));
    const decoded = plain.responseDeserialize(pre);
    assert.deepEqual(decoded, plain.responseDeserialize(whole), `nonce '${nonce}'`);
    assert.equal(decoded.nonce, nonce);
    assert.equal(decoded.resources[1]!.body.length, 300_000);
  }
  // Plain objects go through the loaded serializer unchanged.
  assert.deepEqual(served.responseSerialize({ ...msg, nonce: 'x' }), plain.responseSerialize({ ...msg, nonce: 'x' }));
});

test('delta sync: agents of different nodes sent the same change each get it with their own nonce, and ACK it', async (t) => {
  const h = await mesh(t);
  const a = openSync(t, h, nodeName(0));
  const b = openSync(t, h, nodeName(1));
  for (const s of [a, b]) {
    s.send({ versionInfo: '', responseNonce: '' });
    const p = await s.push(1);
    s.send({ versionInfo: p.versionInfo, responseNonce: p.nonce });
  }
  const acked = (node: string, v: string) => waitFor(() => (h.server.agents.get(node)?.ackedVersion === v ? true : undefined), (w) => h.server.sync.onAck(w), 5000, `ACK of ${v} by ${node}`);
  await acked(nodeName(0), a.pushes[0]!.versionInfo);
  await acked(nodeName(1), b.pushes[0]!.versionInfo);
  // node-01's workload changes weight: both get that one service; neither hosts it.
  h.write(`workloads-${nodeName(1)}.yaml`, nodeWorkloadsYaml(SHAPE, 1, 2));
  const [pa, pb] = [await a.push(2), await b.push(2)];
  assert.notEqual(pa.nonce, pb.nonce);
  assert.equal(pa.versionInfo, pb.versionInfo);
  assert.deepEqual(pa.resources.filter((r) => r.name !== NODE_RESOURCE), pb.resources.filter((r) => r.name !== NODE_RESOURCE));
  assert.ok(pa.resources.length >= 1);
  a.send({ versionInfo: pa.versionInfo, responseNonce: pa.nonce });
  b.send({ versionInfo: pb.versionInfo, responseNonce: pb.nonce });
  await acked(nodeName(0), pa.versionInfo);
  await acked(nodeName(1), pb.versionInfo);
});
