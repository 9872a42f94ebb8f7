// A gRPC client we did not write: Debian's python3-grpcio (gRPC's C core), which dials an
// IPv4 service VIP from a dual-stack IPv6 socket (::ffff:VIP). Through a one-node mesh in
// its own network namespace, against a Python grpcio server, over a GRPC service (the
// kernel redirects to the agent's L7 proxy, which needs the connection's origin) and a
// TCP service (balanced in the kernel): all four call types, metadata both ways, trailers,
// an error status, a deadline and a cancellation that the server observes. And a Node
// client on an IPv6 socket (a name resolved for family 6, v4-mapped) to an HTTP VIP.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { requires } from '../lib/privileges';
import { startOneNodeMesh, type OneNodeMesh } from '../lib/mesh';
import { policyFile, registrationGrant } from '../lib/policies';
import { weftArgv, ROOT } from '../lib/weft';

const FIX = join(ROOT, 'test', 'e2e', 'fixtures', 'grpc-python');
/** Debian's interpreter: the first python3 on PATH may be a build without Debian's packages. */
const PYTHON = '/usr/bin/python3';
const GRPC_VIP = '10.96.0.60', TCP_VIP = '10.96.0.61', HTTP_VIP = '10.96.0.62';
const GRPC_POD = '10.250.0.61', TCP_POD = '10.250.0.62', HTTP_POD = '10.250.0.63';

const policies = (node: string) => policyFile(node, [
  { name: 'pyg', vip: GRPC_VIP, port: 50051, targetPort: 50051, protocol: 'GRPC', workloads: { 'pyg-1': GRPC_POD } },
  { name: 'pyt', vip: TCP_VIP, port: 50051, targetPort: 50051, protocol: 'TCP', workloads: { 'pyt-1': TCP_POD } },
  { name: 'pyh', vip: HTTP_VIP, port: 80, targetPort: 8080, protocol: 'HTTP', workloads: { 'pyh-1': HTTP_POD } },
], [registrationGrant(node)]);

function sleep(ms: number): Promise<void> { return new Promise((r) => setTimeout(r, ms)); }

interface Counters { connect_balanced: string; connect_redirected: string; origin_inserts: string }
type Md = Record<string, string>;
interface PyResult {
  error?: unknown;
  unary?: { reply: { body: string; data: string; deadline: number | null }; code: string; initial: Md; trailers: Md };
  serverStream?: { messages: string[]; code: string; trailers: Md };
  clientStream?: { reply: { messages: number; bytes: number }; code: string; trailers: Md };
  bidi?: { messages: string[]; code: string };
  fail?: { code: string; details: string; trailers: Md };
  deadline?: { code: string; seconds: number; serverSawGone: number };
  cancel?: { got: string[]; code: string; serverSawCancel: number };
}

async function counters(mesh: OneNodeMesh): Promise<Counters> {
  const r = await mesh.ns.exec(['curl', '-sf', 'http://127.0.0.1:15020/debug/bpf']);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { counters: Counters }).counters;
}
const delta = (a: Counters, b: Counters, k: keyof Counters) => BigInt(b[k]) - BigInt(a[k]);

test('python3-grpcio and Node on dual-stack sockets (v4-mapped VIPs) through the mesh: GRPC, HTTP and TCP services', { timeout: 180_000 }, async (t) => {
  if (!requires(t, { bpffs: true, netns: true, cgroup2: true, commands: ['curl'] })) return;
  if (!existsSync(PYTHON)) throw new Error(`${PYTHON} is missing (scripts/install-deps.sh installs python3-grpcio)`);
  const mesh = await startOneNodeMesh('gpy', policies);
  t.after(() => mesh.close());
  const { ns, dir } = mesh;
  ns.addAddress(`${GRPC_POD}/32`);
  ns.addAddress(`${TCP_POD}/32`);
  ns.addAddress(`${HTTP_POD}/32`);
  await mesh.spawn([process.execPath, join(ROOT, 'test', 'e2e', 'fixtures', 'agent', 'http-echo.js'), HTTP_POD, '8080', 'pyh-1']).waitForLog(/listening/);
  await mesh.spawn([PYTHON, join(FIX, 'server.py'), GRPC_POD, '50051', 'pyg-1']).waitForLog(/listening/);
  await mesh.spawn([PYTHON, join(FIX, 'server.py'), TCP_POD, '50051', 'pyt-1']).waitForLog(/listening/);
  // The L7 path needs the node certificate (the tunnel) and both services programmed.
  for (let i = 0; ; i++) {
    const st = await ns.exec(['curl', '-sf', 'http://127.0.0.1:15020/v1/status']);
    const bpf = await ns.exec(['curl', '-sf', 'http://127.0.0.1:15020/debug/bpf']);
    const services = bpf.code === 0 ? (JSON.parse(bpf.stdout) as { services: { vip: string; mode: string; backends: unknown[] }[] }).services : [];
    if (st.code === 0 && (JSON.parse(st.stdout) as { listeners: { inbound: string | null } }).listeners.inbound
      && services.some((s) => s.vip === GRPC_VIP && s.mode === 'redirect') && services.some((s) => s.vip === HTTP_VIP && s.mode === 'redirect')
      && services.some((s) => s.vip === TCP_VIP && s.mode === 'l4' && s.backends.length === 1)) break;
    assert.ok(i < 300, 'the agent never got its node certificate and both services');
    await sleep(100);
  }
  const python = async (target: string, ...extra: string[]): Promise<PyResult> => {
    const r = await ns.exec(weftArgv('run', '--workload', 'py-client', '--state-dir', join(dir, 'agent'), '--', PYTHON, join(FIX, 'client.py'), target, ...extra), { timeoutMs: 90_000 });
    assert.equal(r.code, 0, `client ${target}: ${r.stderr}`);
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as PyResult;
  };

  const check = (r: PyResult, server: string) => {
    assert.equal(r.error, undefined, JSON.stringify(r));
    const u = r.unary!;
    assert.deepEqual([u.code, u.reply.body, u.reply.data], ['OK', 'hello', '00ff10'], 'unary: request and binary metadata arrive');
    assert.deepEqual(u.initial, { 'x-server': server, 'x-echo': 'abc' }, 'unary: initial metadata back');
    assert.deepEqual(u.trailers, { 'x-trailer': 'unary-done', 'x-raw-bin': '0001feff' }, 'unary: trailers, binary one too');
    assert.ok(u.reply.deadline !== null && u.reply.deadline > 5 && u.reply.deadline <= 10.5, `the server sees the caller's deadline: ${u.reply.deadline}`);
    assert.deepEqual(r.serverStream, { messages: [0, 1, 2, 3, 4].map((i) => `${server} ${i}`), code: 'OK', trailers: { 'x-trailer': 'stream-done 5' } });
    assert.deepEqual(r.clientStream, { reply: { messages: 4, bytes: 100006 }, code: 'OK', trailers: { 'x-trailer': 'client-stream-done' } });
    assert.deepEqual(r.bidi, { messages: [0, 1, 2, 3, 4].map((i) => `echo:m${i}`), code: 'OK' });
    assert.deepEqual(r.fail, { code: 'NOT_FOUND', details: 'no such thing', trailers: { 'x-reason': 'because' } });
    const d = r.deadline!;
    assert.equal(d.code, 'DEADLINE_EXCEEDED');
    assert.ok(d.seconds >= 0.45 && d.seconds < 2, `a 0.5 s deadline ended the call after ${d.seconds} s`);
    assert.equal(d.serverSawGone, 1, 'the server saw the call end at the deadline');
    assert.deepEqual(r.cancel, { got: [0, 1, 2].map((i) => `${server} ${i}`), code: 'CANCELLED', serverSawCancel: 1 }, 'the cancellation reached the server');
  };

  await t.test('GRPC service: redirected to the agent, which finds the origin of the v4-mapped socket', async () => {
    const before = await counters(mesh);
    check(await python(`${GRPC_VIP}:50051`), 'pyg-1');
    const after = await counters(mesh);
    assert.ok(delta(before, after, 'connect_redirected') >= 1n, 'connect6 redirected the client to the agent');
    assert.ok(delta(before, after, 'origin_inserts') >= 1n, 'and recorded its origin');
    assert.equal(delta(before, after, 'connect_balanced'), 0n, 'nothing balanced in the kernel');
    const metrics = (await ns.exec(['curl', '-sf', 'http://127.0.0.1:15020/metrics'])).stdout;
    const mine = metrics.split('\n').filter((l) => l.startsWith('weft_requests_total{') && l.includes('reporter="source"') && l.includes('destination_service="default/pyg"'));
    assert.ok(mine.length > 0, `the agent proxied the calls as requests of pyg: ${metrics.split('\n').filter((l) => l.startsWith('weft_requests_total{')).join('\n')}`);
    for (const l of mine) assert.match(l, /source_workload="py-client"/, `the caller named from the socket's cgroup: ${l}`);
  });

  await t.test('GRPC service, an explicit v4-mapped target (ipv6:[::ffff:VIP])', async () => {
    const r = await python(`ipv6:[::ffff:${GRPC_VIP}]:50051`, 'unary');
    assert.deepEqual([r.error, r.unary?.code, r.unary?.initial['x-server']], [undefined, 'OK', 'pyg-1'], JSON.stringify(r));
  });

  await t.test('a Node client on an IPv6 socket (a name resolved with family 6, V4MAPPED) to an HTTP VIP gets its answer', async () => {
    // The name resolves through a hosts-style lookup that returns the v4-mapped VIP, as
    // a resolver does for family 6 with V4MAPPED when a name has only an A record.
    const script = `const http = require('node:http');
      const lookup = (host, opts, cb) => opts.all ? cb(null, [{ address: '::ffff:${HTTP_VIP}', family: 6 }]) : cb(null, '::ffff:${HTTP_VIP}', 6);
      http.get({ host: 'pyh.default', port: 80, path: '/', family: 6, lookup }, (res) => {
        let body = ''; const remote = res.socket.remoteAddress;
        res.setEncoding('utf8'); res.on('data', (d) => { body += d; });
        res.on('end', () => console.log(JSON.stringify({ status: res.statusCode, body, remote })));
      }).on('error', (e) => console.log(JSON.stringify({ error: e.code })));`;
    const r = await ns.exec(weftArgv('run', '--workload', 'node-client', '--state-dir', join(dir, 'agent'), '--', process.execPath, '-e', script), { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout.trim().split('\n').pop()!), { status: 200, body: 'pyh-1', remote: `::ffff:${HTTP_VIP}` });
  });

  await t.test('TCP service: balanced in the kernel to the Python server', async () => {
    const before = await counters(mesh);
    check(await python(`${TCP_VIP}:50051`), 'pyt-1');
    const after = await counters(mesh);
    assert.ok(delta(before, after, 'connect_balanced') >= 1n, 'connect6 balanced the client');
    assert.equal(delta(before, after, 'connect_redirected'), 0n, 'nothing redirected');
  });
});
