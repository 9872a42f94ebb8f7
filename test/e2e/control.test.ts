// Control API + two node agents on loopback, as separate processes: the real `weft
// control` CLI and two sync clients (test/e2e/control-agent-child.ts). A policy edit
// reaches both agents and is ACKed within 1 s; a broken edit leaves both on the old
// version and Status/logs/metrics say why with file:line:col; killing the control API
// leaves the agents serving (a restarted agent serves its cache); restarting the control
// API brings them back in sync. The same with a git remote (a bare repository the test
// creates), where the version is the commit hash. No root needed.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StatusResponse__Output } from '../../agent/control/generated/weft/control/v1/StatusResponse';
import { nodeToken, tokenLines } from '../lib/bootstrap-tokens';
import { spawnControl, startAgents as startAgentsProc, status as statusOf, statusUntil as statusUntilOf, type Agents } from '../lib/control-procs';

// One token per node (a bare token binds to its first node); 'e2e-operator' reads Status.
const TOKENS = tokenLines(['node-1', 'node-2', 'e2e-operator'], 'e2e-control');
const TOKEN = nodeToken('e2e-operator', 'e2e-control');

const SERVICE = `apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: web, namespace: e2e}
spec:
  vip: 10.96.50.1
  selector: {app: web}
  ports:
    - {name: http, port: 80, targetPort: 8080, protocol: TCP}
`;
const workload = (name: string, ip: string, node: string) => `---
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: ${name}, namespace: e2e, labels: {app: web}}
spec: {address: ${ip}, node: ${node}, serviceAccount: web}
`;
// An HTTPRoute cannot attach to a TCP port: a semantic error at route.yaml:6:25.
const BROKEN_ROUTE = `apiVersion: weft.dev/v1alpha1
kind: HTTPRoute
metadata: {name: web, namespace: e2e}
spec:
  parentRefs:
    - {name: web, port: 80}
  rules:
    - backendRefs:
        - {name: web, port: 80}
`;

function tmp(t: TestContext, prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), `${prefix}${process.pid}-`));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

const startControl = (t: TestContext, args: string[], port = 0) => spawnControl((fn) => t.after(fn), args, port);
const startAgents = (t: TestContext, address: string, nodes: { node: string; stateDir: string }[]) => startAgentsProc((fn) => t.after(fn), address, (n) => nodeToken(n, 'e2e-control'), nodes);
const status = (port: number) => statusOf(port, TOKEN);
const statusUntil = (port: number, pred: (s: StatusResponse__Output) => boolean, what: string) => statusUntilOf(port, TOKEN, pred, what);

const ackedBy = (s: StatusResponse__Output, v: string) => ['node-1', 'node-2'].every((n) => s.agents.some((a) => a.node === n && a.ackedVersion === v && a.connected));

/** Makes a change and waits for both agents to apply `expect(version)`; returns ms. */
async function changeReachesBoth(agents: Agents, change: () => void, accept: (v: string) => boolean, ms: number): Promise<{ version: string; elapsed: number }> {
  const from = agents.events.length;
  change();
  const t0 = Date.now(); // after the write (or the git push) completed
  const applied = (node: string) => agents.wait((e) => agents.events.indexOf(e) >= from && e.type === 'applied' && e.node === node && accept(e.version!), ms, `${node} applies the change`);
  const [a, b] = await Promise.all([applied('node-1'), applied('node-2')]);
  assert.equal(a.version, b.version);
  return { version: a.version!, elapsed: Math.max(a.at!, b.at!) - t0 };
}

function metric(text: string, name: string): string | undefined {
  return text.split('\n').find((l) => l.startsWith(name))?.split(' ').pop();
}

test('directory source: edits reach both agents within 1 s, broken edits are rejected, agents survive the control API', { timeout: 120_000 }, async (t) => {
  const policies = tmp(t, 'wt-ctl-e2e-pol-');
  const state = tmp(t, 'wt-ctl-e2e-state-');
  const tokenFile = join(state, 'tokens');
  writeFileSync(tokenFile, TOKENS, { mode: 0o600 });
  writeFileSync(join(policies, 'svc.yaml'), SERVICE + workload('web-0', '10.250.0.1', 'node-1'));
  const args = ['--policies', policies, '--state-dir', join(state, 'control'), '--token-file', tokenFile];
  let control = await startControl(t, args);
  const v1 = (await status(control.port)).currentVersion;
  assert.ok(v1, 'the control API serves a first snapshot');

  const agentState = { 'node-1': join(state, 'node-1'), 'node-2': join(state, 'node-2') };
  const nodes = Object.entries(agentState).map(([node, stateDir]) => ({ node, stateDir }));
  let agents = startAgents(t, `127.0.0.1:${control.port}`, nodes);
  await Promise.all(['node-1', 'node-2'].map((n) => agents.wait((e) => e.type === 'applied' && e.node === n && e.version === v1, 30_000, `${n} gets v1`)));
  await statusUntil(control.port, (s) => ackedBy(s, v1), 'both ACK v1');

  // 1. An edit reaches both agents and is ACKed within 1 s.
  const edit = await changeReachesBoth(agents, () => writeFileSync(join(policies, 'svc.yaml'), SERVICE + workload('web-0', '10.250.0.1', 'node-1') + workload('web-1', '10.250.0.2', 'node-2')), (v) => v !== v1, 5000);
  const v2 = edit.version;
  await statusUntil(control.port, (s) => ackedBy(s, v2), 'both ACK v2');
  t.diagnostic(`edit → both agents applied in ${edit.elapsed} ms`);
  assert.ok(edit.elapsed < 1000, `edit took ${edit.elapsed} ms to reach both agents`);
  const view = JSON.parse(readFileSync(join(agentState['node-2'], 'applied.json'), 'utf8')).view;
  assert.equal(view.localWorkloads[0].name, 'web-1', 'node-2 sees its own workload');

  // 2. A broken edit: both stay on v2; Status, logs and metrics say why.
  const appliedBefore = agents.events.filter((e) => e.type === 'applied').length;
  writeFileSync(join(policies, 'route.yaml'), BROKEN_ROUTE);
  const st = await statusUntil(control.port, (s) => s.lastRejection !== null, 'the rejection');
  assert.equal(st.currentVersion, v2);
  assert.ok(ackedBy(st, v2));
  const diag = `${join(policies, 'route.yaml')}:6:25:`;
  assert.ok(st.lastRejection!.diagnostics.some((d) => d.startsWith(diag)), JSON.stringify(st.lastRejection));
  await control.waitLog((l) => l.includes(diag), 'the log naming file:line:col'); // pino writes asynchronously
  const metrics = await (await fetch(`http://127.0.0.1:${control.adminPort}/metrics`)).text();
  assert.equal(metric(metrics, 'weft_control_policy_rejections_total'), '1');
  assert.equal(metric(metrics, 'weft_control_last_reload_success'), '0');
  assert.equal(metric(metrics, `weft_policy_snapshot_version{version="${v2}"}`), '1');
  assert.equal(agents.events.filter((e) => e.type === 'applied').length, appliedBefore, 'no agent applied anything');

  // 3. Kill the control API: agents keep serving v2; an agent restarted now serves its cache.
  control.proc.kill('SIGKILL');
  await control.exited;
  await Promise.all(['node-1', 'node-2'].map((n) => agents.wait((e) => e.type === 'state' && e.node === n && e.connected === false, 5000, `${n} notices`)));
  await agents.stop();
  agents = startAgents(t, `127.0.0.1:${control.port}`, nodes);
  await Promise.all(['node-1', 'node-2'].map((n) => agents.wait((e) => e.type === 'applied' && e.node === n && e.version === v2 && e.fromCache === true, 10_000, `${n} serves its cache`)));

  // 4. Restart the control API (same port) with the broken file fixed and a new change.
  unlinkSync(join(policies, 'route.yaml'));
  writeFileSync(join(policies, 'svc.yaml'), SERVICE + workload('web-0', '10.250.0.1', 'node-1') + workload('web-1', '10.250.0.2', 'node-2') + workload('web-2', '10.250.0.3', 'node-2'));
  control = await startControl(t, args, control.port);
  const v3 = (await status(control.port)).currentVersion;
  assert.notEqual(v3, v2);
  await Promise.all(['node-1', 'node-2'].map((n) => agents.wait((e) => e.type === 'applied' && e.node === n && e.version === v3 && !e.fromCache, 30_000, `${n} back in sync`)));
  await statusUntil(control.port, (s) => ackedBy(s, v3), 'both ACK v3');

  // 5. SIGTERM: a clean shutdown (exit 0), agents see the stream end and keep v3.
  control.proc.kill('SIGTERM');
  assert.equal(await control.exited, 0);
  await agents.stop();
});

function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', ['-c', 'user.name=weft e2e', '-c', 'user.email=e2e@weft.invalid', '-c', 'init.defaultBranch=main', ...args], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

test('git source: the version is the commit hash; pushes reach both agents; a broken commit is rejected', { timeout: 120_000 }, async (t) => {
  const dir = tmp(t, 'wt-ctl-e2e-git-');
  const bare = join(dir, 'policies.git');
  const work = join(dir, 'work');
  git(dir, 'init', '--quiet', '--bare', bare);
  git(dir, 'clone', '--quiet', bare, work);
  const commit = (files: Record<string, string | null>, msg: string): string => {
    for (const [f, body] of Object.entries(files)) {
      if (body === null) git(work, 'rm', '--quiet', f); else { writeFileSync(join(work, f), body); git(work, 'add', f); }
    }
    git(work, 'commit', '--quiet', '-m', msg);
    git(work, 'push', '--quiet', 'origin', 'HEAD:main');
    return git(work, 'rev-parse', 'HEAD');
  };
  const c1 = commit({ 'svc.yaml': SERVICE + workload('web-0', '10.250.0.1', 'node-1') }, 'first');
  const tokenFile = join(dir, 'tokens');
  writeFileSync(tokenFile, TOKENS, { mode: 0o600 });
  const control = await startControl(t, ['--policies', `file://${bare}`, '--branch', 'main', '--poll-interval', '200ms', '--state-dir', join(dir, 'control'), '--token-file', tokenFile]);
  assert.ok(control.logs.some((l) => /cloning file:\/\/.* \(branch main\)/.test(l)), 'a progress line for the clone');
  assert.equal((await status(control.port)).currentVersion, c1);

  const agents = startAgents(t, `127.0.0.1:${control.port}`, ['node-1', 'node-2'].map((node) => ({ node, stateDir: join(dir, node) })));
  await Promise.all(['node-1', 'node-2'].map((n) => agents.wait((e) => e.type === 'applied' && e.node === n && e.version === c1, 30_000, `${n} gets ${c1}`)));

  let c2 = '';
  const pushed = await changeReachesBoth(agents, () => { c2 = commit({ 'svc.yaml': SERVICE + workload('web-0', '10.250.0.1', 'node-1') + workload('web-1', '10.250.0.2', 'node-2') }, 'second'); }, (v) => v !== c1, 15_000)
    .catch((e: Error) => { throw new Error(`${e.message}\ncontrol log:\n${control.logs.slice(-15).join('\n')}`); });
  assert.equal(pushed.version, c2, 'the version is the commit hash');
  t.diagnostic(`push → both agents applied in ${pushed.elapsed} ms (poll interval 200 ms)`);
  assert.ok(pushed.elapsed < 1200, `push took ${pushed.elapsed} ms (1 s + one poll interval allowed); control log:\n${control.logs.slice(-15).join('\n')}`);
  await statusUntil(control.port, (s) => ackedBy(s, c2), 'both ACK the second commit');

  const bad = commit({ 'route.yaml': BROKEN_ROUTE }, 'broken route');
  const st = await statusUntil(control.port, (s) => s.lastRejection?.revision === bad, 'the rejected commit');
  assert.equal(st.currentVersion, c2);
  assert.ok(ackedBy(st, c2));
  assert.ok(st.lastRejection!.diagnostics.some((d) => d.startsWith('route.yaml:6:25:')), JSON.stringify(st.lastRejection));

  const c4 = commit({ 'route.yaml': null }, 'revert the route');
  await Promise.all(['node-1', 'node-2'].map((n) => agents.wait((e) => e.type === 'applied' && e.node === n && e.version === c4, 5000, `${n} gets the fix`)));
  await agents.stop();
});
