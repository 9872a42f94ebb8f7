// Redirect mode: a connection to a redirect-mode VIP reaches the agent's outbound
// listener (a stand-in here, in the node's agent cgroup), and the origin map tells the
// agent where it was going and which workload cgroup opened it.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { requires } from '../lib/privileges';
import { createHarness } from './fixtures/datapath/harness';

const VIP = '10.96.0.20';

test('redirect mode and origin lookup', async (t) => {
  if (!requires(t, { bpffs: true, netns: true, cgroup2: true })) return;
  const h = await createHarness('wt-redir');
  t.after(() => h.teardown());
  h.dp.applyServices([{ vip: VIP, port: 80, protocol: 'tcp', mode: 'redirect', backends: [{ ip: '10.0.2.1', port: 8080, weight: 1 }] }]);
  const agent = await h.server('agent', ['127.0.0.1:15001'], h.dp.agentCgroupPath());
  const before = h.dp.counters();

  const client = h.startClient(['hold', VIP, '80']);
  const c = await client.json<{ localAddress: string; localPort: number; peer: [string, number] }>();
  assert.deepEqual(c.peer, [VIP, 80], 'the workload still sees the VIP as its peer');
  const accepted = await agent.json<{ accepted: { remoteAddress: string; remotePort: number } }>();
  assert.deepEqual(accepted.accepted, { remoteAddress: c.localAddress, remotePort: c.localPort }, 'the stand-in agent got the connection');

  const origin = h.dp.lookupOrigin(accepted.accepted.remoteAddress, accepted.accepted.remotePort);
  assert.deepEqual(origin, { dstIp: VIP, dstPort: 80, cgroupId: h.workload.id });
  const after = h.dp.counters();
  assert.equal(after.connect_redirected - before.connect_redirected, 1n);
  assert.equal(after.origin_inserts - before.origin_inserts, 1n);

  // The agent's side closing ends the entry (sockops, on the agent's socket).
  client.child.stdin!.end();
  await agent.json(); // {closed}
  assert.equal(h.dp.lookupOrigin(accepted.accepted.remoteAddress, accepted.accepted.remotePort), null);

  // An IPv6 workload socket reaches the IPv4 listener through the v4-mapped target; the
  // listener sees an IPv4 client and the lookup still finds it.
  const vip6 = 'fd00:96::20';
  h.dp.applyServices([...h.dp.services(), { vip: vip6, port: 443, protocol: 'tcp', mode: 'redirect', backends: [] }]);
  const client6 = h.startClient(['hold', vip6, '443']);
  const c6 = await client6.json<{ localAddress: string; localPort: number; peer: [string, number] }>();
  assert.deepEqual(c6.peer, [vip6, 443]);
  const a6 = await agent.json<{ accepted: { remoteAddress: string; remotePort: number } }>();
  assert.equal(a6.accepted.remoteAddress, '127.0.0.1');
  assert.deepEqual(h.dp.lookupOrigin(a6.accepted.remoteAddress, a6.accepted.remotePort), { dstIp: vip6, dstPort: 443, cgroupId: h.workload.id });
  client6.child.stdin!.end();
  await agent.json(); // {closed}
  assert.equal(h.dp.lookupOrigin(a6.accepted.remoteAddress, a6.accepted.remotePort), null);

  // Nothing else is affected: an unknown endpoint has no origin.
  assert.equal(h.dp.lookupOrigin('127.0.0.1', 1), null);
});

test('the agent cgroup is never redirected', async (t) => {
  if (!requires(t, { bpffs: true, netns: true, cgroup2: true })) return;
  const h = await createHarness('wt-redir2');
  t.after(() => h.teardown());
  h.dp.applyServices([{ vip: '127.0.0.2', port: 8080, protocol: 'tcp', mode: 'redirect', backends: [] }]);
  h.ns.addAddress('127.0.0.2/32');
  await h.server('agent', ['127.0.0.1:15001'], h.dp.agentCgroupPath());
  await h.server('tcp', ['127.0.0.2:8080']);
  // From the agent cgroup the "VIP" is reached as itself: no rewrite, no loop.
  const res = await h.ns.exec(['sh', '-c', `echo $$ > ${h.dp.agentCgroupPath()}/cgroup.procs && exec node -e "
    const s = require('net').connect(8080, '127.0.0.2'); let b=''; s.on('data', d => b += d); s.on('end', () => console.log(b));"`]);
  assert.equal(res.stdout.trim(), '127.0.0.2:8080');
  assert.equal(h.dp.counters().connect_redirected, 0n);
});
