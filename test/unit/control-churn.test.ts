// EndpointSlice churn reaching the control API: hundreds of slice updates a second
// through the fake API server's watch, discovery's flushes, and SourceWithDiscovery,
// whose reloads are slower than the churn. Reloads are coalesced (at most one running,
// one waiting), so they stay few and the last one sees the final state; without that
// every report queued a reload of its own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeApiServer } from '../lib/fake-apiserver';
import { KubernetesDiscovery } from '../../agent/discovery/kubernetes';
import { SourceWithDiscovery } from '../../agent/control/sources/with-discovery';
import type { PolicySource } from '../../agent/control/sources/source';
import type { PolicyTree } from '../../agent/control/snapshot-store';
import { componentLogger } from '../../agent/telemetry/logger';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A base source with one fixed tree. */
const fixedSource = (root: string): PolicySource => ({
  description: 'test', start: async (onTree) => { await onTree({ root }); }, stop: async () => undefined,
} as PolicySource);

test('SourceWithDiscovery: reports during a reload fold into one more reload, never a queue', async () => {
  const discovery = new EventEmitter() as EventEmitter & { start(): Promise<void>; stop(): Promise<void>; objects(): never };
  discovery.start = async () => undefined;
  discovery.stop = async () => undefined;
  const src = new SourceWithDiscovery(fixedSource('/nonexistent'), discovery as unknown as KubernetesDiscovery);
  let running = 0, maxRunning = 0, calls = 0;
  let lastStartedAfter = 0;
  let reports = 0;
  await src.start(async (_tree: PolicyTree) => {
    calls++;
    lastStartedAfter = reports;
    running++; maxRunning = Math.max(maxRunning, running);
    await sleep(40);
    running--;
  });
  calls = 0;
  for (let i = 0; i < 200; i++) { reports++; discovery.emit('change'); if (i % 20 === 0) await sleep(10); }
  await src.stop();
  assert.equal(maxRunning, 1, 'one reload at a time');
  assert.ok(calls >= 2 && calls <= 6, `${calls} reloads for 200 reports`);
  assert.equal(lastStartedAfter, 200, 'the last reload started after the last report');
  assert.deepEqual(src.counts, { reports: 200, reloads: calls });
});

test('300 EndpointSlice updates a second through the API watch: a handful of reloads, the last one current', { timeout: 60_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wt-churn-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const api = await FakeApiServer.start({ listen: '127.0.0.1:0', dir: join(dir, 'api'), namespaces: ['default', 'churn'] });
  t.after(() => api.close());
  const s = api.store;
  s.create('services', 'churn', { metadata: { name: 'web' }, spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'web' }] } });
  const pods = 20;
  for (let i = 0; i < pods; i++) {
    const p = s.create('pods', 'churn', { metadata: { name: `web-${i}`, labels: { app: 'web' } }, spec: { nodeName: 'churn-node', containers: [{ name: 'c', image: 'x' }] } });
    s.replace('pods', 'churn', `web-${i}`, { ...p, status: { phase: 'Running', podIP: `10.244.7.${i + 1}`, podIPs: [{ ip: `10.244.7.${i + 1}` }] } }, 'status');
  }
  const slice = (n: number, port: number) => ({
    metadata: { name: `web-${n}`, labels: { 'kubernetes.io/service-name': 'web' } }, addressType: 'IPv4', ports: [{ name: 'http', port, protocol: 'TCP' }],
    endpoints: [{ addresses: [`10.244.7.${n + 1}`], conditions: { ready: true }, targetRef: { kind: 'Pod', name: `web-${n}`, namespace: 'churn' } }],
  });
  for (let i = 0; i < pods; i++) s.create('endpointslices', 'churn', slice(i, 8000));

  const discovery = new KubernetesDiscovery({ kubeconfig: api.kubeconfigPath!, debounceMs: 50, logger: componentLogger('test-churn') });
  const src = new SourceWithDiscovery(fixedSource(dir), discovery);
  let reloads = 0;
  let lastSeen = '';
  await src.start(async () => {
    reloads++;
    await sleep(150); // a compile of a large mesh
    lastSeen = JSON.stringify(discovery.objects().workloads.map((w) => w.spec.ports));
  });
  t.after(() => src.stop());
  reloads = 0;
  const started = Date.now();
  const UPDATES = 300;
  for (let u = 1; u <= UPDATES; u++) {
    const n = u % pods;
    const cur = s.get('endpointslices', 'churn', `web-${n}`);
    s.replace('endpointslices', 'churn', `web-${n}`, { ...cur, ports: [{ name: 'http', port: 8000 + u, protocol: 'TCP' }] });
    if (u % 30 === 0) await sleep(100); // 300 updates/s
  }
  const churnMs = Date.now() - started;
  // Settles on the final state: every pod's port is its slice's last one.
  const final = new Map(Array.from({ length: pods }, (_, n) => [`web-${n}`, 8000 + (UPDATES - ((UPDATES - n) % pods))]));
  const current = () => discovery.objects().workloads.every((w) => w.spec.ports?.[0]?.port === final.get(w.metadata.annotations?.['weft.dev/pod-name'] ?? ''));
  const end = Date.now() + 10_000;
  while (!current() || src.counts.reports === 0) { if (Date.now() > end) throw new Error(`discovery never reached the final state: ${JSON.stringify(discovery.objects().workloads.map((w) => w.spec.ports))}`); await sleep(20); }
  await sleep(500); // the reload that follows the last report
  t.diagnostic(`${UPDATES} slice updates in ${churnMs} ms → ${src.counts.reports} discovery reports → ${reloads} reloads`);
  assert.ok(reloads <= Math.ceil(churnMs / 150) + 3, `${reloads} reloads in ${churnMs} ms`);
  assert.ok(src.counts.reports < UPDATES / 3, `${src.counts.reports} reports for ${UPDATES} updates`);
  assert.equal(lastSeen, JSON.stringify(discovery.objects().workloads.map((w) => w.spec.ports)), 'the last reload saw the final state');
});
