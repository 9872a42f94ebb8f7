// Security review item 8: the cross-node tunnel as the agent's ProxyPlane drives it.
// (1) the outbound side requires the SPIFFE ID of the node it dials (not any weft-system
// certificate: not the control API's, not another node's); (2) a CONNECT reaches a
// workload at the node's own address only on a port one of its Services names; (3) the
// destination's ipBlocks match the source workload's address carried in the tunnel
// (Forwarded: for=), not the peer node's.
//
// Everything runs in-process on loopback: each "node" is a random 127.x.y.z address with
// its tunnel on port 15008 (the port ProxyPlane dials). Node A, the caller, is 127.0.0.1:
// that is the address B sees the tunnel come from.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomInt } from 'node:crypto';
import { Registry } from 'prom-client';
import { CertificateAuthority } from '../../agent/identity/ca';
import { nodeSpiffeId } from '../../agent/identity/spiffe';
import { controlSpiffeId } from '../../agent/control/serving-cert';
import { startTunnel, PolicyAuthorizer, type Tunnel } from '../../agent/proxy/tunnel';
import { TunnelPool } from '../../agent/proxy/tunnel/pool';
import { ProxyPlane } from '../../agent/node/proxy-plane';
import { compile, forNode, formatDiagnostic, loadPolicyTexts, type NodeView } from '../../agent/policy';
import type { LocalWorkload } from '../../agent/node/workloads';
import { isWeftError } from '../../agent/lib/errors';
import '../unit/l7-harness'; // silent root logger
import { signedManager, taggedEcho } from '../lib/identities';

const TD = 'cluster.local';
const HBONE = 15008;
const NET = `127.${randomInt(30, 250)}.${randomInt(1, 250)}`;
const ADDR_A = '127.0.0.1';
const ADDR_B = `${NET}.2`;
const ADDR_C = `${NET}.3`;
/** The source workload's own address (a pod's), distinct from its node's. */
const WEB_ADDR = `${NET}.10`;
const WEB_ID = `spiffe://${TD}/ns/shop/sa/web`;
const API_PORT = 18080 + randomInt(0, 1000);
const VIP = '10.96.77.1';
const NODE_A = nodeSpiffeId(TD, 'a');
const NODE_B = nodeSpiffeId(TD, 'b');
const NODE_C = nodeSpiffeId(TD, 'c');

// Node b may register shop's workloads (MeshConfig spec.registrations grants them).
const MESH = `apiVersion: weft.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec: {trustDomain: ${TD}, registrations: [{node: b, namespaces: [shop]}]}\n`;
const doc = (kind: string, name: string, spec: string, labels = '') =>
  `apiVersion: weft.dev/v1alpha1\nkind: ${kind}\nmetadata: {name: ${name}, namespace: shop${labels}}\nspec: ${spec}\n`;
const nodeDoc = (name: string, address: string) => `apiVersion: weft.dev/v1alpha1\nkind: Node\nmetadata: {name: ${name}}\nspec: {address: ${address}}\n`;

/** Nodes a, b, c; Service api (TCP, VIP:API_PORT) backed by api-0 at node b's own
 *  address (`weft run` on a VM); job-0, at the same address, backs no Service; web-0 on
 *  node a, the caller. `extra`: more documents (policies). */
function views(extra: string[] = []): { a: NodeView; b: NodeView } {
  const set = loadPolicyTexts([{ file: 'p.yaml', text: [
    MESH, nodeDoc('a', ADDR_A), nodeDoc('b', ADDR_B), nodeDoc('c', ADDR_C),
    doc('Service', 'api', `{vip: ${VIP}, selector: {app: api}, ports: [{name: tcp, port: ${API_PORT}, protocol: TCP}]}`),
    doc('Workload', 'web-0', `{address: ${WEB_ADDR}, node: a, serviceAccount: web}`, ', labels: {app: web}'),
    ...extra,
  ].join('---\n') }]);
  assert.deepEqual(set.diagnostics.map(formatDiagnostic), []);
  // `weft run` registrations: several workloads of a VM share its address.
  const snap = compile(set, [
    { name: 'api-0', namespace: 'shop', labels: { app: 'api' }, address: ADDR_B, node: 'b', serviceAccount: 'api' },
    { name: 'job-0', namespace: 'shop', labels: { app: 'job' }, address: ADDR_B, node: 'b', serviceAccount: 'job' },
  ]);
  return { a: forNode(snap, 'a'), b: forNode(snap, 'b') };
}

const manager = (ca: CertificateAuthority, ids: string[]) => signedManager(ca, TD, ids);

type T = { after: (fn: () => unknown) => void };

async function authority(t: T): Promise<CertificateAuthority> {
  const dir = await mkdtemp(join(tmpdir(), 'weft-sec-tun-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return CertificateAuthority.loadOrCreate(dir, { trustDomain: TD });
}

const echo = taggedEcho;

const WEB: LocalWorkload = { name: 'web-0', namespace: 'shop', serviceAccount: 'web', labels: { app: 'web' }, address: WEB_ADDR, cgroupPath: '/test/web-0', cgroupId: '4242' };

/** A ProxyPlane for `node`, its tunnel on `host`:`port`, with web-0 as its only local
 *  workload (cgroup 4242) and every redirected connection going to VIP:API_PORT. */
async function plane(t: T, ca: CertificateAuthority, node: string, host: string, port: number, view: NodeView, ids: string[]): Promise<ProxyPlane> {
  const m = await manager(ca, [nodeSpiffeId(TD, node), ...ids]);
  const p = new ProxyPlane({
    node, registry: new Registry(), inbound: { host, port },
    lookupOrigin: () => ({ dstIp: VIP, dstPort: API_PORT, cgroupId: 4242n }),
    workloadByCgroup: (id) => (id === 4242n ? WEB : undefined),
    onEjection: () => {}, accessLog: { wants: () => false, write: () => {} },
  });
  p.apply(view);
  p.ensureTunnel(m, TD);
  assert.equal(await p.listen({ host: '127.0.0.1', port: 0 }, 10_000), true);
  t.after(async () => { await p.close(); m.close(); });
  return p;
}

/** Connects through the plane's outbound listener (as a redirected app connection),
 *  sends `msg`, and gives what came back before the connection closed. */
async function through(p: ProxyPlane, msg: string): Promise<string> {
  const { port } = p.outbound.address();
  return new Promise((resolve) => {
    const got: Buffer[] = [];
    const s = connect({ host: '127.0.0.1', port }, () => s.write(msg));
    const timer = setTimeout(() => s.destroy(), 5000);
    s.on('data', (d: Buffer) => { got.push(d); if (Buffer.concat(got).toString().endsWith(msg)) s.end(); });
    s.on('error', () => {});
    s.on('close', () => { clearTimeout(timer); resolve(Buffer.concat(got).toString()); });
  });
}

/** A tunnel endpoint at node B's address that is not node B: it presents `identity` and
 *  forwards every CONNECT to the local address it names. */
async function impostor(t: T, ca: CertificateAuthority, identity: string): Promise<Tunnel> {
  const m = await manager(ca, [identity]);
  const tun = await startTunnel({
    identity: m, nodeIdentity: identity, authorizer: new PolicyAuthorizer(), registry: new Registry(),
    lookup: () => ({ key: 'shop/api-0', name: 'api-0', namespace: 'shop', principal: `spiffe://${TD}/ns/shop/sa/api` }),
    host: ADDR_B, port: HBONE,
  });
  t.after(async () => { await tun.close(); m.close(); });
  return tun;
}

test('tunnel client: dialling node B refuses a server presenting the control API\'s or node C\'s identity; node B\'s own is accepted', async (t) => {
  const ca = await authority(t);
  const v = views();
  await echo(t, ADDR_B, API_PORT, 'api:');
  const a = await plane(t, ca, 'a', ADDR_A, 0, v.a, [WEB_ID]);

  const leaked: Record<string, string> = {};
  for (const id of [controlSpiffeId(TD), NODE_C]) {
    const fake = await impostor(t, ca, id);
    leaked[id] = await through(a, 'secret');
    await fake.close();
  }
  assert.deepEqual(leaked, { [controlSpiffeId(TD)]: '', [NODE_C]: '' }, 'a tunnel server presenting another identity must not get the stream');
  const real = await impostor(t, ca, NODE_B);
  assert.equal(await through(a, 'hello'), 'api:hello', 'node B itself is accepted');
  await real.close();
});

test('tunnel server: a CONNECT to the node\'s own address reaches only ports its Services name', async (t) => {
  const ca = await authority(t);
  const v = views();
  await echo(t, ADDR_B, API_PORT, 'api:');
  const admin = await echo(t, ADDR_B, 0, 'admin:');
  const adminPort = (admin.address() as AddressInfo).port;
  await plane(t, ca, 'b', ADDR_B, HBONE, v.b, []);

  const m = await manager(ca, [NODE_A, WEB_ID]);
  const pool = new TunnelPool({ contextFor: (id) => m.secureContextFor(id), trustDomain: TD });
  t.after(() => { pool.close(); m.close(); });
  const open = (port: number) => pool.openTunnel({
    sourceIdentity: WEB_ID, sourceIp: WEB_ADDR, nodeAddress: { host: ADDR_B, port: HBONE, identity: NODE_B }, target: { ip: ADDR_B, port },
  });
  await assert.rejects(open(adminPort), (e: unknown) => {
    const status = isWeftError(e) ? (e.details as { status?: number } | undefined)?.status : undefined;
    return status === 403 || status === 404;
  }, 'the admin port at the node\'s address is no workload\'s');
  const ok = await open(API_PORT);
  const got: Buffer[] = [];
  ok.on('data', (d: Buffer) => got.push(d));
  ok.end('hi');
  await new Promise((r) => ok.once('end', r));
  assert.equal(Buffer.concat(got).toString(), 'api:hi', 'the Service port of the node-address workload works');
});

test('tunnel server: ipBlocks match the source workload\'s address carried in the tunnel, not the peer node\'s', async (t) => {
  const ca = await authority(t);
  const allowFrom = (cidr: string) => doc('AuthorizationPolicy', 'api-from', `{selector: {matchLabels: {app: api}}, action: ALLOW, rules: [{from: [{source: {ipBlocks: ["${cidr}"]}}]}]}`);
  await echo(t, ADDR_B, API_PORT, 'api:');
  const workloadRule = views([allowFrom(`${WEB_ADDR}/32`)]);
  const a = await plane(t, ca, 'a', ADDR_A, 0, workloadRule.a, [WEB_ID]);
  const b = await plane(t, ca, 'b', ADDR_B, HBONE, workloadRule.b, []);
  assert.equal(workloadRule.b.authorizationPolicies.length, 1);

  const workloadMatch = await through(a, 'x');
  b.apply(views([allowFrom(`${ADDR_A}/32`)]).b);
  const nodeMatch = await through(a, 'y');
  // Both outcomes at once: before the fix, each was the other's.
  assert.deepEqual({ workloadMatch, nodeMatch }, { workloadMatch: 'api:x', nodeMatch: '' },
    'ipBlocks naming the source workload allow; naming only the peer node deny');
});
