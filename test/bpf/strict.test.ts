// MeshConfig mTLS STRICT (bpf/ingress.bpf.c): a connection to a mesh workload from
// outside the node is plaintext that bypassed the mesh, so its SYN is dropped; the same
// workload stays reachable from the node itself (the agent's inbound forwarder, local
// workloads). PERMISSIVE lets everything in.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
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
