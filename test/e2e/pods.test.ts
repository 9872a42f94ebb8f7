// Pods in their own network namespaces (DESIGN.md "Hosts, nodes and namespaces"): a
// "node" namespace runs `weft control` and `weft agent` with its outbound and admin
// listeners on the node's address on a bridge (not loopback), and each "pod" namespace
// is plugged into that bridge with its own veth and IP, the way a CNI does it. Workloads
// are started inside the pods with `weft run --admin NODE:15020 --address POD_IP`.
//   a) an L4-only TCP service from pod A reaches pod B through the kernel rewrite alone
//      (BPF counters: balanced, not redirected; no proxied connection in the agent's
//      metrics; the server sees pod A's own address; getpeername shows the VIP);
//   b) an HTTP service from pod A is redirected to the agent's outbound listener at the
//      node address, routed by an HTTPRoute path match to pod B, and the agent names the
//      caller from the kernel (a spoofed identity header changes nothing);
//   c) under MeshConfig mTLS STRICT, (a) still works pod to pod, while a SYN from an
//      outsider namespace on the same bridge (no weft run) is dropped and counted;
//   d) everything is removed afterwards: processes, namespaces, cgroups, pins.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { requires } from '../lib/privileges';
import { podNode } from '../lib/pod-node';
import type { Netns } from '../lib/netns';
import { waitAgentReady } from '../lib/mesh';
import { ROOT, weftArgv } from '../lib/weft';
import { cgroup2Root } from '../../agent/datapath/layout';
import { until } from '../lib/wait';

const FIX = join(ROOT, 'test', 'e2e', 'fixtures', 'pods');
const NODE_IP = '10.78.0.1';
const POD_A = '10.78.0.11', POD_B = '10.78.0.12', OUTSIDER = '10.78.0.99';
const ADMIN = `${NODE_IP}:15020`;
const L4_VIP = '10.96.78.10', HTTP_VIP = '10.96.78.20';

const policies = (strict: boolean) => `apiVersion: weft.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  trustDomain: weft.local
  mtls: {mode: ${strict ? 'STRICT' : 'PERMISSIVE'}}
  registrations: [{node: pods${process.pid}, namespaces: [default]}]
---
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: b-tcp, namespace: default}
spec:
  vip: ${L4_VIP}
  selector: {app: b}
  ports: [{name: tcp, port: 80, targetPort: 8080, protocol: TCP}]
---
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: b-http, namespace: default}
spec:
  selector: {app: b}
  ports: [{name: http, port: 80, targetPort: 8081, protocol: HTTP}]
---
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: web, namespace: default}
spec:
  vip: ${HTTP_VIP}
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8081, protocol: HTTP}]
---
apiVersion: weft.dev/v1alpha1
kind: HTTPRoute
metadata: {name: web, namespace: default}
spec:
  parentRefs: [{name: web, port: 80}]
  rules:
    - matches: [{path: {type: PathPrefix, value: /b}}]
      backendRefs: [{name: b-http, port: 80}]
`;

interface BpfDebug {
  counters: Record<string, string | number>;
  services: { vip: string; port: number; mode: string; backends: { ip: string; port: number }[] }[];
  attachments: { program: string }[];
  localWorkloads: string[];
  eagerEndpoints: string[];
  agentListener: boolean;
  inspect: { cgroups: string[] };
}
interface TcpResult { peer?: string; reply?: { name: string; peer: string }; error?: string }

/** The agent's admin token file: its admin port is on the node address, where reads
 *  (/debug/*, /v1/*) need the token too. */
let adminTokenFile = '';

async function getJson<T>(ns: Netns, path: string): Promise<T> {
  const auth = adminTokenFile ? ['-H', `authorization: Bearer ${readFileSync(adminTokenFile, 'utf8').trim()}`] : [];
  const r = await ns.exec(['curl', '-sf', ...auth, `http://${ADMIN}${path}`]);
  assert.equal(r.code, 0, `GET ${path}: ${r.stdout}${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

const counter = (d: BpfDebug, name: string) => BigInt(d.counters[name]!);

/** Polls `get` until `ok` holds for what it returns (the last value is in the failure). */
function untilOk<T>(what: string, get: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 30_000): Promise<T> {
  let last: T | undefined;
  return until(what, async () => { const v = last = await get(); return ok(v) ? { v } : undefined; },
    { timeoutMs, everyMs: 100, explain: () => `still ${JSON.stringify(last).slice(0, 2000)}` }).then((r) => r.v);
}

/** Metric lines of `name` (with labels) from the agent's /metrics. */
async function metricLines(node: Netns, name: string): Promise<string[]> {
  const r = await node.exec(['curl', '-sf', `http://${ADMIN}/metrics`]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.split('\n').filter((l) => l.startsWith(`${name}{`));
}

/** Sum of every series of `name`. */
async function metricTotal(node: Netns, name: string): Promise<number> {
  return (await metricLines(node, name)).reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

test('pods in their own network namespaces: kernel L4 pod to pod, HTTP through the node address, mTLS STRICT', { timeout: 180_000 }, async (t) => {
  if (!requires(t, { bpffs: true, netns: true, cgroup2: true, commands: ['curl', 'nsenter'] })) return;
  const { nodeName, dir, node, pods: [podA, podB, outsider], spawnIn, startControl, namespaces: nss } = podNode(t, 'pods', NODE_IP, [['a', POD_A], ['b', POD_B], ['out', OUTSIDER]]);
  // What the agent writes in its --state-dir, since its admin port is not on loopback.
  const TOKEN = join(dir, 'agent', 'admin-token');
  adminTokenFile = TOKEN;

  // The node: control API (loopback of the node namespace) and the agent, whose outbound
  // and admin listeners are on the node's bridge address so the pods can reach them.
  const { control, policiesDir, caBundle } = await startControl(policies(false));
  const agent = spawnIn(node, weftArgv('agent', '--control', '127.0.0.1:15010', '--control-ca', caBundle, '--node', nodeName,
    '--token-file', join(dir, 'token'), '--state-dir', join(dir, 'agent'), '--workers', '1',
    '--outbound', `${NODE_IP}:15001`, '--admin', ADMIN, '--inbound', `${NODE_IP}:15008`));
  await agent.waitForLog(/"msg":"agent started"/);
  await waitAgentReady(node, ADMIN);

  // A bad --address never reaches the agent; a bad address to the admin API is a 400.
  const badRun = await podA.exec(weftArgv('run', '--workload', 'x', '--admin', ADMIN, '--address', '10.78.0.300', '--', 'true'), { timeoutMs: 20_000 });
  assert.notEqual(badRun.code, 0);
  assert.match(badRun.stderr, /--address: "10\.78\.0\.300" is not an IPv4 or IPv6 address/);
  // The admin port is on the node address, so a pod must present the agent's admin
  // token to register anything: without it, 401 and nothing registered.
  const post = (body: unknown, ...headers: string[]) => podA.exec(['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '-X', 'POST',
    ...headers.flatMap((h) => ['-H', h]), '-d', JSON.stringify(body), `http://${ADMIN}/v1/workloads`]);
  assert.equal((await post({ name: 'x', namespace: 'default', serviceAccount: 'payments', address: POD_A })).stdout, '401');
  assert.equal((await post({ name: 'x', namespace: 'default', serviceAccount: 'payments', address: POD_A }, 'authorization: Bearer not-the-token')).stdout, '401');
  const noToken = await podA.exec(weftArgv('run', '--workload', 'x', '--admin', ADMIN, '--address', POD_A, '--', 'true'), { timeoutMs: 20_000 });
  assert.notEqual(noToken.code, 0);
  assert.match(noToken.stderr, /needs the agent's admin token/);
  assert.equal((await node.exec(['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', `http://${ADMIN}/debug/workloads`])).stdout, '401', 'reads off loopback need the token');
  assert.deepEqual(await getJson<unknown[]>(node, '/debug/workloads'), []);
  const token = readFileSync(TOKEN, 'utf8').trim();
  assert.equal((await post({ name: 'x', namespace: 'default', serviceAccount: 'x', address: '10.78.0' }, `authorization: Bearer ${token}`)).stdout, '400');

  // Pod B's server, registered at pod B's own address.
  const server = spawnIn(podB, weftArgv('run', '--workload', 'server-b', '--label', 'app=b', '--admin', ADMIN, '--admin-token-file', TOKEN, '--address', POD_B, '--',
    process.execPath, join(FIX, 'server.js'), POD_B, 'server-b'));
  await server.waitForLog(/listening/);
  const ready = await untilOk('the agent programs pod B as the backend of both services', () => getJson<BpfDebug>(node, '/debug/bpf'), (d) =>
    d.services.some((s) => s.vip === L4_VIP && s.mode === 'l4' && s.backends.length === 1 && s.backends[0]!.ip === POD_B && s.backends[0]!.port === 8080)
    && d.services.some((s) => s.vip === HTTP_VIP && s.mode === 'redirect'));
  assert.deepEqual(ready.localWorkloads, [POD_B], 'pod B\'s address is in the kernel\'s list of local workloads');
  assert.equal(ready.agentListener, true, 'the outbound listener is in weft_agentl_v1: pods learn from it that the agent listens');
  // The agent's own same-node hops are spliced from their first connection: its
  // listener at the node address and pod B's endpoint of the service it proxies (L7).
  assert.deepEqual(ready.eagerEndpoints, [`${NODE_IP}:15001`, `${POD_B}:8081`].sort());
  const registered = await getJson<{ name: string; address: string }[]>(node, '/debug/workloads');
  assert.deepEqual(registered.map((w) => [w.name, w.address]), [['server-b', POD_B]]);

  /** Runs `argv` in pod A as the mesh workload client-a (registered at pod A's address). */
  const inPodA = async (argv: string[]) => {
    const r = await podA.exec(weftArgv('run', '--workload', 'client-a', '--label', 'app=a', '--admin', ADMIN, '--admin-token-file', TOKEN, '--address', POD_A, '--', ...argv), { timeoutMs: 30_000 });
    assert.equal(r.code, 0, `weft run in pod A: ${r.stderr}`);
    return r.stdout.trim();
  };
  const l4FromA = async () => JSON.parse(await inPodA([process.execPath, join(FIX, 'tcp-client.js'), L4_VIP, '80'])) as TcpResult;

  await t.test('a) L4 TCP service pod A → pod B: the kernel rewrite alone, getpeername shows the VIP', async () => {
    const before = await getJson<BpfDebug>(node, '/debug/bpf');
    const opened0 = await metricTotal(node, 'weft_tcp_connections_opened_total');
    const requests0 = await metricTotal(node, 'weft_requests_total');
    const r = await l4FromA();
    assert.deepEqual(r, { peer: L4_VIP, reply: { name: 'server-b', peer: POD_A } },
      'the app sees the VIP; the server sees pod A itself (no proxy in between)');
    const after = await getJson<BpfDebug>(node, '/debug/bpf');
    assert.ok(counter(after, 'connect_balanced') > counter(before, 'connect_balanced'), 'balanced in connect4');
    assert.equal(counter(after, 'connect_redirected'), counter(before, 'connect_redirected'), 'nothing redirected to the agent');
    assert.equal(await metricTotal(node, 'weft_tcp_connections_opened_total'), opened0, 'the agent proxied no connection');
    assert.equal(await metricTotal(node, 'weft_requests_total'), requests0, 'and saw no request');
    assert.deepEqual(after.localWorkloads, [POD_B], 'client-a\'s address left the list when it deregistered');
  });

  await t.test('b) HTTP service from pod A: outbound listener at the node address, HTTPRoute to pod B, caller from the kernel', async () => {
    const before = await getJson<BpfDebug>(node, '/debug/bpf');
    const out = await inPodA(['curl', '-s', '-m', '10', '-H', 'x-weft-source-workload: evil', '-H', 'x-source-workload: evil',
      '-H', 'x-forwarded-client-cert: By=spiffe://weft.local/ns/default/sa/evil', `http://${HTTP_VIP}/b/hello`]);
    const reply = JSON.parse(out) as { name: string; peer: string; path: string };
    assert.equal(reply.name, 'server-b', `routed by the path match to pod B: ${out}`);
    assert.equal(reply.path, '/b/hello');
    assert.equal(reply.peer, NODE_IP, 'pod B was dialled by the agent from the node address');
    const after = await getJson<BpfDebug>(node, '/debug/bpf');
    assert.ok(counter(after, 'connect_redirected') > counter(before, 'connect_redirected'), 'connect4 redirected it to the agent');
    assert.ok(counter(after, 'origin_inserts') > counter(before, 'origin_inserts'), 'its origin was recorded for the agent');
    // The route really decides: the web service itself has no endpoint.
    const other = await inPodA(['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '-m', '10', `http://${HTTP_VIP}/other`]);
    assert.match(other, /^5\d\d$/, `a path the route does not match has no backend: ${other}`);

    const requests = await metricLines(node, 'weft_requests_total');
    const mine = requests.filter((l) => l.includes('reporter="source"') && l.includes('response_code="200"'));
    assert.ok(mine.length > 0, requests.join('\n'));
    for (const l of mine) {
      assert.match(l, /source_workload="client-a"/, `the caller is pod A's workload, from its cgroup: ${l}`);
      assert.match(l, /source_principal="spiffe:\/\/weft\.local\/ns\/default\/sa\/client-a"/, l);
    }
    assert.deepEqual(requests.filter((l) => l.includes('evil')), [], 'spoofed identity headers are ignored');
  });

  await t.test('b2) a direct connection to pod B\'s address meets its AuthorizationPolicy as one through the Service does', async () => {
    // One connection from pod A (as client-a): the reply, or that none came.
    const probe = `const s = require('net').connect({ host: process.argv[1], port: Number(process.argv[2]) }); let d = '';
      s.setTimeout(5000, () => s.destroy()); s.on('data', (x) => { d += x; }); s.on('error', () => {});
      s.on('close', () => console.log(JSON.stringify(d ? { reply: JSON.parse(d) } : { reply: null })));`;
    const fromA = async (host: string, port: string) => JSON.parse(await inPodA([process.execPath, '-e', probe, host, port])) as { reply: { name: string; peer: string } | null };
    const denyFile = join(policiesDir, 'deny-a.yaml');
    writeFileSync(denyFile, `apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: b-deny-a, namespace: default}
spec:
  selector: {matchLabels: {app: b}}
  action: DENY
  rules: [{from: [{source: {principals: [weft.local/ns/default/sa/client-a]}}]}]
`);
    await untilOk('b-tcp redirected: its backend is guarded', () => getJson<BpfDebug>(node, '/debug/bpf'), (d) => d.services.some((x) => x.vip === L4_VIP && x.mode === 'redirect'));
    const before = await getJson<BpfDebug>(node, '/debug/bpf');
    const denied = { viaService: await fromA(L4_VIP, '80'), direct: await fromA(POD_B, '8080') };
    assert.deepEqual(denied, { viaService: { reply: null }, direct: { reply: null } }, 'the same DENY through the Service and to pod B\'s address');
    const after = await getJson<BpfDebug>(node, '/debug/bpf');
    assert.equal(counter(after, 'connect_redirected') - counter(before, 'connect_redirected'), 2n, 'both were sent to the agent');
    rmSync(denyFile);
    await untilOk('b-tcp back in the kernel', () => getJson<BpfDebug>(node, '/debug/bpf'), (d) => d.services.some((x) => x.vip === L4_VIP && x.mode === 'l4'));
    assert.deepEqual(await fromA(POD_B, '8080'), { reply: { name: 'server-b', peer: POD_A } }, 'unguarded again: pod A reaches pod B directly');
  });

  await t.test('c) mTLS STRICT: pod to pod on the node still works; an outsider\'s SYN is dropped and counted', async () => {
    writeFileSync(join(policiesDir, 'mesh.yaml'), policies(true));
    await untilOk('the ingress hook is attached', () => getJson<BpfDebug>(node, '/debug/bpf'), (d) => d.attachments.some((a) => a.program === 'weft_ingress'));
    const before = await getJson<BpfDebug>(node, '/debug/bpf');
    assert.deepEqual(await l4FromA(), { peer: L4_VIP, reply: { name: 'server-b', peer: POD_A } }, 'pod A → VIP → pod B passes STRICT');
    const mid = await getJson<BpfDebug>(node, '/debug/bpf');
    assert.equal(counter(mid, 'strict_drops'), counter(before, 'strict_drops'), 'nothing dropped for a local workload');
    assert.ok(counter(mid, 'connect_balanced') > counter(before, 'connect_balanced'), 'still the kernel path');

    // Plaintext from the same bridge, by an address that is no workload of this node.
    const out = (await outsider.exec([process.execPath, join(FIX, 'tcp-client.js'), POD_B, '8080'], { timeoutMs: 15_000 })).stdout.trim();
    assert.deepEqual(JSON.parse(out), { error: 'ETIMEDOUT' }, 'the outsider\'s SYN never reaches pod B');
    const after = await getJson<BpfDebug>(node, '/debug/bpf');
    assert.ok(counter(after, 'strict_drops') > counter(mid, 'strict_drops'), 'counted as strict_drops');
    const metrics = (await node.exec(['curl', '-sf', `http://${ADMIN}/metrics`])).stdout;
    const exported = /^weft_bpf_strict_drops_total(?:\{[^}]*\})? (\d+)/m.exec(metrics);
    assert.ok(exported && BigInt(exported[1]!) >= counter(after, 'strict_drops'), `exported on /metrics: ${exported?.[0]}`);
    // The HTTP path keeps working too: the agent dials pod B from its own address.
    const http = JSON.parse(await inPodA(['curl', '-s', '-m', '10', `http://${HTTP_VIP}/b/strict`])) as { name: string; peer: string };
    assert.deepEqual([http.name, http.peer], ['server-b', NODE_IP]);
  });

  await t.test('d) cleanup: the workload leaves the kernel list, then processes, namespaces, cgroups and pins go', async () => {
    assert.equal(await server.kill('SIGTERM'), 143, 'weft run forwards SIGTERM and exits with the server\'s status');
    await untilOk('pod B deregistered', () => getJson<BpfDebug>(node, '/debug/bpf'), (d) => d.localWorkloads.length === 0);
    await agent.kill('SIGTERM');
    await control.kill('SIGTERM');
    for (const n of nss) n.destroy();
    const [cmd, ...rest] = weftArgv('agent', '--cleanup', '--node', nodeName);
    const report = JSON.parse(execFileSync(cmd!, rest, { cwd: ROOT, encoding: 'utf8' })) as { maps: string[]; movedPids: number[] };
    assert.ok(report.maps.includes('weft_local_v1'), `the allow-list pin is removed: ${report.maps.join(', ')}`);
    assert.ok(report.maps.includes('weft_direct_v1'), `the direct endpoints pin is removed: ${report.maps.join(', ')}`);
    assert.deepEqual(report.movedPids, [], 'no process was left in the node\'s cgroups');
    assert.equal(existsSync(join('/sys/fs/bpf/weft', nodeName)), false, 'no pins left');
    assert.equal(existsSync(join(cgroup2Root(), 'weft', nodeName)), false, 'no cgroups left');
    const left = readdirSync('/run/netns').filter((n) => nss.some((x) => x.name === n));
    assert.deepEqual(left, [], 'no namespaces left');
  });
});
