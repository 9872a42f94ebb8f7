// Connect-time L4 load balancing, for real: VIPs inside a namespace this test creates,
// clients in the node's workload cgroup, backends as listeners on the namespace's lo.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import type { DatapathService } from '../../agent/datapath/services';
import { maglevEntry, maglevTable } from '../../agent/lib/maglev';
import { inCgroup } from '../lib/cgroup';
import { isWeftError } from '../../agent/lib/errors';
import { requires } from '../lib/privileges';
import { CLIENT, createHarness, type Harness } from './fixtures/datapath/harness';

const VIP = '10.96.0.10';
const BACKENDS = ['10.0.1.1', '10.0.1.2', '10.0.1.3'];
const svc = (weights: number[], extra: Partial<DatapathService> = {}): DatapathService => ({
  vip: VIP, port: 80, protocol: 'tcp', mode: 'l4',
  backends: weights.map((weight, i) => ({ ip: BACKENDS[i]!, port: 8080, weight })), ...extra,
});

test('connect-time L4 load balancing', async (t) => {
  if (!requires(t, { bpffs: true, netns: true, cgroup2: true })) return;
  const h: Harness = await createHarness('wt-lb');
  t.after(() => h.teardown());
  for (const ip of BACKENDS) h.ns.addAddress(`${ip}/32`);
  await h.server('tcp', BACKENDS.map((ip) => `${ip}:8080`));
  await h.server('udp', [`${BACKENDS[0]}:5353`]);

  await t.test('weights 50/30/20 over 3000 connections land within 5 points', async () => {
    assert.deepEqual(h.dp.applyServices([svc([50, 30, 20])]).added, [`${VIP}:80/tcp`]);
    const before = h.dp.counters().connect_balanced;
    const r = await h.client<{ counts: Record<string, number>; errors: object }>(['many', VIP, '80', '3000', '20']);
    assert.deepEqual(r.errors, {});
    const share = (i: number) => ((r.counts[`${BACKENDS[i]}:8080`] ?? 0) / 3000) * 100;
    for (const [i, want] of [50, 30, 20].entries()) {
      assert.ok(Math.abs(share(i) - want) <= 5, `backend ${i}: ${share(i).toFixed(1)}% (want ${want} ± 5)`);
    }
    assert.equal(h.dp.counters().connect_balanced - before, 3000n);
  });

  await t.test('after 90/10/0 no connection reaches the zero-weight backend', async () => {
    assert.deepEqual(h.dp.applyServices([svc([90, 10, 0])]).updated, [`${VIP}:80/tcp`]);
    const r = await h.client<{ counts: Record<string, number>; errors: object }>(['many', VIP, '80', '1000', '20']);
    assert.deepEqual(r.errors, {});
    assert.equal(r.counts[`${BACKENDS[2]}:8080`], undefined);
    assert.equal((r.counts[`${BACKENDS[0]}:8080`] ?? 0) + (r.counts[`${BACKENDS[1]}:8080`] ?? 0), 1000);
  });

  await t.test('backend set changes are atomic for connecting sockets', async () => {
    // Flip between two backend sets while a client connects in a loop: every connect
    // must land on a backend of one set or the other, none may fail.
    const loop = h.startClient(['loop', VIP, '80']);
    await loop.json();
    for (let i = 0; i < 100; i++) {
      h.dp.applyServices([svc(i % 2 ? [1, 1, 0] : [0, 1, 1])]);
      await new Promise((r) => setImmediate(r));
    }
    loop.child.stdin!.end();
    const r = await loop.json<{ ok: number; fail: number; errors: object; counts: Record<string, number> }>();
    assert.equal(r.fail, 0, JSON.stringify(r.errors));
    assert.ok(r.ok > 0);
    assert.deepEqual(Object.keys(r.counts).filter((b) => !BACKENDS.map((ip) => `${ip}:8080`).includes(b)), []);
    h.dp.applyServices([svc([90, 10, 0])]);
  });

  await t.test('getpeername() on a balanced socket returns the VIP', async () => {
    const r = await h.client<{ peers: [string, number][] }>(['many', VIP, '80', '300', '20']);
    assert.deepEqual(r.peers, [[VIP, 80]], 'every balanced socket shows the VIP');
    // The same workload dialling a backend itself sees that backend: the VIP is shown
    // for the socket that was rewritten, not for every connection to a backend.
    const direct = await h.client<{ peers: [string, number][] }>(['many', BACKENDS[0]!, '8080', '20', '5']);
    assert.deepEqual(direct.peers, [[BACKENDS[0], 8080]]);
  });

  await t.test('a service without backends refuses at once with ECONNREFUSED', async () => {
    const before = h.dp.counters().no_backend;
    h.dp.applyServices([svc([])]);
    const r = await h.client<{ code: string; ms: number }>(['refused', VIP, '80']);
    assert.equal(r.code, 'ECONNREFUSED');
    assert.ok(r.ms < 100, `took ${r.ms} ms`);
    assert.equal(h.dp.counters().no_backend - before, 1n);
  });

  await t.test('a UDP VIP answers and the reply comes from the VIP', async () => {
    h.dp.applyServices([svc([]), { vip: VIP, port: 53, protocol: 'udp', mode: 'l4', backends: [{ ip: BACKENDS[0]!, port: 5353, weight: 1 }] }]);
    const r = await h.client<{ from: string; body: string }>(['udp', VIP, '53']);
    assert.equal(r.body, `${BACKENDS[0]}:5353`, 'the backend answered');
    assert.equal(r.from, `${VIP}:53`, 'the client saw the VIP as the source');
    // Connected UDP goes through connect4 instead, and getpeername shows the VIP too.
    const c = await h.client<{ from: string; body: string; peer: string }>(['udp', VIP, '53', 'connected']);
    assert.deepEqual(c, { from: `${VIP}:53`, body: `${BACKENDS[0]}:5353`, peer: `${VIP}:53` });
  });

  await t.test('IPv6: the same code balances connect6 and getpeername6', async () => {
    const vip6 = 'fd00:96::10';
    const be6 = ['fd00:5::1', 'fd00:5::2'];
    for (const ip of be6) h.ns.addAddress(`${ip}/128`);
    await h.server('tcp', be6.map((ip) => `${ip}:8080`));
    h.dp.applyServices([svc([]), { vip: vip6, port: 80, protocol: 'tcp', mode: 'l4', backends: be6.map((ip) => ({ ip, port: 8080, weight: 1 })) }]);
    const r = await h.client<{ counts: Record<string, number>; errors: object; peer: [string, number] }>(['many', vip6, '80', '200', '10']);
    assert.deepEqual(r.errors, {});
    assert.ok((r.counts[`${be6[0]}:8080`] ?? 0) > 50 && (r.counts[`${be6[1]}:8080`] ?? 0) > 50, JSON.stringify(r.counts));
    assert.deepEqual(r.peer, [vip6, 80]);
  });

  await t.test('MAGLEV: a workload keeps its backend, and keeps it when another backend leaves', async () => {
    const keys = BACKENDS.map((ip) => `${ip}:8080`);
    const other = h.dp.createWorkloadCgroup('test', 'client-b');
    const run = async (path: string) => {
      const res = await h.ns.exec(inCgroup(path, ['node', CLIENT, 'many', VIP, '80', '100', '10']), { timeoutMs: 30_000 });
      return JSON.parse(res.stdout.trim().split('\n').pop()!) as { counts: Record<string, number>; errors: object };
    };
    // The backend the kernel must choose: the same table and hash the agent computes.
    const expected = (id: bigint, ks: string[], ws: number[]) => ks[maglevTable(ks, ws)[maglevEntry(id)]!]!;
    h.dp.applyServices([svc([1, 1, 1], { lb: 'maglev' })]);
    const before: Record<string, string> = {};
    for (const w of [h.workload, other]) {
      const r = await run(w.path);
      assert.deepEqual(r.errors, {});
      const want = expected(w.id, keys, [1, 1, 1]);
      assert.deepEqual(r.counts, { [want]: 100 }, 'every connection of the workload on its table entry');
      before[w.path] = want;
    }
    // Remove a backend neither workload uses (if both use all three, the first one's
    // backend stays): their connections must not move.
    const used = new Set(Object.values(before));
    const leaving = keys.find((k) => !used.has(k)) ?? keys.find((k) => k !== before[h.workload.path])!;
    const left = keys.map((k) => (k === leaving ? 0 : 1));
    h.dp.applyServices([svc(left, { lb: 'maglev' })]);
    // Maglev's disruption is minimal, not zero: a few table entries of the backends that
    // stay can change owner too. The kernel must pick exactly what the agent's table says,
    // and that table must keep most entries of the staying backends where they were.
    const oldTable = maglevTable(keys, [1, 1, 1]);
    const newTable = maglevTable(keys, left);
    const staying = Array.from(oldTable, (b, i) => [b, i] as const).filter(([b]) => keys[b] !== leaving);
    const kept = staying.filter(([b, i]) => newTable[i] === b).length;
    assert.ok(kept / staying.length > 0.9, `the table keeps the staying backends' entries (${kept}/${staying.length})`);
    for (const w of [h.workload, other]) {
      if (before[w.path] === leaving) continue;
      const r = await run(w.path);
      const want = expected(w.id, keys, left);
      assert.deepEqual(r.counts, { [want]: 100 }, 'the workload\'s connections follow the new table entry');
      if (newTable[maglevEntry(w.id)] === oldTable[maglevEntry(w.id)]) assert.equal(want, before[w.path], 'a workload whose entry stayed keeps its backend');
    }
    assert.equal(h.dp.services().find((x) => x.vip === VIP)?.lb, 'maglev', 'read back from the maps');
    h.dp.applyServices([svc([90, 10, 0])]);
  });

  await t.test('bad input is rejected with a clear error and the maps stay unchanged', () => {
    const good = h.dp.services();
    const cases: Array<[string, DatapathService[], string, RegExp]> = [
      ['invalid VIP', [svc([1], { vip: '10.96.0.300' })], 'WEFT_ERR_INVALID_SERVICE', /invalid VIP address/],
      ['invalid backend', [{ ...svc([1]), backends: [{ ip: 'backend', port: 80, weight: 1 }] }], 'WEFT_ERR_INVALID_SERVICE', /invalid backend address/],
      ['port 0', [svc([1], { port: 0 })], 'WEFT_ERR_INVALID_SERVICE', /invalid port 0/],
      ['backend port 70000', [{ ...svc([1]), backends: [{ ip: BACKENDS[0]!, port: 70000, weight: 1 }] }], 'WEFT_ERR_INVALID_SERVICE', /invalid port 70000/],
      ['weight < 0', [svc([1, -1])], 'WEFT_ERR_INVALID_SERVICE', /invalid weight -1/],
      ['fractional weight', [svc([0.5])], 'WEFT_ERR_INVALID_SERVICE', /invalid weight 0.5/],
      ['duplicate', [svc([1]), svc([2])], 'WEFT_ERR_INVALID_SERVICE', /duplicate/],
      ['unknown lb', [svc([1], { lb: 'ring' as never })], 'WEFT_ERR_INVALID_SERVICE', /invalid lb "ring"/],
      ['too many backends', [{ ...svc([]), backends: Array.from({ length: 257 }, (_, i) => ({ ip: `10.1.${i >> 8}.${i & 255}`, port: 80, weight: 1 })) }],
        'WEFT_ERR_CAPACITY', /257 backends/],
    ];
    for (const [what, services, code, message] of cases) {
      // A valid service first: it must not be applied either.
      const all = [{ vip: '10.96.0.99', port: 80, protocol: 'tcp' as const, mode: 'l4' as const, backends: [] }, ...services];
      assert.throws(() => h.dp.applyServices(all), (e: unknown) => {
        assert.ok(isWeftError(e), `${what}: ${String(e)}`);
        assert.equal(e.code, code, what);
        assert.match(e.message, message, what);
        assert.match(e.message, /service /, `${what}: names the service`);
        return true;
      });
      assert.deepEqual(h.dp.services(), good, `${what}: maps unchanged`);
    }
  });
});
