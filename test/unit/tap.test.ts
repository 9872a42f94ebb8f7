import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { RequestTap, matchesTap, parseTapFilter } from '../../agent/node/tap';
import type { AccessRecord } from '../../agent/proxy/routing/access-log';

const rec = (o: Partial<AccessRecord>): AccessRecord => ({
  method: 'GET', path: '/', authority: 'catalog', status: 200, grpcStatus: -1, durationMs: 1, route: 'r', upstream: 'u', attempts: 1, traceId: '', flags: '', ...o,
});

test('tap filters', () => {
  const f = parseTapFilter(new URLSearchParams('authority=cat&path=/api&method=post&minStatus=500'));
  assert.deepEqual(f, { authority: 'cat', path: '/api', method: 'POST', minStatus: 500 });
  assert.equal(matchesTap(f, rec({ method: 'POST', path: '/api/x', status: 503 })), true);
  assert.equal(matchesTap(f, rec({ method: 'POST', path: '/api/x', status: 200 })), false);
  assert.equal(matchesTap(f, rec({ method: 'GET', path: '/api/x', status: 503 })), false);
  assert.equal(matchesTap(f, rec({ method: 'POST', path: '/other', status: 503 })), false);
  assert.throws(() => parseTapFilter(new URLSearchParams('path=nope')), /path must start with/);
  assert.throws(() => parseTapFilter(new URLSearchParams('minStatus=42')), /minStatus/);
});

test('tap streams matching records to subscribers and costs nothing without them', async (t) => {
  const tap = new RequestTap(null);
  assert.equal(tap.wants(200), false);
  const server = createServer((req, res) => tap.serve(req, res, new URL(req.url!, 'http://x')));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => { server.closeAllConnections(); server.close(); });
  const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/?minStatus=500`);
  const reader = res.body!.getReader();
  const lines: string[] = [];
  let buf = '';
  const next = async () => {
    while (!buf.includes('\n')) { const { value } = await reader.read(); buf += Buffer.from(value!).toString(); }
    const i = buf.indexOf('\n'); const l = buf.slice(0, i); buf = buf.slice(i + 1); lines.push(l); return JSON.parse(l) as Record<string, unknown>;
  };
  assert.equal((await next()).tap, 'started');
  assert.equal(tap.subscribers, 1);
  assert.equal(tap.wants(200), true);
  tap.write(rec({ status: 200, path: '/ok' }));
  tap.write(rec({ status: 502, path: '/bad' }));
  assert.equal((await next()).path, '/bad');
  await reader.cancel();
  for (let i = 0; i < 50 && tap.subscribers > 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(tap.subscribers, 0, 'subscriber removed when the client leaves');
});
