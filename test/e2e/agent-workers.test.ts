// Issue 5's "several cores": `weft agent --workers 2` runs a primary and a proxy worker
// on the same outbound socket. Shown here through the real CLI, with curl as the client
// (one new connection per request):
//   - connections are served by both workers (per-worker request counts in /debug/workers)
//     and /metrics reports the node total: exactly the requests made; `weft tap` (served
//     by the primary) shows every one of them;
//   - an HTTPRoute change reaches every worker before the agent reports the new version:
//     every connection after it, whichever worker accepts it, takes the new route;
//   - a SIGKILLed proxy worker, then a SIGKILLed primary, are replaced while new
//     connections keep succeeding (the listening socket never closes; the other worker
//     keeps accepting, the proxy worker needing nothing from the primary to serve);
//   - outlier ejections in a proxy worker reach the primary, the only writer of the L4
//     maps; a restarted primary learns them again, a dead worker's ejections end.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { requires } from '../lib/privileges';
import { startOneNodeMesh, waitAgentReady, type OneNodeMesh } from '../lib/mesh';
import { policyFile, registrationGrant, type TestService } from '../lib/policies';
import { weftArgv, ROOT } from '../lib/weft';
import { sleep } from '../lib/wait';

const FIX = join(ROOT, 'test', 'e2e', 'fixtures', 'agent');

const services: TestService[] = [
  { name: 'web', vip: '10.96.0.40', port: 80, targetPort: 8081, protocol: 'HTTP', workloads: { 'web-v1': '10.250.0.21' } },
  { name: 'web-v2', vip: '10.96.0.41', port: 80, targetPort: 8081, protocol: 'HTTP', workloads: { 'web-v2': '10.250.0.22' } },
];
const toV2 = `apiVersion: weft.dev/v1alpha1
kind: HTTPRoute
metadata: {name: web, namespace: default}
spec:
  parentRefs: [{name: web, port: 80}]
  rules:
    - backendRefs: [{name: web-v2, port: 80}]`;

interface Status { control: { version: string }; workers: { worker: number; role: string; pid: number }[] }
interface WorkerCount { worker: number; role: string; pid: number; requests: number }
/** One curl: when it started (ns since the epoch), and the body or the failure. */
interface Shot { startNs: bigint; ok: boolean; body: string }

async function getJson<T>(mesh: OneNodeMesh, path: string): Promise<T> {
  const r = await mesh.ns.exec(['curl', '-sf', `http://127.0.0.1:15020${path}`]);
  assert.equal(r.code, 0, `GET ${path}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

/** `count` sequential curls (a new connection each) from a mesh workload, or until
 *  `stop` exists; each one appends a line to `out`: start time, ok|FAIL, body. */
async function curlLoop(mesh: OneNodeMesh, workload: string, url: string, count: number, out: string, stop = '/nonexistent'): Promise<Shot[]> {
  const script = `i=0; while [ $i -lt ${count} ] && [ ! -e '${stop}' ]; do s=$(date +%s%N); if b=$(curl -s -m 5 --fail-with-body '${url}'); then echo "$s ok $b"; else echo "$s FAIL $?"; fi >> '${out}'; i=$((i+1)); done`;
  const r = await mesh.ns.exec(weftArgv('run', '--workload', workload, '--state-dir', join(mesh.dir, 'agent'), '--', 'sh', '-c', script), { timeoutMs: 200_000 });
  assert.equal(r.code, 0, r.stderr);
  return readShots(out);
}

function readShots(file: string): Shot[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => {
    const [s, r, ...b] = l.split(' ');
    return { startNs: BigInt(s!), ok: r === 'ok', body: b.join(' ') };
  });
}

/** Waits until `file` holds `n` more complete lines than `from`. */
async function shotsAfter(file: string, from: number, n: number): Promise<number> {
  for (let i = 0; ; i++) {
    const got = existsSync(file) ? readFileSync(file, 'utf8').split('\n').length - 1 : 0;
    if (got >= from + n) return got;
    assert.ok(i < 600, `the client made only ${got - from} of ${n} requests in 60 s`);
    await sleep(100);
  }
}

/** Sum of weft_requests_total{reporter="source"} over every series in /metrics. */
async function sourceRequests(mesh: OneNodeMesh): Promise<number> {
  const r = await mesh.ns.exec(['curl', '-sf', 'http://127.0.0.1:15020/metrics']);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.split('\n').filter((l) => l.startsWith('weft_requests_total{') && l.includes('reporter="source"'))
    .reduce((s, l) => s + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

const perWorker = (counts: WorkerCount[]) => new Map(counts.map((c) => [c.worker, c.requests]));

test('--workers 2: both workers serve, /metrics totals, a route change reaches every worker, killed workers are replaced without failing new connections', { timeout: 240_000 }, async (t) => {
  if (!requires(t, { bpffs: true, netns: true, cgroup2: true })) return;
  const mesh = await startOneNodeMesh('wk', (node) => policyFile(node, services, [registrationGrant(node)]));
  t.after(() => mesh.close());
  const { ns } = mesh;
  // The default worker count is the number of cores: restart with exactly two.
  await mesh.agent.kill('SIGTERM');
  mesh.agentArgs.push('--workers', '2');
  await mesh.startAgent();
  ns.addAddress('10.250.0.21/32');
  ns.addAddress('10.250.0.22/32');
  await mesh.spawn([process.execPath, join(FIX, 'http-echo.js'), '10.250.0.21', '8081', 'web-v1']).waitForLog(/listening/);
  await mesh.spawn([process.execPath, join(FIX, 'http-echo.js'), '10.250.0.22', '8081', 'web-v2']).waitForLog(/listening/);

  const status = await getJson<Status>(mesh, '/v1/status');
  assert.deepEqual(status.workers.map((w) => w.role).sort(), ['primary', 'proxy'], JSON.stringify(status.workers));

  // 1. Both workers serve; the node total is the sum of the requests made; `weft tap` on
  //    the primary sees the proxy worker's requests too.
  const tap = mesh.spawn(weftArgv('tap', '--json', '--count', '80', '--authority', '10.96.0.40'));
  await tap.waitForLog(/tapping/);
  const first = await curlLoop(mesh, 'client', 'http://10.96.0.40/', 80, join(mesh.dir, 'first'));
  assert.equal(first.filter((s) => s.ok && s.body === 'web-v1').length, 80, `before the change: ${JSON.stringify(first.filter((s) => !s.ok || s.body !== 'web-v1'))}`);
  const counts1 = await getJson<WorkerCount[]>(mesh, '/debug/workers');
  t.diagnostic(`requests per worker: ${JSON.stringify(counts1)}`);
  assert.equal(counts1.length, 2);
  for (const c of counts1) assert.ok(c.requests > 0, `worker ${c.worker} (${c.role}) served no request: ${JSON.stringify(counts1)}`);
  assert.equal(counts1.reduce((s, c) => s + c.requests, 0), 80);
  assert.equal(await sourceRequests(mesh), 80, '/metrics sums the workers');
  const tapExit = await Promise.race([tap.exited, sleep(20_000).then(() => 'timeout')]);
  assert.equal(tapExit, 0, `weft tap saw ${tap.logs.filter((l) => l.includes('"method"')).length} of 80 requests`);

  // 2. A route change: once the agent reports the new version, every worker routes by it.
  writeFileSync(join(mesh.policiesDir, 'route.yaml'), toV2 + '\n');
  for (let i = 0; (await getJson<Status>(mesh, '/v1/status')).control.version === status.control.version; i++) {
    assert.ok(i < 200, 'the agent never applied the route change');
    await sleep(50);
  }
  const second = await curlLoop(mesh, 'client', 'http://10.96.0.40/', 80, join(mesh.dir, 'second'));
  assert.deepEqual(second.filter((s) => !s.ok || s.body !== 'web-v2'), [], 'every connection after the change takes the new route');
  const counts2 = perWorker(await getJson<WorkerCount[]>(mesh, '/debug/workers'));
  for (const [worker, n] of perWorker(counts1)) assert.ok((counts2.get(worker) ?? 0) > n, `worker ${worker} served none of the routed requests`);

  // 3. Kill the proxy worker, then the primary, under constant connection-per-request load.
  const stop = join(mesh.dir, 'stop');
  const loadOut = join(mesh.dir, 'load');
  const load = curlLoop(mesh, 'client', 'http://10.96.0.40/', 1_000_000, loadOut, stop);
  let seen = await shotsAfter(loadOut, 0, 10);
  const kills: bigint[] = [];
  for (const role of ['proxy', 'primary']) {
    const victim = (await getJson<Status>(mesh, '/v1/status')).workers.find((w) => w.role === role)!;
    const replaced = mesh.agent.waitForLog(new RegExp(`"role":"${role}","msg":"replacement worker ready"`), 60_000);
    const started = Date.now();
    kills.push(BigInt(Date.now()) * 1_000_000n);
    process.kill(victim.pid, 'SIGKILL');
    await replaced;
    t.diagnostic(`${role} worker replaced and ready after ${Date.now() - started} ms`);
    await waitAgentReady(ns);
    seen = await shotsAfter(loadOut, seen, 10);
  }
  writeFileSync(stop, '');
  const shots = await load;
  // The loop is sequential: the request in flight at a kill (started before it, the next
  // one after it) may die with the killed worker; every other one — in particular every
  // connection opened after a kill — must succeed.
  const inFlightAtKill = (i: number) => kills.some((k) => shots[i]!.startNs <= k && (shots[i + 1]?.startNs ?? k + 1n) > k);
  const unexpected = shots.filter((s, i) => !s.ok && !inFlightAtKill(i));
  const afterKill = shots.filter((s) => s.startNs > kills[0]!).length;
  t.diagnostic(`${shots.length} requests, ${afterKill} after the first kill, failed (in flight at a kill): ${JSON.stringify(shots.filter((s) => !s.ok).map((s) => s.body))}`);
  assert.ok(afterKill > 20, `too little traffic after the kills: ${afterKill}`);
  assert.deepEqual(unexpected, [], 'only a request in flight at a kill may fail');
  assert.ok(shots.every((s) => !s.ok || s.body === 'web-v2'), 'the route survives the restarts');
  const after = await getJson<Status>(mesh, '/v1/status');
  assert.equal(after.workers.length, 2);
  assert.ok(after.workers.every((w) => !status.workers.some((o) => o.pid === w.pid)), 'both workers are new processes');
});

test('--workers 2: a proxy worker\'s outlier ejection reaches the primary and leaves the L4 maps', { timeout: 120_000 }, async (t) => {
  if (!requires(t, { bpffs: true, netns: true, cgroup2: true })) return;
  const flaky: TestService = { name: 'flaky', vip: '10.96.0.60', port: 80, targetPort: 8082, protocol: 'HTTP', workloads: { 'flaky-ok': '10.250.0.31', 'flaky-bad': '10.250.0.32' } };
  const policy = `apiVersion: weft.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: flaky, namespace: default}
spec:
  targetRef: {kind: Service, name: flaky}
  outlierDetection: {consecutive5xx: 2, baseEjectionTime: 120s, maxEjectionPercent: 50}`;
  const mesh = await startOneNodeMesh('we', (node) => policyFile(node, [flaky], [policy, registrationGrant(node)]));
  t.after(() => mesh.close());
  await mesh.agent.kill('SIGTERM');
  mesh.agentArgs.push('--workers', '2');
  await mesh.startAgent();
  mesh.ns.addAddress('10.250.0.31/32');
  mesh.ns.addAddress('10.250.0.32/32');
  // The healthy endpoint answers slowly, the failing one at once: the peak-EWMA balancer
  // then prefers the failing one until a worker's outlier detection ejects it, so every
  // worker that serves a few requests ejects it.
  const server = (ip: string, status: number, delayMs: number) => "require('node:http').createServer((q, s) => { q.resume(); q.on('end', () => "
    + `setTimeout(() => { s.statusCode = ${status}; s.end('${status}'); }, ${delayMs})); })`
    + `.listen(8082, '${ip}', () => process.stdout.write('listening\\n'))`;
  await mesh.spawn([process.execPath, '-e', server('10.250.0.31', 200, 30)]).waitForLog(/listening/);
  await mesh.spawn([process.execPath, '-e', server('10.250.0.32', 500, 0)]).waitForLog(/listening/);

  const status = await getJson<Status>(mesh, '/v1/status');
  const proxyPid = status.workers.find((w) => w.role === 'proxy')!.pid;
  const primaryPid = status.workers.find((w) => w.role === 'primary')!.pid;
  const shots = await curlLoop(mesh, 'client', 'http://10.96.0.60/', 60, join(mesh.dir, 'shots'));
  const counts = await getJson<WorkerCount[]>(mesh, '/debug/workers');
  t.diagnostic(`requests per worker: ${JSON.stringify(counts)}; failed (5xx before an ejection): ${shots.filter((s) => !s.ok).length}`);
  const ejections = (await getJson<{ ejections: { endpoint: string; workers: number[] }[] }>(mesh, '/v1/status')).ejections;
  assert.deepEqual(ejections.map((e) => e.endpoint), ['10.250.0.32:8082'], JSON.stringify(ejections));
  assert.deepEqual(ejections[0]!.workers.sort(), [primaryPid, proxyPid].sort(), `each worker reports its own ejection (primary ${primaryPid}, proxy ${proxyPid})`);
  const bpf = await getJson<{ services: { vip: string; backends: { ip: string }[] }[] }>(mesh, '/debug/bpf');
  const svc = bpf.services.find((s) => s.vip === '10.96.0.60');
  assert.deepEqual(svc?.backends.map((b) => b.ip), ['10.250.0.31'], 'the ejected endpoint left the L4 maps');

  // A restarted primary learns the proxy worker's ejection again (it is re-reported with
  // the new primary's first snapshot); a proxy worker that dies takes its ejections with
  // it, and the endpoint returns to the L4 maps.
  const l4Backends = async () => (await getJson<{ services: { vip: string; backends: { ip: string }[] }[] }>(mesh, '/debug/bpf'))
    .services.find((x) => x.vip === '10.96.0.60')?.backends.map((b) => b.ip).sort();
  const ejectionsNow = async () => (await getJson<{ ejections: { endpoint: string; workers: number[] }[] }>(mesh, '/v1/status')).ejections;
  for (const [role, pid, wantEjections, wantBackends] of [
    ['primary', primaryPid, [{ endpoint: '10.250.0.32:8082', workers: [proxyPid] }], ['10.250.0.31']],
    ['proxy', proxyPid, [], ['10.250.0.31', '10.250.0.32']],
  ] as const) {
    const replaced = mesh.agent.waitForLog(new RegExp(`"role":"${role}","msg":"replacement worker ready"`), 60_000);
    process.kill(pid, 'SIGKILL');
    await replaced;
    await waitAgentReady(mesh.ns);
    // The primary hears of the new worker set just after the supervisor logs it.
    for (let i = 0; JSON.stringify(await ejectionsNow()) !== JSON.stringify(wantEjections); i++) {
      assert.ok(i < 50, `after the ${role} restart: ${JSON.stringify(await ejectionsNow())}`);
      await sleep(100);
    }
    assert.deepEqual(await l4Backends(), wantBackends, `L4 backends after the ${role} restart`);
  }
});
