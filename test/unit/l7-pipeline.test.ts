// The request pipeline is shared by HTTP/1.1 and HTTP/2: every test here runs the same
// scenario through both codecs. Each covers a drift the two copies used to have (HTTP/2
// did not count overflows, dropped the trace id from its access-log line, and its
// upstream pool ignored the cluster's connection and pending-request limits).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createTcp, type AddressInfo, type Server } from 'node:net';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import type { TrafficPolicyState } from '../../agent/policy/snapshot';
import type { AccessRecord, AccessSink } from '../../agent/proxy/routing/access-log';
import { Tracer } from '../../agent/proxy/routing/tracing';
import { rootLogger } from '../../agent/telemetry/logger';
import { service, startProxy, view } from './l7-harness';

const VIP = '10.96.7.1';

/** A backend that answers /hold only when released, anything else at once. */
interface Backend {
  port: number;
  /** Transport connections accepted so far. */
  connections: number;
  held: number;
  /** traceparent values received. */
  traceparents: string[];
  release(): void;
  close(): Promise<void>;
}

interface Client {
  get(path: string, headers?: Record<string, string>): Promise<number>;
  close(): void;
}

interface Proto {
  name: string;
  protocol: 'HTTP' | 'HTTP2';
  backend(maxConcurrentStreams?: number): Promise<Backend>;
  client(port: number): Client;
}

function backendState(server: http.Server | http2.Http2Server, tcp: { connections: number }): Omit<Backend, 'port' | 'close'> & { hold(done: () => void): void } {
  const waiting: (() => void)[] = [];
  const st = {
    get connections() { return tcp.connections; },
    held: 0, traceparents: [] as string[],
    hold(done: () => void) { st.held++; waiting.push(done); },
    release() { for (const w of waiting.splice(0)) w(); },
  };
  void server;
  return st;
}

const H1: Proto = {
  name: 'HTTP/1.1', protocol: 'HTTP',
  async backend() {
    const tcp = { connections: 0 };
    const server = http.createServer();
    const st = backendState(server, tcp);
    server.on('connection', () => tcp.connections++);
    server.on('request', (req, res) => {
      if (typeof req.headers.traceparent === 'string') st.traceparents.push(req.headers.traceparent);
      req.resume();
      if (req.url === '/hold') st.hold(() => res.end('held'));
      else res.end('ok');
    });
    server.keepAliveTimeout = 30_000;
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return Object.assign(st, {
      port: (server.address() as AddressInfo).port,
      close: () => new Promise<void>((r) => { st.release(); server.closeAllConnections(); server.close(() => r()); }),
    });
  },
  client(port) {
    // Keep-alive (a `Connection: close` request would also retire its upstream connection).
    const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
    return {
      get: (path, headers = {}) => new Promise<number>((res, rej) => {
        http.get({ host: '127.0.0.1', port, path, headers, agent }, (r) => { r.resume(); r.on('end', () => res(r.statusCode!)); }).on('error', rej);
      }),
      close() { agent.destroy(); },
    };
  },
};

const H2: Proto = {
  name: 'HTTP/2', protocol: 'HTTP2',
  async backend(maxConcurrentStreams?: number) {
    const tcp = { connections: 0 };
    const server = http2.createServer(maxConcurrentStreams !== undefined ? { settings: { maxConcurrentStreams } } : {});
    const st = backendState(server, tcp);
    const sessions = new Set<http2.ServerHttp2Session>();
    server.on('session', (s) => { tcp.connections++; sessions.add(s); s.on('close', () => sessions.delete(s)); });
    server.on('stream', (s, h) => {
      if (typeof h.traceparent === 'string') st.traceparents.push(h.traceparent);
      s.resume();
      const answer = () => { if (!s.destroyed) { s.respond({ ':status': 200 }); s.end('ok'); } };
      if (h[':path'] === '/hold') st.hold(answer); else answer();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return Object.assign(st, {
      port: (server.address() as AddressInfo).port,
      close: () => new Promise<void>((r) => { st.release(); for (const s of sessions) s.destroy(); server.close(() => r()); }),
    });
  },
  client(port) {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', () => {});
    return {
      get: (path, headers = {}) => new Promise<number>((res, rej) => {
        const s = session.request({ ':path': path, ...headers });
        s.on('response', (h) => { s.resume(); s.on('end', () => res(Number(h[':status']))); });
        s.on('error', rej);
        s.end();
      }),
      close() { session.destroy(); },
    };
  },
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

class Records implements AccessSink {
  readonly lines: AccessRecord[] = [];
  wants(): boolean { return true; }
  write(r: AccessRecord): void { this.lines.push(r); }
}

function policy(connection: TrafficPolicyState['connection']): TrafficPolicyState {
  return { key: 'test/cb', service: 'test/cb', loadBalancer: 'ROUND_ROBIN', tls: 'DISABLE', connection };
}

async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) { if (Date.now() > end) assert.fail(`timed out waiting for ${what}`); await sleep(10); }
}

for (const proto of [H1, H2]) {
  test(`${proto.name}: the circuit breaker's request limit answers 503 and counts the overflow`, async (t) => {
    const be = await proto.backend();
    const log = new Records();
    const p = await startProxy(view([service({ name: 'cb', vip: VIP, port: 80, protocol: proto.protocol, endpoints: [{ port: be.port }] })], [], [policy({ maxRequests: 1 })]),
      { ip: VIP, port: 80 }, { accessLog: log });
    const c = proto.client(p.port);
    t.after(async () => { c.close(); await p.close(); await be.close(); });
    const held = c.get('/hold');
    await until(() => be.held === 1, 'the first request at the backend');
    assert.equal(await c.get('/other'), 503, 'second concurrent request refused');
    const cluster = p.directory.cluster('test/cb:80')!;
    assert.equal(cluster.overflows, 1, 'the overflow is counted');
    be.release();
    assert.equal(await held, 200);
    assert.deepEqual(log.lines.map((l) => [l.path, l.status, l.flags]), [['/other', 503, 'overflow'], ['/hold', 200, '']]);
  });

  test(`${proto.name}: the access log line carries the request's trace id`, async (t) => {
    const collector: Server = createTcp((s) => { s.on('data', () => s.end('HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n')); s.on('error', () => {}); });
    await new Promise<void>((r) => collector.listen(0, '127.0.0.1', r));
    const tracer = new Tracer({ collector: `http://127.0.0.1:${(collector.address() as AddressInfo).port}`, serviceName: 'weft-test', logger: rootLogger(), flushIntervalMs: 60_000 });
    const be = await proto.backend();
    const log = new Records();
    const p = await startProxy(view([service({ name: 'tr', vip: VIP, port: 80, protocol: proto.protocol, endpoints: [{ port: be.port }] })]), { ip: VIP, port: 80 }, { accessLog: log, tracer });
    const c = proto.client(p.port);
    t.after(async () => { c.close(); tracer.close(); await p.close(); await be.close(); collector.close(); });
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    assert.equal(await c.get('/traced', { traceparent: `00-${traceId}-00f067aa0ba902b7-01` }), 200);
    assert.equal(await c.get('/fresh'), 200);
    assert.equal(log.lines.length, 2);
    assert.equal(log.lines[0]!.traceId, traceId, 'continues the caller\'s trace');
    assert.match(log.lines[1]!.traceId, /^[0-9a-f]{32}$/, 'a new trace gets an id too');
    assert.notEqual(log.lines[1]!.traceId, traceId);
    // The id logged is the one forwarded upstream.
    assert.deepEqual(be.traceparents.map((v) => v.split('-')[1]), [traceId, log.lines[1]!.traceId]);
  });

  test(`${proto.name}: the upstream pool honours the cluster's connection and pending-request limits`, async (t) => {
    // HTTP/2: the backend allows one stream per connection, and the proxy would open a
    // new connection per stream (streamsPerSession 1): only the cluster limit stops it.
    const be = await proto.backend(1);
    const log = new Records();
    const p = await startProxy(view([service({ name: 'cb', vip: VIP, port: 80, protocol: proto.protocol, endpoints: [{ port: be.port }] })], [], [policy({ maxConnections: 1, maxPendingRequests: 1 })]),
      { ip: VIP, port: 80 }, { accessLog: log, h2: { streamsPerSession: 1 } });
    const c = proto.client(p.port);
    t.after(async () => { c.close(); await p.close(); await be.close(); });
    const first = c.get('/hold');
    await until(() => be.held === 1, 'the first request at the backend');
    const second = c.get('/hold'); // waits for the connection (pending)
    await until(() => p.directory.cluster('test/cb:80')!.pending === 1, 'the second request pending');
    assert.equal(await c.get('/third'), 503, 'no connection and no queue space: overflow');
    const cluster = p.directory.cluster('test/cb:80')!;
    assert.equal(cluster.overflows, 1);
    assert.equal(be.connections, 1, 'one upstream connection (maxConnections)');
    assert.equal(be.held, 1, 'the pending request did not reach the backend');
    be.release();
    assert.equal(await first, 200);
    await until(() => be.held === 2, 'the pending request sent on the freed connection');
    be.release();
    assert.equal(await second, 200);
    assert.equal(be.connections, 1, 'still the one connection');
    assert.equal(cluster.pending, 0);
    assert.equal(cluster.connections, 1);
    assert.deepEqual(log.lines.map((l) => [l.path, l.status, l.flags]), [['/third', 503, 'overflow'], ['/hold', 200, ''], ['/hold', 200, '']]);
  });
}
