// Two `weft control` replicas with their durable state in the (fake) Kubernetes API,
// eight agents spread over both. The leader is killed (SIGKILL) mid-rotation (a staged
// root rotation was just requested on the CA Secret) and mid-edit (a policy file was
// just changed). Then: no agent NACKs; every agent converges on the same snapshot,
// carrying both roots; the agents that were on the dead replica resumed from what they
// had ACKed (the survivor sent them the changed resources, not their whole views); the
// survivor took the Lease and carried out the pending rotation; certificates issued
// before (by either replica) and after chain to the same root; and a node that joins
// while one replica is down gets the snapshot. No root needed.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { FakeApiServer } from '../lib/fake-apiserver';
import { spawnControl as startControl, startAgents, status, statusUntil, type Agents, type Control } from '../lib/control-procs';
import { nodeToken, tokenLines } from '../lib/bootstrap-tokens';
import { SyncClient } from '../../agent/sync/client';
import { createCsr, generateSigningKey } from '../../agent/identity/pki';
import { verifyChain } from '../../agent/identity/verify';
import { nodeSpiffeId } from '../../agent/control/certificates';
import { CA_SECRET_NAME, ROTATE_ANNOTATION, ROTATED_ANNOTATION } from '../../agent/control/kube/replicated-ca';
import { LEASE_NAME } from '../../agent/control/kube/replicas';

// One token per node (a bare token binds to the first node presenting it, shared by the
// replicas through a Secret); Status is read as 'e2e-operator'.
const SEED = 'e2e-replicas';
const TOKEN = nodeToken('e2e-operator', SEED);
const NS = 'weft-system';
const TD = 'replicas.e2e';
const SERVICES = 20;

function policies(dir: string, extra = ''): void {
  const docs = [`apiVersion: weft.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh, namespace: weft-system}
spec: {trustDomain: ${TD}}`];
  for (let s = 0; s < SERVICES; s++) {
    docs.push(`apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: svc-${s}, namespace: rep}
spec:
  vip: 10.96.60.${s + 1}
  selector: {app: svc-${s}}
  ports:
    - {name: tcp, port: 80, targetPort: 8080, protocol: TCP}`);
    docs.push(`apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: w-${s}, namespace: rep, labels: {app: svc-${s}}}
spec: {address: 10.250.60.${s + 1}, node: rep-node-${s % 4}, serviceAccount: svc-${s}}`);
  }
  writeFileSync(join(dir, 'mesh.yaml'), docs.join('\n---\n') + '\n' + extra);
}

function tmp(t: TestContext, prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), `${prefix}${process.pid}-`));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

async function metric(c: Control, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${c.adminPort}/metrics`)).text();
  return Number(text.split('\n').find((l) => l.startsWith(`${name} `))?.split(' ')[1] ?? NaN);
}

test('two control replicas on the Kubernetes API: the leader dies mid-rotation and mid-edit; agents resume on the other', { timeout: 180_000 }, async (t) => {
  const dir = tmp(t, 'wt-ctlrep-e2e-');
  const api = await FakeApiServer.start({ listen: '127.0.0.1:0', dir: join(dir, 'api'), namespaces: ['default', NS] });
  t.after(() => api.close());
  const pol = join(dir, 'policies');
  mkdirSync(pol);
  policies(pol);
  const tokenFile = join(dir, 'tokens');
  writeFileSync(tokenFile, tokenLines(['e2e-operator', ...Array.from({ length: 9 }, (_, i) => `rep-node-${i}`)], SEED), { mode: 0o600 });
  const replica = (id: string) => startControl((fn) => t.after(fn), [
    '--policies', pol, '--state-dir', join(dir, id), '--token-file', tokenFile, '--poll-interval', '200ms',
    '--state-store', 'kubernetes', '--kubeconfig', api.kubeconfigPath!, '--state-namespace', NS, '--replica-id', id, '--lease-duration', '3s',
  ]);
  const r1 = await replica('rep-r1');
  const r2 = await replica('rep-r2');
  const lease = () => (api.store.get('leases', NS, LEASE_NAME) as { spec: { holderIdentity: string | null } }).spec.holderIdentity;
  assert.equal(lease(), 'rep-r1', 'the first replica leads');
  assert.equal(r1.caBundle, r2.caBundle, 'one CA: the follower loaded the leader\'s roots from the Secret');
  const v1 = (await status(r1.port, TOKEN)).currentVersion;
  assert.equal((await status(r2.port, TOKEN)).currentVersion, v1, 'snapshot versions are content hashes: the same on both replicas');

  // Eight agents: four prefer r1, four prefer r2 (the list's order); all know both.
  const both = (first: Control, second: Control) => `127.0.0.1:${first.port},127.0.0.1:${second.port}`;
  const groups: { agents: Agents; nodes: string[] }[] = [];
  const startGroup = (nodes: string[], address: string) => {
    const agents = startAgents((fn) => t.after(fn), address, (n) => nodeToken(n, SEED), nodes.map((node) => {
      mkdirSync(join(dir, node), { recursive: true });
      return { node, stateDir: join(dir, node), writeApplied: false, shuffleReplicas: false, reconnectSpreadMs: 1000 };
    }));
    groups.push({ agents, nodes });
    return agents;
  };
  startGroup(['rep-node-0', 'rep-node-1', 'rep-node-2', 'rep-node-3'], both(r1, r2));
  startGroup(['rep-node-4', 'rep-node-5', 'rep-node-6', 'rep-node-7'], both(r2, r1));
  const applied = (g: { agents: Agents; nodes: string[] }, pred: (e: { version?: string; roots?: number }) => boolean, what: string, ms = 30_000) =>
    Promise.all(g.nodes.map((n) => g.agents.wait((e) => e.type === 'applied' && e.node === n && pred(e), ms, `${n}: ${what}`)));
  await Promise.all(groups.map((g) => applied(g, (e) => e.version === v1, 'v1')));
  // Each agent's first choice is where most land; the channel also tries the second
  // address when the first is slow to answer (a loaded machine), so count, then require
  // agents on both replicas.
  const connectedTo = async (c: Control) => (await status(c.port, TOKEN)).agents.filter((a) => a.connected && a.ackedVersion === v1).map((a) => a.node);
  let movers: string[] = [];
  for (const end = Date.now() + 10_000; ;) {
    movers = await connectedTo(r1);
    if (movers.length + (await connectedTo(r2)).length === 8) break;
    if (Date.now() > end) throw new Error('agents did not settle on the replicas');
    await new Promise((r) => setTimeout(r, 50));
  }
  t.diagnostic(`agents on r1: ${movers.length}, on r2: ${8 - movers.length}`);
  assert.ok(movers.length >= 1 && movers.length <= 7, `agents connected to both replicas (${movers.length} on r1)`);

  // Every replica signs, and explains.
  const client = (c: Control, node: string) => {
    const sc = new SyncClient({ address: `127.0.0.1:${c.port}`, node, token: nodeToken(node, SEED), stateDir: join(dir, `signer-${node}`), controlCa: c.caBundle, apply: async () => undefined, logger: pino({ level: 'silent' }) });
    t.after(() => sc.stop());
    return sc;
  };
  const sign = async (c: Control, node: string) => {
    const r = await client(c, node).signCertificate(await createCsr(await generateSigningKey(), nodeSpiffeId(TD, node)), 600);
    return { chain: r.certChainPem, bundle: r.trustBundle };
  };
  const before = [await sign(r1, 'rep-node-0'), await sign(r2, 'rep-node-4')];
  assert.deepEqual(before[0]!.bundle, before[1]!.bundle);
  const root0 = before[0]!.bundle;
  assert.equal(root0.length, 1);
  const explain = async (c: Control) => client(c, 'rep-node-1').explain({ from: 'rep/w-1', host: '10.96.60.3', port: 80, headers: {} });
  assert.deepEqual(await explain(r2), await explain(r1));
  // Replicas compile only what all of them see: workloads come from the Kubernetes API.
  await assert.rejects(client(r2, 'rep-node-1').registerWorkload({ name: 'vm-0', namespace: 'rep', serviceAccount: 'x', labels: {}, address: '10.250.62.1', cgroupId: '', weight: 1 }),
    /FAILED_PRECONDITION.*replicas on the Kubernetes API/);

  // Mid-rotation and mid-edit: request a staged rotation, change a policy, kill the leader.
  const deltaBefore = await metric(r2, 'weft_control_delta_resources_total');
  const secret = api.store.get('secrets', NS, CA_SECRET_NAME);
  api.store.replace('secrets', NS, CA_SECRET_NAME, { ...secret, metadata: { ...secret.metadata, annotations: { ...(secret.metadata?.annotations as Record<string, string> | undefined), [ROTATE_ANNOTATION]: '1h' } } });
  policies(pol, `---
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: w-extra, namespace: rep, labels: {app: svc-3}}
spec: {address: 10.250.61.1, node: rep-node-5, serviceAccount: svc-3}
`);
  r1.proc.kill('SIGKILL');
  await r1.exited;
  const killedAt = Date.now();

  // The survivor takes the Lease and completes the rotation; all eight agents converge.
  const v2 = await (async () => {
    for (;;) {
      const v = (await status(r2.port, TOKEN)).currentVersion;
      if (v !== v1) return v;
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  await Promise.all(groups.map((g) => applied(g, (e) => e.version === v2 && e.roots === 2, 'v2 with both roots')));
  const converged = Date.now() - killedAt;
  t.diagnostic(`leader killed → all 8 agents on ${v2} with the rotated bundle in ${converged} ms`);
  assert.equal(lease(), 'rep-r2', 'the survivor holds the Lease');
  const annotations = (api.store.get('secrets', NS, CA_SECRET_NAME) as { metadata: { annotations: Record<string, string> } }).metadata.annotations;
  assert.equal(annotations[ROTATE_ANNOTATION], undefined, 'the rotation request was consumed');
  assert.equal((JSON.parse(annotations[ROTATED_ANNOTATION]!) as { by: string }).by, 'rep-r2');
  const st = await statusUntil(r2.port, TOKEN, (s) => s.agents.filter((a) => a.connected && a.ackedVersion === v2).length === 8, 'all eight ACK v2 on r2', 15_000);
  assert.ok(st.agents.every((a) => a.lastNackVersion === ''), 'no NACK recorded');
  for (const g of groups) assert.equal(g.agents.events.filter((e) => e.type === 'nack').length, 0, 'no agent NACKed');

  // Resumed, not resent: the survivor sent the changed resources (the edited service and
  // the node resources), not 21-resource views, to the four agents that moved.
  const sent = (await metric(r2, 'weft_control_delta_resources_total')) - deltaBefore;
  t.diagnostic(`resources sent by the survivor after the failover: ${sent} (whole views would be ${8 * (SERVICES + 1)})`);
  assert.ok(sent <= 8 * 3, `resources sent after failover: ${sent}`);
  // The agents that were on r1 are now on r2.
  const onR2 = (await status(r2.port, TOKEN)).agents.filter((a) => a.connected).map((a) => a.node);
  for (const n of movers) assert.ok(onR2.includes(n), `${n} moved to r2`);

  // A node joins while r1 is down (its list names the dead replica first).
  const joiner = startGroup(['rep-node-8'], both(r1, r2));
  await joiner.wait((e) => e.type === 'applied' && e.node === 'rep-node-8' && e.version === v2, 30_000, 'the new node gets v2');

  // Certificates before (from either replica) and after chain to the same root, which
  // still signs (staged rotation); the bundle every agent now holds has both roots.
  const after = await sign(r2, 'rep-node-8');
  assert.equal(after.bundle.length, 2);
  assert.equal(after.bundle[0], root0[0]);
  for (const c of [...before, after]) {
    verifyChain(c.chain, root0, { trustDomain: TD });
    verifyChain(c.chain, after.bundle, { trustDomain: TD });
  }
  for (const g of groups) await g.agents.stop();
});
