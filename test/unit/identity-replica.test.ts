// A proxy worker's IdentityReplica gives the same answers as the primary's IdentityManager
// (both read one CertificateStore): same certificate and context caching, same fail-mode
// answers, events only when something changed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CertificateAuthority } from '../../agent/identity/ca';
import { IdentityManager, type SignFn } from '../../agent/identity/manager';
import { IdentityReplica, identityState } from '../../agent/node/identity-replica';
import { isWeftError } from '../../agent/lib/errors';

const TD = 'cluster.local';
const ID = 'spiffe://cluster.local/ns/shop/sa/catalog';
const OTHER = 'spiffe://cluster.local/ns/shop/sa/payments';

async function newCa(t: { after: (fn: () => Promise<void>) => void }): Promise<CertificateAuthority> {
  const d = await mkdtemp(join(tmpdir(), 'weft-rep-'));
  t.after(() => rm(d, { recursive: true, force: true }));
  return CertificateAuthority.loadOrCreate(d, { trustDomain: TD, minTtlSeconds: 60 });
}

function signer(ca: CertificateAuthority, allowed: string[]): SignFn {
  return async (csr) => {
    const r = await ca.signCsr(csr, { allowedSpiffeIds: new Set(allowed), ttlSeconds: 600 });
    return { certChainPem: r.certChainPem, trustBundle: ca.trustBundle() };
  };
}

test('replica: serves the primary certificates with one cached context per certificate', async (t) => {
  const ca = await newCa(t);
  const m = new IdentityManager({ trustDomain: TD, sign: signer(ca, [ID]), retryInitialMs: 60_000 });
  t.after(() => m.close());
  assert.equal(await m.add(ID), true);
  const r = new IdentityReplica(identityState(m));
  t.after(() => r.close());
  assert.deepEqual(r.certificate(ID), m.certificate(ID));
  assert.deepEqual(r.tlsMaterial(ID), m.tlsMaterial(ID));
  assert.deepEqual(r.trustBundle(), m.trustBundle());
  const ctx = r.secureContextFor(ID);
  assert.ok(ctx);
  assert.equal(r.secureContextFor(ID), ctx, 'cached while the certificate is the same');

  const updated: string[] = [];
  let bundles = 0;
  r.on('updated', (id) => updated.push(id));
  r.on('trustBundle', () => { bundles++; });
  r.install(identityState(m)); // same state again
  assert.deepEqual(updated, []);
  assert.equal(bundles, 0);
  assert.equal(r.secureContextFor(ID), ctx);

  // A new certificate (fresh key) from the primary: one event, a new context.
  m.remove(ID);
  assert.equal(await m.add(ID), true);
  r.install(identityState(m));
  assert.deepEqual(updated, [ID]);
  const ctx2 = r.secureContextFor(ID);
  assert.ok(ctx2 && ctx2 !== ctx);

  // A new bundle: the event, and the context rebuilt for the same certificate.
  const s = identityState(m);
  r.install({ ...s, trustBundle: [...s.trustBundle, s.trustBundle[0]!] });
  assert.equal(bundles, 1);
  assert.deepEqual(updated, [ID]);
  const ctx3 = r.secureContextFor(ID);
  assert.ok(ctx3 && ctx3 !== ctx2);
});

test('replica: fail-closed throws, fail-open returns null, for pending and unknown identities', async (t) => {
  for (const failMode of ['closed', 'open'] as const) {
    const r = new IdentityReplica({ trustDomain: TD, failMode, trustBundle: [], identities: [{ spiffeId: ID, entry: null }] });
    t.after(() => r.close());
    for (const [id, why] of [[ID, /no certificate for .* yet \(signing pending in the primary\)/], [OTHER, /is not managed on this node/]] as const) {
      if (failMode === 'closed') {
        assert.throws(() => r.secureContextFor(id), (e) => isWeftError(e, 'WEFT_ERR_IDENTITY') && why.test(e.message) && e.details?.spiffeId === id);
        assert.throws(() => r.tlsMaterial(id), (e) => isWeftError(e, 'WEFT_ERR_IDENTITY'));
      } else {
        assert.equal(r.secureContextFor(id), null);
        assert.equal(r.tlsMaterial(id), null);
      }
    }
  }
});

test('replica: an expired certificate is refused with the primary-side note', async (t) => {
  const ca = await newCa(t);
  const m = new IdentityManager({ trustDomain: TD, sign: signer(ca, [ID]), retryInitialMs: 60_000 });
  t.after(() => m.close());
  assert.equal(await m.add(ID), true);
  const later = m.certificate(ID)!.expiresAt.getTime() + 1;
  const r = new IdentityReplica(identityState(m), () => later);
  t.after(() => r.close());
  assert.throws(() => r.secureContextFor(ID), (e) => isWeftError(e, 'WEFT_ERR_IDENTITY') && /expired at .* \(renewal pending in the primary\)/.test(e.message));
});
