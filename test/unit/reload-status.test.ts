// The control API's last reload as `weft status` and the demo's live view show it
// (agent/control/reload-status.ts, agent/demo/render.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { reloadLines, reloadStatus } from '../../agent/control/reload-status';
import { eventLines, plainLine, screen } from '../../agent/demo/render';
import type { Frame } from '../../agent/demo/frame';
import type { StatusResponse } from '../../agent/control/generated/weft/control/v1/StatusResponse';

const agent = (node: string, acked: string, extra: Record<string, unknown> = {}) => ({
  node, connected: true, ackedVersion: acked, sentVersion: acked, lastNackVersion: '', lastNackReason: '', lastSeenMs: '1', auth: 'certificate', ...extra,
});
const base: StatusResponse = { currentVersion: 'v1', source: '/p', currentSinceMs: '1000', registeredWorkloads: 0, lastRejection: null, lastReloadMs: '1000', lastReloadAccepted: true, agents: [agent('node-2', 'v1'), agent('node-1', 'v1')] };
const DIAG = ['/p/a.yaml:7:26: spec.ports[0].port: must be <= 65535', '/p/a.yaml:5:3: missing required field "spec.selector"'];

test('reload status: accepted, rejected (each diagnostic), accepted again after the fix', () => {
  const ok = reloadStatus(base);
  assert.deepEqual(ok.lastReload, { accepted: true, atMs: 1000 });
  assert.deepEqual(ok.nodes.map((n) => [n.node, n.serving]), [['node-1', 'v1'], ['node-2', 'v1']], 'nodes sorted, each with its acked version');
  assert.deepEqual(reloadLines(ok, 6000), ['policy reload   accepted 5s ago, serving v1', 'node snapshots  node-1 v1, node-2 v1']);

  const rejected = reloadStatus({ ...base, lastRejection: { revision: 'abc123', diagnostics: DIAG, atMs: '5000' }, lastReloadMs: '5000', lastReloadAccepted: false });
  assert.deepEqual(rejected.lastReload, { accepted: false, atMs: 5000, revision: 'abc123', diagnostics: DIAG });
  assert.deepEqual(reloadLines(rejected, 7000), [
    'policy reload   REJECTED 2s ago (revision abc123): 2 problem(s); still serving v1',
    `  ${DIAG[0]}`, `  ${DIAG[1]}`,
    'node snapshots  node-1 v1, node-2 v1',
  ]);
  // The fix restores the same content (same version, so no new snapshot): still accepted.
  const fixed = reloadStatus({ ...base, lastRejection: { revision: '', diagnostics: DIAG, atMs: '5000' }, lastReloadMs: '9000', lastReloadAccepted: true });
  assert.equal(fixed.lastReload?.accepted, true);
  // A control API without the reload fields (older): the rejection alone tells.
  const old = reloadStatus({ ...base, lastReloadMs: '0', lastReloadAccepted: false, lastRejection: { revision: '', diagnostics: DIAG, atMs: '5000' } });
  assert.equal(old.lastReload?.accepted, false);
  assert.equal(reloadStatus({ ...base, lastReloadMs: '0', lastReloadAccepted: false }).lastReload, null);
});

test('reload status: a node that NACKed the current version, and one disconnected', () => {
  const r = reloadStatus({ ...base, currentVersion: 'v2', agents: [agent('node-1', 'v1', { sentVersion: 'v2', lastNackVersion: 'v2', lastNackReason: 'cannot program the maps' }), agent('node-2', 'v2', { connected: false })] });
  assert.deepEqual(r.nodes[0]!.rejected, { version: 'v2', reason: 'cannot program the maps' });
  assert.equal(r.nodes[1]!.rejected, undefined);
  assert.equal(reloadLines(r).at(-1), 'node snapshots  node-1 v1 (NACKed v2: cannot program the maps), node-2 v2 (disconnected)');
});

test('demo view: a rejected reload is an event with each file:line:col, in the summary line and on the screen', () => {
  const frame = (reload: Frame['reload']): Frame => ({ t: 3, services: [], mtls: [], denials: [], bpf: {}, agents: [{ node: 'node-1', snapshot: 'v1' }], client: null, reload });
  const ok = frame(reloadStatus(base));
  const bad = frame(reloadStatus({ ...base, lastRejection: { revision: '', diagnostics: DIAG, atMs: '5000' }, lastReloadMs: '5000', lastReloadAccepted: false }));
  assert.deepEqual(eventLines(null, ok), [], 'a first accepted reload is no event');
  assert.deepEqual(eventLines(ok, bad), ['policy change REJECTED, still serving v1:', `  ${DIAG[0]}`, `  ${DIAG[1]}`]);
  assert.deepEqual(eventLines(null, bad).slice(0, 1), ['policy change REJECTED, still serving v1:'], 'the view started after the rejection still says so');
  assert.deepEqual(eventLines(bad, bad), [], 'once');
  const fixed = frame(reloadStatus({ ...base, lastReloadMs: '9000' }));
  assert.deepEqual(eventLines(bad, fixed), ['policy change accepted: control serves v1']);
  assert.match(plainLine(bad), / \| policy REJECTED\(2\)$/);
  assert.match(plainLine(ok), / \| policy accepted$/);
  const s = screen(bad, []);
  assert.ok(s.includes('POLICY (control API)') && s.includes(`  ${DIAG[0]}`), s);
  assert.ok(!plainLine(frame(null)).includes('policy'), 'no control API answer: nothing claimed');
});
