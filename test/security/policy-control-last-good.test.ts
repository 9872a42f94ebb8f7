// A billion-laughs file pushed to the policy repository used to freeze the control
// API's event loop (it loads every change synchronously), so it stopped answering
// agents and crash-looped under its liveness probe. Now the change is rejected whole in
// milliseconds with a bounded, located diagnostic, the last good snapshot keeps serving,
// and the next good change is adopted. The control server runs in a worker thread so a
// hang shows as a failed test rather than a frozen test runner.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { billionLaughs, isolate } from './policy-isolate';

const GOOD = `apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: catalog, namespace: shop}
spec:
  vip: 10.96.0.20
  selector: {app: catalog}
  ports: [{name: http, port: 80, protocol: HTTP}]
`;

const SCENARIO = `
  const { startControl } = require('./test/lib/control-server');
  const { policyCompiler } = require('./agent/control/policy-adapter');
  const { rmSync } = require('node:fs');
  const { join } = require('node:path');
  const cleanups = [];
  const t = { after: (fn) => cleanups.push(fn) };
  const waitFor = async (what, fn, ms = 5000) => {
    const end = Date.now() + ms;
    for (;;) { const v = fn(); if (v !== undefined) return v; if (Date.now() > end) throw new Error('timed out waiting for ' + what); await new Promise((r) => setTimeout(r, 10)); }
  };
  try {
    const h = await startControl(t, { files: { 'catalog.yaml': input.good }, compiler: policyCompiler() });
    const store = h.server.store;
    const v1 = await waitFor('first snapshot', () => store.snapshot()?.version);
    const t0 = Date.now();
    h.write('lol.yaml', input.bomb);
    const rejection = await waitFor('rejection', () => store.lastRejection());
    const rejectedAfterMs = Date.now() - t0;
    const kept = store.snapshot().version;
    const servicesKept = store.snapshot().services.map((s) => s.key);
    // The next good commit is adopted: the store is alive and not wedged.
    rmSync(join(h.policies, 'lol.yaml'));
    h.write('catalog.yaml', input.good.replace('10.96.0.20', '10.96.0.21'));
    const v2 = await waitFor('next good snapshot', () => (store.snapshot().version !== v1 ? store.snapshot().version : undefined));
    return { v1, kept, servicesKept, rejection: rejection.diagnostics.map((d) => d.split(h.policies + '/').join('')), rejectedAfterMs, v2, vip: store.snapshot().services[0].vip };
  } finally {
    for (const fn of cleanups.reverse()) await fn();
  }
`;

test('control API: a billion-laughs commit is rejected fast with a bounded diagnostic; the last good snapshot keeps serving', async () => {
  const r = await isolate<{ v1: string; kept: string; servicesKept: string[]; rejection: string[]; rejectedAfterMs: number; v2: string; vip: string }>(
    SCENARIO, { good: GOOD, bomb: billionLaughs() }, { timeoutMs: 20_000, heapMb: 512 });
  assert.ok(r.ok, `the control API did not get through the scenario: ${r.ok ? '' : `${r.reason}: ${r.message.slice(0, 500)}`}`);
  const v = r.value;
  assert.equal(v.kept, v.v1, 'the last good snapshot keeps serving');
  assert.deepEqual(v.servicesKept, ['shop/catalog']);
  assert.deepEqual(v.rejection, ['lol.yaml:5:10: document expands to more than 100000 values through YAML aliases (every use of an alias counts as a copy); not checked']);
  assert.ok(v.rejectedAfterMs < 3000, `rejected after ${v.rejectedAfterMs} ms (includes the source's debounce)`);
  assert.notEqual(v.v2, v.v1);
  assert.equal(v.vip, '10.96.0.21', 'the next good change is adopted');
});
