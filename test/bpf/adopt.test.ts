// Restart without a gap: a second Datapath.open on a node adopts the pinned links
// (same link ids, new programs swapped in) and maps (services kept) while a client
// connects through the VIP in a loop; then cleanup leaves nothing behind.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import * as native from 'weft-native';

import { Datapath } from '../../agent/datapath/datapath';
import { CGROUP_PROGRAMS, MAPS } from '../../agent/datapath/programs';
import type { DatapathService } from '../../agent/datapath/services';
import { requires } from '../lib/privileges';
import { createHarness } from './fixtures/datapath/harness';

const VIP = '10.96.0.30';
const SERVICE: DatapathService = {
  vip: VIP, port: 80, protocol: 'tcp', mode: 'l4',
  backends: [{ ip: '10.0.3.1', port: 8080, weight: 1 }, { ip: '10.0.3.2', port: 8080, weight: 1 }],
};

const progExists = (id: number) => {
  try { execFileSync('bpftool', ['prog', 'show', 'id', String(id)], { stdio: 'ignore' }); return true; } catch { return false; }
};

test('a second open adopts links and maps without a gap, cleanup removes everything', async (t) => {
  if (!requires(t, { bpffs: true, netns: true, cgroup2: true, commands: ['bpftool'] })) return;
  const h = await createHarness('wt-adopt');
  t.after(() => h.teardown());
  h.ns.addAddress('10.0.3.1/32');
  h.ns.addAddress('10.0.3.2/32');
  await h.server('tcp', ['10.0.3.1:8080', '10.0.3.2:8080']);
  h.dp.applyServices([SERVICE]);
  h.dp.setMtlsMode('STRICT'); // so the STRICT-only hook is attached, adopted and cleaned up too
  const first = new Map(h.dp.attachments.map((a) => [a.program, a]));
  assert.ok([...first.values()].every((a) => !a.adopted));
  assert.equal(first.size, CGROUP_PROGRAMS.length);

  const loop = h.startClient(['loop', VIP, '80']);
  await loop.json(); // started
  // Restart: the old process's handles go, a new one loads and adopts.
  h.dp.close();
  const dp2 = await Datapath.open({ node: h.node, redirect: { ipv4: '127.0.0.1', port: 15001 }, logger: pino({ level: 'silent' }) });
  t.after(() => dp2.close());
  for (const a of dp2.attachments) {
    const old = first.get(a.program)!;
    assert.equal(a.adopted, true, a.program);
    assert.equal(a.linkId, old.linkId, `${a.program}: same link`);
    assert.equal(a.previousProgId, old.progId, `${a.program}: swapped from the old program`);
    assert.notEqual(a.progId, old.progId, `${a.program}: to the new one`);
  }
  assert.deepEqual(dp2.services(), [SERVICE]);
  assert.deepEqual(dp2.applyServices([SERVICE]), { added: [], updated: [], removed: [], unchanged: [`${VIP}:80/tcp`] });
  // Keep the client going on the adopted programs for a moment, then stop it.
  const c0 = dp2.counters().connect_balanced;
  while (dp2.counters().connect_balanced - c0 < 200n) await new Promise((r) => setTimeout(r, 20));
  loop.child.stdin!.end();
  const r = await loop.json<{ ok: number; fail: number; errors: object }>();
  assert.equal(r.fail, 0, `failures: ${JSON.stringify(r.errors)}`);
  assert.ok(r.ok > 200);

  // Cleanup: no pins, links, cgroups; the programs are gone from the kernel.
  const seen = Datapath.inspect(h.node);
  assert.equal(seen.links.length, CGROUP_PROGRAMS.length);
  assert.deepEqual(seen.maps, Object.values(MAPS).sort());
  assert.deepEqual(native.queryCgroup(h.dp.layout.workloadsCgroup, 'cgroup_inet4_connect').progIds,
    [dp2.attachments.find((a) => a.program === 'weft_connect4')!.progId]);
  const progIds = seen.links.map((l) => l.progId);
  dp2.close();
  h.ns.destroy();
  // A process still in a workload cgroup is moved out (to the cgroup v2 root) and reported.
  const straggler = spawn('sh', ['-c', `echo $$ > ${h.workload.path}/cgroup.procs && exec sleep 30`], { stdio: 'ignore' });
  t.after(() => straggler.kill('SIGKILL'));
  while (!readFileSync(join(h.workload.path, 'cgroup.procs'), 'utf8').trim()) await new Promise((r) => setTimeout(r, 10));
  const report = Datapath.cleanup(h.node);
  assert.deepEqual(report.movedPids, [straggler.pid]);
  assert.equal(report.links.length, CGROUP_PROGRAMS.length);
  assert.equal(report.maps.length, Object.keys(MAPS).length);
  assert.ok(report.cgroups.includes(h.workload.path));
  const after = Datapath.inspect(h.node);
  assert.deepEqual(after, { node: h.node, pinRoot: seen.pinRoot, maps: [], links: [], cgroups: [], attached: {} });
  assert.equal(existsSync(seen.pinRoot), false);
  assert.equal(existsSync(h.dp.layout.cgroupRoot), false);
  // The kernel frees programs after an RCU grace period: allow it a moment.
  for (let i = 0; i < 100 && progIds.some(progExists); i++) await new Promise((r) => setTimeout(r, 20));
  for (const id of progIds) assert.equal(progExists(id), false, `program ${id} still loaded`);
});
