// Dual-stack sockets: an IPv6 socket that reaches an IPv4 service through the v4-mapped
// form of its VIP (::ffff:a.b.c.d, what gRPC's C core, the JVM and Node with family 6
// do). The v6 hooks treat it as the IPv4 service: balanced or redirected, TCP and UDP,
// the direct map, the counters; getpeername() and UDP reply sources show the v4-mapped
// address the client used; the agent's origin lookup finds the IPv4 destination.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import type { DatapathService } from '../../agent/datapath/services';
import { OriginMap } from '../../agent/node/origin-map';
import { requires } from '../lib/privileges';
import { createHarness } from './fixtures/datapath/harness';

const VIP = '10.96.0.30';
const MAPPED = `::ffff:${VIP}`;
const BACKENDS = ['10.0.3.1', '10.0.3.2'];
const tcp = (mode: 'l4' | 'redirect', backends = BACKENDS): DatapathService => ({
  vip: VIP, port: 80, protocol: 'tcp', mode, backends: backends.map((ip) => ({ ip, port: 8080, weight: 1 })),
});
const udp: DatapathService = { vip: VIP, port: 53, protocol: 'udp', mode: 'l4', backends: [{ ip: BACKENDS[0]!, port: 5353, weight: 1 }] };

test('v4-mapped destinations on IPv6 sockets, L4 mode', async (t) => {
  if (!requires(t, { bpffs: true, netns: true, cgroup2: true })) return;
  const h = await createHarness('wt-dual-l4');
  t.after(() => h.teardown());
  for (const ip of BACKENDS) h.ns.addAddress(`${ip}/32`);
  await h.server('tcp', BACKENDS.map((ip) => `${ip}:8080`));
  await h.server('udp', [`${BACKENDS[0]}:5353`]);
  h.dp.applyServices([tcp('l4'), udp]);

  await t.test('TCP: balanced over the IPv4 backends, counted, getpeername shows the v4-mapped VIP', async () => {
    const before = h.dp.counters().connect_balanced;
    const r = await h.client<{ counts: Record<string, number>; errors: object; peers: [string, number][] }>(['many', MAPPED, '80', '200', '10']);
    assert.deepEqual(r.errors, {});
    assert.deepEqual(Object.keys(r.counts).sort(), BACKENDS.map((ip) => `${ip}:8080`), 'both backends answered');
    assert.ok(Object.values(r.counts).every((n) => n > 40), JSON.stringify(r.counts));
    assert.deepEqual(r.peers, [[MAPPED, 80]], 'every socket shows the address it connected to');
    assert.equal(h.dp.counters().connect_balanced - before, 200n);
  });

  await t.test('a v4-mapped address that is no VIP is left alone (and shows itself)', async () => {
    const before = h.dp.counters();
    const r = await h.client<{ counts: Record<string, number>; peers: [string, number][] }>(['many', `::ffff:${BACKENDS[1]}`, '8080', '5', '1']);
    assert.deepEqual(r.counts, { [`${BACKENDS[1]}:8080`]: 5 });
    assert.deepEqual(r.peers, [[`::ffff:${BACKENDS[1]}`, 8080]]);
    const after = h.dp.counters();
    assert.equal(after.connect_balanced - before.connect_balanced, 0n);
    assert.equal(after.connect_redirected - before.connect_redirected, 0n);
  });

  await t.test('UDP, unconnected and connected: the reply and getpeername show the v4-mapped VIP', async () => {
    const before = h.dp.counters().connect_balanced;
    const r = await h.client<{ from: string; body: string }>(['udp', MAPPED, '53']);
    assert.equal(r.body, `${BACKENDS[0]}:5353`, 'the backend answered');
    assert.equal(r.from, `${MAPPED}:53`, 'the reply came from the v4-mapped VIP');
    const c = await h.client<{ from: string; body: string; peer: string }>(['udp', MAPPED, '53', 'connected']);
    assert.deepEqual(c, { from: `${MAPPED}:53`, body: `${BACKENDS[0]}:5353`, peer: `${MAPPED}:53` });
    assert.equal(h.dp.counters().connect_balanced - before, 2n, 'one sendmsg and one connect rewritten');
  });

  await t.test('a service without backends refuses a v4-mapped connect with ECONNREFUSED', async () => {
    const before = h.dp.counters().no_backend;
    h.dp.applyServices([tcp('l4', []), udp]);
    const r = await h.client<{ code: string; ms: number }>(['refused', MAPPED, '80']);
    assert.equal(r.code, 'ECONNREFUSED');
    assert.ok(r.ms < 100, `took ${r.ms} ms`);
    assert.equal(h.dp.counters().no_backend - before, 1n);
  });

  await t.test('IPv4 sockets are unchanged beside it', async () => {
    h.dp.applyServices([tcp('l4'), udp]);
    const r = await h.client<{ counts: Record<string, number>; errors: object; peers: [string, number][] }>(['many', VIP, '80', '20', '5']);
    assert.deepEqual(r.errors, {});
    assert.deepEqual(r.peers, [[VIP, 80]]);
    assert.deepEqual(await h.client(['udp', VIP, '53']), { from: `${VIP}:53`, body: `${BACKENDS[0]}:5353` });
  });
});

test('v4-mapped destinations on IPv6 sockets, redirect mode and the direct map', async (t) => {
  if (!requires(t, { bpffs: true, netns: true, cgroup2: true })) return;
  const h = await createHarness('wt-dual-rd');
  t.after(() => h.teardown());
  h.dp.applyServices([tcp('redirect')]);

  // No agent listening (fail-closed): refused at once, as for an IPv4 socket.
  const down = h.dp.counters().fail_closed;
  const refused = await h.client<{ code: string }>(['refused', MAPPED, '80']);
  assert.equal(refused.code, 'ECONNREFUSED');
  assert.equal(h.dp.counters().fail_closed - down, 1n);

  const agent = await h.server('agent', ['127.0.0.1:15001'], h.dp.agentCgroupPath());
  const origins = new OriginMap(h.node);
  t.after(() => origins.close());
  const before = h.dp.counters();
  const client = h.startClient(['hold', MAPPED, '80']);
  const c = await client.json<{ localAddress: string; localPort: number; peer: [string, number] }>();
  assert.deepEqual(c.peer, [MAPPED, 80], 'getpeername shows the v4-mapped VIP, not the agent');
  assert.equal(c.localAddress, '::ffff:127.0.0.1', 'the socket talks IPv4 to the agent underneath');
  const accepted = await agent.json<{ accepted: { remoteAddress: string; remotePort: number } }>();
  assert.deepEqual(accepted.accepted, { remoteAddress: '127.0.0.1', remotePort: c.localPort }, 'the IPv4 listener got it');
  // The agent learns the IPv4 service, from the primary's datapath and from a worker's pin.
  const want = { dstIp: VIP, dstPort: 80, cgroupId: h.workload.id };
  assert.deepEqual(h.dp.lookupOrigin(accepted.accepted.remoteAddress, accepted.accepted.remotePort), want);
  assert.deepEqual(origins.lookup(accepted.accepted.remoteAddress, accepted.accepted.remotePort), want);
  assert.deepEqual(origins.lookup(c.localAddress, c.localPort), want, 'the client\'s own view of its endpoint finds it too');
  const mid = h.dp.counters();
  assert.equal(mid.connect_redirected - before.connect_redirected, 1n);
  assert.equal(mid.origin_inserts - before.origin_inserts, 1n);
  client.child.stdin!.end();
  await agent.json(); // {closed}
  assert.equal(h.dp.lookupOrigin(accepted.accepted.remoteAddress, accepted.accepted.remotePort), null, 'the entry ends with the connection');

  // A direct connect to a listed workload endpoint, v4-mapped: to the agent, origin IPv4.
  const POD = '127.0.0.7';
  await h.server('tcp', [`${POD}:8080`]);
  h.dp.setDirectEndpoints([{ ip: POD, port: 8080 }]);
  const d = h.startClient(['hold', `::ffff:${POD}`, '8080']);
  const dc = await d.json<{ localAddress: string; localPort: number; peer: [string, number] }>();
  assert.deepEqual(dc.peer, [`::ffff:${POD}`, 8080]);
  const da = await agent.json<{ accepted: { remoteAddress: string; remotePort: number } }>();
  assert.equal(da.accepted.remotePort, dc.localPort);
  assert.deepEqual(origins.lookup(da.accepted.remoteAddress, da.accepted.remotePort), { dstIp: POD, dstPort: 8080, cgroupId: h.workload.id });
  d.child.stdin!.end();
  await agent.json(); // {closed}
});

test('v4-mapped sockets, client or accepted by a dual-stack listener, are spliced like IPv4 ones (sockops/sk_msg key them as IPv4)', async (t) => {
  if (!requires(t, { bpffs: true, netns: true, cgroup2: true })) return;
  const h = await createHarness('wt-dual-sk');
  t.after(() => h.teardown());
  // Echo servers in the workload cgroup: an IPv4 listener, and a dual-stack one (::),
  // whose accepted IPv4 connections are IPv6 sockets with v4-mapped ends.
  await h.server('agent', ['127.0.0.1:7007', ':::7008'], h.workload.path);
  h.dp.setEagerEndpoints([{ ip: '127.0.0.1', port: 7007 }, { ip: '127.0.0.1', port: 7008 }]);
  for (const [host, port] of [['127.0.0.1', '7007'], ['::ffff:127.0.0.1', '7007'], ['127.0.0.1', '7008'], ['::ffff:127.0.0.1', '7008']] as const) {
    const c0 = h.dp.counters();
    const r = await h.client<{ bytes: number }>(['chat', host, port, '20', '64']);
    assert.equal(r.bytes, 20 * 64, `${host} → ${port}: every byte echoed`);
    const c1 = h.dp.counters();
    assert.equal(c1.sockmap_inserts - c0.sockmap_inserts, 2n, `${host} → ${port}: both ends inserted`);
    assert.ok(c1.msg_redirected_bytes - c0.msg_redirected_bytes >= 2n * 20n * 64n, `${host} → ${port}: both directions redirected`);
    assert.equal(c1.msg_miss - c0.msg_miss, 0n, `${host} → ${port}: no send missed its peer`);
  }
});
