// Fail-open / fail-closed (MeshConfig failMode) while no agent runs: the pinned connect
// hooks keep working without the agent, so a redirect-mode (L7/mTLS) service must not
// send workloads to a dead listener. connect4/6 look for the agent's outbound listener
// in the caller's network namespace, or for a pod in its own namespace, in the sockmap
// the agent put its listening socket into: with it, redirect as always; without it,
// 'closed' refuses at once and 'open' balances over the service's backends in the kernel.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { closeSync } from 'node:fs';
import { test } from 'node:test';
import * as native from 'weft-native';

import { isWeftError } from '../../agent/lib/errors';
import { requires } from '../lib/privileges';
import { createHarness } from './fixtures/datapath/harness';

const VIP = '10.96.0.30';
const BACKEND = '10.0.3.1';
const VIP6 = 'fd00:96::30';
const BACKEND6 = 'fd00:3::1';

test('redirect-mode services while no agent listens: fail-closed, fail-open, and back', async (t) => {
  if (!requires(t, { bpffs: true, netns: true, cgroup2: true })) return;
  const h = await createHarness('wt-failm');
  t.after(() => h.teardown());
  h.ns.addAddress(`${BACKEND}/32`);
  h.ns.addAddress(`${BACKEND6}/128`);
  await h.server('tcp', [`${BACKEND}:8080`, `${BACKEND6}:8080`]);
  h.dp.applyServices([
    { vip: VIP, port: 80, protocol: 'tcp', mode: 'redirect', backends: [{ ip: BACKEND, port: 8080, weight: 1 }] },
    { vip: VIP6, port: 80, protocol: 'tcp', mode: 'redirect', backends: [{ ip: BACKEND6, port: 8080, weight: 1 }] },
  ]);
  assert.equal(h.dp.failMode(), 'closed', 'a fresh node fails closed');

  await t.test('closed: ECONNREFUSED at once, IPv4 and IPv6', async () => {
    const c0 = h.dp.counters();
    for (const vip of [VIP, VIP6]) {
      const r = await h.client<{ code: string; ms: number }>(['refused', vip, '80']);
      assert.equal(r.code, 'ECONNREFUSED', vip);
      assert.ok(r.ms < 100, `${vip}: took ${r.ms} ms`);
    }
    const c1 = h.dp.counters();
    assert.equal(c1.fail_closed - c0.fail_closed, 2n);
    assert.equal(c1.no_backend - c0.no_backend, 0n, 'not counted as a service without backends');
    assert.equal(c1.connect_redirected - c0.connect_redirected, 0n);
  });

  await t.test('open: the connection reaches a backend directly and still sees the VIP', async () => {
    h.dp.setFailMode('open');
    assert.equal(h.dp.failMode(), 'open');
    const c0 = h.dp.counters();
    const r = await h.client<{ counts: Record<string, number>; errors: object; peer: [string, number] }>(['many', VIP, '80', '20', '5']);
    assert.deepEqual(r.errors, {});
    assert.deepEqual(r.counts, { [`${BACKEND}:8080`]: 20 });
    assert.deepEqual(r.peer, [VIP, 80]);
    const r6 = await h.client<{ counts: Record<string, number>; errors: object }>(['many', VIP6, '80', '5', '1']);
    assert.deepEqual(r6, { counts: { [`${BACKEND6}:8080`]: 5 }, errors: {}, peer: [VIP6, 80], peers: [[VIP6, 80]] });
    const c1 = h.dp.counters();
    assert.equal(c1.fail_open - c0.fail_open, 25n);
    assert.equal(c1.connect_balanced - c0.connect_balanced, 25n);
    assert.equal(c1.connect_redirected - c0.connect_redirected, 0n);
  });

  await t.test('with the agent listening: redirected as before, in either mode', async () => {
    const agent = await h.server('agent', ['127.0.0.1:15001'], h.dp.agentCgroupPath());
    for (const mode of ['open', 'closed'] as const) {
      h.dp.setFailMode(mode);
      for (const vip of [VIP, VIP6]) {
        const c0 = h.dp.counters();
        const client = h.startClient(['hold', vip, '80']);
        const c = await client.json<{ localPort: number; peer: [string, number] }>();
        assert.deepEqual(c.peer, [vip, 80]);
        const accepted = await agent.json<{ accepted: { remotePort: number } }>();
        assert.equal(accepted.accepted.remotePort, c.localPort, `${mode} ${vip}: the agent got it`);
        const c1 = h.dp.counters();
        assert.equal(c1.connect_redirected - c0.connect_redirected, 1n);
        assert.equal(c1.fail_open + c1.fail_closed - c0.fail_open - c0.fail_closed, 0n);
        client.child.stdin!.end();
        await agent.json(); // {closed}
      }
    }
    // The agent goes away: the very next connect falls back to the fail mode.
    agent.child.kill('SIGKILL');
    await once(agent.child, 'exit');
    const r = await h.client<{ code: string; ms: number }>(['refused', VIP, '80']);
    assert.equal(r.code, 'ECONNREFUSED');
    assert.ok(r.ms < 100, `took ${r.ms} ms`);
  });

  await t.test('a bad fail mode is rejected and changes nothing', () => {
    assert.throws(() => h.dp.setFailMode('half-open' as never), (e: unknown) => isWeftError(e) && e.code === 'WEFT_ERR_INVALID_ARG');
    assert.equal(h.dp.failMode(), 'closed');
  });
});

test('a pod in its own network namespace: the agent\'s listener in weft_agentl_v1 counts as listening, until it closes', async (t) => {
  if (!requires(t, { bpffs: true, netns: true, cgroup2: true })) return;
  // The harness namespace plays the pod (no listener of its own); the "agent" listens in
  // this process's namespace, as the real one listens in the node's.
  const port = 20000 + (process.pid % 20000);
  const h = await createHarness('wt-failpod', { redirect: { ipv4: '127.0.0.1', port } });
  t.after(() => h.teardown());
  h.dp.applyServices([{ vip: VIP, port: 80, protocol: 'tcp', mode: 'redirect', backends: [{ ip: BACKEND, port: 8080, weight: 1 }] }]);
  const connect = async () => {
    const c0 = h.dp.counters();
    const r = await h.client<{ code: string }>(['refused', VIP, '80']);
    const c1 = h.dp.counters();
    return { code: r.code, failClosed: c1.fail_closed - c0.fail_closed, redirected: c1.connect_redirected - c0.connect_redirected };
  };
  assert.equal(h.dp.agentListenerRegistered(), false);
  assert.deepEqual(await connect(), { code: 'ECONNREFUSED', failClosed: 1n, redirected: 0n }, 'no agent anywhere: fail-closed');

  const fd = native.listenTcp('127.0.0.1', port);
  let open = true;
  t.after(() => { if (open) closeSync(fd); });
  h.dp.setAgentListener(fd);
  assert.equal(h.dp.agentListenerRegistered(), true);
  // Redirected: the pod's connect goes to the redirect target (refused here only because
  // this stand-in pod has no route to the stand-in node).
  assert.deepEqual(await connect(), { code: 'ECONNREFUSED', failClosed: 0n, redirected: 1n }, 'the listener in the map counts');

  closeSync(fd);
  open = false;
  for (let i = 0; i < 100 && h.dp.agentListenerRegistered(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(h.dp.agentListenerRegistered(), false, 'the kernel dropped the closed socket from the map');
  assert.deepEqual(await connect(), { code: 'ECONNREFUSED', failClosed: 1n, redirected: 0n }, 'the agent is gone: fail-closed again');
  assert.throws(() => h.dp.setAgentListener(-1), /listener fd -1 is not a file descriptor/);
});
