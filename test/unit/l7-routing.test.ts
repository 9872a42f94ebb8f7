// Routing and resilience through the real outbound proxy on loopback, with node:http
// and curl as client and servers: canary split, header pinning, retries within a
// budget, outlier ejection and return, route timeout, fault injection, rate limiting,
// header modifiers, slow clients, unframeable upstream responses, metrics and tracing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request, createServer, type IncomingHttpHeaders } from 'node:http';
import { execFile } from 'node:child_process';
import { createServer as tcpServer, type AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { service, view, route, startProxy, httpUpstream, rawExchange } from './l7-harness';
import { RequestMetrics } from '../../agent/proxy/routing/metrics';
import { Tracer } from '../../agent/proxy/routing/tracing';
import { rootLogger } from '../../agent/telemetry/logger';
import { AccessLog } from '../../agent/proxy/routing/access-log';
import { Writable } from 'node:stream';
import pino from 'pino';

const VIP = '10.96.1.1';

function get(port: number, agent: Agent, path = '/', headers: Record<string, string> = {}): Promise<{ status: number; body: string; headers: IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

function curl(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => execFile('curl', ['-sS', ...args], (e, out) => (e ? reject(e) : resolve(out))));
}

test('curl HTTP/1.1 GET and POST through the proxy, upstream connection reused', async (t) => {
  let conns = 0;
  const up = await httpUpstream((req, res, body) => res.end(`${req.method} ${req.url} ${body.length}`));
  up.server.on('connection', () => { conns++; });
  const p = await startProxy(view([service({ name: 'a', vip: VIP, port: 80, endpoints: [{ port: up.port }] })]), { ip: VIP, port: 80 });
  t.after(async () => { await p.close(); await up.close(); });
  assert.equal(await curl([`http://127.0.0.1:${p.port}/x?y=1`]), 'GET /x?y=1 0');
  assert.equal(await curl(['--data-binary', 'a'.repeat(100_000), `http://127.0.0.1:${p.port}/post`]), 'POST /post 100000');
  assert.equal(await curl(['-H', 'Transfer-Encoding: chunked', '--data-binary', 'hello', `http://127.0.0.1:${p.port}/chunked`]), 'POST /chunked 5');
  assert.equal(conns, 1, 'one pooled upstream connection served all three requests');
});

test('canary 90/10 over 2000 requests lands within ±3 points; a header match pins to v2', async (t) => {
  const v1 = await httpUpstream((_q, res) => res.end('v1'));
  const v2 = await httpUpstream((_q, res) => res.end('v2'));
  const services = [
    service({ name: 'reviews', vip: VIP, port: 80, endpoints: [{ port: v1.port }] }),
    service({ name: 'reviews-v1', vip: '10.96.1.2', port: 80, endpoints: [{ port: v1.port }] }),
    service({ name: 'reviews-v2', vip: '10.96.1.3', port: 80, endpoints: [{ port: v2.port }] }),
  ];
  const p = await startProxy(view(services, [{
    service: 'reviews', port: 80, routes: [
      route('pin', { match: { path: { type: 'PathPrefix', value: '/' }, headers: [{ name: 'x-version', type: 'Exact', value: 'v2' }], queryParams: [] }, backends: [{ service: 'test/reviews-v2', port: 80, weight: 1 }] }, 0),
      route('canary', { backends: [{ service: 'test/reviews-v1', port: 80, weight: 90 }, { service: 'test/reviews-v2', port: 80, weight: 10 }] }, 1),
    ],
  }]), { ip: VIP, port: 80 });
  const agent = new Agent({ keepAlive: true, maxSockets: 8 });
  t.after(async () => { agent.destroy(); await p.close(); await v1.close(); await v2.close(); });
  let n2 = 0;
  for (let i = 0; i < 2000; i += 50) {
    const rs = await Promise.all(Array.from({ length: 50 }, () => get(p.port, agent)));
    for (const r of rs) { assert.equal(r.status, 200); if (r.body === 'v2') n2++; }
  }
  const share = (n2 / 2000) * 100;
  assert.ok(Math.abs(share - 10) <= 3, `v2 got ${share.toFixed(1)} % of traffic`);
  for (let i = 0; i < 50; i++) assert.equal((await get(p.port, agent, '/', { 'x-version': 'v2' })).body, 'v2');
});

test('retries turn a backend failing 30 % into ≥ 99 % success; the retry budget caps extra load', async (t) => {
  // Exactly 3 calls in every 10 fail, never two in a row: a random 30 % makes the 99 %
  // bar a coin toss (4 attempts fail together 0.8 % of the time, ~1 run in 5 misses).
  let failAll = false;
  let calls = 0;
  const up = await httpUpstream((_q, res) => { if (failAll || [1, 4, 7].includes(calls++ % 10)) { res.statusCode = 503; res.end('fail'); } else res.end('ok'); });
  const ratio = 0.5, minPerSecond = 1;
  const p = await startProxy(view([service({ name: 'flaky', vip: VIP, port: 80, endpoints: [{ port: up.port }] })], [{
    service: 'flaky', port: 80, routes: [route('retry', { backends: [{ service: 'test/flaky', port: 80, weight: 1 }], retry: { attempts: 3, on: ['5xx'], retriableStatusCodes: [] } })],
  }], [{ key: 'test/tp', service: 'test/flaky', loadBalancer: 'P2C_PEAK_EWMA', tls: 'DISABLE', retryBudget: { ratio, minRetriesPerSecond: minPerSecond } }]), { ip: VIP, port: 80 });
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });
  t.after(async () => { agent.destroy(); await p.close(); await up.close(); });
  const N = 1000;
  let ok = 0;
  for (let i = 0; i < N; i += 20) {
    const rs = await Promise.all(Array.from({ length: 20 }, () => get(p.port, agent)));
    ok += rs.filter((r) => r.status === 200).length;
  }
  assert.ok(ok / N >= 0.99, `success ${(ok / N * 100).toFixed(1)} %`);
  // Now the backend fails everything: retries must stay within the budget, not 4x.
  failAll = true;
  const before = up.hits;
  const M = 400;
  for (let i = 0; i < M; i += 20) await Promise.all(Array.from({ length: 20 }, () => get(p.port, agent)));
  const extra = up.hits - before - M;
  // Budget over its 10 s window: ratio x all requests in the window (both phases) + min/s x 10.
  const cap = ratio * (N + M) + minPerSecond * 10;
  const retriedBefore = before - N;
  assert.ok(retriedBefore + extra <= cap, `retries ${retriedBefore + extra} exceed budget ${cap}`);
  assert.ok(extra < M * 3 * 0.5, `extra load ${extra} is far below attempts x requests (${M * 3})`);
  assert.ok(p.directory.cluster('test/flaky:80')!.budget.refused > 0, 'budget refused some retries');
});

test('an outlier endpoint is ejected (datapath told) and comes back', async (t) => {
  const good = await httpUpstream((_q, res) => res.end('good'));
  const bad = await httpUpstream((_q, res) => { res.statusCode = 500; res.end('bad'); });
  const events: { port: number; ejected: boolean }[] = [];
  // Round robin so the failing endpoint keeps being tried (peak-EWMA would mostly avoid it).
  const p = await startProxy(view([service({ name: 'o', vip: VIP, port: 80, endpoints: [{ port: good.port }, { port: bad.port }] })], [], [{
    key: 'test/tp', service: 'test/o', loadBalancer: 'ROUND_ROBIN', tls: 'DISABLE',
    outlierDetection: { consecutive5xx: 3, intervalMs: 50, baseEjectionTimeMs: 400, maxEjectionPercent: 50 },
  }]), { ip: VIP, port: 80 }, {}, (_svc, ep, ejected) => events.push({ port: ep.port, ejected }));
  const agent = new Agent({ keepAlive: true, maxSockets: 2 });
  t.after(async () => { agent.destroy(); await p.close(); await good.close(); await bad.close(); });
  for (let i = 0; i < 60 && !events.some((e) => e.ejected); i++) await get(p.port, agent);
  assert.deepEqual(events[0], { port: bad.port, ejected: true });
  const badHits = bad.hits;
  for (let i = 0; i < 30; i++) assert.equal((await get(p.port, agent)).body, 'good');
  assert.equal(bad.hits, badHits, 'ejected endpoint received nothing');
  const t0 = Date.now();
  while (!events.some((e) => !e.ejected) && Date.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(events[1], { port: bad.port, ejected: false });
  // Back in rotation: it receives traffic again.
  for (let i = 0; i < 20 && bad.hits === badHits; i++) await get(p.port, agent);
  assert.ok(bad.hits > badHits, 'endpoint is back in rotation');
});

test('route timeout answers 504; fault delay and abort; local rate limit 429', async (t) => {
  const up = await httpUpstream((req, res) => { if (req.url === '/slow') setTimeout(() => res.end('late'), 1000); else res.end('ok'); });
  const svc = (name: string, vip: string) => service({ name, vip, port: 80, endpoints: [{ port: up.port }] });
  const be = [{ service: 'test/t', port: 80, weight: 1 }];
  const p = await startProxy(view([svc('t', VIP), svc('f', '10.96.1.5'), svc('r', '10.96.1.6')], [
    { service: 't', port: 80, routes: [route('to', { backends: be, timeouts: { requestMs: 150 } })] },
    { service: 'f', port: 80, routes: [
      route('abort', { match: { path: { type: 'Exact', value: '/abort' }, headers: [], queryParams: [] }, backends: be, fault: { abort: { percent: 100, httpStatus: 418 } } }, 0),
      route('half', { match: { path: { type: 'Exact', value: '/half' }, headers: [], queryParams: [] }, backends: be, fault: { abort: { percent: 50, httpStatus: 503 } } }, 1),
      route('delay', { backends: be, fault: { delay: { percent: 100, fixedDelayMs: 200 } } }, 2),
    ] },
    { service: 'r', port: 80, routes: [route('rl', { backends: be, rateLimit: { maxTokens: 5, tokensPerFill: 5, fillIntervalMs: 60_000 } })] },
  ]), { ip: VIP, port: 80 });
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });
  t.after(async () => { agent.destroy(); await p.close(); await up.close(); });

  let t0 = performance.now();
  assert.equal((await get(p.port, agent, '/slow')).status, 504);
  const took = performance.now() - t0;
  assert.ok(took >= 140 && took < 900, `timeout fired after ${took.toFixed(0)} ms`);

  // Routes are bound per connection (its original destination): new origin, new agent.
  p.origin = { ip: '10.96.1.5', port: 80 };
  agent.destroy();
  const hits = up.hits;
  assert.equal((await get(p.port, agent, '/abort')).status, 418);
  assert.equal(up.hits, hits, 'aborted request never reached the upstream');
  let aborted = 0;
  for (let i = 0; i < 400; i++) if ((await get(p.port, agent, '/half')).status === 503) aborted++;
  assert.ok(aborted > 140 && aborted < 260, `50 % abort gave ${aborted}/400`);
  t0 = performance.now();
  assert.equal((await get(p.port, agent, '/d')).status, 200);
  assert.ok(performance.now() - t0 >= 190, 'fault delay applied');

  p.origin = { ip: '10.96.1.6', port: 80 };
  agent.destroy();
  const codes: number[] = [];
  for (let i = 0; i < 10; i++) codes.push((await get(p.port, agent)).status);
  assert.deepEqual(codes, [200, 200, 200, 200, 200, 429, 429, 429, 429, 429]);
});

test('header modifiers, metrics with the DESIGN.md labels, traceparent propagated with a span per hop', async (t) => {
  let seen: IncomingHttpHeaders = {};
  const up = await httpUpstream((req, res) => { seen = req.headers; res.setHeader('x-internal', 'secret'); res.end('ok'); });
  const spans: unknown[] = [];
  const collector = createServer((req, res) => { let b = ''; req.on('data', (c) => { b += c; }); req.on('end', () => { spans.push(JSON.parse(b)); res.end('{}'); }); });
  await new Promise<void>((r) => collector.listen(0, '127.0.0.1', r));
  const registry = new Registry();
  const metrics = new RequestMetrics(registry);
  const tracer = new Tracer({ collector: `http://127.0.0.1:${(collector.address() as AddressInfo).port}`, serviceName: 'weft-test', logger: rootLogger(), flushIntervalMs: 50 });
  const p = await startProxy(view([service({ name: 'h', vip: VIP, port: 80, endpoints: [{ port: up.port }] })], [{
    service: 'h', port: 80, routes: [route('mod', {
      backends: [{ service: 'test/h', port: 80, weight: 1 }],
      requestHeaderModifier: { set: [{ name: 'X-Env', value: 'prod' }], add: [{ name: 'x-added', value: '1' }], remove: ['x-remove-me'] },
      responseHeaderModifier: { set: [], add: [], remove: ['x-internal'] },
    })],
  }]), { ip: VIP, port: 80 }, { metrics, tracer, sourceOf: () => ({ workload: 'client', namespace: 'test', principal: 'spiffe://t/ns/test/sa/client' }) });
  const agent = new Agent({ keepAlive: true });
  t.after(async () => { agent.destroy(); tracer.close(); await p.close(); await up.close(); collector.close(); });
  const parent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
  const r = await get(p.port, agent, '/m', { 'x-env': 'dev', 'x-remove-me': '1', traceparent: parent });
  assert.equal(r.status, 200);
  assert.equal(r.headers['x-internal'], undefined, 'response header removed');
  assert.equal(seen['x-env'], 'prod');
  assert.equal(seen['x-added'], '1');
  assert.equal(seen['x-remove-me'], undefined);
  const tp = String(seen.traceparent);
  assert.match(tp, /^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/, 'same trace, new span id');
  assert.notEqual(tp, parent);
  const text = await registry.metrics();
  assert.match(text, /weft_requests_total\{reporter="source",source_workload="client",source_namespace="test",source_principal="spiffe:\/\/t\/ns\/test\/sa\/client",destination_service="test\/h",destination_workload="unknown",connection_security_policy="unknown",response_code="200",grpc_status=""\} 1/);
  assert.match(text, /weft_request_duration_seconds_count\{[^}]*response_code="200"[^}]*\} 1/);
  const t0 = Date.now();
  while (spans.length === 0 && Date.now() - t0 < 3000) await new Promise((res) => setTimeout(res, 20));
  const span = (spans[0] as { resourceSpans: { scopeSpans: { spans: { traceId: string; parentSpanId: string; spanId: string }[] }[] }[] }).resourceSpans[0]!.scopeSpans[0]!.spans[0]!;
  assert.equal(span.traceId, '0af7651916cd43dd8448eb211c80319c');
  assert.equal(span.parentSpanId, 'b7ad6b7169203331');
  assert.equal(tp.split('-')[2], span.spanId, 'forwarded traceparent names the exported span');
});

test('slow client gets 408; unframeable upstream response gives 502 and the connection is not reused', async (t) => {
  let n = 0;
  const upstream = tcpServer((s) => {
    s.on('data', () => {
      n++;
      // First response is ambiguous (CL + TE); later ones are fine.
      s.write(n === 1 ? 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\nok' : 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const port = (upstream.address() as AddressInfo).port;
  const p = await startProxy(view([service({ name: 's', vip: VIP, port: 80, endpoints: [{ port }] })]), { ip: VIP, port: 80 }, { headerTimeoutMs: 300 });
  t.after(async () => { await p.close(); upstream.close(); });
  const t0 = performance.now();
  const slow = await rawExchange(p.port, [Buffer.from('GET / HTTP/1.1\r\nHo'), Buffer.from('st: a\r\n')], 3000, 50);
  assert.match(slow.data.toString(), /^HTTP\/1\.1 408 /);
  assert.ok(performance.now() - t0 < 1500);
  const bad = await rawExchange(p.port, Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n\r\n'), 2000);
  assert.match(bad.data.toString(), /^HTTP\/1\.1 502 /);
  const good = await rawExchange(p.port, Buffer.from('GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'), 2000);
  assert.match(good.data.toString(), /^HTTP\/1\.1 200 OK\r\ncontent-length: 2\r\n\r\nok$/);
});

test('route idle timeout closes a stalled exchange; circuit breaker overflows with 503; Upgrade switches to a tunnel', async (t) => {
  // Upstream that sends a head and part of the body, then stalls.
  const stall = tcpServer((s) => {
    let tunnel = false;
    s.on('data', (d) => {
      if (tunnel) { s.write(d); return; }
      if (d.toString().includes('Upgrade: websocket')) {
        s.write('HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n');
        tunnel = true;
        return;
      }
      if (d.toString().startsWith('GET /stall')) s.write('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc');
      else if (d.toString().startsWith('GET /hold')) { /* never answers */ }
      else s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => stall.listen(0, '127.0.0.1', r));
  const port = (stall.address() as AddressInfo).port;
  const be = [{ service: 'test/i', port: 80, weight: 1 }];
  const p = await startProxy(view([service({ name: 'i', vip: VIP, port: 80, endpoints: [{ port }] }), service({ name: 'cb', vip: '10.96.1.9', port: 80, endpoints: [{ port }] })], [
    { service: 'i', port: 80, routes: [route('idle', { backends: be, timeouts: { idleMs: 200 } })] },
  ], [{ key: 'test/cb', service: 'test/cb', loadBalancer: 'P2C_PEAK_EWMA', tls: 'DISABLE', connection: { maxConnections: 1, maxPendingRequests: 1 } }]), { ip: VIP, port: 80 });
  t.after(async () => { await p.close(); stall.close(); });

  const t0 = performance.now();
  const r = await rawExchange(p.port, Buffer.from('GET /stall HTTP/1.1\r\nHost: a\r\n\r\n'), 3000);
  assert.match(r.data.toString(), /^HTTP\/1\.1 200 OK[\s\S]*abc$/);
  assert.ok(r.closed && performance.now() - t0 < 2000, 'stalled response cut by the idle timeout');

  // Upgrade (WebSocket, the one allowed by default): after 101 the bytes flow both ways untouched.
  const up = await rawExchange(p.port, [Buffer.from('GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n'), Buffer.from('ping-bytes')], 3000, 100,
    (d) => d.toString().endsWith('ping-bytes'));
  assert.match(up.data.toString(), /^HTTP\/1\.1 101 [\s\S]*\r\n\r\nping-bytes$/);

  // Circuit breaking: one connection, one pending; a third concurrent request overflows.
  p.origin = { ip: '10.96.1.9', port: 80 };
  const held = [rawExchange(p.port, Buffer.from('GET /hold HTTP/1.1\r\nHost: a\r\n\r\n'), 600), rawExchange(p.port, Buffer.from('GET /hold HTTP/1.1\r\nHost: a\r\n\r\n'), 600)];
  await new Promise((res) => setTimeout(res, 100));
  const third = await rawExchange(p.port, Buffer.from('GET /x HTTP/1.1\r\nHost: a\r\n\r\n'), 1000, 0, (d) => d.includes('\r\n\r\n'));
  assert.match(third.data.toString(), /^HTTP\/1\.1 503 /);
  await Promise.all(held);
  assert.ok(p.directory.cluster('test/cb:80')!.overflows >= 1);
});

test('access log: JSON lines through pino, sampled, errors always logged', async (t) => {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({ write(chunk, _e, cb) { for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l)); cb(); } });
  const up = await httpUpstream((req, res) => { res.statusCode = req.url === '/err' ? 503 : 200; res.end('x'); });
  const p = await startProxy(view([service({ name: 'l', vip: VIP, port: 80, endpoints: [{ port: up.port }] })]), { ip: VIP, port: 80 },
    { accessLog: new AccessLog({ logger: pino({ base: null }, sink), sampleRate: 0, logErrors: true }) });
  const agent = new Agent({ keepAlive: true });
  t.after(async () => { agent.destroy(); await p.close(); await up.close(); });
  for (let i = 0; i < 20; i++) await get(p.port, agent, '/ok');
  await get(p.port, agent, '/err');
  await new Promise((r) => setImmediate(r));
  assert.equal(lines.length, 1, 'sample rate 0: only the error is logged');
  assert.equal(lines[0]!.msg, 'access');
  assert.equal(lines[0]!.method, 'GET');
  assert.equal(lines[0]!.path, '/err');
  assert.equal(lines[0]!.status, 503);
  assert.equal(lines[0]!.upstream, 'test/l:80');
});
