// "Calling a workload's own address skips policy": a workload that dials another's
// address directly (a pod IP, 127.0.0.x:port on a VM) instead of its Service's VIP.
// The kernel half (connect4/6 redirect such a connect to the agent when the endpoint is
// in weft_direct_v1) is test/bpf/direct.test.ts; this is the agent's half: a redirected
// connection whose origin is a workload's address:port takes the path a connection
// through its Service takes (same node: the local forwarder; other node: the mTLS
// tunnel to that node) and meets the destination's AuthorizationPolicy the same way.
//
// In-process on loopback, like tunnel-hardening.test.ts: node a is 127.0.0.1, node b a
// random 127.x.y.2 with its tunnel on 15008; api-0 (the destination) has an address of
// its own on node b.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomInt } from 'node:crypto';
import { Registry } from 'prom-client';
import { CertificateAuthority } from '../../agent/identity/ca';
import { nodeSpiffeId } from '../../agent/identity/spiffe';
import { ProxyPlane } from '../../agent/node/proxy-plane';
import { compile, forNode, formatDiagnostic, loadPolicyTexts, type NodeView } from '../../agent/policy';
import type { LocalWorkload } from '../../agent/node/workloads';
import '../unit/l7-harness'; // silent root logger
import { signedManager, taggedEcho } from '../lib/identities';

const TD = 'cluster.local';
const NET = `127.${randomInt(30, 250)}.${randomInt(1, 250)}`;
const ADDR_A = '127.0.0.1';
const ADDR_B = `${NET}.2`;
const API_ADDR = `${NET}.20`;
const JOB_ADDR = `${NET}.21`;
const API_PORT = 19080 + randomInt(0, 1000);
const JOB_PORT = API_PORT + 1000;
const VIP = '10.96.78.1';

const MESH = `apiVersion: weft.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec: {trustDomain: ${TD}}\n`;
const doc = (kind: string, name: string, spec: string, labels = '') =>
  `apiVersion: weft.dev/v1alpha1\nkind: ${kind}\nmetadata: {name: ${name}, namespace: shop${labels}}\nspec: ${spec}\n`;
const nodeDoc = (name: string, address: string) => `apiVersion: weft.dev/v1alpha1\nkind: Node\nmetadata: {name: ${name}}\nspec: {address: ${address}}\n`;
const policy = (name: string, app: string, action: 'ALLOW' | 'DENY', principal: string) =>
  doc('AuthorizationPolicy', name, `{selector: {matchLabels: {app: ${app}}}, action: ${action}, rules: [{from: [{source: {principals: ["${principal}"]}}]}]}`);

/** Service api (TCP) backed by api-0 (node b, its own address); job-0 (node b, its own
 *  address, no Service); callers web-0 on node a and web-1 on node b. */
function views(extra: string[] = []): { a: NodeView; b: NodeView } {
  const set = loadPolicyTexts([{ file: 'p.yaml', text: [
    MESH, nodeDoc('a', ADDR_A), nodeDoc('b', ADDR_B),
    doc('Service', 'api', `{vip: ${VIP}, selector: {app: api}, ports: [{name: tcp, port: ${API_PORT}, protocol: TCP}]}`),
    doc('Workload', 'api-0', `{address: ${API_ADDR}, node: b, serviceAccount: api}`, ', labels: {app: api}'),
    doc('Workload', 'job-0', `{address: ${JOB_ADDR}, node: b, serviceAccount: job}`, ', labels: {app: job}'),
    doc('Workload', 'web-0', `{address: ${NET}.10, node: a, serviceAccount: web}`, ', labels: {app: web}'),
    doc('Workload', 'web-1', `{address: ${NET}.11, node: b, serviceAccount: web}`, ', labels: {app: web}'),
    ...extra,
  ].join('---\n') }]);
  assert.deepEqual(set.diagnostics.map(formatDiagnostic), []);
  const snap = compile(set, []);
  return { a: forNode(snap, 'a'), b: forNode(snap, 'b') };
}

type T = { after: (fn: () => unknown) => void };

const manager = (ca: CertificateAuthority, ids: string[]) => signedManager(ca, TD, ids);

const echo = taggedEcho;

interface Node { plane: ProxyPlane; dst: { ip: string; port: number } }

/** A ProxyPlane for `node` whose every redirected connection comes from `source`
 *  (cgroup 4242) and was going to `dst` (what the kernel's origin record says). */
async function node(t: T, ca: CertificateAuthority, name: string, host: string, port: number, view: NodeView, source: LocalWorkload): Promise<Node> {
  const m = await manager(ca, [nodeSpiffeId(TD, name), `spiffe://${TD}/ns/shop/sa/${source.serviceAccount}`]);
  const n = { dst: { ip: VIP, port: API_PORT } } as Node;
  n.plane = new ProxyPlane({
    node: name, registry: new Registry(), inbound: { host, port },
    lookupOrigin: () => ({ dstIp: n.dst.ip, dstPort: n.dst.port, cgroupId: 4242n }),
    workloadByCgroup: (id) => (id === 4242n ? source : undefined),
    onEjection: () => {}, accessLog: { wants: () => false, write: () => {} },
  });
  n.plane.apply(view);
  n.plane.ensureTunnel(m, TD);
  assert.equal(await n.plane.listen({ host: '127.0.0.1', port: 0 }, 10_000), true);
  t.after(async () => { await n.plane.close(); m.close(); });
  return n;
}

/** One redirected connection to `ip`:`port` through the node's outbound listener: what
 *  came back before it closed ('' when refused). */
async function dial(n: Node, ip: string, port: number, msg: string): Promise<string> {
  n.dst = { ip, port };
  const { port: listener } = n.plane.outbound.address();
  return new Promise((resolve) => {
    const got: Buffer[] = [];
    const s = connect({ host: '127.0.0.1', port: listener }, () => s.write(msg));
    const timer = setTimeout(() => s.destroy(), 5000);
    s.on('data', (d: Buffer) => { got.push(d); if (Buffer.concat(got).toString().endsWith(msg)) s.end(); });
    s.on('error', () => {});
    s.on('close', () => { clearTimeout(timer); resolve(Buffer.concat(got).toString()); });
  });
}

const workload = (name: string, address: string): LocalWorkload =>
  ({ name, namespace: 'shop', serviceAccount: 'web', labels: { app: 'web' }, address, cgroupPath: `/test/${name}`, cgroupId: '4242' });

test('a direct connection to a workload\'s address meets the AuthorizationPolicy its Service\'s connections meet (same node and across nodes)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'weft-sec-direct-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const ca = await CertificateAuthority.loadOrCreate(dir, { trustDomain: TD });
  await echo(t, API_ADDR, API_PORT, 'api:');
  await echo(t, JOB_ADDR, JOB_PORT, 'job:');
  const open = views();
  const a = await node(t, ca, 'a', ADDR_A, 0, open.a, workload('web-0', `${NET}.10`));
  const b = await node(t, ca, 'b', ADDR_B, 15008, open.b, workload('web-1', `${NET}.11`));

  const outcomes = async () => ({
    remoteViaService: await dial(a, VIP, API_PORT, 'x'),
    remoteDirect: await dial(a, API_ADDR, API_PORT, 'x'),
    localViaService: await dial(b, VIP, API_PORT, 'x'),
    localDirect: await dial(b, API_ADDR, API_PORT, 'x'),
  });
  const apply = (extra: string[]) => { const v = views(extra); a.plane.apply(v.a); b.plane.apply(v.b); return v; };

  // No policy: the direct connection is carried (and to the workload it named).
  assert.deepEqual(await outcomes(), { remoteViaService: 'api:x', remoteDirect: 'api:x', localViaService: 'api:x', localDirect: 'api:x' });

  // DENY the callers' principal: the same verdict whichever address they dialled.
  const denied = apply([policy('deny-web', 'api', 'DENY', `${TD}/ns/shop/sa/web`)]);
  assert.match(denied.a.datapath.find((d) => d.vip === VIP)!.reason, /needs an mTLS hop|authorization/);
  assert.deepEqual(await outcomes(), { remoteViaService: '', remoteDirect: '', localViaService: '', localDirect: '' });

  // ALLOW the callers: allowed both ways again.
  apply([policy('allow-web', 'api', 'ALLOW', `${TD}/ns/shop/sa/web`)]);
  assert.deepEqual(await outcomes(), { remoteViaService: 'api:x', remoteDirect: 'api:x', localViaService: 'api:x', localDirect: 'api:x' });

  // A guarded local workload no Service selects: every port of its address is covered.
  apply([policy('job-from-web', 'job', 'ALLOW', `${TD}/ns/shop/sa/web`)]);
  assert.equal(await dial(b, JOB_ADDR, JOB_PORT, 'y'), 'job:y', 'ALLOW web: carried');
  apply([policy('job-from-other', 'job', 'ALLOW', `${TD}/ns/shop/sa/other`)]);
  assert.equal(await dial(b, JOB_ADDR, JOB_PORT, 'y'), '', 'ALLOW someone else: refused');
});
