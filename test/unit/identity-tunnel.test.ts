// The HBONE tunnel on loopback (no privileges): outbound pool -> inbound 15008 -> local
// echo workload, with the CA issuing real SVIDs. The netns version with packet capture
// is test/e2e/mtls.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server, type Socket, type AddressInfo } from 'node:net';
import { createSecureContext } from 'node:tls';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { Registry } from 'prom-client';
import { CertificateAuthority } from '../../agent/identity/ca';
import { IdentityManager } from '../../agent/identity/manager';
import { createCsr, generateSigningKey, privateKeyToPem, TLS13 } from '../../agent/identity/pki';
import { nodeSpiffeId } from '../../agent/identity/spiffe';
import { startTunnel, PolicyAuthorizer, type Tunnel } from '../../agent/proxy/tunnel';
import { TunnelPool } from '../../agent/proxy/tunnel/pool';
import { Outbound } from '../../agent/proxy/tunnel/outbound';
import type { TunnelStream } from '../../agent/proxy/tunnel/stream';
import { isWeftError } from '../../agent/lib/errors';
import type { AuthorizationPolicyState } from '../../agent/policy/snapshot';
import { signedManager } from '../lib/identities';

const TD = 'cluster.local';
const FRONTEND = 'spiffe://cluster.local/ns/shop/sa/frontend';
const CATALOG = 'spiffe://cluster.local/ns/shop/sa/catalog';
const NODE_A = nodeSpiffeId(TD, 'a');
const NODE_B = nodeSpiffeId(TD, 'b');

interface Fixture {
  ca: CertificateAuthority;
  caDir: string;
  echo: Server;
  echoPort: number;
  accepted: number;
  a: Tunnel; b: Tunnel;
  regB: Registry;
  authzB: PolicyAuthorizer;
}

function echoServer(f: { accepted: number }): Promise<Server> {
  const s = createServer({ allowHalfOpen: true }, (c: Socket) => { f.accepted++; c.pipe(c); c.on('error', () => {}); });
  return new Promise((r) => s.listen(0, '127.0.0.1', () => r(s)));
}

const manager = (ca: CertificateAuthority, ids: string[]) => signedManager(ca, TD, ids);

async function setup(t: { after: (fn: () => unknown) => void }): Promise<Fixture> {
  const caDir = await mkdtemp(join(tmpdir(), 'weft-tun-'));
  t.after(() => rm(caDir, { recursive: true, force: true }));
  const ca = await CertificateAuthority.loadOrCreate(caDir, { trustDomain: TD });
  const f = { accepted: 0 } as Fixture;
  f.ca = ca; f.caDir = caDir;
  f.echo = await echoServer(f);
  t.after(() => f.echo.close());
  f.echoPort = (f.echo.address() as AddressInfo).port;
  const mA = await manager(ca, [NODE_A, FRONTEND]);
  const mB = await manager(ca, [NODE_B, CATALOG]);
  t.after(() => { mA.close(); mB.close(); });
  f.regB = new Registry();
  f.authzB = new PolicyAuthorizer();
  const lookupB = (ip: string, port: number) => (ip === '127.0.0.1' && port === f.echoPort
    ? { key: 'shop/catalog-0', name: 'catalog-0', namespace: 'shop', principal: CATALOG, service: 'shop/catalog' } : undefined);
  f.a = await startTunnel({ identity: mA, nodeIdentity: NODE_A, lookup: () => undefined, authorizer: new PolicyAuthorizer(), registry: new Registry(), host: '127.0.0.1', port: 0 });
  f.b = await startTunnel({ identity: mB, nodeIdentity: NODE_B, lookup: lookupB, authorizer: f.authzB, registry: f.regB, host: '127.0.0.1', port: 0 });
  t.after(() => Promise.all([f.a.close(), f.b.close()]));
  return f;
}

async function roundTrip(d: Duplex, payload: string): Promise<string> {
  const chunks: Buffer[] = [];
  d.on('data', (c: Buffer) => chunks.push(c));
  d.end(payload);
  await once(d, 'end');
  return Buffer.concat(chunks).toString();
}

const nodeB = (f: Fixture) => ({ host: '127.0.0.1', port: f.b.address.port });

async function metricValues(reg: Registry, name: string) {
  return (await reg.getSingleMetric(name)!.get()).values;
}

test('tunnel: many connections multiplexed on one pooled mTLS session; metrics name the caller', async (t) => {
  const f = await setup(t);
  for (let i = 0; i < 20; i++) {
    const d = await f.a.outbound.open({ sourceIdentity: FRONTEND, sourceWorkload: 'frontend-0', nodeAddress: nodeB(f), target: { ip: '127.0.0.1', port: f.echoPort } });
    assert.equal(await roundTrip(d, `hello ${i}`), `hello ${i}`);
  }
  // Concurrent opens share the session too.
  const many = await Promise.all(Array.from({ length: 30 }, () =>
    f.a.outbound.open({ sourceIdentity: FRONTEND, nodeAddress: nodeB(f), target: { ip: '127.0.0.1', port: f.echoPort } })));
  assert.deepEqual(await Promise.all(many.map((d, i) => roundTrip(d, `c${i}`))), many.map((_, i) => `c${i}`));
  assert.equal(f.a.pool.handshakes, 1, 'one handshake for 50 connections');
  assert.equal(f.accepted, 50);

  const opened = await metricValues(f.regB, 'weft_tcp_connections_opened_total');
  assert.equal(opened.length, 2, 'with and without the source workload label');
  for (const v of opened) {
    assert.equal(v.labels.source_principal, FRONTEND);
    assert.equal(v.labels.reporter, 'destination');
    assert.equal(v.labels.connection_security_policy, 'mutual_tls');
    assert.equal(v.labels.destination_workload, 'catalog-0');
    assert.equal(v.labels.source_namespace, 'shop');
  }
  assert.equal(opened.find((v) => v.labels.source_workload === 'frontend-0')?.value, 20);
  const received = await metricValues(f.regB, 'weft_tcp_received_bytes_total');
  const expectBytes = Array.from({ length: 20 }, (_, i) => `hello ${i}`.length).reduce((a, b) => a + b, 0);
  assert.equal(received.find((v) => v.labels.source_workload === 'frontend-0')?.value, expectBytes);
});

test('tunnel: authorization policy refuses before the upstream connection is made', async (t) => {
  const f = await setup(t);
  const allowOnly = (principal: string): AuthorizationPolicyState => ({
    key: 'shop/catalog-allow', action: 'ALLOW', workloads: ['shop/catalog-0'], l7: false,
    rules: [{ from: [{ principals: [principal], notPrincipals: [], namespaces: [], notNamespaces: [], ipBlocks: [], notIpBlocks: [] }], to: [], when: [] }],
  });
  f.authzB.update([allowOnly('cluster.local/ns/shop/sa/checkout')]);
  const req = { sourceIdentity: FRONTEND, nodeAddress: nodeB(f), target: { ip: '127.0.0.1', port: f.echoPort } };
  await assert.rejects(f.a.outbound.open(req), (e) => isWeftError(e, 'WEFT_ERR_PERMISSION'));
  assert.equal(f.accepted, 0, 'nothing reached the workload');
  const denied = await metricValues(f.regB, 'weft_tcp_connections_denied_total');
  assert.deepEqual(denied.map((v) => [v.labels.source_principal, v.labels.reason, v.value]), [[FRONTEND, 'policy', 1]]);
  // Same rules on the same-node path.
  await assert.rejects(f.b.local.open({ sourcePrincipal: FRONTEND, target: req.target }), (e) => isWeftError(e, 'WEFT_ERR_PERMISSION'));
  assert.equal(f.accepted, 0);

  f.authzB.update([allowOnly('cluster.local/ns/shop/sa/frontend')]);
  assert.equal(await roundTrip(await f.a.outbound.open(req), 'ok'), 'ok');
  const local = await f.b.local.open({ sourcePrincipal: FRONTEND, target: req.target });
  assert.equal(await roundTrip(local, 'local'), 'local');
  const opened = await metricValues(f.regB, 'weft_tcp_connections_opened_total');
  assert.deepEqual(opened.map((v) => v.labels.connection_security_policy).sort(), ['mutual_tls', 'none']);
});

test('tunnel: CONNECT to an address that is not a local workload is refused (no open relay)', async (t) => {
  const f = await setup(t);
  const other = await echoServer({ accepted: 0 });
  t.after(() => other.close());
  const port = (other.address() as AddressInfo).port;
  await assert.rejects(f.a.outbound.open({ sourceIdentity: FRONTEND, nodeAddress: nodeB(f), target: { ip: '127.0.0.1', port } }),
    (e) => isWeftError(e, 'WEFT_ERR_PERMISSION'));
  const denied = await metricValues(f.regB, 'weft_tcp_connections_denied_total');
  assert.deepEqual(denied.map((v) => v.labels.reason), ['not_local_workload']);
});

test('tunnel: client certificates from another CA, expired, or of another trust domain are refused', async (t) => {
  const f = await setup(t);
  const key = await generateSigningKey();
  const keyPem = await privateKeyToPem(key.privateKey);
  const clientWith = (certChainPem: string[]) => {
    const ctx = createSecureContext({ key: keyPem, cert: certChainPem.join(''), ca: f.ca.trustBundle(), ...TLS13 });
    const pool = new TunnelPool({ contextFor: () => ctx, trustDomain: TD });
    t.after(() => pool.close());
    return pool.openTunnel({ sourceIdentity: FRONTEND, nodeAddress: nodeB(f), target: { ip: '127.0.0.1', port: f.echoPort } });
  };
  const sign = async (ca: CertificateAuthority, id: string) =>
    (await ca.signCsr(await createCsr(key, id), { allowedSpiffeIds: new Set([id]), ttlSeconds: 60 })).certChainPem;

  const otherDir = await mkdtemp(join(tmpdir(), 'weft-tun-other-'));
  t.after(() => rm(otherDir, { recursive: true, force: true }));
  const foreign = await CertificateAuthority.loadOrCreate(otherDir, { trustDomain: TD });
  const expired = await CertificateAuthority.loadOrCreate(f.caDir, { trustDomain: TD, clock: () => Date.now() - 3600_000 });
  const evilId = 'spiffe://evil.local/ns/shop/sa/frontend';
  const evil = await CertificateAuthority.loadOrCreate(f.caDir, { trustDomain: 'evil.local' });

  const cases: [string, string[], string][] = [
    ['another CA', await sign(foreign, FRONTEND), 'tls_handshake'],
    ['expired', await sign(expired, FRONTEND), 'tls_handshake'],
    ['wrong trust domain', await sign(evil, evilId), 'unauthenticated'],
  ];
  for (const [name, chain, reason] of cases) {
    await assert.rejects(clientWith(chain), (e) => isWeftError(e, 'WEFT_ERR_UNAVAILABLE'), name);
    const denied = await metricValues(f.regB, 'weft_tcp_connections_denied_total');
    assert.ok(denied.some((v) => v.labels.reason === reason && v.value >= 1), `${name}: counted as ${reason}`);
  }
  assert.equal(f.accepted, 0, 'nothing reached the workload');
  // The good certificate from the same key material works, so the refusals were the certs.
  assert.equal(await roundTrip(await clientWith(await sign(f.ca, FRONTEND)), 'fine'), 'fine');
});

test('tunnel: without a certificate, fail-closed refuses and fail-open goes plaintext', async (t) => {
  const f = await setup(t);
  for (const failMode of ['closed', 'open'] as const) {
    const m = new IdentityManager({ trustDomain: TD, failMode, retryInitialMs: 60_000, sign: async () => { throw new Error('CA unreachable'); } });
    t.after(() => m.close());
    assert.equal(await m.add(FRONTEND), false);
    const pool = new TunnelPool({ contextFor: (id) => m.secureContextFor(id), trustDomain: TD });
    t.after(() => pool.close());
    const out = new Outbound({ pool, local: f.b.local, failMode, hasCertificate: (id) => m.tlsMaterial(id) !== null });
    const req = { sourceIdentity: FRONTEND, nodeAddress: nodeB(f), target: { ip: '127.0.0.1', port: f.echoPort } };
    if (failMode === 'closed') {
      await assert.rejects(out.open(req), (e) => isWeftError(e, 'WEFT_ERR_IDENTITY'));
      assert.equal(f.accepted, 0);
    } else {
      assert.equal(await roundTrip(await out.open(req), 'plain'), 'plain');
      assert.equal(f.accepted, 1, 'reached the backend directly, without the tunnel');
      assert.equal(pool.handshakes, 0);
    }
  }
});

test('tunnel: the outbound side accepts only a node identity (or the expected one) as tunnel server', async (t) => {
  const f = await setup(t);
  // A 15008 listener presenting a workload's certificate, as a thief of that key could.
  const mC = await manager(f.ca, [CATALOG]);
  t.after(() => mC.close());
  const impostor = await startTunnel({ identity: mC, nodeIdentity: CATALOG, lookup: () => undefined, authorizer: new PolicyAuthorizer(), registry: new Registry(), host: '127.0.0.1', port: 0 });
  t.after(() => impostor.close());
  const target = { ip: '127.0.0.1', port: f.echoPort };
  await assert.rejects(f.a.outbound.open({ sourceIdentity: FRONTEND, nodeAddress: { host: '127.0.0.1', port: impostor.address.port }, target }),
    (e) => isWeftError(e, 'WEFT_ERR_UNAVAILABLE'));
  await assert.rejects(f.a.outbound.open({ sourceIdentity: FRONTEND, nodeAddress: { ...nodeB(f), identity: NODE_A }, target }),
    (e) => isWeftError(e, 'WEFT_ERR_UNAVAILABLE'), 'a node identity other than the expected one');
  assert.equal(await roundTrip(await f.a.outbound.open({ sourceIdentity: FRONTEND, nodeAddress: { ...nodeB(f), identity: NODE_B }, target }), 'x'), 'x');
});

test('tunnel: a pooled session that died under a request is replaced without failing the request', async (t) => {
  const f = await setup(t);
  const target = { ip: '127.0.0.1', port: f.echoPort };
  const first = await f.a.outbound.open({ sourceIdentity: FRONTEND, nodeAddress: nodeB(f), target }) as TunnelStream;
  assert.equal(await roundTrip(first, 'one'), 'one');
  // The pooled session's socket dies; the pool has not seen it close yet (that event
  // comes later).
  first.connection.sock.destroy();
  assert.equal(await roundTrip(await f.a.outbound.open({ sourceIdentity: FRONTEND, nodeAddress: nodeB(f), target }), 'two'), 'two');
  assert.equal(f.a.pool.handshakes, 2);
});
