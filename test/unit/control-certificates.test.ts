// SignCertificate through the control API with the real CA (agent/identity): a node gets
// certificates for its own workloads and its node identity only, every refusal has the
// right status, and the trust bundle travels with snapshots.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { CertificateAuthority } from '../../agent/identity/ca';
import { createCsr, generateSigningKey } from '../../agent/identity/pki';
import { SyncClient } from '../../agent/sync/client';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startControl, silent, tokenFor } from '../lib/control-server';
import { waitFor } from '../lib/wait';

test('a node gets certificates for its workloads and itself, nothing else', async (t) => {
  const caDir = mkdtempSync(join(tmpdir(), 'wt-ctl-ca-'));
  t.after(() => rmSync(caDir, { recursive: true, force: true }));
  let ca: CertificateAuthority | undefined;
  const h = await startControl(t, { createSigner: async (trustDomain) => (ca = await CertificateAuthority.loadOrCreate(caDir, { trustDomain })) });
  const client = (node: string) => {
    const stateDir = mkdtempSync(join(tmpdir(), 'wt-ctl-cert-'));
    const c = new SyncClient({ address: h.address, node, token: tokenFor(node), stateDir, logger: silent, apply: async () => undefined, backoff: { baseMs: 10, maxMs: 50 }, unaryTimeoutMs: 5000 });
    t.after(async () => { await c.stop(); rmSync(stateDir, { recursive: true, force: true }); });
    return c;
  };
  const n1 = client('node-1');
  const n2 = client('node-2');
  await n1.registerWorkload({ name: 'web-0', namespace: 'shop', serviceAccount: 'web', address: '10.250.0.5' });
  const key = await generateSigningKey();
  const csrFor = (id: string) => createCsr(key, id);

  const web = 'spiffe://test.local/ns/shop/sa/web';
  const r = await n1.signCertificate(await csrFor(web), 600);
  const leaf = new X509Certificate(r.certChainPem[0]!);
  assert.match(leaf.subjectAltName ?? '', /URI:spiffe:\/\/test\.local\/ns\/shop\/sa\/web/);
  assert.deepEqual(r.trustBundle, ca!.trustBundle());
  assert.ok(leaf.verify(new X509Certificate(r.trustBundle[0]!).publicKey));
  assert.ok(Number(r.expiresAt) * 1000 > Date.now());

  const own = await n1.signCertificate(await csrFor('spiffe://test.local/ns/weft-system/sa/node-node-1'));
  assert.equal(own.certChainPem.length, 1);

  await assert.rejects(n1.signCertificate(await csrFor('spiffe://test.local/ns/shop/sa/db')), { code: 'WEFT_ERR_PERMISSION' });
  await assert.rejects(n2.signCertificate(await csrFor(web)), { code: 'WEFT_ERR_PERMISSION' }, 'node-2 runs no web workload');
  await assert.rejects(n2.signCertificate(await csrFor('spiffe://test.local/ns/weft-system/sa/node-node-1')), { code: 'WEFT_ERR_PERMISSION' });
  await assert.rejects(n1.signCertificate('-----BEGIN CERTIFICATE REQUEST-----\nnot base64\n-----END CERTIFICATE REQUEST-----\n'), { code: 'WEFT_ERR_INVALID_ARG' });
  await assert.rejects(n1.signCertificate('hello'), { code: 'WEFT_ERR_INVALID_ARG' });
  await assert.rejects(n1.signCertificate(await csrFor(web), 30 * 24 * 3600), { code: 'WEFT_ERR_INVALID_ARG' });

  // The trust bundle travels with snapshots.
  await n2.start();
  await waitFor(() => (n2.state().trustBundle.length ? true : undefined), (w) => { n2.on('state', w); return () => n2.off('state', w); }, 5000, 'trust bundle via Sync');
  assert.deepEqual(n2.state().trustBundle, ca!.trustBundle());
});
