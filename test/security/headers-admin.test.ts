// Hole 4: a client-supplied x-forwarded-client-cert reached backends (which may trust it
// as "the mesh verified this caller"); admin reads (/debug/*, /v1/status, /v1/tap,
// /v1/explain) answered anyone who reached a non-loopback admin port; `weft tap`
// subscribers were unbounded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { networkInterfaces } from 'node:os';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import pino from 'pino';
import { httpUpstream, rawExchange, service, view, startProxy } from '../unit/l7-harness';
import { DEST, FRONT, h2Backend, h2Request, startInbound, statusOf } from './harness';
import { AdminServer } from '../../agent/admin/server';
import { RequestTap } from '../../agent/node/tap';

const SPOOF = 'By=spiffe://t/ns/x/sa/victim;URI=spiffe://t/ns/kube-system/sa/admin';

test('xfcc: stripped on the outbound side, replaced by weft (By=destination;URI=verified source) on the inbound side', async (t) => {
  const seen: (string | undefined)[] = [];
  const up = await httpUpstream((req, res) => { seen.push(req.headers['x-forwarded-client-cert'] as string | undefined); res.end('ok'); });
  const p = await startProxy(view([service({ name: 'web', vip: '10.96.0.40', port: 80, endpoints: [{ port: up.port }] })]), { ip: '10.96.0.40', port: 80 });
  const ib = await startInbound(up.port, []);
  const h2 = await h2Backend();
  const ib2 = await startInbound(h2.port, []);
  t.after(async () => { await p.close(); await ib.close(); await ib2.close(); await up.close(); await h2.close(); });
  const req = Buffer.from(`GET /x HTTP/1.1\r\nHost: svc\r\nX-Forwarded-Client-Cert: ${SPOOF}\r\n\r\n`);
  const done = (d: Buffer) => d.toString().endsWith('ok');

  assert.equal(statusOf((await rawExchange(p.port, req, 2000, 0, done)).data), 200);
  assert.equal(seen.at(-1), undefined, 'outbound: the client-supplied header is removed');

  assert.equal(statusOf((await rawExchange(ib.port, req, 2000, 0, done)).data), 200);
  assert.equal(seen.at(-1), `By=${DEST};URI=${FRONT.principal}`, 'inbound HTTP/1.1: set from the verified peer');

  assert.equal((await h2Request(ib2.port, '/x', { 'x-forwarded-client-cert': SPOOF })).status, 200);
  assert.equal(h2.headers.at(-1)!['x-forwarded-client-cert'], `By=${DEST};URI=${FRONT.principal}`, 'inbound HTTP/2: set from the verified peer');
});

/** An address of this machine that is not loopback (a node address, as for pods). */
function nodeAddress(): string | undefined {
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  return undefined;
}

test('admin: reads from off-loopback callers need the admin token; /metrics, /healthz, /readyz stay open', async (t) => {
  const addr = nodeAddress();
  if (addr === undefined) { t.skip('no non-loopback IPv4 address on this machine'); return; }
  const token = 'a'.repeat(48);
  const admin = new AdminServer({
    host: '0.0.0.0', port: 0, registry: new Registry(), health: () => ({ ready: true, reasons: [] }),
    debug: { config: () => ({ secret: 'node view' }), bpf: () => ({}) }, writeToken: token,
    api: { 'GET /v1/status': () => ({ ok: true }), 'GET /v1/explain': () => ({ ok: true }), 'POST /v1/workloads': () => ({ ok: true }) },
    streams: { 'GET /v1/tap': (_q, res) => { res.writeHead(200); res.end('{}\n'); } },
    logger: pino({ level: 'silent' }),
  });
  const { port } = await admin.listen();
  t.after(() => admin.close());
  const status = async (host: string, path: string, auth?: string, method = 'GET') =>
    (await fetch(`http://${host}:${port}${path}`, { method, ...(auth ? { headers: { authorization: `Bearer ${auth}` } } : {}), ...(method === 'POST' ? { body: '{}' } : {}) })).status;

  for (const path of ['/metrics', '/healthz', '/readyz']) assert.equal(await status(addr, path), 200, `${path} open to probes and scrapes`);
  for (const path of ['/debug/config', '/debug/bpf', '/v1/status', '/v1/explain', '/v1/tap']) {
    assert.equal(await status(addr, path), 401, `${path} from ${addr} without the token`);
    assert.equal(await status(addr, path, 'b'.repeat(48)), 401, `${path} with a wrong token`);
    assert.equal(await status(addr, path, token), 200, `${path} with the token`);
    assert.equal(await status('127.0.0.1', path), 200, `${path} from loopback`);
  }
  assert.equal(await status(addr, '/v1/workloads', undefined, 'POST'), 401, 'writes still need it');
  assert.equal(await status(addr, '/v1/workloads', token, 'POST'), 200);
});

test('tap: at most 16 subscribers, then 429', async (t) => {
  const tap = new RequestTap(null);
  const server = createServer((req, res) => tap.serve(req, res, new URL(req.url!, 'http://x')));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => { server.closeAllConnections(); server.close(); });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  const open: AbortController[] = [];
  t.after(() => { for (const c of open) c.abort(); });
  for (let i = 0; i < 16; i++) {
    const c = new AbortController();
    open.push(c);
    assert.equal((await fetch(url, { signal: c.signal })).status, 200, `subscriber ${i + 1}`);
  }
  assert.equal(tap.subscribers, 16);
  const over = await fetch(url);
  assert.equal(over.status, 429, 'the 17th subscriber is refused');
  assert.equal(tap.subscribers, 16);
  // A subscriber leaving makes room again.
  open.pop()!.abort();
  for (let i = 0; i < 50 && tap.subscribers > 15; i++) await new Promise((r) => setTimeout(r, 10));
  const c = new AbortController();
  open.push(c);
  assert.equal((await fetch(url, { signal: c.signal })).status, 200);
});
