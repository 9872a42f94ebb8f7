// Hole 1: authorization compared raw paths. `/%61dmin`, `//admin`, `/./admin` and
// `/x/../admin` all passed a DENY on `/admin*` and reached a backend that normalizes.
// Now the proxies normalize before routing and authorization and forward the
// normalized path, on HTTP/1.1 and HTTP/2, outbound and inbound.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { service, view, startProxy, httpUpstream, rawExchange } from '../unit/l7-harness';
import { denyPaths, startInbound, h2Backend, h2Request, statusOf } from './harness';
import { join } from 'node:path';
import { loadPolicyTexts, loadPolicyDir, compile, forNode } from '../../agent/policy';
import { explain } from '../../agent/explain/explain';
import { ROOT } from '../lib/weft';

const BYPASSES = ['/%61dmin', '//admin', '/./admin', '/x/../admin', '/%2e/admin', '/x/%2E%2E/admin', '/public/..//admin/x', '/%41DMIN/../admin'];

const get = (path: string, extra = '') => Buffer.from(`GET ${path} HTTP/1.1\r\nHost: svc\r\n${extra}\r\n`);
const oneResponse = (d: Buffer) => /\r\n\r\n/.test(d.toString('latin1')) && /content-length: (\d+)/i.test(d.toString('latin1'))
  && d.toString('latin1').split('\r\n\r\n')[1]!.length >= Number(/content-length: (\d+)/i.exec(d.toString('latin1'))![1]);

test('path normalization: inbound HTTP/1.1 DENY on /admin* holds for encoded, doubled and dot-segment paths', async (t) => {
  const urls: string[] = [];
  const up = await httpUpstream((req, res) => { urls.push(req.url!); res.end('backend'); });
  const ib = await startInbound(up.port, [denyPaths(['/admin*'])]);
  t.after(async () => { await ib.close(); await up.close(); });

  for (const p of BYPASSES) {
    const r = await rawExchange(ib.port, get(p), 2000, 0, oneResponse);
    assert.equal(statusOf(r.data), 403, `${p} must be denied like /admin`);
  }
  assert.deepEqual(urls.filter((u) => /admin/i.test(u)), [], 'no admin request reached the backend');

  // Allowed requests are forwarded normalized, query untouched.
  const r = await rawExchange(ib.port, get('/public/./a/../b%7e%2a?q=%2F..%2f&x=/../y'), 2000, 0, oneResponse);
  assert.equal(statusOf(r.data), 200);
  assert.equal(urls.at(-1), '/public/b~%2A?q=%2F..%2f&x=/../y', 'normalized path, query preserved byte for byte');
});

test('path normalization: inbound HTTP/2 (:path) DENY on /admin* holds too', async (t) => {
  const be = await h2Backend();
  const ib = await startInbound(be.port, [denyPaths(['/admin*'])]);
  t.after(async () => { await ib.close(); await be.close(); });
  for (const p of BYPASSES) {
    const r = await h2Request(ib.port, p);
    assert.equal(r.status, 403, `${p} must be denied like /admin`);
  }
  assert.deepEqual(be.paths, [], 'no admin request reached the backend');
  const ok = await h2Request(ib.port, '/a//b/./c/../d?k=%2e%2E');
  assert.equal(ok.status, 200);
  assert.deepEqual(be.paths, ['/a/b/d?k=%2e%2E']);
});

test('path normalization: encoded slashes refused by default (400), outbound HTTP/1.1 forwards normalized paths, settings apply live', async (t) => {
  const urls: string[] = [];
  const up = await httpUpstream((req, res) => { urls.push(req.url!); res.end('ok'); });
  const paths = { mergeSlashes: true, escapedSlashes: 'REJECT' as const };
  const p = await startProxy(view([service({ name: 'web', vip: '10.96.0.10', port: 80, endpoints: [{ port: up.port }] })]), { ip: '10.96.0.10', port: 80 }, { paths });
  t.after(async () => { await p.close(); await up.close(); });

  for (const bad of ['/a%2Fb', '/a%2fb', '/a%5Cb', '/a%5cb', '/a\\b', '/a%zz', '/a%4']) {
    const r = await rawExchange(p.port, get(bad), 2000, 0, oneResponse);
    assert.equal(statusOf(r.data), 400, `${bad} must be refused`);
  }
  assert.deepEqual(urls, [], 'nothing refused reached the backend');

  const r = await rawExchange(p.port, get('//x/./y/..//z%2d%5f?a=b'), 2000, 0, oneResponse);
  assert.equal(statusOf(r.data), 200);
  assert.equal(urls.at(-1), '/x/z-_?a=b');

  // The same object the agent updates from MeshConfig: KEEP forwards %2F, no merging.
  Object.assign(paths, { escapedSlashes: 'KEEP', mergeSlashes: false });
  const k = await rawExchange(p.port, get('/a%2fb//c'), 2000, 0, oneResponse);
  assert.equal(statusOf(k.data), 200);
  assert.equal(urls.at(-1), '/a%2Fb//c');
  Object.assign(paths, { escapedSlashes: 'UNESCAPE', mergeSlashes: true });
  const u = await rawExchange(p.port, get('/a%2F%2Fb%5C..'), 2000, 0, oneResponse);
  assert.equal(statusOf(u.data), 200);
  assert.equal(urls.at(-1), '/a/');
});

test('path normalization: MeshConfig spec.pathNormalization reaches the node view (defaults when absent)', () => {
  const doc = (extra: string) => `apiVersion: weft.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  trustDomain: t.local
${extra}`;
  const snap = (extra: string) => {
    const r = loadPolicyTexts([{ file: 'mesh.yaml', text: doc(extra) }]);
    assert.deepEqual(r.diagnostics, []);
    return forNode(compile(r, [], { now: new Date(0) }), 'n1');
  };
  assert.deepEqual(snap('').mesh.pathNormalization, { mergeSlashes: true, escapedSlashes: 'REJECT' });
  assert.deepEqual(snap('  pathNormalization: {mergeSlashes: false, escapedSlashes: UNESCAPE}').mesh.pathNormalization, { mergeSlashes: false, escapedSlashes: 'UNESCAPE' });
  const bad = loadPolicyTexts([{ file: 'mesh.yaml', text: doc('  pathNormalization: {escapedSlashes: DECODE}') }]);
  assert.ok(bad.diagnostics.some((d) => /escapedSlashes/.test(d.message)), 'unknown escapedSlashes value is a validation error');
});

test('path normalization: weft explain decides on the path the proxy would authorize', () => {
  const snap = compile(loadPolicyDir([join(ROOT, 'policies', 'shop')]), [], { version: 'test' });
  const q = { from: 'shop/frontend-0', host: 'payments.shop', port: 50051, method: 'POST' };
  assert.equal(explain(snap, { ...q, path: '/shop.Payments/Charge' }).verdict, 'allowed by shop/payments-from-frontend');
  // Encoded and dot-segment spellings of the same path get the same verdict as the proxy's.
  assert.equal(explain(snap, { ...q, path: '/x/../shop.Payments/%43harge' }).verdict, 'allowed by shop/payments-from-frontend');
  assert.throws(() => explain(snap, { ...q, path: '/shop.Payments%2FCharge' }), /refuses it with 400/);
});
