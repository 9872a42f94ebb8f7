// DNS capture in the kernel (weft_dns_v1, bpf/sock_lb.bpf.c): a workload's TCP and UDP
// to port 53 of its resolver go to the agent's DNS listener — connect4 for TCP and
// connected UDP, sendmsg4 for unconnected UDP — and replies and getpeername show the
// resolver. Not captured: other ports, a VIP on port 53 (a service, balanced), skipped
// cgroups, and anything while no listener socket exists or capture is off.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';

import { requires } from '../lib/privileges';
import { createHarness } from './fixtures/datapath/harness';

const RESOLVER = '10.0.9.53';
const LISTENER = { ip: '127.0.0.1', port: 15053 };
const VIP = '10.96.9.53';

type Udp = { from?: string; body?: string; peer?: string; timeout?: boolean };
type Many = { counts: Record<string, number>; errors: Record<string, number>; peer?: [string, number] };

test('DNS capture: port 53 to the agent\'s listener over UDP and TCP, resolver shown back; only when it should', async (t) => {
  if (!requires(t, { bpffs: true, netns: true, cgroup2: true })) return;
  const h = await createHarness('wt-dnscap');
  t.after(() => h.teardown());
  // The resolver addresses are local to the namespace and nothing listens on them (UDP
  // unanswered, TCP refused) unless the kernel sends the query to the listener.
  h.ns.run(['ip', 'route', 'add', 'local', '10.0.9.0/24', 'dev', 'lo']);
  const udpListener = await h.server('udp', [`${LISTENER.ip}:${LISTENER.port}`]);
  await h.server('tcp', [`${LISTENER.ip}:${LISTENER.port}`]);
  await h.server('udp', ['127.0.0.1:5353']);
  const listener = `${LISTENER.ip}:${LISTENER.port}`;
  const udp = (host: string, port: number, connected = false) => h.client<Udp>(['udp', host, String(port), ...(connected ? ['connected'] : [])]);
  const tcp = (host: string, port: number) => h.client<Many>(['many', host, String(port), '3', '1']);

  await t.test('off on a fresh node: queries go where they were sent', async () => {
    assert.equal(h.dp.dnsCapture(), null);
    assert.deepEqual(await udp(RESOLVER, 53), { timeout: true });
    assert.deepEqual((await tcp(RESOLVER, 53)).errors, { ECONNREFUSED: 3 });
  });

  await t.test('on: unconnected and connected UDP and TCP reach the listener, and see the resolver', async () => {
    h.dp.setDnsCapture(LISTENER);
    assert.deepEqual(h.dp.dnsCapture(), LISTENER);
    assert.deepEqual(await udp(RESOLVER, 53), { from: `${RESOLVER}:53`, body: listener }, 'sendmsg4 → listener, recvmsg4 shows the resolver');
    assert.deepEqual(await udp(RESOLVER, 53, true), { from: `${RESOLVER}:53`, body: listener, peer: `${RESOLVER}:53` }, 'connect4 on UDP, getpeername too');
    const r = await tcp(RESOLVER, 53);
    assert.deepEqual(r.counts, { [listener]: 3 });
    assert.deepEqual(r.errors, {});
    assert.deepEqual(r.peer, [RESOLVER, 53], 'getpeername4 shows the resolver');
    assert.deepEqual(await udp('10.0.9.99', 53), { from: '10.0.9.99:53', body: listener }, 'any resolver address');
    assert.deepEqual(await udp(RESOLVER, 54), { timeout: true }, 'port 54 is not DNS');
  });

  await t.test('a VIP on port 53 is a service: balanced to its backend, not captured', async () => {
    h.dp.applyServices([{ vip: VIP, port: 53, protocol: 'udp', mode: 'l4', backends: [{ ip: '127.0.0.1', port: 5353, weight: 1 }] }]);
    assert.deepEqual(await udp(VIP, 53), { from: `${VIP}:53`, body: '127.0.0.1:5353' });
    h.dp.applyServices([]);
  });

  await t.test('a skipped cgroup (the agent\'s pod) resolves untouched', async () => {
    h.dp.setSkippedCgroups([h.workload.id]);
    try {
      assert.deepEqual(await udp(RESOLVER, 53), { timeout: true });
      assert.deepEqual((await tcp(RESOLVER, 53)).errors, { ECONNREFUSED: 3 });
    } finally { h.dp.setSkippedCgroups([]); }
    assert.deepEqual(await udp(RESOLVER, 53), { from: `${RESOLVER}:53`, body: listener });
  });

  await t.test('no listener socket (agent gone): UDP goes to the resolver as sent; TCP still captured while its socket lives', async () => {
    udpListener.child.kill('SIGKILL');
    await once(udpListener.child, 'exit');
    assert.deepEqual(await udp(RESOLVER, 53), { timeout: true }, 'not sent to a dead listener');
    assert.deepEqual((await tcp(RESOLVER, 53)).counts, { [listener]: 3 }, 'per protocol: the TCP listener is there');
  });

  await t.test('off again: nothing captured; bad listeners refused', async () => {
    h.dp.setDnsCapture(null);
    assert.equal(h.dp.dnsCapture(), null);
    assert.deepEqual((await tcp(RESOLVER, 53)).errors, { ECONNREFUSED: 3 });
    assert.throws(() => h.dp.setDnsCapture({ ip: '0.0.0.0', port: 53 }), /specific IPv4 address/);
    assert.throws(() => h.dp.setDnsCapture({ ip: 'fd00::1', port: 53 }), /specific IPv4 address/);
    assert.throws(() => h.dp.setDnsCapture({ ip: '127.0.0.1', port: 0 }), /port from 1 to 65535/);
  });
});
