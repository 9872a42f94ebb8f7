import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { CertificateAuthority } from '../../agent/identity/ca';
import { createCsr, generateSigningKey, x509, signingParams } from '../../agent/identity/pki';
import { verifyChain } from '../../agent/identity/verify';
import { formatSpiffeId, parseSpiffeId, isValidSpiffeId, nodeSpiffeId } from '../../agent/identity/spiffe';
import { isWeftError } from '../../agent/lib/errors';

const TD = 'cluster.local';
const ID = 'spiffe://cluster.local/ns/shop/sa/catalog';
const allowed = new Set([ID]);

async function tempDir(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'weft-ca-'));
  t.after(() => rm(d, { recursive: true, force: true }));
  return d;
}

function rejectsWith(code: string, re?: RegExp) {
  return (e: unknown) => isWeftError(e) && e.code === code && (!re || re.test(e.message));
}

test('SPIFFE IDs: format, parse and trust-domain rules', () => {
  assert.equal(formatSpiffeId({ trustDomain: TD, namespace: 'shop', serviceAccount: 'catalog' }), ID);
  assert.deepEqual(parseSpiffeId(ID), { trustDomain: TD, namespace: 'shop', serviceAccount: 'catalog' });
  assert.equal(nodeSpiffeId(TD, 'node-1'), 'spiffe://cluster.local/ns/weft-system/sa/node-node-1');
  for (const bad of [
    'http://cluster.local/ns/a/sa/b', 'spiffe://Cluster.local/ns/a/sa/b', 'spiffe://cluster.local',
    'spiffe://cluster.local/ns/a/sa/b/c', 'spiffe://cluster.local/ns/../sa/b', 'spiffe://cluster.local/ns//sa/b',
    'spiffe://cluster.local/ns/a/sa/b?x=1', 'spiffe://cluster.local:8443/ns/a/sa/b', 'spiffe://user@td/ns/a/sa/b',
    `spiffe://${'a'.repeat(256)}/ns/a/sa/b`, 'spiffe://cluster.local/ns/a b/sa/c',
  ]) assert.equal(isValidSpiffeId(bad), false, bad);
});

test('CA: root kept 0600 in a 0700 directory, reloaded unchanged', async (t) => {
  const dir = await tempDir(t);
  const ca = await CertificateAuthority.loadOrCreate(dir, { trustDomain: TD });
  assert.equal((await stat(join(dir, 'ca'))).mode & 0o777, 0o700);
  assert.equal((await stat(join(dir, 'ca', 'roots.json'))).mode & 0o777, 0o600);
  const bundle = ca.trustBundle();
  assert.equal(bundle.length, 1);
  const root = new X509Certificate(bundle[0]!);
  assert.equal(root.ca, true);
  assert.equal(root.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  const again = await CertificateAuthority.loadOrCreate(dir, { trustDomain: TD });
  assert.deepEqual(again.trustBundle(), bundle);
});

test('CA: signs a CSR into a short-lived SVID with exactly one SPIFFE URI SAN', async (t) => {
  const ca = await CertificateAuthority.loadOrCreate(await tempDir(t), { trustDomain: TD });
  const key = await generateSigningKey();
  const before = Date.now();
  const r = await ca.signCsr(await createCsr(key, ID), { allowedSpiffeIds: allowed, ttlSeconds: 30 });
  assert.equal(r.spiffeId, ID);
  assert.equal(r.certChainPem.length, 1);
  const cert = new X509Certificate(r.certChainPem[0]!);
  assert.equal(cert.subjectAltName, `URI:${ID}`);
  assert.equal(cert.ca, false);
  assert.ok(Math.abs(r.expiresAt.getTime() - (before + 30_000)) < 2_000);
  assert.equal(Date.parse(cert.validTo), Math.floor(r.expiresAt.getTime() / 1000) * 1000);
  assert.equal(verifyChain(r.certChainPem, ca.trustBundle(), { trustDomain: TD }), ID);
});

test('CA: TTL is clamped into [min, max]', async (t) => {
  const ca = await CertificateAuthority.loadOrCreate(await tempDir(t), { trustDomain: TD, maxTtlSeconds: 3600, minTtlSeconds: 5 });
  const key = await generateSigningKey();
  const csr = await createCsr(key, ID);
  const now = Date.now();
  const long = await ca.signCsr(csr, { allowedSpiffeIds: allowed, ttlSeconds: 10 * 24 * 3600 });
  assert.ok(Math.abs(long.expiresAt.getTime() - now - 3600_000) < 2_000);
  const short = await ca.signCsr(csr, { allowedSpiffeIds: allowed, ttlSeconds: 0 });
  assert.ok(Math.abs(short.expiresAt.getTime() - now - 5_000) < 2_000);
});

test('CA: rejects bad CSRs and identities the caller may not have', async (t) => {
  const ca = await CertificateAuthority.loadOrCreate(await tempDir(t), { trustDomain: TD });
  const key = await generateSigningKey();
  const other = await generateSigningKey();
  const gen = (extensions: x509.Extension[], keys = { privateKey: key.privateKey, publicKey: key.publicKey }) =>
    x509.Pkcs10CertificateRequestGenerator.create({ keys, signingAlgorithm: signingParams('ecdsa-p256'), extensions }).then((c) => c.toString('pem'));
  const san = (names: { type: 'url' | 'dns'; value: string }[]) => new x509.SubjectAlternativeNameExtension(names);
  const sign = (csr: string, ids = allowed) => ca.signCsr(csr, { allowedSpiffeIds: ids, ttlSeconds: 60 });

  await assert.rejects(sign('not a csr'), rejectsWith('WEFT_ERR_IDENTITY', /malformed/));
  // Proof of possession: signed by a key other than the one it asks a certificate for.
  await assert.rejects(sign(await gen([san([{ type: 'url', value: ID }])], { privateKey: other.privateKey, publicKey: key.publicKey })),
    rejectsWith('WEFT_ERR_IDENTITY', /proof of possession/));
  await assert.rejects(sign(await gen([san([{ type: 'url', value: ID }]), new x509.BasicConstraintsExtension(true, undefined, true)])),
    rejectsWith('WEFT_ERR_IDENTITY', /CA certificate/));
  await assert.rejects(sign(await gen([san([{ type: 'url', value: ID }]), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign)])),
    rejectsWith('WEFT_ERR_IDENTITY', /certificate-signing/));
  await assert.rejects(sign(await gen([san([{ type: 'url', value: ID }, { type: 'dns', value: 'evil.example' }])])),
    rejectsWith('WEFT_ERR_IDENTITY', /exactly one SAN/));
  await assert.rejects(sign(await gen([])), rejectsWith('WEFT_ERR_IDENTITY', /exactly one SAN/));
  await assert.rejects(sign(await gen([san([{ type: 'url', value: 'spiffe://cluster.local/ns/shop/sa/catalog/extra' }])])),
    rejectsWith('WEFT_ERR_IDENTITY'));
  // A well-formed CSR for an identity that does not run on the caller's node.
  const payments = 'spiffe://cluster.local/ns/shop/sa/payments';
  await assert.rejects(sign(await createCsr(key, payments)), rejectsWith('WEFT_ERR_PERMISSION', /not allowed/));
  const foreign = 'spiffe://evil.local/ns/shop/sa/catalog';
  await assert.rejects(sign(await createCsr(key, foreign), new Set([foreign])), rejectsWith('WEFT_ERR_PERMISSION', /trust domain/));
});

test('CA: root rotation keeps old and new roots trusted through the overlap', async (t) => {
  let now = Date.now();
  const dir = await tempDir(t);
  const ca = await CertificateAuthority.loadOrCreate(dir, { trustDomain: TD, maxTtlSeconds: 600, clock: () => now });
  const key = await generateSigningKey();
  const csr = await createCsr(key, ID);
  const sign = () => ca.signCsr(csr, { allowedSpiffeIds: allowed, ttlSeconds: 600 });
  const oldRoot = ca.trustBundle()[0]!;
  const fromOld = await sign();

  const plan = await ca.rotateRoot({ activateAfterSeconds: 60 });
  assert.equal(plan.activeFrom.getTime(), now + 60_000);
  assert.equal(plan.oldRootsRetireAt.getTime(), now + 660_000);
  const bundle = ca.trustBundle();
  assert.equal(bundle.length, 2);
  const newRoot = bundle.find((p) => p !== oldRoot)!;
  // Before activation the old root still signs: peers without the new bundle accept it.
  assert.equal(verifyChain((await sign()).certChainPem, [oldRoot], { now: new Date(now) }), ID);

  now += 61_000;
  const fromNew = await sign();
  assert.equal(verifyChain(fromNew.certChainPem, [newRoot], { now: new Date(now) }), ID);
  assert.throws(() => verifyChain(fromNew.certChainPem, [oldRoot], { now: new Date(now) }), rejectsWith('WEFT_ERR_UNAUTHENTICATED'));
  // Overlap: both kinds of SVID verify against the distributed bundle.
  for (const c of [fromOld, fromNew]) assert.equal(verifyChain(c.certChainPem, ca.trustBundle(), { now: new Date(now) }), ID);

  // The rotation survives a restart of the control API.
  const reloaded = await CertificateAuthority.loadOrCreate(dir, { trustDomain: TD, maxTtlSeconds: 600, clock: () => now });
  assert.deepEqual(reloaded.trustBundle(), ca.trustBundle());

  now += 600_000;
  assert.deepEqual(ca.trustBundle(), [newRoot]);
});

test('CA: loads a user-provided root and refuses a key that does not match', async (t) => {
  const first = await tempDir(t);
  const ca = await CertificateAuthority.loadOrCreate(first, { trustDomain: TD });
  const stored = JSON.parse(await readFile(join(first, 'ca', 'roots.json'), 'utf8')) as { certPem: string; keyPem: string }[];
  const files = await tempDir(t);
  const certFile = join(files, 'root.crt'); const keyFile = join(files, 'root.key');
  await writeFile(certFile, stored[0]!.certPem); await writeFile(keyFile, stored[0]!.keyPem);
  const user = await CertificateAuthority.loadOrCreate(await tempDir(t), { trustDomain: TD, rootCertFile: certFile, rootKeyFile: keyFile });
  assert.deepEqual(user.trustBundle(), ca.trustBundle());
  const r = await user.signCsr(await createCsr(await generateSigningKey(), ID), { allowedSpiffeIds: allowed, ttlSeconds: 60 });
  assert.equal(verifyChain(r.certChainPem, ca.trustBundle()), ID);

  const otherDir = await tempDir(t);
  await CertificateAuthority.loadOrCreate(otherDir, { trustDomain: TD });
  const otherKey = (JSON.parse(await readFile(join(otherDir, 'ca', 'roots.json'), 'utf8')) as { keyPem: string }[])[0]!.keyPem;
  await writeFile(keyFile, otherKey);
  await assert.rejects(CertificateAuthority.loadOrCreate(await tempDir(t), { trustDomain: TD, rootCertFile: certFile, rootKeyFile: keyFile }),
    rejectsWith('WEFT_ERR_IDENTITY', /does not match/));
});

test('verifyChain: rejects another CA, an expired SVID and the wrong trust domain', async (t) => {
  const dir = await tempDir(t);
  const ca = await CertificateAuthority.loadOrCreate(dir, { trustDomain: TD });
  const key = await generateSigningKey();
  const good = await ca.signCsr(await createCsr(key, ID), { allowedSpiffeIds: allowed, ttlSeconds: 60 });

  const otherCa = await CertificateAuthority.loadOrCreate(await tempDir(t), { trustDomain: TD });
  const foreign = await otherCa.signCsr(await createCsr(key, ID), { allowedSpiffeIds: allowed, ttlSeconds: 60 });
  assert.throws(() => verifyChain(foreign.certChainPem, ca.trustBundle()), rejectsWith('WEFT_ERR_UNAUTHENTICATED', /does not chain/));

  // Same root, clock an hour back: an SVID that expired long ago.
  const past = await CertificateAuthority.loadOrCreate(dir, { trustDomain: TD, clock: () => Date.now() - 3600_000 });
  const expired = await past.signCsr(await createCsr(key, ID), { allowedSpiffeIds: allowed, ttlSeconds: 60 });
  assert.throws(() => verifyChain(expired.certChainPem, ca.trustBundle()), rejectsWith('WEFT_ERR_UNAUTHENTICATED', /expired/));

  // Same root, another trust domain.
  const evilId = 'spiffe://evil.local/ns/shop/sa/catalog';
  const evil = await CertificateAuthority.loadOrCreate(dir, { trustDomain: 'evil.local' });
  const wrongTd = await evil.signCsr(await createCsr(key, evilId), { allowedSpiffeIds: new Set([evilId]), ttlSeconds: 60 });
  assert.throws(() => verifyChain(wrongTd.certChainPem, ca.trustBundle(), { trustDomain: TD }), rejectsWith('WEFT_ERR_UNAUTHENTICATED', /trust domain/));
  assert.equal(verifyChain(good.certChainPem, ca.trustBundle(), { trustDomain: TD }), ID);
});
