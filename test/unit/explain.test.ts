import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { compile, loadPolicyDir } from '../../agent/policy';
import { explain } from '../../agent/explain/explain';
import { ROOT } from '../lib/weft';

const loaded = loadPolicyDir([join(ROOT, 'policies', 'shop')]);
assert.deepEqual(loaded.diagnostics, []);
const snap = compile(loaded, [], { version: 'test' });

const catalogVip = snap.services.find((s) => s.key === 'shop/catalog')!.vip;

test('explain: a header match pins the request to catalog-v2 through the userland', () => {
  const e = explain(snap, { from: 'shop/frontend-0', host: 'catalog.shop.svc.cluster.local', port: 80, path: '/items', headers: { 'X-Canary': 'always' } });
  assert.equal(e.service?.key, 'shop/catalog');
  assert.equal(e.service?.name, 'catalog.shop.svc.cluster.local', 'the name the agents\' DNS answers');
  assert.match(e.service?.vip ?? '', /^10\.96\./, 'allocated from vipRange: the policies name no VIP');
  for (const host of [catalogVip, 'catalog.shop', 'catalog.shop.svc', 'Catalog.Shop.svc.cluster.local.']) {
    assert.equal(explain(snap, { from: 'shop/frontend-0', host, port: 80 }).service?.key, 'shop/catalog', host);
  }
  assert.equal(explain(snap, { from: 'shop/frontend-0', host: 'catalog.shop.svc.other.domain', port: 80 }).service, null);
  assert.equal(e.path.mode, 'redirect');
  assert.match(e.path.reason, /userland/);
  assert.deepEqual(e.route, { object: 'shop/catalog', rule: 0 });
  assert.deepEqual(e.backends.map((b) => [b.service, b.weight]), [['shop/catalog-v2', 100]]);
  assert.match(e.verdict, /^allowed/);
});

test('explain: the default rule splits 90/10 and names hops per endpoint', () => {
  const e = explain(snap, { from: 'shop/frontend-0', host: 'catalog.shop', port: 80, path: '/items' });
  assert.deepEqual(e.route, { object: 'shop/catalog', rule: 1 });
  assert.deepEqual(e.backends.map((b) => [b.service, b.weight]), [['shop/catalog-v1', 90], ['shop/catalog-v2', 10]]);
  const hops = new Set(e.backends.flatMap((b) => b.endpoints.map((x) => x.hop)));
  assert.ok(hops.has('mTLS tunnel'), 'some catalog endpoints are on other nodes');
});

test('explain: a caller the AuthorizationPolicy does not allow is denied, naming the policy set', () => {
  const e = explain(snap, { from: 'shop/catalog-v1-0', host: 'payments.shop', port: 50051, path: '/shop.Payments/Charge', method: 'POST' });
  assert.match(e.verdict, /^denied: no ALLOW policy matches \(shop\/payments-from-frontend\)/);
});

test('explain: the frontend may call payments at L7, naming the deciding ALLOW policy', () => {
  const e = explain(snap, { from: 'shop/frontend-0', host: 'payments.shop', port: 50051, path: '/shop.Payments/Charge', method: 'POST' });
  assert.equal(e.verdict, 'allowed by shop/payments-from-frontend');
  assert.deepEqual(e.route, { object: 'shop/payments', rule: 0 });
  const other = explain(snap, { from: 'shop/frontend-0', host: 'payments.shop', port: 50051, path: '/other.Service/X', method: 'POST' });
  assert.match(other.verdict, /^denied: no ALLOW policy matches/);
});

test('explain: addresses outside the mesh and unknown workloads', () => {
  const e = explain(snap, { from: 'shop/frontend-0', host: '192.0.2.1', port: 443 });
  assert.equal(e.path.mode, 'not in the mesh');
  assert.throws(() => explain(snap, { from: 'shop/nope', host: catalogVip, port: 80 }), /no workload shop\/nope/);
});
