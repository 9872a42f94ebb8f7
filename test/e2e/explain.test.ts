// `weft explain` through the real CLIs (CLI → local agent's admin API → control API on the
// full snapshot): an allowed and a denied flow, each naming the deciding policy object.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { requires } from '../lib/privileges';
import { startOneNodeMesh } from '../lib/mesh';
import { policyFile, workloadYaml } from '../lib/policies';
import { weftArgv } from '../lib/weft';

const policies = (node: string) => policyFile(node, [
  { name: 'echo', vip: '10.96.0.10', port: 80, targetPort: 8080, protocol: 'HTTP', workloads: { 'echo-1': '10.250.0.11' } },
], [
  workloadYaml('client-a', '10.250.0.21', node, 'a'),
  workloadYaml('client-b', '10.250.0.22', node, 'b'),
  `apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: echo-from-a, namespace: default}
spec:
  targetRef: {kind: Service, name: echo}
  action: ALLOW
  rules:
    - from: [{source: {principals: ["spiffe://weft.local/ns/default/sa/a"]}}]
      to: [{operation: {methods: [GET]}}]`,
  `apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: no-admin, namespace: default}
spec:
  targetRef: {kind: Service, name: echo}
  action: DENY
  rules:
    - to: [{operation: {paths: [/admin/*]}}]`,
  `apiVersion: weft.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec: {trustDomain: weft.local}`,
]);

test('weft explain names the deciding policy for allowed and denied flows', { timeout: 120_000 }, async (t) => {
  if (!requires(t, { bpffs: true, netns: true, cgroup2: true })) return;
  const mesh = await startOneNodeMesh('ex', policies);
  t.after(() => mesh.close());
  const explain = async (...args: string[]) => {
    const r = await mesh.ns.exec(weftArgv('explain', ...args));
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  };
  const allowed = await explain('--from', 'default/client-a', '--to', '10.96.0.10:80', '--path', '/items');
  assert.match(allowed, /service default\/echo \(echo\.default\.svc\.cluster\.local, VIP 10\.96\.0\.10\) port http \(HTTP\)/, 'the service with its DNS name and VIP');
  assert.match(allowed, /redirect: userland/);
  assert.match(allowed, /verdict\s+allowed by default\/echo-from-a/);

  const notAllowed = await explain('--from', 'default/client-b', '--to', '10.96.0.10:80', '--path', '/items');
  assert.match(notAllowed, /verdict\s+denied: no ALLOW policy matches \(default\/echo-from-a\)/);

  const denied = await explain('--from', 'default/client-a', '--to', 'echo.default.svc.cluster.local:80', '--path', '/admin/users');
  assert.match(denied, /verdict\s+denied: denied by DENY policy default\/no-admin/);

  const bad = await mesh.ns.exec(weftArgv('explain', '--from', 'default/nope', '--to', '10.96.0.10:80'));
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /no workload default\/nope/);
});
