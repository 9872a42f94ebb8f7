// A node obtains the identities of the workloads the control API knows are on it. For
// runtime registrations (`weft run`) that is what MeshConfig spec.registrations grants
// the node: without an entry a node registers nothing, and so can get no certificate for
// a namespace or service account of its choosing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CertificateAuthority } from '../../agent/identity/ca';
import { createCsr, generateSigningKey } from '../../agent/identity/pki';
import { SyncClient } from '../../agent/sync/client';
import { policyCompiler } from '../../agent/control/policy-adapter';
import type { PolicyCompiler } from '../../agent/control/policy-compiler';
import { allowedIdentities } from '../../agent/control/certificates';
import { compile, loadPolicyTexts } from '../../agent/policy';
import { startControl, silent, tokenFor } from '../lib/control-server';

const MESH = `apiVersion: weft.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  trustDomain: test.local
  registrations:
    - {node: node-1, namespaces: [shop], serviceAccounts: [web]}
    - {node: node-3, namespaces: [ops]}
`;

test('registrations outside MeshConfig spec.registrations are refused, and their identities are not signed', async (t) => {
  const caDir = mkdtempSync(join(tmpdir(), 'wt-grants-ca-'));
  t.after(() => rmSync(caDir, { recursive: true, force: true }));
  const h = await startControl(t, {
    files: { 'mesh.yaml': MESH }, compiler: policyCompiler() as PolicyCompiler,
    createSigner: async (trustDomain) => CertificateAuthority.loadOrCreate(caDir, { trustDomain }),
  });
  assert.ok(h.server.store.snapshot(), 'the policy set compiles');
  const client = (node: string) => {
    const stateDir = mkdtempSync(join(tmpdir(), 'wt-grants-'));
    const c = new SyncClient({ address: h.address, node, token: tokenFor(node), stateDir, logger: silent, apply: async () => undefined, backoff: { baseMs: 10, maxMs: 50 }, unaryTimeoutMs: 5000 });
    t.after(async () => { await c.stop(); rmSync(stateDir, { recursive: true, force: true }); });
    return c;
  };
  const [n1, n2, n3] = [client('node-1'), client('node-2'), client('node-3')];
  const key = await generateSigningKey();
  const csr = (ns: string, sa: string) => createCsr(key, `spiffe://test.local/ns/${ns}/sa/${sa}`);
  const refused = { code: 'WEFT_ERR_PERMISSION', message: /MeshConfig spec\.registrations/ };

  // Granted: registered, and the identity is signed.
  await n1.registerWorkload({ name: 'web-0', namespace: 'shop', serviceAccount: 'web', address: '10.250.0.5' });
  assert.equal((await n1.signCertificate(await csr('shop', 'web'), 600)).certChainPem.length, 1);
  await n3.registerWorkload({ name: 'job-0', namespace: 'ops', serviceAccount: 'anything', address: '10.250.0.7' });

  // Another service account of a granted namespace, another namespace, a node without an entry.
  await assert.rejects(n1.registerWorkload({ name: 'db-0', namespace: 'shop', serviceAccount: 'db', address: '10.250.0.6' }), refused);
  await assert.rejects(n1.registerWorkload({ name: 'web-0', namespace: 'payments', serviceAccount: 'web', address: '10.250.0.6' }), refused);
  await assert.rejects(n2.registerWorkload({ name: 'web-1', namespace: 'shop', serviceAccount: 'web', address: '10.250.0.8' }), refused);
  assert.deepEqual(h.server.registrations.list().map((w) => `${w.node}:${w.namespace}/${w.name}`), ['node-3:ops/job-0', 'node-1:shop/web-0']);

  // No certificate for a service account of a workload that is not on the node.
  await assert.rejects(n1.signCertificate(await csr('shop', 'db'), 600), { code: 'WEFT_ERR_PERMISSION' });
  await assert.rejects(n1.signCertificate(await csr('payments', 'web'), 600), { code: 'WEFT_ERR_PERMISSION' });
  await assert.rejects(n2.signCertificate(await csr('shop', 'web'), 600), { code: 'WEFT_ERR_PERMISSION' }, 'web-0 is on node-1, not node-2');
  await assert.rejects(n2.signCertificate(await csr('ops', 'anything'), 600), { code: 'WEFT_ERR_PERMISSION' });
});

test('the compiler drops registrations MeshConfig does not grant (a persisted one after the grant is withdrawn)', () => {
  const reg = [
    { name: 'web-0', namespace: 'shop', serviceAccount: 'web', labels: {}, address: '10.250.0.5', node: 'node-1' },
    { name: 'db-0', namespace: 'shop', serviceAccount: 'db', labels: {}, address: '10.250.0.6', node: 'node-1' },
    { name: 'x-0', namespace: 'shop', serviceAccount: 'web', labels: {}, address: '10.250.0.9', node: 'node-2' },
  ];
  const granted = compile(loadPolicyTexts([{ file: 'mesh.yaml', text: MESH }]), reg);
  assert.deepEqual(granted.workloads.map((w) => w.key), ['shop/web-0']);
  assert.deepEqual([...allowedIdentities(granted, 'node-1')].sort(), ['spiffe://test.local/ns/shop/sa/web', 'spiffe://test.local/ns/weft-system/sa/node-node-1']);
  assert.deepEqual([...allowedIdentities(granted, 'node-2')], ['spiffe://test.local/ns/weft-system/sa/node-node-2']);
  const none = compile(loadPolicyTexts([{ file: 'mesh.yaml', text: 'apiVersion: weft.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec: {trustDomain: test.local}\n' }]), reg);
  assert.deepEqual(none.workloads, [], 'no entry, no registrations');
  const noMesh = compile(loadPolicyTexts([]), reg);
  assert.deepEqual(noMesh.workloads, [], 'no MeshConfig, no registrations');
});
