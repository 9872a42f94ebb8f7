// Workload registration on a node (`weft run` → the agent's admin port): every process on
// the node, and every hostNetwork pod, is a loopback caller, so loopback proves nothing.
// Registering needs the agent's admin token from everyone, and a registered key cannot be
// quietly moved to other labels or another address.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import pino from 'pino';
import { AdminServer } from '../../agent/admin/server';
import { WorkloadRegistry, type WorkloadCgroups } from '../../agent/node/workloads';
import { isWeftError } from '../../agent/lib/errors';
import { adminTokenPath } from '../../agent/cli/run';

const TOKEN = 'k'.repeat(48);

async function adminServer(t: { after(fn: () => unknown): void }, writeToken: string | undefined): Promise<{ port: number; calls: string[] }> {
  const calls: string[] = [];
  const admin = new AdminServer({
    host: '127.0.0.1', port: 0, registry: new Registry(), health: () => ({ ready: true, reasons: [] }), debug: {},
    ...(writeToken !== undefined ? { writeToken } : {}),
    api: {
      'POST /v1/workloads': () => { calls.push('register'); return { ok: true }; },
      'DELETE /v1/workloads': () => { calls.push('deregister'); return { ok: true }; },
      'GET /v1/status': () => ({ ok: true }),
    },
    logger: pino({ level: 'silent' }),
  });
  const { port } = await admin.listen();
  t.after(() => admin.close());
  return { port, calls };
}

const body = JSON.stringify({ name: 'pay', namespace: 'shop', serviceAccount: 'payments', labels: { app: 'payments' }, address: '10.0.0.66' });

test('registration from loopback without the admin token is refused (401), nothing registered', async (t) => {
  const { port, calls } = await adminServer(t, TOKEN);
  const url = `http://127.0.0.1:${port}`;
  assert.equal((await fetch(`${url}/v1/workloads`, { method: 'POST', body })).status, 401, 'no token');
  assert.equal((await fetch(`${url}/v1/workloads`, { method: 'POST', body, headers: { authorization: `Bearer ${'x'.repeat(48)}` } })).status, 401, 'wrong token');
  assert.equal((await fetch(`${url}/v1/workloads?namespace=shop&name=pay`, { method: 'DELETE' })).status, 401, 'deregistration too');
  assert.deepEqual(calls, []);
  assert.equal((await fetch(`${url}/v1/status`)).status, 200, 'loopback reads stay open');
  assert.equal((await fetch(`${url}/v1/workloads`, { method: 'POST', body, headers: { authorization: `Bearer ${TOKEN}` } })).status, 200);
  assert.deepEqual(calls, ['register']);
});

test('an admin server without a token refuses registrations outright', async (t) => {
  const { port, calls } = await adminServer(t, undefined);
  assert.equal((await fetch(`http://127.0.0.1:${port}/v1/workloads`, { method: 'POST', body })).status, 401);
  assert.deepEqual(calls, []);
});

test('weft run finds the admin token in the agent state dir, or says how to give it', () => {
  assert.deepEqual(adminTokenPath({ 'admin-token-file': '/x/t' }, {}), { file: '/x/t', flag: '--admin-token-file' });
  assert.deepEqual(adminTokenPath({ 'state-dir': '/s' }, {}), { file: '/s/admin-token', flag: '--state-dir' });
  assert.deepEqual(adminTokenPath({ node: 'vm-1' }, {}), { file: '/var/lib/weft/vm-1/admin-token', flag: '--node' });
  assert.deepEqual(adminTokenPath({}, { WEFT_NODE: 'vm-2' }), { file: '/var/lib/weft/vm-2/admin-token', flag: '$WEFT_NODE' });
  assert.throws(() => adminTokenPath({}, {}), (e: unknown) => isWeftError(e, 'WEFT_ERR_INVALID_ARG') && /needs the agent's admin token: pass --admin-token-file/.test(e.message));
});

test('re-registering a key with another address or other labels is refused until it is deregistered', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wt-identity-reg-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  let next = 1n;
  const cgroups: WorkloadCgroups = { createWorkloadCgroup: (ns, name) => ({ path: `/cg/${ns}.${name}`, id: next++ }), removeWorkloadCgroup: () => {} };
  const reg = new WorkloadRegistry(cgroups, { name: 'n1', address: '10.0.0.1' }, dir);
  const first = { name: 'pay', namespace: 'shop', serviceAccount: 'payments', labels: { app: 'payments' }, address: '10.0.0.11' };
  reg.register(first);
  const conflict = (e: unknown) => isWeftError(e, 'WEFT_ERR_CONFLICT') && /deregister it first/.test(e.message);
  assert.throws(() => reg.register({ ...first, address: '10.0.0.66' }), conflict, 'another address');
  assert.throws(() => reg.register({ ...first, labels: { app: 'payments', tier: 'db' } }), conflict, 'an extra label');
  assert.throws(() => reg.register({ ...first, labels: { app: 'checkout' } }), conflict, 'another label value');
  assert.throws(() => reg.register({ ...first, address: undefined }), conflict, 'the node address instead');
  assert.throws(() => reg.register({ ...first, serviceAccount: 'admin' }), conflict, 'another service account');
  assert.deepEqual(reg.registrations().map((r) => [r.address, r.labels]), [['10.0.0.11', { app: 'payments' }]], 'unchanged');
  reg.register({ ...first, labels: { app: 'payments' } }); // the same registration again (a restarted weft run)
  reg.deregister('shop', 'pay');
  reg.register({ ...first, address: '10.0.0.66' });
  assert.deepEqual(reg.registrations().map((r) => r.address), ['10.0.0.66']);
});
