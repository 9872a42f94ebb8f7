// #15 item 2: a node may obtain only its own node identity. With one shared bootstrap
// token (the old documented install) node A could bootstrap as node B and be issued
// B's node certificate. Now a bare token binds to the first node that presents it (and
// stays bound across control API restarts), per-node tokens are the documented default,
// and on Kubernetes the agent's Pod-bound ServiceAccount token only bootstraps the node
// its Pod runs on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { TokenAuthenticator } from '../../agent/control/auth';
import { FileTokenBindings } from '../../agent/control/token-bindings';
import { ServiceAccountTokenReviewer, kubernetesReviewApi } from '../../agent/control/token-review';
import { controlProto } from '../../agent/control/proto';
import { CertificateAuthority } from '../../agent/identity/ca';
import { createCsr, generateSigningKey } from '../../agent/identity/pki';
import { nodeSpiffeId } from '../../agent/identity/spiffe';
import { FakeApiServer, apiClient } from '../lib/fake-apiserver';
import { startControl } from '../lib/control-server';

const SHARED = 'old-style-shared-bootstrap-token-0123456789';

function client(address: string) {
  return new (controlProto().weft.control.v1.Control)(address, grpc.credentials.createInsecure());
}

function md(token: string, node: string): grpc.Metadata {
  const m = new grpc.Metadata();
  m.set('authorization', `Bearer ${token}`);
  m.set('x-weft-node', node);
  return m;
}

/** The gRPC status of a SignCertificate call for `node`'s own node identity. */
async function signNode(address: string, token: string, node: string, trustDomain: string): Promise<string> {
  const key = await generateSigningKey();
  const csr = await createCsr(key, nodeSpiffeId(trustDomain, node));
  const c = client(address);
  try {
    return await new Promise((resolve) => c.SignCertificate({ csrPem: csr }, md(token, node), (e: grpc.ServiceError | null) => resolve(e ? grpc.status[e.code] as string : 'OK')));
  } finally { c.close(); }
}

test('a shared bootstrap token issues one node identity only: the first node to present it (and after a restart too)', async (t) => {
  const stateDir = mkdtempSync(join(tmpdir(), 'wt-sec-boot-'));
  t.after(() => rmSync(stateDir, { recursive: true, force: true }));
  let ca: CertificateAuthority | undefined;
  const createSigner = async (trustDomain: string) => (ca = await CertificateAuthority.loadOrCreate(join(stateDir, 'ca'), { trustDomain }));
  const tokens = join(stateDir, 'tokens');
  writeFileSync(tokens, `${SHARED}\n`);
  const start = (sub: string) => startControl(t, { stateDir: join(stateDir, sub), createSigner, auth: TokenAuthenticator.fromFile(tokens, { bindings: new FileTokenBindings(join(stateDir, 'token-bindings.json')) }) });
  const h = await start('one');
  const td = ca!.trustDomain;
  assert.equal(await signNode(h.address, SHARED, 'node-a', td), 'OK', 'node A bootstraps');
  assert.equal(await signNode(h.address, SHARED, 'node-b', td), 'PERMISSION_DENIED', 'node A\'s token does not make node B');
  assert.equal(await signNode(h.address, SHARED, 'node-a', td), 'OK', 'node A again (restart, renewal)');
  await h.server.stop();
  const again = await start('two');
  assert.equal(await signNode(again.address, SHARED, 'node-b', td), 'PERMISSION_DENIED', 'the binding outlives the control API process');
});

test('on Kubernetes the agent\'s ServiceAccount token bootstraps only the node its Pod runs on', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wt-sec-sa-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const api = await FakeApiServer.start({ listen: '127.0.0.1:0', dir, socketPath: join(dir, 'api.sock'), namespaces: ['default', 'weft-system'] });
  t.after(() => api.close());
  const k = apiClient(join(dir, 'api.sock'));
  const pod = await k.create('pods', { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'weft-agent-a1', namespace: 'weft-system' }, spec: { nodeName: 'node-a', serviceAccountName: 'weft-agent', containers: [{ name: 'agent', image: 'weft:dev' }] } });
  const token = await k.requestToken('weft-system', 'weft-agent', { audiences: ['weft-control'], pod: { name: 'weft-agent-a1', uid: String(pod.metadata?.uid) } });
  let ca: CertificateAuthority | undefined;
  const reviewer = new ServiceAccountTokenReviewer({ api: await kubernetesReviewApi(api.kubeconfigPath), serviceAccount: { namespace: 'weft-system', name: 'weft-agent' }, audience: 'weft-control' });
  const h = await startControl(t, {
    auth: new TokenAuthenticator(undefined, 'none', { reviewer }),
    createSigner: async (trustDomain) => (ca = await CertificateAuthority.loadOrCreate(join(dir, 'ca'), { trustDomain })),
  });
  assert.equal(await signNode(h.address, token, 'node-a', ca!.trustDomain), 'OK');
  assert.equal(await signNode(h.address, token, 'node-b', ca!.trustDomain), 'PERMISSION_DENIED', 'a token read on node A cannot bootstrap node B');
});
