// Kubernetes names end to end: node names and service account names are DNS-1123
// subdomains (dots, up to 253 characters), as every EKS node `ip-10-0-1-2.ec2.internal`.
// Each place that takes one is checked here with such names, a 253-character one, and
// names that must be refused with a clear error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Metadata, status } from '@grpc/grpc-js';
import { dnsSubdomainError, isDnsSubdomain } from '../../agent/lib/names';
import { validateNodeName } from '../../agent/datapath/layout';
import { formatSpiffeId, nodeSpiffeId, parseSpiffeId } from '../../agent/identity/spiffe';
import { nodeSpiffeId as controlNodeSpiffeId } from '../../agent/control/certificates';
import { TokenAuthenticator, isValidNodeName } from '../../agent/control/auth';
import { validateRegistration } from '../../agent/control/registrations';
import { principalError } from '../../agent/policy/identity';
import { compile, forNode, formatDiagnostic, loadPolicyTexts } from '../../agent/policy';

const EKS = 'ip-10-0-1-2.ec2.internal';
/** 253 characters: the longest node name Kubernetes allows. */
const LONGEST = `${'a'.repeat(62)}.${'b'.repeat(62)}.${'c'.repeat(62)}.${'d'.repeat(64)}`;
const TOO_LONG = `${LONGEST}e`;
const INVALID = ['', 'Node-1', 'a..b', '-a', 'a-', 'a.-b', 'a_b', 'a/b', '.a', 'a.', 'a b'];

test('names: DNS-1123 subdomains as the API server checks them', () => {
  assert.equal(LONGEST.length, 253);
  for (const ok of ['node-1', EKS, LONGEST, 'a', '1', 'x'.repeat(200)]) assert.ok(isDnsSubdomain(ok), ok);
  for (const bad of [...INVALID, TOO_LONG]) assert.equal(isDnsSubdomain(bad), false, bad);
  assert.match(dnsSubdomainError(TOO_LONG)!, /254 characters long, at most 253/);
  assert.match(dnsSubdomainError('a..b')!, /DNS-1123 subdomain/);
  assert.equal(dnsSubdomainError(EKS), null);
});

test('names: validateNodeName (pins and cgroup directories) takes every Kubernetes node name', () => {
  for (const ok of ['node-1', EKS, LONGEST]) assert.doesNotThrow(() => validateNodeName(ok), ok);
  assert.throws(() => validateNodeName(TOO_LONG), { code: 'WEFT_ERR_INVALID_ARG', message: /invalid node name "a{62}\.b{17}"….*254 characters long, at most 253/ });
  for (const bad of INVALID) assert.throws(() => validateNodeName(bad), { code: 'WEFT_ERR_INVALID_ARG', message: /invalid node name/ }, JSON.stringify(bad));
  // One path component each: no '/' can get through, and 253 < 255 (NAME_MAX).
  assert.throws(() => validateNodeName('../x'), { code: 'WEFT_ERR_INVALID_ARG' });
});

test('names: SPIFFE IDs of dotted node names and service accounts round-trip', () => {
  for (const node of [EKS, LONGEST]) {
    const id = nodeSpiffeId('cluster.local', node);
    assert.equal(id, `spiffe://cluster.local/ns/weft-system/sa/node-${node}`);
    assert.equal(controlNodeSpiffeId('cluster.local', node), id, 'the control API names node identities the same way');
    assert.deepEqual(parseSpiffeId(id), { trustDomain: 'cluster.local', namespace: 'weft-system', serviceAccount: `node-${node}` });
  }
  const sa = formatSpiffeId({ trustDomain: 'cluster.local', namespace: 'ci', serviceAccount: 'build.bot' });
  assert.deepEqual(parseSpiffeId(sa), { trustDomain: 'cluster.local', namespace: 'ci', serviceAccount: 'build.bot' });
  assert.equal(principalError('spiffe://cluster.local/ns/ci/sa/build.bot'), null, 'AuthorizationPolicy principals take dotted service accounts');
  assert.equal(principalError('cluster.local/ns/ci/sa/build.bot'), null);
  assert.match(principalError('spiffe://cluster.local/ns/ci/sa/build..bot')!, /not an identity/);
});

test('names: control API authentication by token takes dotted and 253-character node names, refuses invalid ones', async () => {
  const SHARED = 'cluster-bootstrap-token-000000000';
  const BOUND = 'eks-node-token-11111111111111111';
  const auth = new TokenAuthenticator(`${SHARED}\n${EKS} ${BOUND}\n`);
  const md = (token: string, node: string) => { const m = new Metadata(); m.set('authorization', `Bearer ${token}`); m.set('x-weft-node', node); return m; };
  assert.deepEqual(await auth.authenticate(md(BOUND, EKS)), { node: EKS, via: 'token' }, 'a node-bound token for an EKS node');
  assert.deepEqual(await auth.authenticate(md(SHARED, LONGEST)), { node: LONGEST, via: 'token' });
  const code = async (fn: () => Promise<unknown>) => { try { await fn(); return 'OK'; } catch (e) { return status[(e as { code: number }).code]; } };
  assert.equal(await code(() => auth.authenticate(md(BOUND, 'ip-10-0-1-3.ec2.internal'))), 'PERMISSION_DENIED');
  assert.equal(await code(() => auth.authenticate(md(SHARED, TOO_LONG))), 'INVALID_ARGUMENT');
  assert.equal(await code(() => auth.authenticate(md(SHARED, 'a..b'))), 'INVALID_ARGUMENT');
  assert.throws(() => new TokenAuthenticator(`a..b ${BOUND}\n`), { code: 'WEFT_ERR_INVALID_ARG', message: /:1:/ });
  assert.ok(isValidNodeName(LONGEST));
  assert.equal(isValidNodeName(TOO_LONG), false);
});

test('names: registrations take dotted service accounts and refuse malformed ones', () => {
  const base = { name: 'w', namespace: 'ci', labels: {}, address: '10.250.0.9', node: EKS, cgroupId: '', weight: 0 };
  assert.equal(validateRegistration({ ...base, serviceAccount: 'build.bot' }).serviceAccount, 'build.bot');
  assert.throws(() => validateRegistration({ ...base, serviceAccount: 'Build.Bot' }), (e: { code: number; details: string }) => e.code === status.INVALID_ARGUMENT && /service_account: 'Build.Bot' is not a DNS subdomain/.test(e.details));
});

test('names: Workload spec.node and serviceAccount in policy files (weft validate) and the compiled identity', () => {
  const doc = (node: string, sa: string) => `apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: w-${sa.length}-${node.length}, namespace: ci, labels: {app: ci}}
spec: {address: 10.250.0.${node.length % 250}, node: ${node}, serviceAccount: ${sa}}
`;
  const good = loadPolicyTexts([{ file: 'w.yaml', text: [doc(EKS, 'build.bot'), doc(LONGEST, 'default')].join('---\n') }]);
  assert.deepEqual(good.diagnostics.map(formatDiagnostic), []);
  const snap = compile(good);
  assert.deepEqual(snap.workloads.map((w) => [w.node, w.identity]).sort(), [
    [LONGEST, 'spiffe://weft.local/ns/ci/sa/default'],
    [EKS, 'spiffe://weft.local/ns/ci/sa/build.bot'],
  ]);
  assert.equal(forNode(snap, LONGEST).localWorkloads.length, 1);
  const bad = loadPolicyTexts([{ file: 'bad.yaml', text: [doc(TOO_LONG, 'default'), doc('a..b', 'Build')].join('---\n') }]);
  assert.deepEqual(bad.diagnostics.map(formatDiagnostic), [
    'bad.yaml:4:35: spec.node: must NOT have more than 253 characters',
    'bad.yaml:9:35: spec.node: "a..b" is not a valid DNS subdomain (lowercase letters, digits, "-" and ".", at most 253)',
    'bad.yaml:9:57: spec.serviceAccount: "Build" is not a valid DNS subdomain (lowercase letters, digits, "-" and ".", at most 253)',
  ]);
});
