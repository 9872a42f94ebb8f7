// The control API over TLS: the serving certificate comes from the mesh CA and carries
// the control API's SPIFFE ID; agents bootstrap with a token and then authenticate with
// their node certificate. What must fail: a client trusting another CA, a plaintext
// client, a node certificate speaking for another node, a workload certificate, an
// expired or foreign certificate without a token.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import { controlProto } from '../../agent/control/proto';
import { ServingIdentity, controlSpiffeId } from '../../agent/control/serving-cert';
import { CertificateAuthority } from '../../agent/identity/ca';
import { createCsr, generateSigningKey, privateKeyToPem } from '../../agent/identity/pki';
import { nodeSpiffeId } from '../../agent/identity/spiffe';
import { SyncClient, checkControlIdentity, controlCredentials, type ClientCertificate } from '../../agent/sync/client';
import { startControl, silent, TOKEN, NODE1_TOKEN, tokenFor, type Harness } from '../lib/control-server';
import { waitFor } from '../lib/wait';

const TD = 'test.local';

function tmp(t: TestContext, prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

async function issue(ca: CertificateAuthority, id: string, ttlSeconds = 600): Promise<ClientCertificate> {
  const key = await generateSigningKey();
  const out = await ca.signCsr(await createCsr(key, id), { allowedSpiffeIds: new Set([id]), ttlSeconds });
  return { key: await privateKeyToPem(key.privateKey), cert: out.certChainPem.join('') };
}

/** Status with the given transport credentials and metadata: 'OK' or the status name. */
async function statusCall(address: string, creds: grpc.ChannelCredentials, md: Record<string, string>): Promise<string> {
  const c = new (controlProto().weft.control.v1.Control)(address, creds);
  const m = new grpc.Metadata();
  for (const [k, v] of Object.entries(md)) m.set(k, v);
  try {
    return await new Promise<string>((resolve) => c.Status({}, m, { deadline: Date.now() + 5000 }, (e) => resolve(e ? status[e.code] as string : 'OK')));
  } finally { c.close(); }
}

async function registerAs(address: string, creds: grpc.ChannelCredentials, node: string, md: Record<string, string>): Promise<string> {
  const c = new (controlProto().weft.control.v1.Control)(address, creds);
  const m = new grpc.Metadata();
  for (const [k, v] of Object.entries(md)) m.set(k, v);
  try {
    return await new Promise<string>((resolve) => c.RegisterWorkload({ node, name: 'w', namespace: 'shop', serviceAccount: 'web', address: '10.250.0.9' }, m, { deadline: Date.now() + 5000 },
      (e) => resolve(e ? status[e.code] as string : 'OK')));
  } finally { c.close(); }
}

async function tlsControl(t: TestContext): Promise<Harness & { ca: CertificateAuthority; bundle: string }> {
  const h = await startControl(t, { tls: true });
  assert.ok(h.ca && h.bundleFile);
  const bundle = readFileSync(h.bundleFile, 'utf8');
  assert.equal(bundle, h.ca.trustBundle().join(''), 'the bundle file is the CA trust bundle');
  return { ...h, ca: h.ca, bundle };
}

test('serving certificate: TLS 1.3, the control SPIFFE ID, chains to the bundle; wrong CA and plaintext fail', async (t) => {
  const h = await tlsControl(t);
  const sock = connect({ host: '127.0.0.1', port: h.server.port, ca: h.bundle, checkServerIdentity: () => undefined, ALPNProtocols: ['h2'] });
  await new Promise<void>((resolve, reject) => { sock.once('secureConnect', resolve); sock.once('error', reject); });
  const peer = new X509Certificate(sock.getPeerCertificate().raw);
  assert.equal(sock.getProtocol(), 'TLSv1.3');
  assert.equal(sock.authorized, true, 'verifies against the bundle the server wrote');
  sock.destroy();
  assert.match(peer.subjectAltName ?? '', new RegExp(`URI:${controlSpiffeId(TD).replace(/[/.]/g, '\\$&')}$`));
  assert.equal(checkControlIdentity('127.0.0.1', { raw: peer.raw }), undefined);

  assert.equal(await statusCall(h.address, controlCredentials(h.bundle), { authorization: `Bearer ${TOKEN}`, 'x-weft-node': 'node-1' }), 'OK', 'token over TLS');
  const other = await CertificateAuthority.loadOrCreate(tmp(t, 'wt-ctl-other-'), { trustDomain: TD });
  assert.equal(await statusCall(h.address, controlCredentials(other.trustBundle().join('')), { authorization: `Bearer ${TOKEN}`, 'x-weft-node': 'node-1' }), 'UNAVAILABLE', 'server from another CA');
  assert.equal(await statusCall(h.address, grpc.credentials.createInsecure(), { authorization: `Bearer ${TOKEN}`, 'x-weft-node': 'node-1' }), 'UNAVAILABLE', 'plaintext client');
  assert.equal(await statusCall(h.address, controlCredentials(h.bundle), {}), 'UNAUTHENTICATED', 'no credentials at all');

  // A server certificate from the right CA but for another identity is not the control API.
  const node = new X509Certificate((await issue(h.ca, nodeSpiffeId(TD, 'node-1'))).cert);
  assert.match(String(checkControlIdentity('127.0.0.1', { raw: node.raw })), /not the control API/);
});

test('client certificates: a node SVID replaces the token; other nodes, workloads, expired and foreign certificates do not', async (t) => {
  const h = await tlsControl(t);
  const node1 = await issue(h.ca, nodeSpiffeId(TD, 'node-1'));
  const as = (c: ClientCertificate) => controlCredentials(h.bundle, c);

  assert.equal(await statusCall(h.address, as(node1), {}), 'OK', 'node certificate, no token, no node header');
  assert.equal(await statusCall(h.address, as(node1), { 'x-weft-node': 'node-1' }), 'OK');
  assert.equal(await statusCall(h.address, as(node1), { 'x-weft-node': 'node-2' }), 'PERMISSION_DENIED', 'header names another node');
  assert.equal(await statusCall(h.address, as(node1), { 'x-weft-node': 'node-2', authorization: `Bearer ${TOKEN}` }), 'PERMISSION_DENIED', 'a token does not widen a certificate');
  assert.equal(await registerAs(h.address, as(node1), 'node-2', {}), 'PERMISSION_DENIED', 'body names another node');
  assert.equal(await registerAs(h.address, as(node1), 'node-1', {}), 'OK');

  const workload = await issue(h.ca, `spiffe://${TD}/ns/shop/sa/web`);
  assert.equal(await statusCall(h.address, as(workload), {}), 'UNAUTHENTICATED', 'workload SVID');
  assert.equal(await statusCall(h.address, as(workload), { authorization: `Bearer ${TOKEN}`, 'x-weft-node': 'node-1' }), 'UNAUTHENTICATED', 'workload SVID, even with a token');
  const control = await issue(h.ca, controlSpiffeId(TD));
  assert.equal(await statusCall(h.address, as(control), {}), 'UNAUTHENTICATED', 'the control API identity is not a node');

  // Same root, clock an hour back: the certificate expired 59 minutes ago.
  const past = await CertificateAuthority.loadOrCreate(h.stateDir, { trustDomain: TD, clock: () => Date.now() - 3_600_000 });
  const expired = await issue(past, nodeSpiffeId(TD, 'node-1'), 60);
  assert.ok(new Date(new X509Certificate(expired.cert).validTo) < new Date());
  assert.equal(await statusCall(h.address, as(expired), {}), 'UNAUTHENTICATED', 'expired node certificate');
  const foreign = await issue(await CertificateAuthority.loadOrCreate(tmp(t, 'wt-ctl-foreign-'), { trustDomain: TD }), nodeSpiffeId(TD, 'node-1'));
  assert.equal(await statusCall(h.address, as(foreign), {}), 'UNAUTHENTICATED', 'node certificate from another CA');
  assert.equal(await statusCall(h.address, as(foreign), { authorization: `Bearer ${NODE1_TOKEN}`, 'x-weft-node': 'node-2' }), 'PERMISSION_DENIED', 'an unverified certificate falls back to the token rules');
});

test('sync client: bootstraps with the token over TLS, then syncs with its node certificate, and again after renewal', async (t) => {
  const h = await tlsControl(t);
  const stateDir = tmp(t, 'wt-ctl-tls-agent-');
  const c = new SyncClient({ address: h.address, node: 'node-1', token: TOKEN, stateDir, logger: silent, controlCa: h.bundle, apply: async () => undefined, backoff: { baseMs: 20, maxMs: 200 } });
  t.after(() => c.stop());
  const agentAuth = () => (h.server.status('').agents ?? []).find((a) => a.node === 'node-1' && a.connected)?.auth;
  const acked = (auth: string) => new Promise<void>((resolve) => {
    const off = h.server.sync.onAck((node) => { if (node === 'node-1' && agentAuth() === auth) { off(); resolve(); } });
  });
  const first = acked('token');
  await c.start();
  await first;
  assert.equal(c.authMethod(), 'token');

  // The node SVID, as the agent's IdentityManager obtains it: through SignCertificate.
  const key = await generateSigningKey();
  const signed = await c.signCertificate(await createCsr(key, nodeSpiffeId(TD, 'node-1')), 600);
  const viaCert = acked('certificate');
  c.useCertificate({ key: await privateKeyToPem(key.privateKey), cert: signed.certChainPem.join('') });
  await viaCert;
  assert.equal(c.authMethod(), 'certificate');
  assert.equal((h.server.status('').agents ?? []).filter((a) => a.connected).length, 1, 'the token stream was replaced, not duplicated');

  // Renewal: a new certificate, a new stream; unary calls go out with it too.
  const renewed = await issue(h.ca, nodeSpiffeId(TD, 'node-1'));
  const again = acked('certificate');
  c.useCertificate(renewed);
  await again;
  const st = await c.status('node-1');
  assert.equal(st.agents[0]?.auth, 'certificate');

  // Renewal failed and the certificate expired: the token goes along again.
  const past = await CertificateAuthority.loadOrCreate(h.stateDir, { trustDomain: TD, clock: () => Date.now() - 3_600_000 });
  const stale = acked('token');
  c.useCertificate(await issue(past, nodeSpiffeId(TD, 'node-1'), 60));
  await stale;
  assert.equal(c.authMethod(), 'token');
});

test('a workload declared with a node-namespace identity cannot obtain it: that would be another node\'s credential', async (t) => {
  const h = await tlsControl(t);
  const c = new SyncClient({ address: h.address, node: 'node-1', token: TOKEN, stateDir: tmp(t, 'wt-ctl-tls-ns-'), logger: silent, controlCa: h.bundle, apply: async () => undefined, unaryTimeoutMs: 5000 });
  t.after(() => c.stop());
  await c.registerWorkload({ name: 'impostor', namespace: 'weft-system', serviceAccount: 'node-node-2', address: '10.250.0.7' });
  await c.registerWorkload({ name: 'ctl', namespace: 'weft-system', serviceAccount: 'control', address: '10.250.0.8' });
  const key = await generateSigningKey();
  await assert.rejects(c.signCertificate(await createCsr(key, nodeSpiffeId(TD, 'node-2'))), { code: 'WEFT_ERR_PERMISSION' });
  await assert.rejects(c.signCertificate(await createCsr(key, controlSpiffeId(TD))), { code: 'WEFT_ERR_PERMISSION' });
  const own = await c.signCertificate(await createCsr(key, nodeSpiffeId(TD, 'node-1')));
  assert.equal(own.certChainPem.length, 1);
});

test('serving certificate renewal: new connections get the new certificate, the listener stays up', async (t) => {
  const ca = await CertificateAuthority.loadOrCreate(tmp(t, 'wt-ctl-renew-'), { trustDomain: TD, minTtlSeconds: 2 });
  let issued = 0;
  const wakers = new Set<() => void>();
  const serving = new ServingIdentity({ signer: ca, ttlSeconds: 2, log: silent, onBundle: () => { issued++; for (const w of wakers) w(); } });
  t.after(() => serving.stop());
  const server = new grpc.Server();
  server.addService(controlProto().weft.control.v1.Control.service, {});
  const port = await new Promise<number>(async (resolve, reject) => server.bindAsync('127.0.0.1:0', await serving.credentials(), (e, p) => (e ? reject(e) : resolve(p))));
  t.after(() => server.forceShutdown());
  const serial = async () => {
    const s = connect({ host: '127.0.0.1', port, ca: ca.trustBundle(), checkServerIdentity: () => undefined, ALPNProtocols: ['h2'] });
    await new Promise<void>((resolve, reject) => { s.once('secureConnect', resolve); s.once('error', reject); });
    const c = s.getPeerCertificate();
    s.destroy();
    return { serial: c.serialNumber, validTo: new Date(c.valid_to) };
  };
  const first = await serial();
  // Renewed at half-life (1 s): wait for the second issue, then handshake again.
  await waitFor(() => (issued >= 2 ? true : undefined), (w) => { wakers.add(w); return () => wakers.delete(w); }, 5000, 'renewal');
  const next = await serial();
  assert.notEqual(next.serial, first.serial, 'renewed before expiry');
  assert.ok(next.validTo > new Date(), 'the current certificate is valid');
});

test('Kubernetes node names (dots, 253 characters): token bootstrap, node certificate, then certificate auth; a too-long name is refused', async (t) => {
  const h = await tlsControl(t);
  const eks = 'ip-10-0-1-2.ec2.internal';
  const longest = `${'a'.repeat(62)}.${'b'.repeat(62)}.${'c'.repeat(62)}.${'d'.repeat(64)}`;
  assert.equal(longest.length, 253);
  for (const node of [eks, longest]) {
    const stateDir = tmp(t, 'wt-ctl-tls-k8s-');
    const c = new SyncClient({ address: h.address, node, token: tokenFor(node), stateDir, logger: silent, controlCa: h.bundle, apply: async () => undefined, backoff: { baseMs: 20, maxMs: 200 } });
    t.after(() => c.stop());
    const connected = (auth: string) => waitFor(() => ((h.server.status('').agents ?? []).find((a) => a.node === node && a.connected && a.auth === auth) ? true : undefined),
      (w) => h.server.sync.onAck(w), 5000, `${node.slice(0, 20)} synced by ${auth}`);
    await c.start();
    await connected('token');
    // Bootstrap: the node certificate through SignCertificate with the token.
    const key = await generateSigningKey();
    const signed = await c.signCertificate(await createCsr(key, nodeSpiffeId(TD, node)), 600);
    const leaf = new X509Certificate(signed.certChainPem[0]!);
    assert.equal(leaf.subjectAltName, `URI:spiffe://${TD}/ns/weft-system/sa/node-${node}`);
    const cert = { key: await privateKeyToPem(key.privateKey), cert: signed.certChainPem.join('') };
    c.useCertificate(cert);
    await connected('certificate');
    // The certificate alone authenticates as that node, and only as it.
    assert.equal(await statusCall(h.address, controlCredentials(h.bundle, cert), {}), 'OK');
    assert.equal(await statusCall(h.address, controlCredentials(h.bundle, cert), { 'x-weft-node': 'node-1' }), 'PERMISSION_DENIED');
    // shop/w: registered by the first node, so the second may not take it over.
    assert.equal(await registerAs(h.address, controlCredentials(h.bundle, cert), node, {}), node === eks ? 'OK' : 'PERMISSION_DENIED');
    await c.stop();
  }
  const tooLong = `${longest}e`;
  assert.equal(await statusCall(h.address, controlCredentials(h.bundle), { authorization: `Bearer ${TOKEN}`, 'x-weft-node': tooLong }), 'INVALID_ARGUMENT');
  assert.equal(await statusCall(h.address, controlCredentials(h.bundle), { authorization: `Bearer ${TOKEN}`, 'x-weft-node': 'ip-10-0-1-2..ec2.internal' }), 'INVALID_ARGUMENT');
});
