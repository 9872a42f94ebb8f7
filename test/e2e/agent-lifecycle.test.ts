// The agent's life on a node as an operator meets it (issue 18 items 3-5): it runs under
// `ip netns exec` (which hides the host's cgroup2 and bpffs mounts), `--cleanup` refuses
// while it runs and `--cleanup --force` stops it first, a fatal start error ends it
// non-zero within seconds with the reason, its workers die with a SIGKILLed supervisor,
// and /readyz fails once the node's pinned programs are gone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { requires } from '../lib/privileges';
import { startOneNodeMesh, waitAgentReady, type OneNodeMesh } from '../lib/mesh';
import { policyFile } from '../lib/policies';
import { ROOT, watchWeft, weftArgv, type WeftProcess } from '../lib/weft';

const policies = (node: string) => policyFile(node, [
  { name: 'web', vip: '10.96.0.31', port: 80, targetPort: 8080, protocol: 'TCP', workloads: { 'web-1': '10.250.0.31' } },
]);

const needs = { bpffs: true, netns: true, cgroup2: true, commands: ['curl', 'nsenter'] };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };

async function readyz(mesh: OneNodeMesh): Promise<{ code: number; body: string }> {
  const r = await mesh.ns.exec(['curl', '-s', '-w', '\n%{http_code}', 'http://127.0.0.1:15020/readyz']);
  const lines = r.stdout.trimEnd().split('\n');
  return { code: Number(lines.pop()), body: lines.join('\n') };
}

/** `weft agent ARGS` on the host (outside the namespace), synchronously. */
function weftHost(...args: string[]): { code: number | null; stdout: string; stderr: string; ms: number } {
  const [cmd, ...rest] = weftArgv(...args);
  const t0 = Date.now();
  const r = spawnSync(cmd!, rest, { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, ms: Date.now() - t0 };
}

async function workerPids(mesh: OneNodeMesh): Promise<number[]> {
  const r = await mesh.ns.exec(['curl', '-sf', 'http://127.0.0.1:15020/v1/status']);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { workers?: { pid: number }[] }).workers?.map((w) => w.pid) ?? [];
}

test('--cleanup refuses while the agent runs (naming its pid) and leaves it serving; --force stops it first', { timeout: 180_000 }, async (t) => {
  if (!requires(t, needs)) return;
  const mesh = await startOneNodeMesh('opslocka', policies);
  t.after(() => mesh.close());
  const supervisor = mesh.agent.proc.pid!;
  const pinRoot = join('/sys/fs/bpf/weft', mesh.node);
  const before = readdirSync(join(pinRoot, 'links')).sort();
  assert.ok(before.length > 0, 'the agent pinned its links');

  const refused = weftHost('agent', '--cleanup', '--node', mesh.node);
  assert.equal(refused.code, 1, `cleanup must refuse: ${refused.stdout}${refused.stderr}`);
  assert.match(refused.stderr, new RegExp(`an agent of node ${mesh.node} is running \\(pid ${supervisor}\\)`));
  assert.deepEqual(readdirSync(join(pinRoot, 'links')).sort(), before, 'nothing was removed');
  assert.equal((await readyz(mesh)).code, 200, 'the agent still serves');
  assert.ok(alive(supervisor));

  const forced = weftHost('agent', '--cleanup', '--force', '--node', mesh.node);
  assert.equal(forced.code, 0, `${forced.stdout}${forced.stderr}`);
  assert.match(forced.stderr, new RegExp(`stopping the agent of node ${mesh.node} \\(pid ${supervisor}; \\d+ processes frozen`));
  const report = JSON.parse(forced.stdout) as { links: string[] };
  assert.deepEqual(report.links.sort(), before, 'every pinned link removed');
  assert.match(forced.stderr, new RegExp(`stopped the agent of node ${mesh.node}: killed pid ${supervisor}\\b`));
  assert.equal(await mesh.agent.exited.then(() => alive(supervisor)), false, 'the agent was stopped');
  assert.equal(existsSync(pinRoot), false, 'no pins left');
  assert.equal(existsSync(`/sys/fs/cgroup/unified/weft/${mesh.node}`) || existsSync(`/sys/fs/cgroup/weft/${mesh.node}`), false, 'no cgroups left');
  // Nothing re-created the pins afterwards (the race the issue saw).
  await sleep(1500);
  assert.equal(existsSync(pinRoot), false, 'no pins re-created after the cleanup');
  const again = weftHost('agent', '--cleanup', '--node', mesh.node);
  assert.equal(again.code, 0, `a second cleanup finds nothing to refuse: ${again.stderr}`);
});

test('/readyz fails when the node\'s pinned programs are removed under the running agent', { timeout: 120_000 }, async (t) => {
  if (!requires(t, needs)) return;
  const mesh = await startOneNodeMesh('opsready', policies);
  t.after(() => mesh.close());
  assert.equal((await readyz(mesh)).code, 200);
  // What an operator's cleanup (or rm under /sys/fs/bpf) does behind the agent's back:
  // the datapath module's cleanup, without the CLI's lock.
  const { Datapath } = require('../../agent/datapath/datapath') as typeof import('../../agent/datapath/datapath');
  Datapath.cleanup(mesh.node);
  const r = await readyz(mesh);
  assert.equal(r.code, 503, r.body);
  assert.match(r.body, /datapath gone: \d+ of \d+ pinned links missing/);
});

test('a SIGKILLed supervisor leaves no worker behind', { timeout: 120_000 }, async (t) => {
  if (!requires(t, needs)) return;
  const mesh = await startOneNodeMesh('opskill', policies);
  t.after(() => mesh.close());
  // Two workers: the primary and a proxy worker.
  mesh.agent.proc.kill('SIGTERM');
  await mesh.agent.exited;
  const agent = mesh.spawn(weftArgv(...mesh.agentArgs, '--workers', '2'));
  await agent.waitForLog(/"msg":"agent started"/);
  await waitAgentReady(mesh.ns);
  let workers: number[] = [];
  for (let i = 0; i < 50 && workers.length < 2; i++) { workers = await workerPids(mesh); if (workers.length < 2) await sleep(200); }
  assert.equal(workers.length, 2, 'primary and proxy worker');
  // nsenter execs, so the spawned pid is the supervisor itself.
  const t0 = Date.now();
  agent.proc.kill('SIGKILL');
  while (workers.some(alive) && Date.now() - t0 < 15_000) await sleep(100);
  const took = Date.now() - t0;
  assert.deepEqual(workers.filter(alive), [], `workers still alive ${took} ms after their supervisor was SIGKILLed`);
  assert.ok(took < 5_000, `workers took ${took} ms to go`);
  t.diagnostic(`workers gone ${took} ms after the supervisor's SIGKILL`);
});

test('a fatal start error ends the agent non-zero within seconds, with the reason', { timeout: 120_000 }, async (t) => {
  if (!requires(t, { ...needs, commands: [...needs.commands, 'ip', 'env'] })) return;
  const mesh = await startOneNodeMesh('opsfatal', policies);
  t.after(() => mesh.close());
  mesh.agent.proc.kill('SIGTERM');
  await mesh.agent.exited;
  const cases: { what: string; argv: string[]; reason: RegExp }[] = [
    // A flag's file the supervisor checks itself, before anything starts.
    { what: 'bad --control-ca', argv: ['nsenter', `--net=/run/netns/${mesh.ns.name}`, '--', ...weftArgv(...mesh.agentArgs.map((a) => (a === mesh.caBundle ? join(mesh.dir, 'no-such-ca.pem') : a)))], reason: /--control-ca: cannot read the control API CA bundle .*no-such-ca\.pem/ },
    // The primary cannot create its state directory: the worker's reason reaches the
    // supervisor's exit.
    { what: 'bad --state-dir', argv: ['nsenter', `--net=/run/netns/${mesh.ns.name}`, '--', ...weftArgv(...mesh.agentArgs.map((a) => (a === join(mesh.dir, 'agent') ? '/dev/null/weft-state' : a)))], reason: /primary worker \d+ exited \(1\) before it was ready: ENOTDIR: not a directory, mkdir '\/dev\/null\/weft-state'/ },
    // No cgroup2 (ip netns exec hides it) and none can be mounted (the run directory is
    // below a file, where nothing can be created).
    { what: 'no cgroup2', argv: ['ip', 'netns', 'exec', mesh.ns.name, 'env', 'WEFT_RUN_DIR=/dev/null/weft', ...weftArgv(...mesh.agentArgs)], reason: /no cgroup v2 filesystem is mounted, and mounting one at \/dev\/null\/weft\/cgroupv2 failed/ },
  ];
  for (const c of cases) {
    const t0 = Date.now();
    const p = watchWeft(spawn(c.argv[0]!, c.argv.slice(1), { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] }));
    const killer = setTimeout(() => p.proc.kill('SIGKILL'), 30_000);
    const code = await p.exited;
    clearTimeout(killer);
    const took = Date.now() - t0;
    assert.notEqual(code, 0, `${c.what}: exit code`);
    assert.notEqual(code, -1, `${c.what}: had to be killed after 30 s:\n${p.logs.slice(-10).join('\n')}`);
    assert.ok(took < 15_000, `${c.what}: took ${took} ms to exit`);
    assert.ok(p.logs.some((l) => c.reason.test(l)), `${c.what}: no reason matching ${c.reason} in:\n${p.logs.slice(-10).join('\n')}`);
    t.diagnostic(`${c.what}: exit ${code} after ${took} ms`);
  }
  // Nothing of the agents kept running in the namespace.
  const cmdline = (pid: number) => { try { return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' '); } catch { return ''; } };
  const left = spawnSync('ip', ['netns', 'pids', mesh.ns.name], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).map(Number)
    .filter((pid) => / agent /.test(cmdline(pid)));
  assert.deepEqual(left.map((p) => `${p}: ${cmdline(p)}`), [], 'no agent process left in the namespace');
});

test('`ip netns exec NS weft agent` runs: it mounts the cgroup2 it needs under its run directory and says so', { timeout: 120_000 }, async (t) => {
  if (!requires(t, { ...needs, commands: [...needs.commands, 'ip'] })) return;
  const mesh = await startOneNodeMesh('opsnetns', policies);
  let agent: WeftProcess | undefined;
  t.after(() => { agent?.proc.kill('SIGKILL'); mesh.close(); });
  mesh.agent.proc.kill('SIGTERM');
  await mesh.agent.exited;
  const [cmd, ...rest] = ['ip', 'netns', 'exec', mesh.ns.name, ...weftArgv(...mesh.agentArgs)];
  agent = watchWeft(spawn(cmd!, rest, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] }));
  const mounted = await agent.waitForLog(/"component":"mounts".*"mountpoint":"([^"]+)".*mounted it under the run directory/);
  assert.equal(mounted[1], '/run/weft/cgroupv2');
  await agent.waitForLog(/"msg":"agent started"/);
  await waitAgentReady(mesh.ns);
  const status = JSON.parse((await mesh.ns.exec(['curl', '-sf', 'http://127.0.0.1:15020/v1/status'])).stdout) as { control: { version: string; connected: boolean }; datapath: { programs: unknown[] } };
  assert.ok(status.control.connected && status.control.version, 'it synced a snapshot');
  assert.ok(status.datapath.programs.length >= 8, 'it attached its programs');
  // The cgroups it made are the host's (cgroup2 is one hierarchy).
  assert.ok(existsSync(`/sys/fs/cgroup/unified/weft/${mesh.node}/agent`) || existsSync(`/sys/fs/cgroup/weft/${mesh.node}/agent`), 'its cgroups are in the host\'s hierarchy');
  // And a cleanup from the host sees it running.
  const refused = weftHost('agent', '--cleanup', '--node', mesh.node);
  assert.equal(refused.code, 1, refused.stderr);
  assert.match(refused.stderr, /is running \(pid \d+\)/);
  await agent.kill('SIGTERM');
});
