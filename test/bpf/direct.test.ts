// A connect to a mesh workload's own address instead of its Service's VIP: when the
// endpoint is in weft_direct_v1, connect4/6 send it to the agent's outbound listener
// like a redirect-mode service (origin: the workload endpoint it asked for and the
// connecting cgroup), so the destination's authorization applies to it. Unlisted
// endpoints, and connects from a skipped cgroup, go where they asked.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { requires } from '../lib/privileges';
import { inCgroup } from '../lib/cgroup';
import { CLIENT, createHarness } from './fixtures/datapath/harness';

const POD = '127.0.0.5';
const OTHER = '127.0.0.6';

test('direct connects to listed workload endpoints are redirected; unlisted ones and skipped cgroups are not', async (t) => {
  if (!requires(t, { bpffs: true, netns: true, cgroup2: true })) return;
  const h = await createHarness('wt-direct');
  t.after(() => h.teardown());
  const agent = await h.server('agent', ['127.0.0.1:15001'], h.dp.agentCgroupPath());
  await h.server('tcp', [`${POD}:8080`, `${POD}:8081`, `${OTHER}:9000`]);
  const skipped = h.dp.createWorkloadCgroup('test', 'skipped');

  assert.deepEqual(h.dp.setDirectEndpoints([{ ip: POD, port: 8080 }, { ip: OTHER, port: 0 }]),
    { added: [`${POD}:8080`, `${OTHER}:0`], removed: [] });
  assert.deepEqual(h.dp.setDirectEndpoints([{ ip: OTHER, port: 0 }, { ip: POD, port: 8080 }]), { added: [], removed: [] }, 'a minimal diff');
  assert.throws(() => h.dp.setDirectEndpoints([{ ip: '10.1.2', port: 1 }]), /not an IPv4 or IPv6 address/);
  assert.throws(() => h.dp.setDirectEndpoints([{ ip: POD, port: 70000 }]), /not 0-65535/);
  assert.deepEqual(h.dp.directEndpoints(), [{ ip: POD, port: 8080 }, { ip: OTHER, port: 0 }]);

  // Listed address and port: to the agent, with the origin the agent needs.
  const before = h.dp.counters();
  const client = h.startClient(['hold', POD, '8080']);
  const c = await client.json<{ localAddress: string; localPort: number; peer: [string, number] }>();
  assert.deepEqual(c.peer, [POD, 8080], 'the workload still sees the address it dialled');
  const accepted = await agent.json<{ accepted: { remoteAddress: string; remotePort: number } }>();
  assert.deepEqual(accepted.accepted, { remoteAddress: c.localAddress, remotePort: c.localPort }, 'the agent got the connection');
  assert.deepEqual(h.dp.lookupOrigin(c.localAddress, c.localPort), { dstIp: POD, dstPort: 8080, cgroupId: h.workload.id });
  client.child.stdin!.end();
  await agent.json(); // {closed}
  assert.equal(h.dp.counters().connect_redirected - before.connect_redirected, 1n);

  // Port 0: every port of the address.
  const any = h.startClient(['hold', OTHER, '9000']);
  const ca = await any.json<{ localAddress: string; localPort: number }>();
  await agent.json(); // {accepted}
  assert.deepEqual(h.dp.lookupOrigin(ca.localAddress, ca.localPort), { dstIp: OTHER, dstPort: 9000, cgroupId: h.workload.id });
  any.child.stdin!.end();
  await agent.json(); // {closed}

  // The same address on a port it is not listed for, and a skipped cgroup: untouched.
  const mid = h.dp.counters();
  const unlisted = await h.client<{ counts: Record<string, number> }>(['many', POD, '8081', '3', '1']);
  assert.deepEqual(unlisted.counts, { [`${POD}:8081`]: 3 }, 'an unlisted port is reached directly');
  h.dp.setSkippedCgroups([skipped.id]);
  const res = await h.ns.exec(inCgroup(skipped.path, ['node', CLIENT, 'many', POD, '8080', '3', '1']));
  assert.deepEqual(JSON.parse(res.stdout.trim().split('\n').pop()!).counts, { [`${POD}:8080`]: 3 }, 'a skipped cgroup goes where it asked');
  assert.equal(h.dp.counters().connect_redirected - mid.connect_redirected, 0n);

  // Unlisting restores direct connects.
  const gone = h.dp.setDirectEndpoints([]);
  assert.deepEqual({ added: gone.added, removed: gone.removed.sort() }, { added: [], removed: [`${POD}:8080`, `${OTHER}:0`].sort() });
  const after = await h.client<{ counts: Record<string, number> }>(['many', POD, '8080', '2', '1']);
  assert.deepEqual(after.counts, { [`${POD}:8080`]: 2 });
});
