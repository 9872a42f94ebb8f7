// The control API over a real gRPC server on loopback: the xDS ACK/NACK state machine as
// the server sees it, and bad input (wrong or missing token, another node's name,
// malformed fields, oversized messages, unknown names) answered with the right status
// while nothing changes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import { controlProto, NODE_VIEW_TYPE_URL } from '../../agent/control/proto';
import type { ControlClient } from '../../agent/control/generated/weft/control/v1/Control';
import type { SyncResponse__Output } from '../../agent/control/generated/weft/control/v1/SyncResponse';
import type { SyncRequest } from '../../agent/control/generated/weft/control/v1/SyncRequest';
import type { StatusResponse__Output } from '../../agent/control/generated/weft/control/v1/StatusResponse';
import { startControl, TOKEN, NODE1_TOKEN, tokenFor, type Harness } from '../lib/control-server';
import { waitFor } from '../lib/wait';

function client(t: { after: (fn: () => void) => void }, h: Harness): ControlClient {
  const c = new (controlProto().weft.control.v1.Control)(h.address, grpc.credentials.createInsecure());
  t.after(() => c.close());
  return c;
}

function md(node: string | undefined, token: string | undefined): grpc.Metadata {
  const m = new grpc.Metadata();
  if (token !== undefined) m.set('authorization', `Bearer ${token}`);
  if (node !== undefined) m.set('x-weft-node', node);
  return m;
}

type Unary = (req: object, m: grpc.Metadata, cb: (e: grpc.ServiceError | null, r?: unknown) => void) => unknown;
function call<T>(c: ControlClient, method: keyof ControlClient, req: object, m: grpc.Metadata): Promise<T> {
  return new Promise((resolve, reject) => (c[method] as unknown as Unary).call(c, req, m, (e, r) => (e ? reject(e) : resolve(r as T))));
}

async function rejects(p: Promise<unknown>, code: status): Promise<grpc.ServiceError> {
  try { await p; } catch (e) {
    assert.equal((e as grpc.ServiceError).code, code, `expected ${status[code]}, got ${status[(e as grpc.ServiceError).code]}: ${(e as grpc.ServiceError).details}`);
    return e as grpc.ServiceError;
  }
  assert.fail(`expected ${status[code]}, the call succeeded`);
}

/** A hand-driven Sync stream: collects pushes and the final status. */
function openSync(c: ControlClient, m: grpc.Metadata) {
  const s = c.Sync(m);
  const pushes: SyncResponse__Output[] = [];
  const wakers = new Set<() => void>();
  let final: grpc.StatusObject | undefined;
  s.on('data', (r: SyncResponse__Output) => { pushes.push(r); for (const w of wakers) w(); });
  s.on('error', () => undefined);
  s.on('status', (st: grpc.StatusObject) => { final = st; for (const w of wakers) w(); });
  const sub = (w: () => void) => { wakers.add(w); return () => wakers.delete(w); };
  return {
    send: (r: SyncRequest) => s.write(r),
    push: (n: number) => waitFor(() => pushes[n - 1], sub, 5000, `push #${n}`),
    status: () => waitFor(() => final, sub, 5000, 'stream status'),
    pushes,
    end: () => { s.end(); s.cancel(); },
  };
}

function statusOf(c: ControlClient): Promise<StatusResponse__Output> {
  return call<StatusResponse__Output>(c, 'Status', {}, md('node-1', TOKEN));
}

test('sync: hello gets the current version, ACK makes it current, NACK never does', async (t) => {
  const h = await startControl(t);
  const c = client(t, h);
  const v1 = h.server.store.snapshot()!.version;
  const s = openSync(c, md('node-1', TOKEN));
  t.after(() => s.end());
  s.send({ node: 'node-1', versionInfo: '', responseNonce: '', typeUrl: NODE_VIEW_TYPE_URL });
  const p1 = await s.push(1);
  assert.equal(p1.versionInfo, v1);
  assert.equal(p1.typeUrl, NODE_VIEW_TYPE_URL);
  assert.equal(JSON.parse(p1.resource.toString()).node, 'node-1');
  s.send({ node: 'node-1', versionInfo: v1, responseNonce: p1.nonce });
  await waitFor(() => (h.server.agents.get('node-1')?.ackedVersion === v1 ? true : undefined), (w) => h.server.sync.onAck(w), 5000, 'ACK of v1');

  h.write('a.txt', 'two\n');
  const p2 = await s.push(2);
  assert.notEqual(p2.versionInfo, v1);
  // A stale request (answers push #1) must not be taken as an ACK of v2.
  s.send({ node: 'node-1', versionInfo: p2.versionInfo, responseNonce: p1.nonce });
  // NACK v2: the agent keeps v1.
  s.send({ node: 'node-1', versionInfo: v1, responseNonce: p2.nonce, errorDetail: { code: 13, message: 'map full' } });
  const st = await waitStatus(c, (x) => x.agents[0]?.lastNackReason === 'map full');
  assert.equal(st.agents[0]!.ackedVersion, v1, 'a NACKed version never becomes current');
  assert.equal(st.agents[0]!.sentVersion, p2.versionInfo);
  assert.equal(st.agents[0]!.lastNackVersion, p2.versionInfo);
  assert.equal(st.currentVersion, p2.versionInfo);
  assert.equal(st.agents[0]!.connected, true);
  assert.equal((await h.server.metrics.nacks.get()).values[0]!.value, 1);

  // The next change is pushed again and can be ACKed.
  h.write('a.txt', 'three\n');
  const p3 = await s.push(3);
  s.send({ node: 'node-1', versionInfo: p3.versionInfo, responseNonce: p3.nonce });
  await waitStatus(c, (x) => x.agents[0]?.ackedVersion === p3.versionInfo);
});

async function waitStatus(c: ControlClient, pred: (s: StatusResponse__Output) => boolean, ms = 5000): Promise<StatusResponse__Output> {
  const end = Date.now() + ms;
  for (;;) {
    const s = await statusOf(c);
    if (pred(s)) return s;
    if (Date.now() > end) assert.fail(`status never matched: ${JSON.stringify(s)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('sync: an agent that reconnects with the current version is confirmed with the same version', async (t) => {
  const h = await startControl(t);
  const c = client(t, h);
  const v1 = h.server.store.snapshot()!.version;
  const s = openSync(c, md('node-2', tokenFor('node-2')));
  t.after(() => s.end());
  s.send({ node: 'node-2', versionInfo: v1, responseNonce: '' });
  const p1 = await s.push(1);
  assert.equal(p1.versionInfo, v1);
  const st = await statusOf(c);
  assert.equal(st.agents.find((a) => a.node === 'node-2')!.ackedVersion, v1);
  h.write('a.txt', 'changed\n');
  const p2 = await s.push(2);
  assert.notEqual(p2.versionInfo, v1);
});

test('a broken policy change is rejected whole: old version keeps serving, Status says why', async (t) => {
  const h = await startControl(t);
  const c = client(t, h);
  const v1 = h.server.store.snapshot()!.version;
  h.write('b.txt', 'fine\nerror: unknown service shop/nope\n');
  const st = await waitStatus(c, (x) => x.lastRejection !== null);
  assert.equal(st.currentVersion, v1);
  assert.deepEqual(st.lastRejection!.diagnostics, ['b.txt:2:1: unknown service shop/nope']);
  const metrics = await h.server.metrics.registry.metrics();
  assert.match(metrics, /weft_control_policy_rejections_total 1/);
  assert.match(metrics, /weft_control_last_reload_success 0/);
  assert.match(metrics, new RegExp(`weft_policy_snapshot_version\\{version="${v1}"\\} 1`));
  h.write('b.txt', 'fine\n');
  await waitStatus(c, (x) => x.currentVersion !== v1);
  assert.match(await h.server.metrics.registry.metrics(), /weft_control_last_reload_success 1/);
});

test('bad credentials: UNAUTHENTICATED everywhere, PERMISSION_DENIED for another node', async (t) => {
  const h = await startControl(t);
  const c = client(t, h);
  const before = await statusOf(c);
  for (const m of [md('node-1', undefined), md('node-1', 'wrong-token-wrong-token-wrong'), md(undefined, TOKEN)]) {
    await rejects(call(c, 'Status', {}, m), status.UNAUTHENTICATED);
    await rejects(call(c, 'RegisterWorkload', { name: 'a', namespace: 'x', address: '10.0.0.1', node: 'node-1' }, m), status.UNAUTHENTICATED);
    const s = openSync(c, m);
    s.send({ node: 'node-1' });
    assert.equal((await s.status()).code, status.UNAUTHENTICATED);
    assert.equal(s.pushes.length, 0, 'an unauthenticated client reads nothing');
  }
  // node-1's own token used for node-2.
  await rejects(call(c, 'Status', {}, md('node-2', NODE1_TOKEN)), status.PERMISSION_DENIED);
  // A valid caller claiming another node in the request body.
  const s = openSync(c, md('node-1', TOKEN));
  s.send({ node: 'node-2' });
  assert.equal((await s.status()).code, status.PERMISSION_DENIED);
  assert.equal(s.pushes.length, 0);
  await rejects(call(c, 'RegisterWorkload', { name: 'a', namespace: 'x', address: '10.0.0.1', node: 'node-2' }, md('node-1', TOKEN)), status.PERMISSION_DENIED);
  const after = await statusOf(c);
  assert.deepEqual({ ...after, agents: [] }, { ...before, agents: [] });
  assert.equal(after.agents.length, 0, 'no refused stream is recorded as an agent');
});

test('malformed and oversized input: INVALID_ARGUMENT / RESOURCE_EXHAUSTED / NOT_FOUND, nothing changes', async (t) => {
  const h = await startControl(t);
  const c = client(t, h);
  const m = md('node-1', TOKEN);
  const before = await statusOf(c);
  const ok = { name: 'web-0', namespace: 'shop', address: '10.250.0.5', node: 'node-1', serviceAccount: 'web', labels: { app: 'web' } };
  for (const bad of [
    { ...ok, address: 'not-an-ip' },
    { ...ok, name: 'Bad_Name' },
    { ...ok, namespace: '' },
    { ...ok, labels: { 'bad key!': 'x' } },
    { ...ok, cgroupId: '-1' },
    { ...ok, cgroupId: '18446744073709551616' },
    { ...ok, node: 'NODE 1' },
  ]) await rejects(call(c, 'RegisterWorkload', bad, m), status.INVALID_ARGUMENT);
  await rejects(call(c, 'RegisterWorkload', { ...ok, labels: { big: 'x'.repeat(400 * 1024) } }, m), status.RESOURCE_EXHAUSTED);
  await rejects(call(c, 'SignCertificate', { csrPem: 'x'.repeat(300 * 1024) }, m), status.RESOURCE_EXHAUSTED);
  await rejects(call(c, 'DeregisterWorkload', { name: 'ghost', namespace: 'shop', node: 'node-1' }, m), status.NOT_FOUND);
  await rejects(call(c, 'Status', { node: 'no-such-node' }, m), status.NOT_FOUND);
  // A registration the compiler refuses is undone.
  await rejects(call(c, 'RegisterWorkload', { ...ok, name: 'conflict' }, m), status.FAILED_PRECONDITION);
  // Sync: unknown type, missing node.
  for (const req of [{ node: 'node-1', typeUrl: 'type.example/Other' }, { node: '' }, { node: 'node-1', versionInfo: 'v'.repeat(1000) }]) {
    const s = openSync(c, m);
    s.send(req);
    assert.equal((await s.status()).code, status.INVALID_ARGUMENT, JSON.stringify(req).slice(0, 80));
    assert.equal(s.pushes.length, 0);
  }
  const after = await statusOf(c);
  assert.deepEqual(after, before);
  assert.equal(h.server.registrations.size, 0);

  // The good registration goes through, and only its node can remove it.
  const v = await call<{ versionInfo: string }>(c, 'RegisterWorkload', ok, m);
  assert.notEqual(v.versionInfo, before.currentVersion);
  await rejects(call(c, 'RegisterWorkload', { ...ok, node: 'node-2' }, md('node-2', tokenFor('node-2'))), status.PERMISSION_DENIED);
  await rejects(call(c, 'DeregisterWorkload', { name: 'web-0', namespace: 'shop', node: 'node-2' }, md('node-2', tokenFor('node-2'))), status.PERMISSION_DENIED);
  await call(c, 'DeregisterWorkload', { name: 'web-0', namespace: 'shop', node: 'node-1' }, m);
  assert.equal((await statusOf(c)).currentVersion, before.currentVersion);
});

test('registrations persist across a control API restart', async (t) => {
  const h = await startControl(t);
  const c = client(t, h);
  await call(c, 'RegisterWorkload', { name: 'db-0', namespace: 'shop', address: '10.250.0.9', node: 'node-1', cgroupId: '4242' }, md('node-1', TOKEN));
  const v = h.server.store.snapshot()!.version;
  await h.server.stop();
  const h2 = await startControl(t, { policies: h.policies, stateDir: h.stateDir });
  assert.equal(h2.server.registrations.get('shop/db-0')?.cgroupId, '4242');
  assert.equal(h2.server.store.snapshot()!.version, v);
});
