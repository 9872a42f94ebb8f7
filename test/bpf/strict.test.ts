// MeshConfig mTLS STRICT (bpf/ingress.bpf.c): a connection to a mesh workload from
// outside the node is plaintext that bypassed the mesh, so its SYN is dropped; the same
// workload stays reachable from the node itself (the agent's inbound forwarder, local
// workloads). PERMISSIVE lets everything in.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';

import { Datapath } from '../../agent/datapath/datapath';

import { requires } from '../lib/privileges';
import { createNetns, vethPair } from '../lib/netns';
import { createHarness } from './fixtures/datapath/harness';

const WORKLOAD = '10.250.0.11';

const CONNECT = `const s=require('net').connect({host:process.argv[1],port:8080});` +
  `const t=setTimeout(()=>{console.log('timeout');process.exit(0)},1500);` +
  `s.on('connect',()=>{console.log('connected');clearTimeout(t);s.end()});s.on('data',()=>{});` +
  `s.on('error',(e)=>{console.log(e.code);clearTimeout(t)})`;

test('mTLS STRICT drops connections to workloads from outside the node; PERMISSIVE and local ones pass', async (t) => {
  if (!requires(t, { bpffs: true, netns: true, cgroup2: true, commands: ['bpftool'] })) return;
  const h = await createHarness('wt-strict');
  const outside = createNetns('wt-strict-out');
  t.after(() => { outside.destroy(); h.teardown(); });
  vethPair(h.ns, outside, { a: '192.168.77.1/24', b: '192.168.77.2/24' });
  outside.run(['ip', 'route', 'add', '10.250.0.0/24', 'via', '192.168.77.1']);
  h.ns.addAddress(`${WORKLOAD}/32`);
  // The server is a mesh workload: it runs in the workloads cgroup.
  await h.server('tcp', [`${WORKLOAD}:8080`], h.workload.path);
  const from = async (ns: typeof outside) => (await ns.exec([process.execPath, '-e', CONNECT, WORKLOAD], { timeoutMs: 10_000 })).stdout.trim();

  // The hook runs on every packet a workload receives: attached only while STRICT.
  const hooked = (dp: Datapath) => {
    const attached = (JSON.parse(execFileSync('bpftool', ['cgroup', 'show', dp.layout.workloadsCgroup, '-j'], { encoding: 'utf8' })) as
      { attach_type: string; name: string }[]).some((p) => p.attach_type === 'cgroup_inet_ingress' && p.name === 'weft_ingress');
    assert.equal(dp.attachments.some((a) => a.program === 'weft_ingress'), attached, 'attachments() agrees with the kernel');
    return attached;
  };
  assert.equal(h.dp.mtlsMode(), 'PERMISSIVE', 'a fresh node is permissive');
  assert.equal(hooked(h.dp), false, 'PERMISSIVE: no ingress hook on the workloads');
  assert.equal(await from(outside), 'connected', 'PERMISSIVE: plaintext from outside the mesh is accepted');

  h.dp.setMtlsMode('STRICT');
  assert.equal(h.dp.mtlsMode(), 'STRICT');
  assert.equal(h.dp.failMode(), 'closed', 'the fail mode is kept');
  const c0 = h.dp.counters();
  assert.equal(await from(outside), 'timeout', 'STRICT: the SYN from outside never reaches the workload');
  assert.ok(h.dp.counters().strict_drops > c0.strict_drops, 'drops are counted');
  assert.equal(await from(h.ns), 'connected', 'STRICT: from the node itself (loopback) it still works');
  assert.equal(hooked(h.dp), true, 'STRICT: the ingress hook is attached');

  // A restarted agent adopts the STRICT hook in place (no window without it).
  const again = await Datapath.open({ node: h.dp.layout.node });
  try {
    assert.equal(again.attachments.find((a) => a.program === 'weft_ingress')?.adopted, true, 'adopted, not re-attached');
    assert.equal(await from(outside), 'timeout', 'still STRICT across the restart');
  } finally { again.close(); }

  h.dp.setMtlsMode('PERMISSIVE');
  assert.equal(await from(outside), 'connected', 'back to PERMISSIVE');
  assert.equal(hooked(h.dp), false, 'PERMISSIVE again: the hook is gone');
  h.dp.setMtlsMode('PERMISSIVE');
  assert.equal(hooked(h.dp), false, 'setting the same mode twice changes nothing');
  assert.throws(() => h.dp.setMtlsMode('LOOSE' as never), /mTLS mode "LOOSE" is not one of PERMISSIVE, STRICT/);
});

test('mTLS STRICT passes SYNs from this node\'s workload addresses (weft_local_v1), IPv4 and IPv6; the list is a minimal diff, adopted, cleaned up', async (t) => {
  if (!requires(t, { bpffs: true, netns: true, cgroup2: true })) return;
  const h = await createHarness('wt-strict-local');
  // Stands in for another pod of the node: its own namespace, its own address, a veth.
  const pod = createNetns('wt-strict-pod');
  t.after(() => { pod.destroy(); h.teardown(); });
  const link = vethPair(h.ns, pod, { a: '192.168.78.1/24', b: '192.168.78.2/24' });
  h.ns.run(['ip', 'addr', 'add', 'fd00:78::1/64', 'dev', link.a, 'nodad']);
  pod.run(['ip', 'addr', 'add', 'fd00:78::2/64', 'dev', link.b, 'nodad']);
  pod.run(['ip', 'route', 'add', '10.250.0.0/24', 'via', '192.168.78.1']);
  pod.run(['ip', '-6', 'route', 'add', 'fd00:250::/64', 'via', 'fd00:78::1']);
  h.ns.addAddress(`${WORKLOAD}/32`);
  h.ns.run(['ip', 'addr', 'add', 'fd00:250::11/128', 'dev', 'lo', 'nodad']);
  await h.server('tcp', [`${WORKLOAD}:8080`, 'fd00:250::11:8080'], h.workload.path);
  const from = async (to: string) => (await pod.exec([process.execPath, '-e', CONNECT, to], { timeoutMs: 10_000 })).stdout.trim();
  const v4 = () => from(WORKLOAD), v6 = () => from('fd00:250::11');

  h.dp.setMtlsMode('STRICT');
  assert.deepEqual(h.dp.localWorkloads(), [], 'a fresh node lists no workload address');
  const c0 = h.dp.counters().strict_drops;
  assert.deepEqual([await v4(), await v6()], ['timeout', 'timeout'], 'not a local workload: dropped, IPv4 and IPv6');
  assert.ok(h.dp.counters().strict_drops >= c0 + 2n, 'both drops counted');

  assert.deepEqual(h.dp.setLocalWorkloads(['192.168.78.2', 'fd00:78::2', '::ffff:192.168.78.2']), { added: ['192.168.78.2', 'fd00:78::2'], removed: [] },
    'one entry per address (v4-mapped is the IPv4 one)');
  const c1 = h.dp.counters().strict_drops;
  assert.deepEqual([await v4(), await v6()], ['connected', 'connected'], 'a local workload\'s address passes, IPv4 and IPv6');
  assert.equal(h.dp.counters().strict_drops, c1, 'and is not counted as a drop');

  // Only what changed is written; a bad list changes nothing.
  assert.deepEqual(h.dp.setLocalWorkloads(['fd00:78::2', '192.168.78.2']), { added: [], removed: [] });
  assert.throws(() => h.dp.setLocalWorkloads(['192.168.78.2', '192.168.78']), /local workload address "192\.168\.78" is not an IPv4 or IPv6 address/);
  assert.deepEqual(h.dp.localWorkloads(), ['192.168.78.2', 'fd00:78::2'], 'unchanged after the refused list');

  // A restarted agent finds the list where the previous process left it.
  const again = await Datapath.open({ node: h.dp.layout.node });
  try {
    assert.deepEqual(again.localWorkloads(), ['192.168.78.2', 'fd00:78::2'], 'adopted from the pin');
    assert.deepEqual(again.setLocalWorkloads(['fd00:78::2']), { added: [], removed: ['192.168.78.2'] }, 'deregistration removes the address');
  } finally { again.close(); }
  assert.deepEqual([await v4(), await v6()], ['timeout', 'connected'], 'the removed address is dropped again, the other still passes');

  // The rules that were there stay: loopback from the node itself passes.
  assert.equal((await h.ns.exec([process.execPath, '-e', CONNECT, WORKLOAD], { timeoutMs: 10_000 })).stdout.trim(), 'connected');
  assert.ok(Datapath.inspect(h.dp.layout.node).maps.includes('weft_local_v1'), 'pinned with the other maps');
});

// A TCP SYN behind IPv6 extension headers (Hop-by-Hop, Destination Options, Routing,
// an atomic Fragment header) is still a SYN to the kernel's TCP: STRICT must find it
// (a bounded walk of the chain) and drop it from outside the node; a chain it cannot
// walk to the end (longer than its bound) is dropped as well. The packets are built
// byte by byte and sent from a raw socket in a second namespace
// (fixtures/packets/syn6.py); PERMISSIVE shows every one of them gets a SYN-ACK.
const SYN6 = join(__dirname, 'fixtures', 'packets', 'syn6.py');
const CHAINS = ['none', 'hop', 'dst', 'rt', 'frag', 'hop,dst,rt,dst', 'hop,frag,dst'];
const LONG_CHAIN = Array(7).fill('dst').join(',');

test('mTLS STRICT finds a SYN behind IPv6 extension headers and drops it from outside; an unwalkable chain is dropped', async (t) => {
  if (!requires(t, { bpffs: true, netns: true, cgroup2: true, commands: ['python3'] })) return;
  const h = await createHarness('wt-strict-ext');
  const outside = createNetns('wt-strict-ext-out');
  t.after(() => { outside.destroy(); h.teardown(); });
  const link = vethPair(h.ns, outside, { a: '192.168.79.1/24', b: '192.168.79.2/24' });
  h.ns.run(['ip', 'addr', 'add', 'fd00:79::1/64', 'dev', link.a, 'nodad']);
  outside.run(['ip', 'addr', 'add', 'fd00:79::2/64', 'dev', link.b, 'nodad']);
  outside.run(['ip', '-6', 'route', 'add', 'fd00:250::/64', 'via', 'fd00:79::1']);
  h.ns.run(['ip', 'addr', 'add', 'fd00:250::11/128', 'dev', 'lo', 'nodad']);
  await h.server('tcp', ['fd00:250::11:8080'], h.workload.path);
  const syn = async (chain: string): Promise<boolean> => {
    const r = await outside.exec(['python3', SYN6, 'fd00:79::2', 'fd00:250::11', '8080', chain], { timeoutMs: 10_000 });
    assert.equal(r.code, 0, `syn6.py ${chain}: ${r.stderr}`);
    return (JSON.parse(r.stdout.trim()) as { synack: boolean }).synack;
  };

  for (const chain of [...CHAINS, LONG_CHAIN]) assert.equal(await syn(chain), true, `PERMISSIVE: the SYN behind "${chain}" is answered`);

  h.dp.setMtlsMode('STRICT');
  for (const chain of CHAINS) {
    const c0 = h.dp.counters().strict_drops;
    assert.equal(await syn(chain), false, `STRICT: the SYN behind "${chain}" from outside is dropped`);
    assert.ok(h.dp.counters().strict_drops > c0, `the drop behind "${chain}" is counted`);
  }
  assert.equal(await syn(LONG_CHAIN), false, 'STRICT: a chain longer than the walk\'s bound is dropped');

  // The walk really reaches the TCP header: the same packets from a local workload's
  // address pass, the long chain still does not (it cannot be judged).
  h.dp.setLocalWorkloads(['fd00:79::2']);
  for (const chain of CHAINS) assert.equal(await syn(chain), true, `STRICT: the SYN behind "${chain}" from a local workload passes`);
  assert.equal(await syn(LONG_CHAIN), false, 'STRICT: the long chain is dropped whatever its source');
});
