import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { Registry } from 'prom-client';
import { CertificateAuthority } from '../../agent/identity/ca';
import { IdentityManager, type SignFn } from '../../agent/identity/manager';
import { isWeftError } from '../../agent/lib/errors';
import { identitiesForNode } from '../../agent/identity/allowed';
import type { WorkloadState } from '../../agent/policy/snapshot';

const TD = 'cluster.local';
const ID = 'spiffe://cluster.local/ns/shop/sa/catalog';

async function newCa(t: { after: (fn: () => Promise<void>) => void }): Promise<CertificateAuthority> {
  const d = await mkdtemp(join(tmpdir(), 'weft-idm-'));
  t.after(() => rm(d, { recursive: true, force: true }));
  return CertificateAuthority.loadOrCreate(d, { trustDomain: TD, minTtlSeconds: 2 });
}

function signer(ca: CertificateAuthority, allowed: string[], seen: string[] = []): SignFn {
  return async (csr) => {
    seen.push(csr);
    const r = await ca.signCsr(csr, { allowedSpiffeIds: new Set(allowed), ttlSeconds: 2 });
    return { certChainPem: r.certChainPem, trustBundle: ca.trustBundle() };
  };
}

test('manager: issues, exposes the expiry gauge and renews at half-life with a fresh key', async (t) => {
  const ca = await newCa(t);
  const registry = new Registry();
  const csrs: string[] = [];
  const m = new IdentityManager({ trustDomain: TD, sign: signer(ca, [ID], csrs), ttlSeconds: 2, registry });
  t.after(() => m.close());
  assert.equal(await m.add(ID), true);
  const received = Date.now();
  const first = m.certificate(ID)!;
  assert.equal(first.renewals, 0);
  const ctx = m.secureContextFor(ID);
  assert.ok(ctx);
  assert.equal(m.secureContextFor(ID), ctx, 'context is cached per certificate');
  const gauge = await registry.getSingleMetric('weft_certificate_expiry_timestamp_seconds')!.get();
  assert.deepEqual(gauge.values.map((v) => [v.labels.identity, v.value]), [[ID, first.expiresAt.getTime() / 1000]]);

  await once(m, 'updated');
  const elapsed = Date.now() - received;
  const second = m.certificate(ID)!;
  assert.equal(second.renewals, 1);
  // Half of the remaining lifetime +- 5 %. X.509 times have whole seconds, so a "2 s"
  // certificate has 1-2 s left on receipt: measure against its real notAfter, with some
  // slack for timers on a loaded machine.
  const remaining = first.expiresAt.getTime() - received;
  assert.ok(Math.abs(elapsed - remaining / 2) <= remaining * 0.05 + 250, `renewed after ${elapsed} ms of ${remaining} ms remaining`);
  assert.notEqual(m.secureContextFor(ID), ctx, 'context swapped on renewal');
  const k1 = new X509Certificate(first.certChainPem[0]!).publicKey.export({ format: 'der', type: 'spki' });
  const k2 = new X509Certificate(second.certChainPem[0]!).publicKey.export({ format: 'der', type: 'spki' });
  assert.notDeepEqual(k1, k2, 'a new key per renewal');
  for (const c of csrs) assert.doesNotMatch(c, /PRIVATE KEY/);
});

test('manager: fail-closed throws, fail-open returns null when no certificate can be had', async (t) => {
  const ca = await newCa(t);
  const other = 'spiffe://cluster.local/ns/shop/sa/payments';
  for (const failMode of ['closed', 'open'] as const) {
    const m = new IdentityManager({ trustDomain: TD, sign: signer(ca, [other]), failMode, retryInitialMs: 60_000 });
    t.after(() => m.close());
    assert.equal(await m.add(ID), false);
    if (failMode === 'closed') {
      assert.throws(() => m.secureContextFor(ID), (e) => isWeftError(e, 'WEFT_ERR_IDENTITY') && /not allowed/.test(e.message));
    } else {
      assert.equal(m.secureContextFor(ID), null);
      assert.equal(m.tlsMaterial(ID), null);
    }
  }
});

test('manager: refuses a certificate that does not match the request', async (t) => {
  const ca = await newCa(t);
  const other = 'spiffe://cluster.local/ns/shop/sa/payments';
  // A CA (or a man in the middle) answering with someone else's certificate.
  const wrong: SignFn = async () => {
    const m2 = new IdentityManager({ trustDomain: TD, sign: signer(ca, [other]) });
    await m2.add(other);
    const info = m2.certificate(other)!;
    m2.close();
    return { certChainPem: info.certChainPem, trustBundle: ca.trustBundle() };
  };
  const m = new IdentityManager({ trustDomain: TD, sign: wrong, retryInitialMs: 60_000 });
  t.after(() => m.close());
  assert.equal(await m.add(ID), false);
  assert.throws(() => m.secureContextFor(ID), (e) => isWeftError(e, 'WEFT_ERR_IDENTITY') && /asked for/.test(e.message));
});

test('manager: setIdentities follows the node view; identitiesForNode is what a node may obtain', async (t) => {
  const ca = await newCa(t);
  const snapshot = {
    mesh: { trustDomain: TD, mtls: 'STRICT' as const, certTtlMs: 60_000, failMode: 'closed' as const, vipRange: '10.96.0.0/16' },
    workloads: [
      { node: 'node-1', identity: ID }, { node: 'node-2', identity: 'spiffe://cluster.local/ns/shop/sa/payments' },
    ] as unknown as WorkloadState[],
  };
  const allowed = identitiesForNode(snapshot, 'node-1');
  assert.deepEqual([...allowed].sort(), ['spiffe://cluster.local/ns/shop/sa/catalog', 'spiffe://cluster.local/ns/weft-system/sa/node-node-1']);
  const m = new IdentityManager({ trustDomain: TD, sign: signer(ca, [...allowed]), ttlSeconds: 60 });
  t.after(() => m.close());
  await m.setIdentities(allowed);
  assert.deepEqual(m.identities().sort(), [...allowed].sort());
  assert.ok([...allowed].every((id) => m.certificate(id)));
  await m.setIdentities([ID]);
  assert.deepEqual(m.identities(), [ID]);
});
