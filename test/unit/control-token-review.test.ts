// Agents on Kubernetes bootstrap with their Pod-bound ServiceAccount token: the control
// API reviews it (TokenReview) and checks the Pod runs on the node the agent claims.
// First against a scripted ReviewApi (every refusal has its own status), then end to end
// against the fake API server's TokenRequest/TokenReview over HTTPS with client-node.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Metadata, status } from '@grpc/grpc-js';
import { TokenAuthenticator } from '../../agent/control/auth';
import { ServiceAccountTokenReviewer, kubernetesReviewApi, looksLikeJwt, parseServiceAccount, type ReviewApi } from '../../agent/control/token-review';
import { FakeApiServer, apiClient } from '../lib/fake-apiserver';

const SA = { namespace: 'weft-system', name: 'weft-agent' };
const JWT = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl';

function md(token: string, node: string): Metadata {
  const m = new Metadata();
  m.set('authorization', `Bearer ${token}`);
  m.set('x-weft-node', node);
  return m;
}

async function code(p: Promise<unknown>): Promise<string> {
  try { await p; } catch (e) { return status[(e as { code: number }).code] as string; }
  return 'OK';
}

test('service account review: account, Pod binding, node, and API failures each refuse with their own status', async () => {
  let review: Awaited<ReturnType<ReviewApi['tokenReview']>> = { authenticated: true };
  let pod: Awaited<ReturnType<ReviewApi['pod']>>;
  let down = false;
  let calls = 0;
  const api: ReviewApi = {
    tokenReview: async () => { calls++; if (down) throw new Error('connect ECONNREFUSED'); return review; },
    pod: async () => pod,
  };
  const good = {
    authenticated: true, username: 'system:serviceaccount:weft-system:weft-agent', audiences: ['weft-control'],
    extra: { 'authentication.kubernetes.io/pod-name': ['weft-agent-x1'], 'authentication.kubernetes.io/pod-uid': ['uid-1'], 'authentication.kubernetes.io/node-name': ['node-a'] },
  };
  const auth = new TokenAuthenticator(undefined, 'none', { reviewer: new ServiceAccountTokenReviewer({ api, serviceAccount: SA, audience: 'weft-control', cacheMs: 0 }) });
  review = good; pod = { uid: 'uid-1', nodeName: 'node-a' };
  assert.deepEqual(await auth.authenticate(md(JWT, 'node-a')), { node: 'node-a', via: 'service-account' });
  assert.equal(await code(auth.authenticate(md(JWT, 'node-b'))), 'PERMISSION_DENIED', 'a token issued on node A cannot bootstrap node B');
  // Without the node claim in the token (older clusters), the Pod's nodeName decides.
  review = { ...good, extra: { 'authentication.kubernetes.io/pod-name': ['weft-agent-x1'], 'authentication.kubernetes.io/pod-uid': ['uid-1'] } };
  assert.equal(await code(auth.authenticate(md(JWT, 'node-a'))), 'OK');
  assert.equal(await code(auth.authenticate(md(JWT, 'node-b'))), 'PERMISSION_DENIED');
  pod = undefined;
  assert.equal(await code(auth.authenticate(md(JWT, 'node-a'))), 'UNAUTHENTICATED', 'the Pod is gone');
  pod = { uid: 'uid-2', nodeName: 'node-a' };
  assert.equal(await code(auth.authenticate(md(JWT, 'node-a'))), 'UNAUTHENTICATED', 'a new Pod of the same name');
  pod = { uid: 'uid-1', nodeName: 'node-a' };
  review = { ...good, username: 'system:serviceaccount:shop:default' };
  assert.equal(await code(auth.authenticate(md(JWT, 'node-a'))), 'PERMISSION_DENIED', 'another account (any pod\'s token)');
  review = { ...good, extra: {} };
  assert.equal(await code(auth.authenticate(md(JWT, 'node-a'))), 'PERMISSION_DENIED', 'a token not bound to a Pod');
  review = { ...good, audiences: ['https://kubernetes.default.svc'] };
  assert.equal(await code(auth.authenticate(md(JWT, 'node-a'))), 'UNAUTHENTICATED', 'another audience');
  review = { authenticated: false, error: 'token has expired' };
  assert.equal(await code(auth.authenticate(md(JWT, 'node-a'))), 'UNAUTHENTICATED');
  down = true;
  assert.equal(await code(auth.authenticate(md(JWT, 'node-a'))), 'UNAVAILABLE', 'the API cannot say: retry, do not refuse');
  // Bootstrap tokens are still refused when there is no token file.
  assert.equal(await code(auth.authenticate(md('plain-bootstrap-token-0000000000', 'node-a'))), 'UNAUTHENTICATED');

  // A successful review is reused for cacheMs (a reconnect storm is not an API storm).
  down = false; review = good;
  const cached = new TokenAuthenticator(undefined, 'none', { reviewer: new ServiceAccountTokenReviewer({ api, serviceAccount: SA, audience: 'weft-control', cacheMs: 60_000 }) });
  calls = 0;
  for (let i = 0; i < 5; i++) await cached.authenticate(md(JWT, 'node-a'));
  assert.equal(calls, 1);
  assert.equal(await code(cached.authenticate(md(JWT, 'node-b'))), 'PERMISSION_DENIED', 'the cache is per node');

  assert.ok(looksLikeJwt(JWT));
  assert.equal(looksLikeJwt('0123456789abcdef0123456789abcdef'), false);
  assert.deepEqual(parseServiceAccount('weft-system/weft-agent'), SA);
  assert.equal(parseServiceAccount('weft-agent'), undefined);
});

test('service account review against the fake API server: TokenRequest bound to a Pod, TokenReview over HTTPS', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wt-tokreview-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const server = await FakeApiServer.start({ listen: '127.0.0.1:0', dir, socketPath: join(dir, 'api.sock'), namespaces: ['default', 'weft-system', 'shop'] });
  t.after(() => server.close());
  const api = apiClient(join(dir, 'api.sock'));
  const podOn = async (name: string, node: string, account: string, namespace = 'weft-system') => {
    const p = await api.create('pods', { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace }, spec: { nodeName: node, serviceAccountName: account, containers: [{ name: 'agent', image: 'weft:dev' }] } });
    return { name, uid: String(p.metadata?.uid) };
  };
  const a1 = await podOn('weft-agent-a1', 'node-a', 'weft-agent');
  const token = await api.requestToken('weft-system', 'weft-agent', { audiences: ['weft-control'], pod: a1 });
  assert.ok(looksLikeJwt(token));
  const reviewer = new ServiceAccountTokenReviewer({ api: await kubernetesReviewApi(server.kubeconfigPath), serviceAccount: SA, audience: 'weft-control', cacheMs: 0 });
  const auth = new TokenAuthenticator(undefined, 'none', { reviewer });
  assert.deepEqual(await auth.authenticate(md(token, 'node-a')), { node: 'node-a', via: 'service-account' });
  assert.equal(await code(auth.authenticate(md(token, 'node-b'))), 'PERMISSION_DENIED');
  // A token for the API server's audience (what every pod has mounted) is not one for us.
  const apiAudience = await api.requestToken('weft-system', 'weft-agent', { audiences: ['https://kubernetes.default.svc.cluster.local'], pod: a1 });
  assert.equal(await code(auth.authenticate(md(apiAudience, 'node-a'))), 'UNAUTHENTICATED');
  // A workload's own account, even bound to a Pod on the right node.
  const app = await podOn('app-1', 'node-a', 'default', 'shop');
  const appToken = await api.requestToken('shop', 'default', { audiences: ['weft-control'], pod: app });
  assert.equal(await code(auth.authenticate(md(appToken, 'node-a'))), 'PERMISSION_DENIED');
  // Forged: another key's signature.
  const [h, p] = token.split('.');
  assert.equal(await code(auth.authenticate(md(`${h}.${p}.${Buffer.from('forged-signature-forged-signature').toString('base64url')}`, 'node-a'))), 'UNAUTHENTICATED');
  // The agent Pod is deleted: its token dies with it.
  await api.delete('pods', 'weft-system', 'weft-agent-a1');
  assert.equal(await code(auth.authenticate(md(token, 'node-a'))), 'UNAUTHENTICATED');
  // TokenRequest refuses a Pod of another account, as the real API does.
  const b1 = await podOn('weft-agent-b1', 'node-b', 'weft-agent');
  await assert.rejects(api.requestToken('weft-system', 'other', { audiences: ['weft-control'], pod: b1 }), /service account/);
});
