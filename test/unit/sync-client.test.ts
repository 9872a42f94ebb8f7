// The agent's sync client against a real control server on loopback: apply + ACK,
// all-or-nothing NACK, the on-disk cache serving while the control API is down,
// reconnection, fatal refusals, and workload registration.
import { test } from 'node:test';
import type { EventEmitter } from 'node:events';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import type { NodeView } from '../../agent/policy/snapshot';
import { SyncClient, type SyncClientOptions } from '../../agent/sync/client';
import { CACHE_FILE } from '../../agent/sync/cache';
import { startControl, silent, tokenFor, NODE1_TOKEN } from '../lib/control-server';
import { waitFor } from '../lib/wait';
import { policyCompiler } from '../../agent/control/policy-adapter';
import type { PolicyCompiler } from '../../agent/control/policy-compiler';
import { forNode, nodeAddress } from '../../agent/policy';
import { serviceYaml, nodeWorkloadsYaml, nodeName, type MeshShape } from '../bench/control-fixture';

const SHAPE: MeshShape = { services: 6, endpoints: 12, nodes: 2 };

function agent(t: TestContext, address: string, o: Partial<SyncClientOptions> & { stateDir?: string } = {}) {
  const stateDir = o.stateDir ?? mkdtempSync(join(tmpdir(), 'wt-sync-'));
  const applied: NodeView[] = [];
  const node = o.node ?? 'node-1';
  const c = new SyncClient({
    address, node, token: tokenFor(node), stateDir, logger: silent, backoff: { baseMs: 20, maxMs: 200 },
    apply: async (v) => { applied.push(v); },
    ...o,
  });
  t.after(async () => {
    await c.stop();
    if (!o.stateDir) rmSync(stateDir, { recursive: true, force: true });
  });
  const events = ['state', 'applied', 'nack', 'fatal', 'cached'];
  const emitter: EventEmitter = c;
  const sub = (w: () => void) => { for (const e of events) emitter.on(e, w); return () => { for (const e of events) emitter.off(e, w); }; };
  const wait = <T>(check: () => T | undefined, what: string, ms = 5000) => waitFor(check, sub, ms, what);
  return { c, applied, stateDir, waitFor: wait };
}

test('applies each snapshot, ACKs it and caches it atomically with mode 0600', async (t) => {
  const h = await startControl(t);
  const a = agent(t, h.address);
  await a.c.start();
  const v1 = h.server.store.snapshot()!.version;
  await a.waitFor(() => (a.c.state().version === v1 ? true : undefined), 'v1 applied');
  await waitFor(() => (h.server.agents.get('node-1')?.ackedVersion === v1 ? true : undefined), (w) => h.server.sync.onAck(w), 5000, 'server sees ACK');
  assert.equal(a.applied[0]!.node, 'node-1');
  assert.equal(a.c.state().connected, true);

  h.write('a.txt', 'two\n');
  await a.waitFor(() => (a.c.state().version !== v1 ? true : undefined), 'v2 applied');
  const v2 = a.c.state().version;
  assert.equal(v2, h.server.store.snapshot()!.version);
  await a.waitFor(() => { try { return JSON.parse(readFileSync(join(a.stateDir, CACHE_FILE), 'utf8')).version === v2 ? true : undefined; } catch { return undefined; } }, 'cache has v2');
  assert.equal(statSync(join(a.stateDir, CACHE_FILE)).mode & 0o777, 0o600);
});

test('apply that throws is NACKed: the agent keeps its version, the server records why', async (t) => {
  const h = await startControl(t);
  let fail = false;
  const a = agent(t, h.address, { apply: async () => { if (fail) throw new Error('service table full'); } });
  await a.c.start();
  const v1 = h.server.store.snapshot()!.version;
  await a.waitFor(() => (a.c.state().version === v1 ? true : undefined), 'v1');
  // The cache is written after the ACK, off the apply path: wait for it.
  await a.waitFor(() => { try { return JSON.parse(readFileSync(join(a.stateDir, CACHE_FILE), 'utf8')).version === v1 ? true : undefined; } catch { return undefined; } }, 'cache has v1');
  fail = true;
  h.write('a.txt', 'two\n');
  await a.waitFor(() => (a.c.state().lastNack ? true : undefined), 'NACK sent');
  const v2 = h.server.store.snapshot()!.version;
  assert.equal(a.c.state().version, v1);
  assert.match(a.c.state().lastNack, new RegExp(`^${v2}: service table full`));
  const st = await a.c.status('node-1');
  assert.equal(st.currentVersion, v2);
  const rec = h.server.agents.get('node-1')!;
  assert.equal(rec.ackedVersion, v1);
  assert.equal(rec.lastNackVersion, v2);
  assert.equal(rec.lastNackReason, 'service table full');
  // The cache still holds the last good version only.
  assert.equal(JSON.parse(readFileSync(join(a.stateDir, CACHE_FILE), 'utf8')).version, v1);
  // The next good change is applied.
  fail = false;
  h.write('a.txt', 'three\n');
  await a.waitFor(() => (a.c.state().version === h.server.store.snapshot()!.version && a.c.state().version !== v1 ? true : undefined), 'v3');
});

test('control API down: a restarting agent serves the cache; a restarted control API brings it back in sync', async (t) => {
  const h = await startControl(t);
  const stateDir = mkdtempSync(join(tmpdir(), 'wt-sync-'));
  t.after(() => rmSync(stateDir, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 }));
  const first = agent(t, h.address, { stateDir });
  await first.c.start();
  const v1 = h.server.store.snapshot()!.version;
  await first.waitFor(() => (first.c.state().version === v1 ? true : undefined), 'v1');
  await first.waitFor(() => { try { return statSync(join(stateDir, CACHE_FILE)) ? true : undefined; } catch { return undefined; } }, 'cache written');
  await first.c.stop();
  await h.server.stop();

  const infos: boolean[] = [];
  const second = agent(t, h.address, { stateDir, apply: async (_v, info) => { infos.push(info.fromCache); } });
  await second.c.start();
  assert.deepEqual(infos, [true], 'the cached snapshot is applied before any connection');
  assert.equal(second.c.state().version, v1);
  assert.equal(second.c.state().fromCache, true);
  await second.waitFor(() => (second.c.state().lastError ? true : undefined), 'connection failure noticed');
  assert.equal(second.c.state().connected, false);

  // Restart the control API on the same port with a changed policy.
  h.write('a.txt', 'after restart\n');
  const h2 = await startControl(t, { port: Number(h.address.split(':')[1]), policies: h.policies, stateDir: h.stateDir });
  const v2 = h2.server.store.snapshot()!.version;
  await second.waitFor(() => (second.c.state().version === v2 && second.c.state().connected ? true : undefined), 'in sync after restart', 8000);
  assert.equal(second.c.state().fromCache, false);
  assert.deepEqual(infos, [true, false]);
});

/** Delta mode over two nodes' workloads: a control API, and node 0's agent synced once
 *  (v1) with its snapshot cache written to `stateDir`, still running. */
async function syncedOnce(t: TestContext) {
  const files = { 'services.yaml': serviceYaml(SHAPE), [`workloads-${nodeName(0)}.yaml`]: nodeWorkloadsYaml(SHAPE, 0), [`workloads-${nodeName(1)}.yaml`]: nodeWorkloadsYaml(SHAPE, 1) };
  const h = await startControl(t, { files, compiler: policyCompiler() as PolicyCompiler });
  const stateDir = mkdtempSync(join(tmpdir(), 'wt-sync-'));
  t.after(() => rmSync(stateDir, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 }));
  const sent = async () => (await h.server.metrics.deltaResources.get()).values[0]?.value ?? 0;
  const v1 = h.server.store.snapshot()!.version;
  const first = agent(t, h.address, { stateDir, node: nodeName(0) });
  await first.c.start();
  await first.waitFor(() => (first.c.state().version === v1 ? true : undefined), 'v1');
  await first.waitFor(() => { try { return JSON.parse(readFileSync(join(stateDir, CACHE_FILE), 'utf8')).version === v1 ? true : undefined; } catch { return undefined; } }, 'cache written');
  return { h, stateDir, sent, v1, first };
}

test('a restarted agent tells the control API what it holds: an unchanged view costs no resources, a change only the delta', async (t) => {
  const { h, stateDir, sent, v1, first } = await syncedOnce(t);
  assert.equal(await sent(), SHAPE.services + 1, 'the first sync sends every resource');
  const whole = JSON.stringify(first.applied.at(-1));
  await first.c.stop();

  const second = agent(t, h.address, { stateDir, node: nodeName(0) });
  await second.c.start();
  assert.equal(JSON.stringify(second.applied[0]), whole, 'the cache reassembles the same view');
  await second.waitFor(() => (second.c.state().connected && !second.c.state().fromCache ? true : undefined), 'confirmed by the control API');
  assert.equal(await sent(), SHAPE.services + 1, 'nothing resent');
  assert.equal(second.applied.length, 1, 'nothing to apply again');

  h.write(`workloads-${nodeName(1)}.yaml`, nodeWorkloadsYaml(SHAPE, 1, 2));
  await second.waitFor(() => (second.c.state().version !== v1 ? true : undefined), 'the change applied');
  assert.equal(await sent(), SHAPE.services + 2, 'one service resource for a one-endpoint change');
  const view = second.applied.at(-1)!;
  assert.deepEqual(JSON.parse(JSON.stringify(view)), JSON.parse(JSON.stringify(forNode(h.server.store.snapshot()!, nodeName(0)))));
});

test('PERMISSION_DENIED is fatal: no retry storm, the last snapshot keeps serving', async (t) => {
  const h = await startControl(t);
  const a = agent(t, h.address, { node: 'node-2', token: NODE1_TOKEN });
  let fatal = 0;
  a.c.on('fatal', () => fatal++);
  await a.c.start();
  await a.waitFor(() => (a.c.state().fatal ? true : undefined), 'fatal');
  assert.match(a.c.state().lastError, /PERMISSION_DENIED/);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(fatal, 1);
  assert.equal(h.server.agents.list().length, 0);
});

test('workload registration through the client: accepted, refused with a WeftError code', async (t) => {
  const h = await startControl(t);
  const a = agent(t, h.address);
  await a.c.start();
  const v1 = h.server.store.snapshot()!.version;
  const v = await a.c.registerWorkload({ name: 'web-0', namespace: 'shop', address: '10.250.0.5', serviceAccount: 'web', labels: { app: 'web' }, cgroupId: '123' });
  assert.notEqual(v, v1);
  await a.waitFor(() => (a.c.state().version === v ? true : undefined), 'snapshot with the workload');
  assert.equal(a.applied.at(-1)!.localWorkloads[0]!.name, 'web-0');
  await assert.rejects(a.c.registerWorkload({ name: 'web-1', namespace: 'shop', address: 'nope' }), { code: 'WEFT_ERR_INVALID_ARG' });
  await assert.rejects(a.c.deregisterWorkload({ name: 'ghost', namespace: 'shop' }), { code: 'WEFT_ERR_NOT_FOUND' });
  await a.c.deregisterWorkload({ name: 'web-0', namespace: 'shop' });
  await a.waitFor(() => (a.c.state().version === v1 ? true : undefined), 'back to v1');
});

test('node table: agents report --node-address at hello; a Node object wins; loopback is ignored; reports survive a control API restart', async (t) => {
  const nodeObj = `apiVersion: weft.dev/v1alpha1
kind: Node
metadata: {name: ${nodeName(1)}}
spec: {address: 192.168.56.12, zone: zone-b}
`;
  const files = { 'services.yaml': serviceYaml(SHAPE), [`workloads-${nodeName(0)}.yaml`]: nodeWorkloadsYaml(SHAPE, 0), 'nodes.yaml': nodeObj };
  const stateDir = mkdtempSync(join(tmpdir(), 'wt-ctl-state-'));
  t.after(() => rmSync(stateDir, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 }));
  const h = await startControl(t, { files, stateDir, compiler: policyCompiler() as PolicyCompiler });
  // node-00's workloads have several addresses: no fallback entry for it yet.
  assert.deepEqual(h.server.store.snapshot()!.nodes, [{ name: nodeName(1), address: '192.168.56.12', zone: 'zone-b', source: 'policy' }]);

  const loop = agent(t, h.address, { node: nodeName(0), nodeAddress: '127.0.0.1' });
  await loop.c.start();
  await loop.waitFor(() => (loop.applied.length ? true : undefined), 'a view');
  assert.deepEqual(loop.applied.at(-1)!.nodes, { [nodeName(1)]: { address: '192.168.56.12', zone: 'zone-b' } }, 'loopback is not an address for other nodes');
  await loop.c.stop();

  const a0 = agent(t, h.address, { node: nodeName(0), nodeAddress: '192.168.56.11' });
  await a0.c.start();
  await a0.waitFor(() => (nodeAddress(a0.applied.at(-1) ?? { nodes: {} }, nodeName(0)) === '192.168.56.11' ? true : undefined), 'its own reported address in its view');
  const a1 = agent(t, h.address, { node: nodeName(1), nodeAddress: '10.9.9.9' });
  await a1.c.start();
  await a1.waitFor(() => (a1.applied.length ? true : undefined), 'a view');
  const v = a1.applied.at(-1)!;
  assert.equal(nodeAddress(v, nodeName(1)), '192.168.56.12', 'the Node object wins over the report');
  assert.equal(nodeAddress(v, nodeName(0)), '192.168.56.11');
  assert.equal(nodeAddress(v, 'node-99'), undefined);
  assert.deepEqual(h.server.store.snapshot()!.nodes.map((n) => [n.name, n.source]), [[nodeName(0), 'agent'], [nodeName(1), 'policy']]);
  await a0.c.stop();
  await a1.c.stop();
  await h.server.stop();

  // A restarted control API knows the reported address before the agent says hello again.
  const again = await startControl(t, { files, stateDir, compiler: policyCompiler() as PolicyCompiler });
  assert.deepEqual(again.server.store.snapshot()!.nodes.find((n) => n.name === nodeName(0)), { name: nodeName(0), address: '192.168.56.11', source: 'agent' });
});

test('node table: a node_address that is not an IP is refused with INVALID_ARGUMENT (fatal for the agent)', async (t) => {
  const h = await startControl(t, { files: { 'services.yaml': serviceYaml(SHAPE) }, compiler: policyCompiler() as PolicyCompiler });
  const a = agent(t, h.address, { node: nodeName(0), nodeAddress: 'not-an-ip' });
  await a.c.start();
  await a.waitFor(() => (a.c.state().fatal ? true : undefined), 'the refusal');
  assert.match(a.c.state().lastError, /INVALID_ARGUMENT: node_address: 'not-an-ip' is not an IP address/);
  assert.deepEqual(h.server.store.snapshot()!.nodes, []);
});

test('a restarted agent whose view is out of date gives a digest the control API does not have: asked for the list, it is sent only the delta', async (t) => {
  const { h, stateDir, sent, v1, first } = await syncedOnce(t);
  const mismatches = async () => (await h.server.metrics.digestMismatches.get()).values[0]?.value ?? 0;
  await first.c.stop();
  assert.equal(await mismatches(), 0, 'a first sync lists nothing and gives no digest');

  h.write(`workloads-${nodeName(1)}.yaml`, nodeWorkloadsYaml(SHAPE, 1, 3));
  await waitFor(() => (h.server.store.snapshot()!.version !== v1 ? true : undefined), (w) => { const i = setInterval(w, 10); return () => clearInterval(i); }, 5000, 'v2 served');
  const second = agent(t, h.address, { stateDir, node: nodeName(0) });
  await second.c.start();
  await second.waitFor(() => (second.c.state().version === h.server.store.snapshot()!.version ? true : undefined), 'v2 applied');
  assert.equal(await mismatches(), 1, 'the digest of v1\'s view is not v2\'s');
  assert.equal(await sent(), SHAPE.services + 2, 'after the list, one service resource');
  assert.deepEqual(JSON.parse(JSON.stringify(second.applied.at(-1))), JSON.parse(JSON.stringify(forNode(h.server.store.snapshot()!, nodeName(0)))));
});
