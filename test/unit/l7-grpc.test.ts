// HTTP/2 and gRPC through the outbound proxy with clients and servers nobody here wrote:
// @grpc/grpc-js (server and client), python3-grpcio (client), curl --http2-prior-knowledge
// and h2load. Covers the four call types, metadata, trailers, status details, deadlines,
// cancellation both ways, protocol detection (h2c preface) and bounded memory with a
// slow receiver.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as grpc from '@grpc/grpc-js';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { service, view, route, startProxy, type RunningProxy } from './l7-harness';
import { RequestMetrics } from '../../agent/proxy/routing/metrics';
import { Tracer } from '../../agent/proxy/routing/tracing';
import { rootLogger } from '../../agent/telemetry/logger';

const id = (b: Buffer): Buffer => b;
const VIP = '10.96.2.1';
const CHUNK = 64 * 1024;
/** Messages the Flood method sends: 64 MiB, far more than any window on the path. */
const FLOOD = 1000;

interface Origin { port: number; cancelled: number; slowSent: number; flakyCalls: number; slowOnceCalls: number; close(): void }

/** A grpc-js server with raw-bytes methods (no proto needed by either side). */
async function grpcOrigin(): Promise<Origin> {
  const st = { cancelled: 0, slowSent: 0, flakyCalls: 0, slowOnceCalls: 0 };
  const server = new grpc.Server();
  const def = (name: string, requestStream: boolean, responseStream: boolean) => ({
    path: `/test.Echo/${name}`, requestStream, responseStream, requestSerialize: id, requestDeserialize: id, responseSerialize: id, responseDeserialize: id, originalName: name,
  });
  server.addService({
    Unary: def('Unary', false, false), ServerStream: def('ServerStream', false, true), ClientStream: def('ClientStream', true, false),
    Bidi: def('Bidi', true, true), Slow: def('Slow', false, false), Flood: def('Flood', false, true), Flaky: def('Flaky', false, false),
    SlowOnce: def('SlowOnce', false, false), Stall: def('Stall', false, true),
  } as grpc.ServiceDefinition, {
    Unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const req = call.request.toString();
      if (req === 'fail') { cb({ code: grpc.status.INVALID_ARGUMENT, details: 'told to fail' }); return; }
      const md = new grpc.Metadata();
      md.set('x-echo-md', String(call.metadata.get('x-md')[0] ?? ''));
      md.set('x-echo-tp', String(call.metadata.get('traceparent')[0] ?? ''));
      call.sendMetadata(md);
      const trailer = new grpc.Metadata();
      trailer.set('x-trailer', 'done');
      cb(null, Buffer.from(`echo:${req}`), trailer);
    },
    Flaky: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      // Exactly 3 calls in every 10 fail, never two in a row (a random 30 % would make
      // the 99 % bar fail about one run in five by chance alone).
      if ([1, 4, 7].includes(st.flakyCalls++ % 10)) cb({ code: grpc.status.UNAVAILABLE, details: 'flaky' }); else cb(null, call.request);
    },
    SlowOnce: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      // Every other call hangs for 3 s (until cancelled); the next one answers at once.
      if (st.slowOnceCalls++ % 2 === 1) { cb(null, call.request); return; }
      const timer = setTimeout(() => cb(null, Buffer.from('late')), 3000);
      call.on('cancelled', () => { st.cancelled++; clearTimeout(timer); });
    },
    Stall: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      // One message, then silence with the stream open (until cancelled).
      call.write(Buffer.from('first'));
      call.on('cancelled', () => { st.cancelled++; });
    },
    ServerStream: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      const n = Number(call.request.toString());
      for (let i = 0; i < n; i++) call.write(Buffer.from(`m${i}`));
      call.end();
    },
    ClientStream: (call: grpc.ServerReadableStream<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const parts: Buffer[] = [];
      call.on('data', (d: Buffer) => parts.push(d));
      call.on('end', () => cb(null, Buffer.concat(parts)));
    },
    Bidi: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      call.on('data', (d: Buffer) => call.write(Buffer.concat([Buffer.from('re:'), d])));
      call.on('end', () => call.end());
    },
    Slow: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const timer = setTimeout(() => cb(null, Buffer.from('slow')), 3000);
      call.on('cancelled', () => { st.cancelled++; clearTimeout(timer); });
    },
    Flood: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      // Writes as fast as flow control lets it; counts what left the server.
      const big = Buffer.alloc(CHUNK, 7);
      const pump = (): void => {
        while (!call.cancelled && st.slowSent < FLOOD) {
          st.slowSent++;
          if (!call.write(big)) { call.once('drain', pump); return; }
        }
        if (!call.cancelled) call.end();
      };
      call.on('cancelled', () => { st.cancelled++; });
      pump();
    },
  } as never);
  const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  return { port, get cancelled() { return st.cancelled; }, get slowSent() { return st.slowSent; }, get flakyCalls() { return st.flakyCalls; }, get slowOnceCalls() { return st.slowOnceCalls; }, close: () => server.forceShutdown() };
}

async function setup(t: { after(fn: () => Promise<void> | void): void }, protocol: 'GRPC' | 'TCP' = 'GRPC'): Promise<{ origin: Origin; proxy: RunningProxy; client: grpc.Client }> {
  const origin = await grpcOrigin();
  const proxy = await startProxy(view([service({ name: 'echo', vip: VIP, port: 50051, protocol, endpoints: [{ port: origin.port }] })]), { ip: VIP, port: 50051 });
  const client = new grpc.Client(`127.0.0.1:${proxy.port}`, grpc.credentials.createInsecure());
  t.after(async () => { client.close(); await proxy.close(); origin.close(); });
  return { origin, proxy, client };
}

function unary(c: grpc.Client, method: string, req: string, md = new grpc.Metadata(), opts: grpc.CallOptions = {}) {
  return new Promise<{ err: grpc.ServiceError | null; res?: Buffer; headers?: grpc.Metadata; trailers?: grpc.Metadata }>((resolve) => {
    let headers: grpc.Metadata | undefined;
    let trailers: grpc.Metadata | undefined;
    const call = c.makeUnaryRequest(`/test.Echo/${method}`, id, id, Buffer.from(req), md, opts, (err, res) => {
      setImmediate(() => resolve({ err: err ?? null, res: res ?? undefined, headers, trailers }));
    });
    call.on('metadata', (m) => { headers = m; });
    call.on('status', (s) => { trailers = s.metadata; });
  });
}

test('grpc-js: unary with metadata and trailers, error details, server/client/bidi streaming', async (t) => {
  const { client } = await setup(t);
  const md = new grpc.Metadata();
  md.set('x-md', 'hello-md');
  const u = await unary(client, 'Unary', 'ping', md);
  assert.equal(u.err, null);
  assert.equal(u.res!.toString(), 'echo:ping');
  assert.deepEqual(u.headers!.get('x-echo-md'), ['hello-md']);
  assert.deepEqual(u.trailers!.get('x-trailer'), ['done']);
  const f = await unary(client, 'Unary', 'fail');
  assert.equal(f.err!.code, grpc.status.INVALID_ARGUMENT);
  assert.equal(f.err!.details, 'told to fail');

  const got: string[] = [];
  await new Promise<void>((resolve, reject) => {
    const s = client.makeServerStreamRequest('/test.Echo/ServerStream', id, id, Buffer.from('5'), new grpc.Metadata(), {});
    s.on('data', (d: Buffer) => got.push(d.toString()));
    s.on('end', resolve);
    s.on('error', reject);
  });
  assert.deepEqual(got, ['m0', 'm1', 'm2', 'm3', 'm4']);

  const cs = await new Promise<Buffer>((resolve, reject) => {
    const w = client.makeClientStreamRequest('/test.Echo/ClientStream', id, id, new grpc.Metadata(), {}, (e, r) => (e ? reject(e) : resolve(r!)));
    for (const p of ['a', 'b', 'c']) w.write(Buffer.from(p));
    w.end();
  });
  assert.equal(cs.toString(), 'abc');

  const bidi: string[] = [];
  await new Promise<void>((resolve, reject) => {
    const d = client.makeBidiStreamRequest('/test.Echo/Bidi', id, id, new grpc.Metadata(), {});
    d.on('data', (b: Buffer) => { bidi.push(b.toString()); if (bidi.length < 3) d.write(Buffer.from(`x${bidi.length}`)); else d.end(); });
    d.on('end', resolve);
    d.on('error', reject);
    d.write(Buffer.from('x0'));
  });
  assert.deepEqual(bidi, ['re:x0', 're:x1', 're:x2']);
});

test('grpc-js: deadline is enforced and cancellation reaches the server', async (t) => {
  const { client, origin } = await setup(t);
  const t0 = performance.now();
  const d = await unary(client, 'Slow', '', new grpc.Metadata(), { deadline: Date.now() + 300 });
  assert.equal(d.err!.code, grpc.status.DEADLINE_EXCEEDED);
  assert.ok(performance.now() - t0 < 2000);
  const waitCancel = async (n: number) => { const s = Date.now(); while (origin.cancelled < n && Date.now() - s < 3000) await new Promise((r) => setTimeout(r, 20)); };
  await waitCancel(1);
  assert.equal(origin.cancelled, 1, 'server saw the deadline as a cancellation');
  // Explicit client cancel.
  const call = client.makeUnaryRequest('/test.Echo/Slow', id, id, Buffer.from(''), new grpc.Metadata(), {}, () => {});
  await new Promise((r) => setTimeout(r, 200));
  call.cancel();
  await waitCancel(2);
  assert.equal(origin.cancelled, 2, 'client cancel propagated upstream as RST_STREAM');
});

test('slow receiver: flow control bounds what the server can push through the proxy', async (t) => {
  const { client, origin } = await setup(t);
  const s = client.makeServerStreamRequest('/test.Echo/Flood', id, id, Buffer.alloc(0), new grpc.Metadata(), {});
  let received = 0;
  s.on('data', () => { received++; if (received === 5) s.pause(); });
  s.on('error', () => {});
  const rss0 = process.memoryUsage().rss;
  while (received < 5) await new Promise((r) => setTimeout(r, 10));
  await new Promise((r) => setTimeout(r, 1500));
  const inFlight = (origin.slowSent - received) * CHUNK;
  // Windows and stream buffers on each hop, not the 64 MiB the server would like to send.
  assert.ok(inFlight < 16 * 1024 * 1024, `${(inFlight / 1048576).toFixed(1)} MiB in flight while paused`);
  assert.ok(origin.slowSent < FLOOD);
  assert.ok(process.memoryUsage().rss - rss0 < 96 * 1024 * 1024, 'process memory stayed bounded');
  s.resume();
  await new Promise<void>((r) => { s.on('end', r); s.on('error', () => r()); });
  assert.equal(received, FLOOD, 'all messages arrive once the receiver reads again');
});

test('large messages both ways: 24 MiB of 1 MiB bidi messages cross every window on the path', async (t) => {
  const { client } = await setup(t);
  const N = 24;
  const got: number[] = [];
  await new Promise<void>((resolve, reject) => {
    const d = client.makeBidiStreamRequest('/test.Echo/Bidi', id, id, new grpc.Metadata(), {});
    d.on('data', (b: Buffer) => { got.push(b.length === 3 + CHUNK * 16 && b[3] === got.length % 251 && b[b.length - 1] === got.length % 251 ? 1 : 0); });
    d.on('end', resolve);
    d.on('error', reject);
    for (let i = 0; i < N; i++) d.write(Buffer.alloc(CHUNK * 16, i % 251));
    d.end();
  });
  assert.equal(got.length, N);
  assert.ok(got.every((x) => x === 1), 'every message arrived intact and in order');
});

test('gRPC: header modifiers both ways, metrics with grpc_status, traceparent with a span per hop', async (t) => {
  const origin = await grpcOrigin();
  const spans: unknown[] = [];
  const collector = createServer((req, res) => { let b = ''; req.on('data', (c) => { b += c; }); req.on('end', () => { spans.push(JSON.parse(b)); res.end('{}'); }); });
  await new Promise<void>((r) => collector.listen(0, '127.0.0.1', r));
  const registry = new Registry();
  const tracer = new Tracer({ collector: `http://127.0.0.1:${(collector.address() as AddressInfo).port}`, serviceName: 'weft-test', logger: rootLogger(), flushIntervalMs: 50 });
  const proxy = await startProxy(view([service({ name: 'echo', vip: VIP, port: 50051, protocol: 'GRPC', endpoints: [{ port: origin.port }] })], [{
    service: 'echo', port: 50051, protocol: 'grpc',
    routes: [route('mod', {
      backends: [{ service: 'test/echo', port: 50051, weight: 1 }],
      requestHeaderModifier: { set: [{ name: 'x-md', value: 'from-route' }], add: [], remove: [] },
      responseHeaderModifier: { set: [], add: [{ name: 'x-added', value: 'yes' }], remove: [] },
    })],
  }]), { ip: VIP, port: 50051 }, { metrics: new RequestMetrics(registry), tracer });
  const client = new grpc.Client(`127.0.0.1:${proxy.port}`, grpc.credentials.createInsecure());
  t.after(async () => { client.close(); tracer.close(); await proxy.close(); origin.close(); collector.close(); });
  const md = new grpc.Metadata();
  md.set('x-md', 'from-client');
  md.set('traceparent', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
  const u = await unary(client, 'Unary', 'tp', md);
  assert.equal(u.err, null);
  assert.deepEqual(u.headers!.get('x-echo-md'), ['from-route'], 'request header set by the route');
  assert.deepEqual(u.headers!.get('x-added'), ['yes'], 'response header added by the route');
  const tp = String(u.headers!.get('x-echo-tp')[0]);
  assert.match(tp, /^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/);
  assert.notEqual(tp.split('-')[2], 'b7ad6b7169203331', 'a new span id for this hop');
  const f = await unary(client, 'Unary', 'fail');
  assert.equal(f.err!.code, grpc.status.INVALID_ARGUMENT);
  const text = await registry.metrics();
  assert.match(text, /weft_requests_total\{[^}]*destination_service="test\/echo"[^}]*response_code="200",grpc_status="0"\} 1/);
  assert.match(text, /weft_requests_total\{[^}]*response_code="200",grpc_status="3"\} 1/);
  const t0 = Date.now();
  while (spans.length === 0 && Date.now() - t0 < 3000) await new Promise((res) => setTimeout(res, 20));
  const exported = JSON.stringify(spans);
  assert.ok(exported.includes(tp.split('-')[2]!), 'the forwarded traceparent names an exported span');
});

function run(cmd: string, args: string[], timeoutMs = 30_000): Promise<string> {
  return new Promise((resolve, reject) => execFile(cmd, args, { timeout: timeoutMs }, (e, out, err) => (e ? reject(new Error(`${e.message}\n${err}`)) : resolve(out))));
}

test('python grpcio client: four call types, metadata, trailers, deadline, cancellation', async (t) => {
  const { proxy, origin } = await setup(t);
  const script = `
import grpc, json, sys, time
ch = grpc.insecure_channel(sys.argv[1])
out = {}
u = ch.unary_unary('/test.Echo/Unary')
resp, call = u.with_call(b'py', metadata=[('x-md', 'from-python')])
out['unary'] = resp.decode()
out['header'] = dict(call.initial_metadata()).get('x-echo-md')
out['trailer'] = dict(call.trailing_metadata()).get('x-trailer')
out['server'] = [m.decode() for m in ch.unary_stream('/test.Echo/ServerStream')(b'3')]
out['client'] = ch.stream_unary('/test.Echo/ClientStream')(iter([b'p', b'y'])).decode()
out['bidi'] = [m.decode() for m in ch.stream_stream('/test.Echo/Bidi')(iter([b'1', b'2']))]
try:
    ch.unary_unary('/test.Echo/Unary')(b'fail')
except grpc.RpcError as e:
    out['fail'] = [e.code().name, e.details()]
try:
    ch.unary_unary('/test.Echo/Slow')(b'', timeout=0.3)
except grpc.RpcError as e:
    out['deadline'] = e.code().name
f = ch.unary_unary('/test.Echo/Slow').future(b'')
time.sleep(0.2)
f.cancel()
out['cancelled'] = f.cancelled()
print(json.dumps(out))
`;
  const out = JSON.parse(await run('/usr/bin/python3', ['-c', script, `127.0.0.1:${proxy.port}`]));
  assert.deepEqual(out, {
    unary: 'echo:py', header: 'from-python', trailer: 'done', server: ['m0', 'm1', 'm2'], client: 'py', bidi: ['re:1', 're:2'],
    fail: ['INVALID_ARGUMENT', 'told to fail'], deadline: 'DEADLINE_EXCEEDED', cancelled: true,
  });
  const s = Date.now();
  while (origin.cancelled < 2 && Date.now() - s < 3000) await new Promise((r) => setTimeout(r, 20));
  assert.equal(origin.cancelled, 2, 'deadline and cancel both reached the server');
});

test('curl --http2-prior-knowledge and h2load through detection (undeclared protocol)', async (t) => {
  const { proxy } = await setup(t, 'TCP');
  const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, 4]), Buffer.from('curl')]);
  const { writeFileSync, mkdtempSync, rmSync } = await import('node:fs');
  const dir = mkdtempSync('/tmp/wt-l7-grpc-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(`${dir}/req.bin`, frame);
  const out = await run('curl', ['-sS', '--http2-prior-knowledge', '-H', 'content-type: application/grpc', '-H', 'te: trailers',
    '--data-binary', `@${dir}/req.bin`, '-o', `${dir}/resp.bin`, '-w', '%{http_version} %{http_code}', `http://127.0.0.1:${proxy.port}/test.Echo/Unary`]);
  assert.equal(out, '2 200');
  const { readFileSync } = await import('node:fs');
  assert.equal(readFileSync(`${dir}/resp.bin`).subarray(5).toString(), 'echo:curl');
  const h2 = await run('h2load', ['-n', '200', '-c', '4', '-m', '8', '-d', `${dir}/req.bin`, '-H', 'content-type: application/grpc', '-H', 'te: trailers', `http://127.0.0.1:${proxy.port}/test.Echo/Unary`]);
  assert.match(h2, /requests: 200 total, 200 started, 200 done, 200 succeeded, 0 failed, 0 errored/);
  assert.match(h2, /status codes: 200 2xx/);
  // Every request was a real answer (5-byte frame + 'echo:curl'), not a local error:
  // gRPC errors are HTTP 200 too.
  assert.match(h2, /traffic: .* \(2800\) data/);
  // Nothing stays booked against the cluster once the requests are done (a leak here
  // opens the circuit breaker after maxRequests requests).
  const cluster = proxy.directory.lookup(VIP, 50051).fallback.backends[0]!.cluster;
  assert.equal(cluster.active, 0);
  assert.ok(cluster.endpoints.every((e) => e.inflight === 0));
});

test('gRPC retries on UNAVAILABLE turn a 30 % failing method into ≥ 99 % success within the budget', async (t) => {
  const origin = await grpcOrigin();
  const proxy = await startProxy(view([service({ name: 'echo', vip: VIP, port: 50051, protocol: 'GRPC', endpoints: [{ port: origin.port }] })], [{
    service: 'echo', port: 50051, protocol: 'grpc',
    routes: [route('flaky', { backends: [{ service: 'test/echo', port: 50051, weight: 1 }], retry: { attempts: 3, on: ['unavailable'], retriableStatusCodes: [] } })],
  }], [{ key: 'test/tp', service: 'test/echo', loadBalancer: 'P2C_PEAK_EWMA', tls: 'DISABLE', retryBudget: { ratio: 0.6, minRetriesPerSecond: 1 } }]), { ip: VIP, port: 50051 });
  const client = new grpc.Client(`127.0.0.1:${proxy.port}`, grpc.credentials.createInsecure());
  t.after(async () => { client.close(); await proxy.close(); origin.close(); });
  const N = 500;
  let ok = 0;
  for (let i = 0; i < N; i += 25) {
    const rs = await Promise.all(Array.from({ length: 25 }, (_x, j) => unary(client, 'Flaky', `r${i + j}`)));
    ok += rs.filter((r) => r.err === null && r.res!.toString() === `r${rs.indexOf(r) + i}`).length;
  }
  assert.ok(ok / N >= 0.99, `success ${(ok / N * 100).toFixed(1)} %`);
  assert.ok(origin.flakyCalls - N <= 0.6 * N + 10, `retries ${origin.flakyCalls - N} within the budget`);
});

test('route timeouts on HTTP/2: a per-try timeout retries a hung try; the idle timeout ends a stalled stream', async (t) => {
  const origin = await grpcOrigin();
  const be = [{ service: 'test/echo', port: 50051, weight: 1 }];
  const proxy = await startProxy(view([service({ name: 'echo', vip: VIP, port: 50051, protocol: 'GRPC', endpoints: [{ port: origin.port }] })], [{
    service: 'echo', port: 50051, protocol: 'grpc',
    routes: [
      route('per-try', { match: { path: { type: 'Exact', value: '/test.Echo/SlowOnce' }, headers: [], queryParams: [] }, backends: be,
        retry: { attempts: 1, on: [], retriableStatusCodes: [], perTryTimeoutMs: 200 } }),
      route('idle', { match: { path: { type: 'Exact', value: '/test.Echo/Stall' }, headers: [], queryParams: [] }, backends: be, timeouts: { idleMs: 300 } }, 1),
    ],
  }]), { ip: VIP, port: 50051 });
  const client = new grpc.Client(`127.0.0.1:${proxy.port}`, grpc.credentials.createInsecure());
  t.after(async () => { client.close(); await proxy.close(); origin.close(); });

  let t0 = performance.now();
  const r = await unary(client, 'SlowOnce', 'second try');
  const took = performance.now() - t0;
  assert.equal(r.err, null, String(r.err));
  assert.equal(r.res!.toString(), 'second try');
  assert.equal(origin.slowOnceCalls, 2, 'the hung try was abandoned and retried');
  assert.ok(took >= 190 && took < 1500, `answered after ${took.toFixed(0)} ms`);

  t0 = performance.now();
  const got: string[] = [];
  const status = await new Promise<grpc.StatusObject>((resolve) => {
    // The client's own deadline only bounds the test: the proxy must end it far sooner.
    const call = client.makeServerStreamRequest('/test.Echo/Stall', id, id, Buffer.from(''), new grpc.Metadata(), { deadline: Date.now() + 5000 });
    call.on('data', (d: Buffer) => got.push(d.toString()));
    call.on('error', () => {});
    call.on('status', resolve);
  });
  const stalled = performance.now() - t0;
  assert.deepEqual(got, ['first'], 'what arrived before the stall was delivered');
  assert.equal(status.code, grpc.status.DEADLINE_EXCEEDED);
  assert.ok(stalled >= 290 && stalled < 2000, `stalled stream ended after ${stalled.toFixed(0)} ms`);
  const cluster = proxy.directory.lookup(VIP, 50051).routes[0]!.action.backends[0]!.cluster;
  assert.equal(cluster.active, 0, 'no try left counted against the circuit breaker');
});

test('HTTP/2 limits: advertised concurrent streams and header list size; rapid reset closes the connection', async (t) => {
  const { proxy } = await setup(t);
  const http2 = await import('node:http2');
  const session = http2.connect(`http://127.0.0.1:${proxy.port}`);
  session.on('error', () => {});
  t.after(() => session.destroy());
  const settings = await new Promise<import('node:http2').Settings>((r) => session.once('remoteSettings', r));
  assert.equal(settings.maxConcurrentStreams, 256);
  assert.equal(settings.maxHeaderListSize, 16 * 1024);
  // Open and immediately reset streams, as in CVE-2023-44487.
  const goaway = new Promise<number>((r) => { session.once('goaway', (code) => r(code)); session.once('close', () => r(-1)); });
  for (let i = 0; i < 600 && !session.destroyed && !session.closed; i++) {
    const s = session.request({ ':path': '/test.Echo/Slow', ':method': 'POST', 'content-type': 'application/grpc' });
    s.on('error', () => {});
    s.close(http2.constants.NGHTTP2_CANCEL);
    if (i % 50 === 49) await new Promise((r) => setImmediate(r));
  }
  const code = await Promise.race([goaway, new Promise<number>((r) => setTimeout(() => r(-2), 3000))]);
  assert.ok(code === http2.constants.NGHTTP2_ENHANCE_YOUR_CALM || code === -1, `connection closed for rapid resets (goaway code ${code})`);
});
