// Issue 2's restart bar, end to end through the real CLIs: control API + agent in a
// network namespace, a client started with `weft run` connecting to an L4 VIP in a
// loop; the agent is SIGKILLed and started again meanwhile. The client must see zero
// failures (the pinned datapath keeps balancing while no agent runs), the new agent must
// adopt the pinned links, and `weft agent --cleanup` must leave no pin, link or cgroup.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { requires } from '../lib/privileges';
import { startOneNodeMesh } from '../lib/mesh';
import { policyFile, registrationGrant } from '../lib/policies';
import { weftArgv, ROOT } from '../lib/weft';
import { cgroup2Root } from '../../agent/datapath/layout';
import { sleep, until } from '../lib/wait';

const FIX = join(ROOT, 'test', 'e2e', 'fixtures', 'agent');

const policies = (node: string) => policyFile(node, [
  { name: 'echo', vip: '10.96.0.10', port: 80, targetPort: 8080, protocol: 'TCP', workloads: { 'echo-1': '10.250.0.11', 'echo-2': '10.250.0.12' } },
], [registrationGrant(node)]);

test('agent SIGKILL + restart: zero client failures, pinned state adopted, cleanup leaves nothing', { timeout: 180_000 }, async (t) => {
  if (!requires(t, { bpffs: true, netns: true, cgroup2: true })) return;
  const mesh = await startOneNodeMesh('rs', policies);
  t.after(() => mesh.close());
  const { ns, node, dir } = mesh;
  ns.addAddress('10.250.0.11/32');
  ns.addAddress('10.250.0.12/32');
  for (const [ip, name] of [['10.250.0.11', 'echo-1'], ['10.250.0.12', 'echo-2']] as const) {
    const g = mesh.spawn([process.execPath, join(FIX, 'greeter.js'), ip, '8080', name]);
    await g.waitForLog(/listening/);
  }

  // The client runs as a mesh workload, so connect4 applies to it.
  const stop = join(dir, 'stop');
  const client = ns.exec(weftArgv('run', '--workload', 'client', '--state-dir', join(dir, 'agent'), '--', process.execPath, join(FIX, 'vip-client.js'), '10.96.0.10', '80', stop), { timeoutMs: 120_000 });
  // `weft run` registers with the agent before the client starts (its startup can take
  // over a second on a busy machine): the agent is killed only after that.
  await until('the client to be registered', async () => (await ns.exec(['curl', '-sf', 'http://127.0.0.1:15020/debug/workloads'])).stdout.includes('"client"'), { timeoutMs: 60_000, everyMs: 100 });
  await sleep(1000);

  mesh.agent.proc.kill('SIGKILL');
  await mesh.agent.exited;
  await sleep(1500); // no agent at all: the kernel keeps balancing from the pinned maps
  const agent = await mesh.startAgent();
  await sleep(1000);
  writeFileSync(stop, '');
  const out = await client;
  assert.equal(out.code, 0, `weft run failed: ${out.stderr}\nagent log:\n${mesh.agent.logs.slice(-20).join('\n')}`);
  const r = JSON.parse(out.stdout.trim().split('\n').pop()!) as { ok: number; failed: number; errors: Record<string, number>; backends: Record<string, number> };
  assert.equal(r.failed, 0, `client failures across the restart: ${JSON.stringify(r.errors)}`);
  assert.ok(r.ok > 100, `only ${r.ok} connections went through`);
  assert.deepEqual(Object.keys(r.backends).sort(), ['echo-1', 'echo-2']);

  // The second agent adopted the first one's links instead of attaching anew.
  const bpf = JSON.parse((await ns.exec(['curl', '-sf', 'http://127.0.0.1:15020/debug/bpf'])).stdout) as { attachments: { program: string; adopted: boolean }[] };
  assert.ok(bpf.attachments.length >= 5, 'programs attached');
  for (const a of bpf.attachments) assert.equal(a.adopted, true, `${a.program} was re-attached instead of adopted`);

  const status = await ns.exec(weftArgv('status'));
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, /control API\s+127\.0\.0\.1:15010 — connected/);
  assert.match(status.stdout, /weft_connect4\s+link \d+ prog \d+ \(adopted\)/);

  await agent.kill('SIGTERM');
  const cleanup = mesh.weft('agent', '--cleanup', '--node', node);
  assert.ok(cleanup.length > 0);
  assert.equal(existsSync(join('/sys/fs/bpf/weft', node)), false, `pins left: ${existsSync(join('/sys/fs/bpf/weft', node)) ? readdirSync(join('/sys/fs/bpf/weft', node)).join(' ') : ''}`);
  assert.equal(existsSync(join(cgroup2Root(), 'weft', node)), false, 'node cgroup left behind');
  const tree = execFileSync('bpftool', ['cgroup', 'tree', cgroup2Root()], { encoding: 'utf8' });
  assert.ok(!tree.includes(`/weft/${node}`), `programs still attached under weft/${node}:\n${tree}`);
});
