// A rejected policy change is visible where the operator looks (issue 18 item 2): the
// control API's admin port (GET /v1/reload), and `weft status` on a node (through the
// agent, from the control API's Status RPC), each `file:line:col: message` of the broken
// edit, the snapshot still served, and which snapshot every node serves. Fixing the file
// turns it back to accepted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { requires } from '../lib/privileges';
import { startOneNodeMesh } from '../lib/mesh';
import { policyFile } from '../lib/policies';
import type { ReloadStatus } from '../../agent/control/reload-status';

const policies = (node: string) => policyFile(node, [
  { name: 'web', vip: '10.96.0.32', port: 80, targetPort: 8080, protocol: 'TCP', workloads: { 'web-1': '10.250.0.32' } },
]);

const BROKEN = [
  'apiVersion: weft.dev/v1alpha1',
  'kind: Service',
  'metadata: {name: broken, namespace: default}',
  'spec:',
  '  selector: {app: broken}',
  '  ports:',
  '    - {name: http, port: 99999, protocol: HTTP}',
].join('\n') + '\n';

test('a broken policy edit shows in weft status and on the control API\'s admin port, with file:line:col', { timeout: 120_000 }, async (t) => {
  if (!requires(t, { bpffs: true, netns: true, cgroup2: true, commands: ['curl'] })) return;
  const mesh = await startOneNodeMesh('opsreload', policies);
  t.after(() => mesh.close());
  const reload = async (): Promise<ReloadStatus> => {
    const r = await mesh.ns.exec(['curl', '-sf', 'http://127.0.0.1:15011/v1/reload']);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as ReloadStatus;
  };
  const until = async (what: string, ok: (r: ReloadStatus) => boolean): Promise<ReloadStatus> => {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const r = await reload();
      if (ok(r)) return r;
      assert.ok(Date.now() < deadline, `${what}: ${JSON.stringify(r)}`);
      await new Promise((res) => setTimeout(res, 200));
    }
  };

  const good = await until('first snapshot acked by the node', (r) => r.current !== '' && r.nodes.some((n) => n.node === mesh.node && n.serving === r.current));
  assert.equal(good.lastReload?.accepted, true);
  const ok = mesh.weft('status');
  assert.match(ok, new RegExp(`^policy reload   accepted \\d+s ago, serving ${good.current}$`, 'm'));
  assert.match(ok, new RegExp(`^node snapshots  ${mesh.node} ${good.current}$`, 'm'));

  const file = join(mesh.policiesDir, 'broken.yaml');
  writeFileSync(file, BROKEN);
  const bad = await until('the broken edit rejected', (r) => r.lastReload?.accepted === false);
  assert.equal(bad.current, good.current, 'the last good snapshot keeps serving');
  assert.deepEqual(bad.lastReload?.diagnostics, [`${file}:7:26: spec.ports[0].port: must be <= 65535`]);

  const status = mesh.weft('status');
  assert.match(status, new RegExp(`^policy reload   REJECTED \\d+s ago: 1 problem\\(s\\); still serving ${good.current}$`, 'm'));
  assert.ok(status.split('\n').includes(`  ${file}:7:26: spec.ports[0].port: must be <= 65535`), status);
  assert.match(status, new RegExp(`^node snapshots  ${mesh.node} ${good.current}$`, 'm'));
  const json = JSON.parse(mesh.weft('status', '--json')) as { mesh: ReloadStatus };
  assert.deepEqual(json.mesh.lastReload?.diagnostics, bad.lastReload?.diagnostics);

  // Fixed: accepted again (the set is what it was, so the version too).
  rmSync(file);
  const fixed = await until('the fix accepted', (r) => r.lastReload?.accepted === true);
  assert.equal(fixed.current, good.current);
  assert.match(mesh.weft('status'), /^policy reload   accepted \d+s ago/m);
});
