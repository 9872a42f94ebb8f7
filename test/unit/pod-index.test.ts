// PodIndex (the agent's own watch of its node's Pods and the Namespaces) against the
// fake API server on loopback, with a kubelet-shaped cgroup tree in a temp dir (a cgroup
// v2 id is a directory's inode number): which pods are meshed, which are skipped and
// why, opt-out and opt-in, a cgroup kubelet creates after the Pod event, deletion, and
// a watch that must re-list after 410 Gone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeApiServer } from '../lib/fake-apiserver';
import { PodIndex } from '../../agent/node/pods';
import { until as waitUntil } from '../lib/wait';

const NODE = 'ip-10-0-1-2.ec2.internal';

async function setup(t: { after(fn: () => unknown): void }, opts: Partial<ConstructorParameters<typeof PodIndex>[0]> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'wt-podindex-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const api = await FakeApiServer.start({ listen: '127.0.0.1:0', dir: join(dir, 'api'), bookmarkIntervalMs: 200 });
  t.after(() => api.close());
  const root = join(dir, 'cg', 'kubepods.slice');
  mkdirSync(join(root, 'kubepods-besteffort.slice'), { recursive: true });
  const index = new PodIndex({ node: NODE, captureRoot: root, kubeconfig: api.kubeconfigPath!, backoff: { initialMs: 50, maxMs: 200 }, ...opts });
  t.after(() => index.stop());
  /** The scheduler binds a pod; kubelet makes its cgroup (unless `cgroup: false`) and reports it Running. */
  let ips = 10;
  const pod = (name: string, o: { ns?: string; labels?: Record<string, string>; hostNetwork?: boolean; node?: string; cgroup?: boolean; sa?: string } = {}) => {
    const ns = o.ns ?? 'shop';
    if (!api.store.list('namespaces').items.some((n) => n.metadata?.name === ns)) api.store.create('namespaces', undefined, { metadata: { name: ns } });
    const created = api.store.create('pods', ns, {
      metadata: { name, namespace: ns, labels: o.labels ?? {} },
      spec: { nodeName: o.node ?? NODE, serviceAccountName: o.sa ?? 'web', hostNetwork: o.hostNetwork ?? false, containers: [{ name: 'app' }] },
    }) as { metadata: { uid: string } };
    const uid = created.metadata.uid;
    // The API server starts a pod Pending; kubelet reports it Running with its IP.
    api.store.replace('pods', ns, name, { ...created, status: { phase: 'Running', qosClass: 'BestEffort', podIP: o.hostNetwork ? '10.80.0.11' : `10.81.1.${++ips}` } } as never, 'status');
    const cg = join(root, 'kubepods-besteffort.slice', `kubepods-besteffort-pod${uid.replace(/-/g, '_')}.slice`);
    if (o.cgroup !== false) mkdirSync(join(cg, 'cri-containerd-abc.scope'), { recursive: true });
    return { uid, cg, name, ns };
  };
  const until = (what: string, check: () => boolean) => waitUntil(what, check, {
    timeoutMs: 5000,
    explain: () => JSON.stringify(index.list().map((p) => ({ key: p.key, meshed: p.meshed, reason: p.reason, cg: !!p.cgroup }))),
  });
  return { api, index, pod, until, root };
}

test('PodIndex: meshed pods, and skipped ones with the reason', async (t) => {
  const { api, index, pod, until } = await setup(t);
  const web = pod('web-0');
  const host = pod('node-exporter', { hostNetwork: true });
  const out = pod('legacy', { labels: { 'weft.dev/dataplane-mode': 'none' } });
  const sys = pod('coredns', { ns: 'kube-system' });
  pod('elsewhere', { node: 'node-b' });
  await index.start();
  await until('four pods of this node', () => index.list().length === 4);
  const w = index.workloads();
  assert.deepEqual(w.map((x) => `${x.namespace}/${x.name} ${x.serviceAccount}`), ['shop/web-0 web']);
  assert.equal(w[0]!.cgroupId, statSync(web.cg, { bigint: true }).ino.toString());
  const reasons = Object.fromEntries(index.list().filter((p) => !p.meshed).map((p) => [p.key, p.reason]));
  assert.match(reasons['shop/node-exporter']!, /hostNetwork/);
  assert.match(reasons['shop/legacy']!, /dataplane-mode=none/);
  assert.match(reasons['kube-system/coredns']!, /excluded/);
  const skipped = index.skippedCgroups().map(String).sort();
  assert.deepEqual(skipped, [host.cg, out.cg, sys.cg].map((p) => statSync(p, { bigint: true }).ino.toString()).sort());
  assert.ok(!index.addresses().includes('10.80.0.11'), 'a hostNetwork pod\'s address is the node\'s, not a pod\'s');

  // A namespace opts out: its pods leave the mesh and join the skip map.
  api.store.replace('namespaces', undefined, 'shop', { metadata: { name: 'shop', labels: { 'weft.dev/dataplane-mode': 'none' } } });
  await until('shop opted out', () => index.workloads().length === 0);
  assert.ok(index.skippedCgroups().includes(statSync(web.cg, { bigint: true }).ino));

  // Deleted: gone from everything.
  api.store.replace('namespaces', undefined, 'shop', { metadata: { name: 'shop' } });
  await until('shop back in', () => index.workloads().length === 1);
  api.store.delete('pods', 'shop', 'web-0');
  await until('web-0 deleted', () => !index.list().some((p) => p.key === 'shop/web-0'));
  assert.deepEqual(index.workloads(), []);
});

test('PodIndex: a cgroup made after the Pod event, and a watch re-listed after 410 Gone', async (t) => {
  const { api, index, pod, until } = await setup(t);
  await index.start();
  const late = pod('late', { cgroup: false });
  await until('late listed without a cgroup', () => index.list().some((p) => p.key === 'shop/late' && !p.cgroup));
  assert.equal(index.workloads().length, 0);
  mkdirSync(join(late.cg, 'cri-containerd-x.scope'), { recursive: true });
  await until('late resolved by the retry', () => index.workloads().some((w) => w.name === 'late'));
  assert.ok(index.recentReady.some((r) => r.uid === late.uid));

  // The API server forgets history and ends the watch: the next watch gets 410 and the
  // informer re-lists; a pod added meanwhile is found.
  api.compact();
  api.closeWatches();
  pod('after-gone');
  await until('after-gone seen after the re-list', () => index.workloads().some((w) => w.name === 'after-gone'));
});

test('PodIndex: opt-in (--dataplane-default none) meshes only enrolled namespaces and pods', async (t) => {
  const { index: idx2, pod: pod2, until: until2, api: api2 } = await setup(t, { dataplaneDefault: 'none' });
  pod2('plain');
  pod2('enrolled-pod', { labels: { 'weft.dev/dataplane-mode': 'mesh' } });
  api2.store.create('namespaces', undefined, { metadata: { name: 'shop-in', labels: { 'weft.dev/dataplane-mode': 'mesh' } } });
  pod2('in-ns', { ns: 'shop-in' });
  pod2('out-of-in-ns', { ns: 'shop-in', labels: { 'weft.dev/dataplane-mode': 'none' } });
  await idx2.start();
  await until2('four pods', () => idx2.list().length === 4);
  assert.deepEqual(idx2.workloads().map((w) => w.name).sort(), ['enrolled-pod', 'in-ns']);
  assert.match(idx2.list().find((p) => p.key === 'shop/plain')!.reason!, /not enrolled/);
});

test('PodIndex: the agent\'s own pod (--pod-uid) is in the skip map before the Pods are listed', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wt-podindex-self-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const uid = '6f0c1a9e-3b7d-4c2e-9a51-0d8e2f4b7c10';
  const root = join(dir, 'kubepods.slice');
  const own = join(root, 'kubepods-burstable.slice', `kubepods-burstable-pod${uid.replace(/-/g, '_')}.slice`);
  mkdirSync(join(own, 'cri-containerd-1.scope'), { recursive: true });
  const index = new PodIndex({ node: NODE, captureRoot: root, selfPodUid: uid });
  assert.equal(index.ownCgroup?.id, statSync(own, { bigint: true }).ino);
  assert.deepEqual(index.skippedCgroups(), [statSync(own, { bigint: true }).ino]);
});
