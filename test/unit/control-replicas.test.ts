// The replicated control API's shared state against the fake API server (real
// resourceVersion / 409 semantics): Lease leader election (one leader, takeover after a
// crash only once the lease ran out on the survivor's clock, release on stop), the
// compare-and-swap SharedDocument (no lost updates under concurrency; "first node wins"
// binding), and the CA in a Secret: created once by the leader, loaded by followers,
// rotated by the leader on request, a request left by a crashed leader completed by its
// successor, certificates from either replica chaining to the same roots.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeApiServer } from '../lib/fake-apiserver';
import { KubeStateApi, httpTransport, isConflict, type Transport } from '../../agent/control/kube/api';
import { LeaderElector } from '../../agent/control/kube/lease';
import { SharedDocument, bindOnce } from '../../agent/control/kube/shared-document';
import { ReplicatedCa, CA_SECRET_NAME, ROTATE_ANNOTATION, ROTATED_ANNOTATION } from '../../agent/control/kube/replicated-ca';
import { createCsr, generateSigningKey } from '../../agent/identity/pki';
import { verifyChain } from '../../agent/identity/verify';
import { componentLogger } from '../../agent/telemetry/logger';

const NS = 'weft-system';
const log = componentLogger('test-replicas');

async function setup(t: { after(fn: () => unknown): void }) {
  const dir = mkdtempSync(join(tmpdir(), 'wt-ctlrep-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const server = await FakeApiServer.start({ listen: '127.0.0.1:0', dir: join(dir, 'api'), namespaces: ['default', NS] });
  t.after(() => server.close());
  const real = await httpTransport(server.kubeconfigPath!);
  /** A client whose connection can be cut: a replica that crashed or lost the network. */
  const client = () => {
    let up = true;
    const transport: Transport = (m, p, b) => (up ? real(m, p, b) : Promise.reject(new Error('connection refused (test: replica is down)')));
    return { api: new KubeStateApi(NS, transport), cut: () => { up = false; } };
  };
  return { server, client };
}

const until = async (pred: () => boolean | Promise<boolean>, ms: number, what: string) => {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

const TIMING = { leaseDurationMs: 1200, renewDeadlineMs: 800, retryPeriodMs: 150 };

test('Lease: one leader among three; a crashed leader is replaced only after the lease ran out; stop() releases', async (t) => {
  const { server, client } = await setup(t);
  const cs = ['a', 'b', 'c'].map((id) => ({ id, ...client() }));
  const electors = cs.map((c) => new LeaderElector(c.api, { name: 'weft-control', identity: c.id, ...TIMING }, log));
  t.after(() => Promise.all(electors.map((e) => e.stop())));
  await Promise.all(electors.map((e) => e.start()));
  await until(() => electors.filter((e) => e.isLeader()).length === 1, 20_000, 'one leader');
  // Stays one across several renewals.
  for (let i = 0; i < 10; i++) {
    assert.equal(electors.filter((e) => e.isLeader()).length, 1);
    await new Promise((r) => setTimeout(r, 100));
  }
  const leader = electors.find((e) => e.isLeader())!;
  const lease = server.store.get('leases', NS, 'weft-control') as { spec: { holderIdentity: string; leaseTransitions: number; renewTime: string } };
  assert.equal(lease.spec.holderIdentity, leader.identity);
  assert.match(lease.spec.renewTime, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/, 'MicroTime');

  // Crash: its API connection is cut, it can neither renew nor release.
  cs[electors.indexOf(leader)]!.cut();
  await new Promise((r) => setTimeout(r, 50)); // a renewal already in flight lands
  const lastRenew = Date.parse((server.store.get('leases', NS, 'weft-control') as { spec: { renewTime: string } }).spec.renewTime);
  const others = electors.filter((e) => e !== leader);
  await until(() => others.some((e) => e.isLeader()), 20_000, 'a successor');
  const tookOver = Date.now() - lastRenew;
  assert.ok(tookOver >= TIMING.leaseDurationMs, `successor waited out the lease from its last renewal (${tookOver} ms)`);
  await until(() => !leader.isLeader(), 20_000, 'the cut-off leader steps down after renewDeadline');
  assert.equal(others.filter((e) => e.isLeader()).length, 1);
  const next = others.find((e) => e.isLeader())!;
  const after = server.store.get('leases', NS, 'weft-control') as { spec: { holderIdentity: string; leaseTransitions: number } };
  assert.equal(after.spec.holderIdentity, next.identity);
  assert.ok(after.spec.leaseTransitions >= 1);

  // A clean stop releases (empty holder): the remaining candidate takes it on its next
  // attempt instead of waiting the lease out.
  const last = others.find((e) => e !== next)!;
  const lastLeads = until(() => last.isLeader(), 20_000, 'the last candidate leads');
  await next.stop();
  const released = server.store.get('leases', NS, 'weft-control') as { spec: { holderIdentity: string | null } };
  assert.ok(released.spec.holderIdentity === null || released.spec.holderIdentity === last.identity, `released (holder ${released.spec.holderIdentity})`);
  await lastLeads;
});

test('SharedDocument: concurrent compare-and-swap updates lose nothing; a stale write is a conflict; first binding wins', async (t) => {
  const { server, client } = await setup(t);
  const docs = Array.from({ length: 4 }, () => new SharedDocument<{ n: number }>(client().api, { resource: 'configmaps', name: 'counter', key: 'n.json' }, log));
  await Promise.all(Array.from({ length: 12 }, (_, i) => docs[i % 4]!.update((cur) => ({ value: { n: (cur?.n ?? 0) + 1 } }))));
  assert.equal((await docs[0]!.read()).value?.n, 12);
  const cm = server.store.get('configmaps', NS, 'counter') as { data: Record<string, string> };
  assert.deepEqual(JSON.parse(cm.data['n.json']!), { n: 12 });

  // A replace with the resourceVersion read before someone else wrote: 409.
  const { api } = client();
  const stale = (await api.get('configmaps', 'counter'))!;
  await docs[1]!.update((cur) => ({ value: { n: cur!.n + 1 } }));
  await assert.rejects(api.replace('configmaps', stale), (e: unknown) => isConflict(e));
  await assert.rejects(api.create('configmaps', { metadata: { name: 'counter' } }), (e: unknown) => isConflict(e));

  // The pattern for bootstrap-token binding: tokenHash → node, the first node wins.
  const bindings = Array.from({ length: 5 }, () => new SharedDocument<Record<string, string>>(client().api, { resource: 'secrets', name: 'weft-token-bindings', key: 'bindings.json' }, log));
  const winners = await Promise.all(bindings.map((d, i) => bindOnce(d, 'sha256:abc', `node-${i}`)));
  assert.equal(new Set(winners).size, 1, `every replica sees the same winner: ${winners.join(',')}`);
  const secret = server.store.get('secrets', NS, 'weft-token-bindings') as { type: string; data: Record<string, string> };
  assert.equal(secret.type, 'Opaque');
  assert.deepEqual(JSON.parse(Buffer.from(secret.data['bindings.json']!, 'base64').toString()), { 'sha256:abc': winners[0] });
  assert.equal(await bindOnce(bindings[0]!, 'sha256:abc', 'node-late'), winners[0], 'a later node gets the first binding');
  assert.equal(await bindOnce(bindings[1]!, 'sha256:def', 'node-late'), 'node-late');
});

test('CA in a Secret: created once by the leader, shared by followers, rotated by the leader; a crashed leader\'s pending rotation is completed by its successor', async (t) => {
  const { server, client } = await setup(t);
  const TD = 'replicas.test';
  const replicas = ['r1', 'r2'].map((id) => {
    const c = client();
    const elector = new LeaderElector(c.api, { name: 'weft-control', identity: id, ...TIMING }, log);
    const ca = new ReplicatedCa(c.api, elector, { trustDomain: TD, pollMs: 150 }, log);
    const bundles: string[][] = [];
    ca.on('bundle', (b) => bundles.push(b));
    return { id, elector, ca, bundles, cut: c.cut };
  });
  t.after(async () => { for (const r of replicas) { await r.ca.stop(); await r.elector.stop(); } });
  // The follower starts first and must wait: it never generates a root of its own.
  const follower = replicas[1]!;
  const loading = follower.ca.start();
  await new Promise((r) => setTimeout(r, 300));
  assert.throws(() => server.store.get('secrets', NS, CA_SECRET_NAME), /not found/);
  await replicas[0]!.elector.start();
  assert.ok(replicas[0]!.elector.isLeader());
  await follower.elector.start();
  const leaderCa = await replicas[0]!.ca.start();
  const followerCa = await loading;
  assert.deepEqual(followerCa.trustBundle(), leaderCa.trustBundle());
  assert.equal(leaderCa.trustBundle().length, 1);
  const secret = server.store.get('secrets', NS, CA_SECRET_NAME) as { type: string; data: Record<string, string> };
  assert.equal(secret.type, 'Opaque');
  assert.match(Buffer.from(secret.data['ca.json']!, 'base64').toString(), /PRIVATE KEY/, 'the key is in the Secret');
  assert.equal(server.store.list('configmaps', { namespace: NS }).items.length, 0, 'nothing in a ConfigMap');

  const id = `spiffe://${TD}/ns/shop/sa/web`;
  const sign = async (ca: typeof leaderCa) => {
    const r = await ca.signCsr(await createCsr(await generateSigningKey(), id), { allowedSpiffeIds: new Set([id]), ttlSeconds: 600 });
    return r.certChainPem;
  };
  const before = [await sign(leaderCa), await sign(followerCa)];
  const root0 = leaderCa.trustBundle();

  // Rotation requested; the leader crashes before it acts on it.
  replicas[0]!.cut();
  await replicas[0]!.ca.stop();
  const s = server.store.get('secrets', NS, CA_SECRET_NAME);
  server.store.replace('secrets', NS, CA_SECRET_NAME, { ...s, metadata: { ...s.metadata, annotations: { [ROTATE_ANNOTATION]: '1h' } } });
  await until(() => follower.elector.isLeader(), 20_000, 'the follower takes the lease');
  await until(() => followerCa.trustBundle().length === 2, 20_000, 'the new leader stages the rotation');
  const rotated = server.store.get('secrets', NS, CA_SECRET_NAME) as { metadata: { annotations: Record<string, string> } };
  assert.equal(rotated.metadata.annotations[ROTATE_ANNOTATION], undefined, 'request consumed');
  const outcome = JSON.parse(rotated.metadata.annotations[ROTATED_ANNOTATION]!) as { by: string; request: string };
  assert.deepEqual([outcome.by, outcome.request], ['r2', '1h']);
  assert.ok(follower.bundles.some((b) => b.length === 2), 'bundle change reported (pushed to agents)');
  // Staged: the old root still signs; certificates before and after chain to it, and
  // the bundle every agent gets holds both roots.
  const after = await sign(followerCa);
  for (const chain of [...before, after]) {
    verifyChain(chain, root0, { trustDomain: TD });
    verifyChain(chain, followerCa.trustBundle(), { trustDomain: TD });
  }
  assert.deepEqual(followerCa.trustBundle()[0], root0[0]);
});
