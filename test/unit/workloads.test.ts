import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WorkloadRegistry, validateRegisterRequest, type WorkloadCgroups } from '../../agent/node/workloads';
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
  assert.throws(() => reg.register({ name: 'pay', namespace: 'shop', serviceAccount: 'frontend', labels: {} }), (e: unknown) => isWeftError(e, 'WEFT_ERR_PERMISSION'));
});

test('registration requests are validated', () => {
  assert.deepEqual(validateRegisterRequest({ name: 'a', namespace: 'b', serviceAccount: 'c' }), { name: 'a', namespace: 'b', serviceAccount: 'c', labels: {} });
  assert.throws(() => validateRegisterRequest({ name: 'A_B', namespace: 'b', serviceAccount: 'c' }), /name: must be a DNS label/);
  assert.throws(() => validateRegisterRequest({ name: 'a', namespace: '../x', serviceAccount: 'c' }), /namespace/);
  assert.throws(() => validateRegisterRequest({ name: 'a', namespace: 'b', serviceAccount: 'c', labels: { 'bad key!': 'x' } }), /invalid label/);
  assert.throws(() => validateRegisterRequest(null), /name/);
});
