// Which workload endpoints a direct connect (to the workload's own address) is sent to
// the agent for: those whose service connections from this node go through the agent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compile, forNode, formatDiagnostic, loadPolicyTexts } from '../../agent/policy';
import { directEndpoints } from '../../agent/node/direct-endpoints';

const MESH = 'apiVersion: weft.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec: {trustDomain: cluster.local}\n';
const doc = (kind: string, name: string, spec: string, labels = '') =>
  `apiVersion: weft.dev/v1alpha1\nkind: ${kind}\nmetadata: {name: ${name}, namespace: shop${labels}}\nspec: ${spec}\n`;
const workload = (name: string, node: string, address: string, app: string, more = '') =>
  doc('Workload', name, `{address: ${address}, node: ${node}${more}}`, `, labels: {app: ${app}}`);

test('direct endpoints: backends of the TCP ports this node redirects, and guarded local workloads without a Service (every port)', () => {
  const set = loadPolicyTexts([{ file: 'p.yaml', text: [
    MESH,
    // Backends on two nodes: from n1 the port needs an mTLS hop, so it is redirected.
    doc('Service', 'spread', '{vip: 10.96.0.1, selector: {app: spread}, ports: [{name: http, port: 80, targetPort: 8080}, {name: dns, port: 53, protocol: UDP}]}'),
    workload('spread-1', 'n1', '10.1.0.1', 'spread'),
    workload('spread-2', 'n2', '10.1.0.2', 'spread'),
    // Only on n1 and nothing guards it: balanced in the kernel, a direct connect is as good.
    doc('Service', 'plain', '{vip: 10.96.0.2, selector: {app: plain}, ports: [{name: tcp, port: 81}]}'),
    workload('plain-1', 'n1', '10.1.0.3', 'plain'),
    // Only on n1 but guarded by a policy: redirected.
    doc('Service', 'guarded', '{vip: 10.96.0.3, selector: {app: guarded}, ports: [{name: tcp, port: 82, targetPort: 9082}]}'),
    workload('guarded-1', 'n1', '10.1.0.4', 'guarded'),
    doc('AuthorizationPolicy', 'guarded', '{selector: {matchLabels: {app: guarded}}, action: DENY, rules: [{from: [{source: {namespaces: [evil]}}]}]}'),
    // No Service: guarded → every port; unguarded → not listed.
    workload('job-1', 'n1', '10.1.0.9', 'job'),
    doc('AuthorizationPolicy', 'job', '{selector: {matchLabels: {app: job}}, action: ALLOW, rules: [{from: [{source: {namespaces: [shop]}}]}]}'),
    workload('idle-1', 'n1', '10.1.0.10', 'idle'),
  ].join('---\n') }]);
  assert.deepEqual(set.diagnostics.map(formatDiagnostic), []);
  const v = forNode(compile(set, []), 'n1');
  assert.deepEqual(directEndpoints(v), [
    { ip: '10.1.0.1', port: 8080 }, { ip: '10.1.0.2', port: 8080 }, { ip: '10.1.0.4', port: 9082 }, { ip: '10.1.0.9', port: 0 },
  ]);
});
