// Issue 6's hitless bar: under constant load through both paths — L4 (kernel) and
// HTTP/1.1 and gRPC unary + server streams (the agent's L7 proxy) — `kill -HUP` replaces
// the agent's workers (`--workers 2`: the new ones start on the supervisor's listening
// sockets, then the old ones drain) with zero failed requests; and a crashed worker is
// replaced by the supervisor.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { requires } from '../lib/privileges';
import { startOneNodeMesh, waitAgentReady } from '../lib/mesh';
import { policyFile, registrationGrant } from '../lib/policies';
import { weftArgv, ROOT } from '../lib/weft';
import { sleep } from '../lib/wait';

const FIX = join(ROOT, 'test', 'e2e', 'fixtures', 'agent');

const policies = (node: string) => policyFile(node, [
  { name: 'echo', vip: '10.96.0.10', port: 80, targetPort: 8080, protocol: 'TCP', workloads: { 'echo-1': '10.250.0.11' } },
  { name: 'web', vip: '10.96.0.40', port: 80, targetPort: 8081, protocol: 'HTTP', workloads: { 'web-1': '10.250.0.21' } },
  { name: 'ticker', vip: '10.96.0.50', port: 50051, targetPort: 50051, protocol: 'GRPC', workloads: { 'ticker-1': '10.250.0.31' } },
], [registrationGrant(node)]);

interface Tally { ok: number; failed: number; errors: Record<string, number> }

test('SIGHUP replaces the agent workers (--workers 2) under L4, HTTP/1.1 and gRPC load with zero failed requests; a killed worker is replaced', { timeout: 240_000 }, async (t) => {
  if (!requires(t, { bpffs: true, netns: true, cgroup2: true })) return;
  const mesh = await startOneNodeMesh('hl', policies);
  t.after(() => mesh.close());
  const { ns, dir } = mesh;
  // Several workers (a primary and a proxy worker), whatever the number of cores here.
  await mesh.agent.kill('SIGTERM');
  mesh.agentArgs.push('--workers', '2');
  await mesh.startAgent();
  ns.addAddress('10.250.0.11/32');
  ns.addAddress('10.250.0.21/32');
  ns.addAddress('10.250.0.31/32');
  await mesh.spawn([process.execPath, join(FIX, 'greeter.js'), '10.250.0.11', '8080', 'echo-1']).waitForLog(/listening/);
  await mesh.spawn([process.execPath, join(FIX, 'http-echo.js'), '10.250.0.21', '8081', 'web-1']).waitForLog(/listening/);
  await mesh.spawn([process.execPath, join(FIX, 'grpc-ticker.js'), '10.250.0.31', '50051', 'ticker-1']).waitForLog(/listening/);

  const stop = join(dir, 'stop');
  const run = (name: string, script: string, ...args: string[]) =>
    ns.exec(weftArgv('run', '--workload', name, '--state-dir', join(dir, 'agent'), '--', process.execPath, join(FIX, script), ...args), { timeoutMs: 200_000 });
  // The L7 path needs the node certificate (the tunnel) first: wait for it.
  for (let i = 0; ; i++) {
    const st = await ns.exec(['curl', '-sf', 'http://127.0.0.1:15020/v1/status']);
    if (st.code === 0 && (JSON.parse(st.stdout) as { listeners: { inbound: string | null } }).listeners.inbound) break;
    assert.ok(i < 300, 'the agent never got its node certificate');
    await sleep(100);
  }
  const l4 = run('l4-client', 'vip-client.js', '10.96.0.10', '80', stop);
  const l7 = run('l7-client', 'http-client.js', 'http://10.96.0.40/', stop, '4');
  const grpc = run('grpc-client', 'grpc-client.js', '10.96.0.50:50051', stop);
  await sleep(2000);

  const replaced = mesh.agent.waitForLog(/"msg":"worker replaced"/, 120_000);
  mesh.agent.proc.kill('SIGHUP');
  await replaced;
  await waitAgentReady(ns);
  await sleep(2000);
  writeFileSync(stop, '');
  const parse = (o: { stdout: string; stderr: string; code: number | null }): Tally => {
    assert.equal(o.code, 0, o.stderr);
    return JSON.parse(o.stdout.trim().split('\n').pop()!) as Tally;
  };
  const [r4, r7] = [parse(await l4), parse(await l7)];
  assert.ok(r4.ok > 50 && r7.ok > 50, `too little traffic: L4 ${r4.ok}, HTTP ${r7.ok}`);
  assert.equal(r4.failed, 0, `L4 failures across the restart: ${JSON.stringify(r4.errors)}`);
  assert.equal(r7.failed, 0, `HTTP failures across the restart: ${JSON.stringify(r7.errors)}`);
  const gout = await grpc;
  assert.equal(gout.code, 0, gout.stderr);
  const rg = JSON.parse(gout.stdout.trim().split('\n').pop()!) as { unaryOk: number; unaryFailed: number; streamsOk: number; streamsFailed: number; errors: Record<string, number> };
  assert.ok(rg.unaryOk > 50 && rg.streamsOk >= 2, `too little gRPC traffic: ${JSON.stringify(rg)}`);
  assert.equal(rg.unaryFailed + rg.streamsFailed, 0, `gRPC failures across the restart: ${JSON.stringify(rg.errors)}`);

  // Crash: the supervisor replaces a SIGKILLed worker; the listeners never close.
  const workerPid = Number(/"pid":(\d+),"msg":"worker replaced"/.exec(mesh.agent.logs.join('\n'))?.[1]);
  assert.ok(workerPid > 0, 'worker pid logged');
  const started = Date.now();
  const recovered = mesh.agent.waitForLog(/"msg":"replacement worker ready"/, 60_000);
  process.kill(workerPid, 'SIGKILL');
  await recovered;
  const ms = Date.now() - started;
  t.diagnostic(`crashed worker replaced and ready after ${ms} ms`);
  await waitAgentReady(ns);
  const after = await ns.exec(['curl', '-sf', 'http://127.0.0.1:15020/healthz']);
  assert.equal(after.code, 0);
});
