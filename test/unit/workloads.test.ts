import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WorkloadRegistry, validateRegisterRequest, validateWorkloadAddress, type WorkloadCgroups } from '../../agent/node/workloads';
import { isWeftError } from '../../agent/lib/errors';

function fakeCgroups(): WorkloadCgroups & { live: Set<string> } {
  let next = 1000n;
  const live = new Set<string>();
  return {
    live,
    createWorkloadCgroup(ns, name) { live.add(`${ns}.${name}`); return { path: `/cg/${ns}.${name}`, id: next++ }; },
    removeWorkloadCgroup(ns, name) { live.delete(`${ns}.${name}`); },
  };
}

test('registry maps cgroup ids to workloads and survives an agent restart', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wt-workloads-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const cg = fakeCgroups();
  const reg = new WorkloadRegistry(cg, { name: 'node-1', address: '10.250.1.1' }, dir);
  const a = reg.register({ name: 'frontend', namespace: 'shop', serviceAccount: 'frontend', labels: { app: 'frontend' } });
  const b = reg.register({ name: 'catalog', namespace: 'shop', serviceAccount: 'catalog', labels: {} });
  assert.equal(reg.byCgroupId(BigInt(a.cgroupId))?.name, 'frontend');
  assert.equal(reg.byCgroupId(BigInt(b.cgroupId))?.serviceAccount, 'catalog');
  assert.equal(reg.byCgroupId(999n), undefined);
  assert.equal(statSync(join(dir, 'workloads.json')).mode & 0o777, 0o600);

  const again = new WorkloadRegistry(cg, { name: 'node-1', address: '10.250.1.1' }, dir);
  assert.equal(again.byCgroupId(BigInt(a.cgroupId))?.name, 'frontend');
  assert.deepEqual(again.registrations().map((r) => r.name), ['catalog', 'frontend']);

  again.deregister('shop', 'catalog');
  assert.equal(cg.live.has('shop.catalog'), false);
  assert.equal(again.byCgroupId(BigInt(b.cgroupId)), undefined);
  assert.throws(() => again.deregister('shop', 'catalog'), (e: unknown) => isWeftError(e, 'WEFT_ERR_NOT_FOUND'));
});

test('a workload cannot be re-registered under another service account', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wt-workloads-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const reg = new WorkloadRegistry(fakeCgroups(), { name: 'n', address: '127.0.0.1' }, dir);
  reg.register({ name: 'pay', namespace: 'shop', serviceAccount: 'payments', labels: {} });
  assert.throws(() => reg.register({ name: 'pay', namespace: 'shop', serviceAccount: 'frontend', labels: {} }), (e: unknown) => isWeftError(e, 'WEFT_ERR_CONFLICT'));
});

test('registration requests are validated', () => {
  assert.deepEqual(validateRegisterRequest({ name: 'a', namespace: 'b', serviceAccount: 'c' }), { name: 'a', namespace: 'b', serviceAccount: 'c', labels: {} });
  assert.throws(() => validateRegisterRequest({ name: 'A_B', namespace: 'b', serviceAccount: 'c' }), /name: must be a DNS label/);
  assert.throws(() => validateRegisterRequest({ name: 'a', namespace: '../x', serviceAccount: 'c' }), /namespace/);
  assert.throws(() => validateRegisterRequest({ name: 'a', namespace: 'b', serviceAccount: 'c', labels: { 'bad key!': 'x' } }), /invalid label/);
  assert.throws(() => validateRegisterRequest(null), /name/);
});

test('workload addresses: IPv4 or IPv6 unicast literals, canonical; anything else is a clear error', () => {
  assert.equal(validateWorkloadAddress('10.77.0.11'), '10.77.0.11');
  assert.equal(validateWorkloadAddress('FD00:0:0::0012'), 'fd00::12', 'IPv6 in its canonical form');
  assert.equal(validateWorkloadAddress('::ffff:10.77.0.11'), '10.77.0.11', 'v4-mapped is the IPv4 address the kernel sees');
  assert.equal(validateWorkloadAddress('127.0.0.1'), '127.0.0.1', 'a node-local workload may use loopback');
  const cases: [unknown, RegExp][] = [
    ['10.77.0', /"10\.77\.0" is not an IPv4 or IPv6 address/],
    ['10.77.0.11/32', /is not an IPv4 or IPv6 address/],
    ['10.77.0.11:80', /is not an IPv4 or IPv6 address/],
    ['pod-a.local', /is not an IPv4 or IPv6 address/],
    ['', /is not an IPv4 or IPv6 address/],
    ['fe80::1%eth0', /zone id/],
    ['0.0.0.0', /unspecified/],
    ['::', /unspecified/],
    ['224.0.0.1', /multicast/],
    ['255.255.255.255', /broadcast/],
    ['ff02::1', /multicast/],
    [42, /not an IP address/],
  ];
  for (const [v, re] of cases) {
    assert.throws(() => validateWorkloadAddress(v, '--address'), (e: unknown) => isWeftError(e, 'WEFT_ERR_INVALID_ARG') && re.test(e.message) && e.message.startsWith('--address: '), String(v));
  }
  assert.equal(validateRegisterRequest({ name: 'a', namespace: 'b', serviceAccount: 'c', address: 'fd00::0:12' }).address, 'fd00::12');
  assert.throws(() => validateRegisterRequest({ name: 'a', namespace: 'b', serviceAccount: 'c', address: '10.1.2.300' }),
    (e: unknown) => isWeftError(e, 'WEFT_ERR_INVALID_ARG') && /^address: "10\.1\.2\.300" is not an IPv4 or IPv6 address/.test(e.message));
  assert.equal('address' in validateRegisterRequest({ name: 'a', namespace: 'b', serviceAccount: 'c' }), false, 'absent stays absent');
});

test('the registry carries a workload\'s own address to its registration (default: the node address), across restarts', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wt-workloads-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const cg = fakeCgroups();
  const node = { name: 'node-1', address: '10.77.0.1' };
  const reg = new WorkloadRegistry(cg, node, dir);
  reg.register({ name: 'pod-a', namespace: 'shop', serviceAccount: 'a', labels: { app: 'a' }, address: '10.77.0.11' });
  reg.register({ name: 'pod-b', namespace: 'shop', serviceAccount: 'b', labels: {}, address: 'fd00:77::12' });
  reg.register({ name: 'host', namespace: 'shop', serviceAccount: 'h', labels: {} });
  reg.register({ name: 'host-2', namespace: 'shop', serviceAccount: 'h', labels: {} });
  const byName = (r: WorkloadRegistry) => Object.fromEntries(r.registrations().map((x) => [x.name, x.address]));
  assert.deepEqual(byName(reg), { 'host': '10.77.0.1', 'host-2': '10.77.0.1', 'pod-a': '10.77.0.11', 'pod-b': 'fd00:77::12' });
  assert.ok(reg.registrations().every((x) => x.node === 'node-1'));
  assert.deepEqual(reg.addresses(), ['10.77.0.1', '10.77.0.11', 'fd00:77::12'], 'distinct addresses');

  const again = new WorkloadRegistry(cg, node, dir);
  assert.deepEqual(byName(again), byName(reg), 'addresses survive an agent restart');
  again.register({ name: 'pod-a', namespace: 'shop', serviceAccount: 'a', labels: { app: 'a' }, address: '10.77.0.11' }); // the same again: fine
  again.deregister('shop', 'pod-a');
  again.register({ name: 'pod-a', namespace: 'shop', serviceAccount: 'a', labels: { app: 'a' }, address: '10.77.0.21' });
  again.deregister('shop', 'pod-b');
  assert.deepEqual(again.addresses(), ['10.77.0.1', '10.77.0.21'], 'deregistered and registered again: the new address; a deregistration drops it');
});
