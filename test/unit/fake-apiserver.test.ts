// The fake kube-apiserver (test/lib/fake-apiserver.ts) against what clients rely on:
// list shapes and selectors, watch semantics (resume from a version, selector
// transitions, bookmarks, 410 Expired in the stream, timeouts), write errors (401, 404,
// 409, 422), status subresource rules, the unix-socket client, the CLI, and
// @kubernetes/client-node's own ListWatch (the agent's informer) over HTTPS with the
// kubeconfig the server writes: list, ADDED/MODIFIED/DELETED, re-list after a 410.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ApiError, FakeApiServer, apiClient, parseArgs, type KObject, type WatchEvent } from '../lib/fake-apiserver';
import { podQosClass } from '../lib/k8s-store';
import type * as K8s from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import { until } from '../lib/wait';

const ROOT = join(__dirname, '..', '..');

function tempDir(t: { after: (fn: () => void) => void }): string {
  const d = mkdtempSync(join(tmpdir(), 'weft-fakeapi-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

async function startServer(t: { after: (fn: () => Promise<void> | void) => void }, extra: Parameters<typeof FakeApiServer.start>[0] = {}) {
  const dir = tempDir(t);
  const server = await FakeApiServer.start({ listen: '127.0.0.1:0', dir, socketPath: join(dir, 'api.sock'), ...extra });
  t.after(() => server.close());
  return { server, dir, api: apiClient(join(dir, 'api.sock')) };
}

function pod(name: string, node: string, labels: Record<string, string> = {}, namespace = 'default'): KObject {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace, labels }, spec: { nodeName: node, containers: [{ name: 'app', image: 'weft:dev' }] } };
}

interface Raw { code: number; body: string; headers: IncomingMessage['headers'] }

function httpsGet(server: FakeApiServer, path: string, token: string | undefined = server.token): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(server.url + path, { ca: server.caPem, headers: token ? { authorization: `Bearer ${token}` } : {} }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => { body += d; }).on('end', () => resolve({ code: res.statusCode!, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** An open watch: every event as it arrives, and whether the server ended the stream. */
interface WatchStream { events: WatchEvent[]; ended: Promise<void>; code: number; aborted(): boolean; close(): void; next(pred: (e: WatchEvent) => boolean, what: string): Promise<WatchEvent> }

function openWatch(socketPath: string, path: string): Promise<WatchStream> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ socketPath, path }, (res) => {
      const events: WatchEvent[] = [];
      let waiters: { pred: (e: WatchEvent) => boolean; resolve: (e: WatchEvent) => void }[] = [];
      const lines = createInterface(res);
      lines.on('error', () => { /* readline re-emits the response's error; close() causes it */ });
      lines.on('line', (l) => {
        const e = JSON.parse(l) as WatchEvent;
        events.push(e);
        const hit = waiters.filter((w) => w.pred(e));
        waiters = waiters.filter((w) => !w.pred(e));
        for (const w of hit) w.resolve(e);
      });
      let aborted = false;
      res.on('error', () => { aborted = true; /* close() or a reset */ });
      const ended = new Promise<void>((r) => { res.on('end', r); res.on('close', r); });
      resolve({
        events, ended, code: res.statusCode!, aborted: () => aborted,
        close: () => req.destroy(),
        next: (pred, what) => {
          const seen = events.find(pred);
          if (seen) return Promise.resolve(seen);
          return within(new Promise((r) => waiters.push({ pred, resolve: r })), 5000, what);
        },
      });
    });
    req.on('error', reject);
    req.end();
  });
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms); }),
  ]);
}

test('HTTPS needs the bearer token (401 Status otherwise); health and version are open; discovery answers', async (t) => {
  const { server } = await startServer(t);
  const denied = await httpsGet(server, '/api/v1/pods', '');
  assert.equal(denied.code, 401);
  assert.deepEqual(JSON.parse(denied.body), { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401 });
  assert.equal((await httpsGet(server, '/api/v1/pods', 'wrong')).code, 401);
  assert.equal((await httpsGet(server, '/healthz', '')).body, 'ok');
  assert.equal(JSON.parse((await httpsGet(server, '/version', '')).body).major, '1');
  assert.deepEqual(JSON.parse((await httpsGet(server, '/api')).body).versions, ['v1']);
  const groups = JSON.parse((await httpsGet(server, '/apis')).body);
  assert.equal(groups.groups[0].name, 'discovery.k8s.io');
  const core = JSON.parse((await httpsGet(server, '/api/v1')).body);
  assert.ok(core.resources.some((r: { name: string }) => r.name === 'pods/status'));
  const nf = await httpsGet(server, '/api/v1/nope');
  assert.equal(nf.code, 404);
  assert.equal(JSON.parse(nf.body).reason, 'NotFound');
  // The kubeconfig names the server and carries the CA and token.
  const kc = readFileSync(server.kubeconfigPath!, 'utf8');
  assert.match(kc, new RegExp(`server: ${server.url}`));
  assert.match(kc, new RegExp(`token: ${server.token}`));
});

test('objects get uid, resourceVersion, creationTimestamp; lists have the real shape and apply selectors', async (t) => {
  const { server, api } = await startServer(t);
  await api.create('namespaces', { metadata: { name: 'shop' } });
  const a = await api.create('pods', pod('a', 'ip-10-0-1-2.ec2.internal', { app: 'web', tier: 'front' }));
  await api.create('pods', pod('b', 'node-2', { app: 'web', tier: 'back' }));
  await api.create('pods', pod('c', 'ip-10-0-1-2.ec2.internal', { app: 'db' }, 'shop'));
  assert.match(a.metadata!.uid as string, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.match(a.metadata!.creationTimestamp as string, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.equal(a.metadata!.namespace, 'default');
  assert.deepEqual(a.status, { phase: 'Pending', qosClass: 'BestEffort' });
  const before = Number(a.metadata!.resourceVersion);

  const all = JSON.parse((await httpsGet(server, '/api/v1/pods')).body);
  assert.equal(all.kind, 'PodList');
  assert.equal(all.apiVersion, 'v1');
  assert.equal(all.metadata.resourceVersion, String(before + 2));
  assert.equal(all.items.length, 3);
  assert.equal(all.items[0].kind, undefined, 'items of a typed list carry no kind');

  const names = async (q: string): Promise<string[]> => (JSON.parse((await httpsGet(server, q)).body).items as KObject[]).map((p) => p.metadata!.name!);
  assert.deepEqual(await names('/api/v1/pods?fieldSelector=spec.nodeName%3Dip-10-0-1-2.ec2.internal'), ['a', 'c']);
  assert.deepEqual(await names('/api/v1/pods?fieldSelector=spec.nodeName%3Dip-10-0-1-2.ec2.internal,metadata.namespace%3Dshop'), ['c']);
  assert.deepEqual(await names('/api/v1/pods?fieldSelector=metadata.name%3Db'), ['b']);
  assert.deepEqual(await names('/api/v1/pods?fieldSelector=spec.nodeName!%3Dnode-2'), ['a', 'c']);
  assert.deepEqual(await names('/api/v1/namespaces/shop/pods'), ['c']);
  assert.deepEqual(await names('/api/v1/pods?labelSelector=app%3Dweb'), ['a', 'b']);
  assert.deepEqual(await names('/api/v1/pods?labelSelector=app%3Dweb,tier!%3Dfront'), ['b']);
  assert.deepEqual(await names('/api/v1/pods?labelSelector=tier%20in%20(front,back)'), ['a', 'b']);
  assert.deepEqual(await names('/api/v1/pods?labelSelector=!tier'), ['c']);
  const bad = await httpsGet(server, '/api/v1/pods?fieldSelector=spec.containers%3Dx');
  assert.equal(bad.code, 400);
  assert.equal(JSON.parse(bad.body).message, 'field label not supported: spec.containers');

  const one = JSON.parse((await httpsGet(server, '/api/v1/namespaces/shop/pods/c')).body);
  assert.equal(one.kind, 'Pod');
  assert.equal(one.spec.nodeName, 'ip-10-0-1-2.ec2.internal');
  assert.equal((await httpsGet(server, '/api/v1/namespaces/shop/pods/a')).code, 404);
});

test('writes: 409 AlreadyExists and Conflict, 404 namespace, 422 names, status subresource, no-op updates, merge patch, delete preconditions', async (t) => {
  const { api } = await startServer(t);
  const created = await api.create('pods', pod('p', 'n1'));
  await assert.rejects(api.create('pods', pod('p', 'n1')), (e: ApiError) => e.code === 409 && e.reason === 'AlreadyExists');
  await assert.rejects(api.create('pods', pod('q', 'n1', {}, 'nowhere')), (e: ApiError) => e.code === 404 && /namespaces "nowhere" not found/.test(e.message));
  await assert.rejects(api.create('pods', pod('Bad_Name', 'n1')), (e: ApiError) => e.code === 422 && e.reason === 'Invalid');
  // Node names are DNS subdomains: dots are fine.
  await api.create('nodes', { metadata: { name: 'ip-10-0-1-2.ec2.internal' }, status: { addresses: [{ type: 'InternalIP', address: '10.80.0.11' }] } });
  assert.equal((await api.get('nodes', undefined, 'ip-10-0-1-2.ec2.internal')).metadata!.namespace, undefined);

  // Status goes through /status only; the main resource ignores it.
  const running = await api.updateStatus('pods', { ...created, status: { phase: 'Running', podIP: '10.81.1.5' } });
  assert.equal((running.status as { phase: string }).phase, 'Running');
  assert.equal((running.spec as { nodeName: string }).nodeName, 'n1');
  const relabeled = await api.replace('pods', { ...running, metadata: { ...running.metadata, labels: { v: '2' } }, status: { phase: 'Failed' } });
  assert.equal((relabeled.status as { phase: string }).phase, 'Running');
  assert.deepEqual(relabeled.metadata!.labels, { v: '2' });
  assert.equal(relabeled.metadata!.uid, created.metadata!.uid);
  assert.ok(Number(relabeled.metadata!.resourceVersion) > Number(running.metadata!.resourceVersion));

  // A stale resourceVersion is a Conflict; none at all is an unconditional update.
  await assert.rejects(api.replace('pods', { ...running, metadata: { ...running.metadata, labels: { v: '3' } } }), (e: ApiError) => e.code === 409 && e.reason === 'Conflict');
  // Nothing changed: same resourceVersion, no event.
  const same = await api.replace('pods', relabeled);
  assert.equal(same.metadata!.resourceVersion, relabeled.metadata!.resourceVersion);

  const patched = await api.patch('pods', 'default', 'p', { metadata: { labels: { v: null, w: '1' } } });
  assert.deepEqual(patched.metadata!.labels, { w: '1' });
  const statusPatched = await api.patch('pods', 'default', 'p', { status: { podIP: '10.81.1.6' } }, 'status');
  assert.equal((statusPatched.status as { podIP: string }).podIP, '10.81.1.6');
  assert.equal((statusPatched.status as { phase: string }).phase, 'Running');

  await assert.rejects(api.delete('pods', 'default', 'p', { uid: 'not-the-uid' }), (e: ApiError) => e.code === 409);
  const gone = await api.delete('pods', 'default', 'p');
  assert.equal(gone.metadata!.name, 'p');
  await assert.rejects(api.get('pods', 'default', 'p'), (e: ApiError) => e.code === 404 && e.reason === 'NotFound');
  assert.equal(await api.find('pods', 'default', 'p'), undefined);

  // Services get a ClusterIP; EndpointSlices need an addressType.
  const svc = await api.create('services', { metadata: { name: 'web', namespace: 'default' }, spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] } });
  assert.match((svc.spec as { clusterIP: string }).clusterIP, /^10\.96\.\d+\.\d+$/);
  assert.equal((svc.spec as { ports: { protocol: string }[] }).ports[0]!.protocol, 'TCP');
  await assert.rejects(api.create('endpointslices', { metadata: { name: 'web-abc', namespace: 'default' } }), (e: ApiError) => e.code === 422);
});

test('QoS class of a created pod follows its containers\' requests and limits', () => {
  assert.equal(podQosClass({ containers: [{}] }), 'BestEffort');
  assert.equal(podQosClass({ containers: [{ resources: { requests: { cpu: '10m' } } }] }), 'Burstable');
  assert.equal(podQosClass({ containers: [{ resources: { limits: { cpu: '100m', memory: '64Mi' } } }] }), 'Guaranteed');
  assert.equal(podQosClass({ containers: [{ resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: { cpu: '100m', memory: '64Mi' } } }] }), 'Burstable');
});

test('watch: events after a resourceVersion, selector transitions as ADDED/DELETED, initial ADDED without a version', async (t) => {
  const { dir, api } = await startServer(t);
  const sock = join(dir, 'api.sock');
  const p1 = await api.create('pods', pod('p1', 'node-a', { app: 'web' }));
  const from = p1.metadata!.resourceVersion as string;
  await api.create('pods', pod('p2', 'node-b', { app: 'web' }));
  await api.patch('pods', 'default', 'p1', { status: { phase: 'Running' } }, 'status');

  // Everything after `from`, in order, with the selector applied.
  const w = await openWatch(sock, `/api/v1/pods?watch=true&resourceVersion=${from}&fieldSelector=spec.nodeName%3Dnode-a`);
  t.after(() => w.close());
  const mod = await w.next((e) => e.type === 'MODIFIED', 'MODIFIED p1');
  assert.equal(mod.object.metadata!.name, 'p1');
  assert.equal(mod.object.kind, 'Pod');
  assert.equal(w.events.filter((e) => e.object.metadata?.name === 'p2').length, 0);

  // A label selector watch: an object that stops matching leaves as DELETED (previous
  // state, new version), one that starts matching arrives as ADDED.
  const lw = await openWatch(sock, '/api/v1/namespaces/default/pods?watch=1&labelSelector=app%3Dweb');
  t.after(() => lw.close());
  await lw.next((e) => e.type === 'ADDED' && e.object.metadata!.name === 'p2', 'initial ADDED p2');
  assert.deepEqual(lw.events.map((e) => `${e.type} ${e.object.metadata!.name}`).sort(), ['ADDED p1', 'ADDED p2']);
  const moved = await api.patch('pods', 'default', 'p2', { metadata: { labels: { app: 'db' } } });
  const del = await lw.next((e) => e.type === 'DELETED', 'DELETED p2 (stopped matching)');
  assert.equal(del.object.metadata!.name, 'p2');
  assert.deepEqual(del.object.metadata!.labels, { app: 'web' });
  assert.equal(del.object.metadata!.resourceVersion, moved.metadata!.resourceVersion);
  await api.patch('pods', 'default', 'p2', { metadata: { labels: { app: 'web' } } });
  await lw.next((e) => e.type === 'ADDED' && e.object.metadata!.labels?.app === 'web' && e.object.metadata!.name === 'p2' && Number(e.object.metadata!.resourceVersion) > Number(moved.metadata!.resourceVersion), 'ADDED p2 (matches again)');

  await api.delete('pods', 'default', 'p1');
  const d1 = await w.next((e) => e.type === 'DELETED', 'DELETED p1');
  assert.equal(d1.object.metadata!.name, 'p1');
  assert.deepEqual(w.events.map((e) => e.type), ['MODIFIED', 'DELETED']);

  // A field selector on a changing field: Pending → Running enters (ADDED), Running →
  // Succeeded leaves (DELETED, carrying the last matching state).
  const fw = await openWatch(sock, `/api/v1/pods?watch=true&resourceVersion=${moved.metadata!.resourceVersion}&fieldSelector=status.phase%3DRunning`);
  t.after(() => fw.close());
  await api.create('pods', pod('p3', 'node-a'));
  await api.patch('pods', 'default', 'p3', { status: { phase: 'Running' } }, 'status');
  const added = await fw.next((e) => e.object.metadata!.name === 'p3', 'p3 entering Running');
  assert.equal(added.type, 'ADDED');
  await api.patch('pods', 'default', 'p3', { status: { phase: 'Succeeded' } }, 'status');
  const left = await fw.next((e) => e.object.metadata!.name === 'p3' && e.type === 'DELETED', 'p3 leaving Running');
  assert.equal((left.object.status as { phase: string }).phase, 'Running');
  // p1 was Running when it was deleted (after the watch's version): that counts too.
  assert.deepEqual(fw.events.map((e) => `${e.type} ${e.object.metadata!.name}`), ['DELETED p1', 'ADDED p3', 'DELETED p3']);

  // The deprecated /watch/ path, one object.
  const one = await openWatch(sock, `/api/v1/watch/namespaces/default/pods/p3?resourceVersion=${moved.metadata!.resourceVersion}`);
  t.after(() => one.close());
  await one.next((e) => (e.object.status as { phase?: string }).phase === 'Succeeded', 'the /watch/ path to replay p3');
  assert.deepEqual(one.events.map((e) => `${e.type} ${e.object.metadata!.name}`), ['ADDED p3', 'MODIFIED p3', 'MODIFIED p3']);
});

test('watch: BOOKMARK events when allowed, end after timeoutSeconds, 410 Expired in the stream after compaction', async (t) => {
  const { server, dir, api } = await startServer(t, { bookmarkIntervalMs: 100 });
  const sock = join(dir, 'api.sock');
  const p = await api.create('pods', pod('p', 'n'));
  const bw = await openWatch(sock, `/api/v1/pods?watch=true&resourceVersion=${p.metadata!.resourceVersion}&allowWatchBookmarks=true&timeoutSeconds=1`);
  const bm = await bw.next((e) => e.type === 'BOOKMARK', 'a BOOKMARK');
  assert.deepEqual(bm.object, { kind: 'Pod', apiVersion: 'v1', metadata: { resourceVersion: p.metadata!.resourceVersion } });
  const t0 = Date.now();
  await within(bw.ended, 3000, 'the watch to time out');
  assert.ok(Date.now() - t0 < 1500);

  // Without allowWatchBookmarks: none.
  const nb = await openWatch(sock, `/api/v1/pods?watch=true&resourceVersion=${p.metadata!.resourceVersion}&timeoutSeconds=1`);
  await within(nb.ended, 3000, 'the watch to time out');
  assert.equal(nb.events.length, 0);

  const old = Number(p.metadata!.resourceVersion);
  await api.patch('pods', 'default', 'p', { metadata: { labels: { x: '1' } } });
  await api.patch('pods', 'default', 'p', { metadata: { labels: { x: '2' } } });
  // Compacting up to old+1 keeps watches from old+1 working, older ones expire.
  assert.deepEqual(await api.compact(old + 1), { resourceVersion: String(old + 2), oldestResourceVersion: String(old + 1) });
  const ok = await openWatch(sock, `/api/v1/pods?watch=true&resourceVersion=${old + 1}&timeoutSeconds=1`);
  await ok.next((e) => e.type === 'MODIFIED' && e.object.metadata!.labels?.x === '2', 'MODIFIED x=2');
  ok.close();
  const ex = await openWatch(sock, `/api/v1/pods?watch=true&resourceVersion=${old}`);
  assert.equal(ex.code, 200);
  await within(ex.ended, 3000, 'the expired watch to end');
  assert.equal(ex.events.length, 1);
  assert.equal(ex.events[0]!.type, 'ERROR');
  assert.deepEqual({ ...ex.events[0]!.object, message: undefined }, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', reason: 'Expired', code: 410, message: undefined });
  // The history limit compacts by itself.
  const small = await startServer(t, { historyLimit: 2 });
  const q = await small.api.create('pods', pod('q', 'n'));
  for (let i = 0; i < 3; i++) await small.api.patch('pods', 'default', 'q', { metadata: { labels: { i: String(i) } } });
  const ex2 = await openWatch(join(small.dir, 'api.sock'), `/api/v1/pods?watch=true&resourceVersion=${q.metadata!.resourceVersion}`);
  await within(ex2.ended, 3000, 'the expired watch to end');
  assert.equal((ex2.events[0]!.object as unknown as { code: number }).code, 410);

  // closeWatches ends open streams, cleanly or by resetting the connection.
  const open = await openWatch(sock, '/api/v1/pods?watch=true');
  await until('the watch to register', () => server.openWatches() === 1);
  assert.equal(await api.closeWatches(), 1);
  await within(open.ended, 3000, 'closeWatches to end the stream');
  assert.equal(open.aborted(), false);
  const reset = await openWatch(sock, '/api/v1/pods?watch=true');
  await until('the watch to register', () => server.openWatches() === 1);
  assert.equal(await api.closeWatches({ reset: true }), 1);
  await within(reset.ended, 3000, 'closeWatches to reset the stream');
  assert.equal(reset.aborted(), true);
  const counters = (await api.requests()).counters;
  assert.ok((counters['watch pods'] ?? 0) >= 5, JSON.stringify(counters));
});

test('@kubernetes/client-node ListWatch over HTTPS with a field selector: lists, sees ADDED/MODIFIED/DELETED', async (t) => {
  const { server, api } = await startServer(t);
  const k8s = await import('@kubernetes/client-node');
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(server.kubeconfigPath!);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  await api.create('pods', pod('keep', 'node-1'));
  await api.create('pods', pod('elsewhere', 'node-2'));
  await api.create('pods', pod('vanish', 'node-1'));

  const selector = 'spec.nodeName=node-1';
  const lw = new k8s.ListWatch<K8s.V1Pod>('/api/v1/pods', new k8s.Watch(kc), () => core.listPodForAllNamespaces({ fieldSelector: selector }), false, undefined, selector);
  const seen: string[] = [];
  const errors: unknown[] = [];
  lw.on('add', (p) => seen.push(`add ${p.metadata!.name}`));
  lw.on('update', (p) => seen.push(`update ${p.metadata!.name} ${p.status?.phase}`));
  lw.on('delete', (p) => seen.push(`delete ${p.metadata!.name}`));
  lw.on('error', (e) => errors.push(e));
  t.after(() => lw.stop());
  await lw.start();
  assert.deepEqual(seen.sort(), ['add keep', 'add vanish']);
  await until('the informer to watch', () => server.openWatches() === 1);
  const watchReq = server.requests().find((r) => r.verb === 'watch')!;
  assert.match(watchReq.query, /fieldSelector=spec.nodeName%3Dnode-1/);

  seen.length = 0;
  await api.create('pods', pod('new', 'node-1'));
  await api.patch('pods', 'default', 'keep', { status: { phase: 'Running' } }, 'status');
  await api.delete('pods', 'default', 'new');
  await api.create('pods', pod('other', 'node-2'));
  await until('three events', () => seen.length >= 3);
  assert.deepEqual(seen, ['add new', 'update keep Running', 'delete new']);

  assert.deepEqual(errors, []);
  assert.deepEqual(lw.list().map((p) => p.metadata!.name).sort(), ['keep', 'vanish']);
});

test('@kubernetes/client-node ListWatch re-lists when its watch gets a 410 ERROR event', async (t) => {
  const { server, api } = await startServer(t);
  const k8s = await import('@kubernetes/client-node');
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(server.kubeconfigPath!);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  await api.create('pods', pod('a', 'node-1'));
  await api.create('pods', pod('b', 'node-1'));
  const lw = new k8s.ListWatch<K8s.V1Pod>('/api/v1/pods', new k8s.Watch(kc), () => core.listPodForAllNamespaces(), false);
  const seen: string[] = [];
  lw.on('add', (p) => seen.push(`add ${p.metadata!.name}`));
  lw.on('delete', (p) => seen.push(`delete ${p.metadata!.name}`));
  t.after(() => lw.stop());
  await lw.start();
  await until('the informer to watch', () => server.openWatches() === 1);
  // The API server "restarts" (its watches end) and, before the informer is back, two
  // changes happen and the history is compacted: the informer's re-watch from its last
  // version gets 410 in the stream, so it forgets the version and re-lists; what
  // vanished meanwhile is reported as deleted. (All in one tick: the closed watch
  // cannot see the writes.)
  const rvBefore = lw.latestResourceVersion();
  server.closeWatches();
  server.store.delete('pods', 'default', 'a');
  server.store.create('pods', undefined, pod('c', 'node-1'));
  server.store.compact();
  await until('the re-list to report a deleted and c added', () => seen.includes('delete a') && seen.includes('add c'));
  const watches = server.requests().filter((r) => r.verb === 'watch');
  assert.ok(watches.some((r) => r.query.includes(`resourceVersion=${rvBefore}`)), 'the informer re-watched from its version first');
  assert.equal(server.counters()['list pods'], 2);
  assert.deepEqual(lw.list().map((p) => p.metadata!.name).sort(), ['b', 'c']);
});

test('CLI: --help, flag errors, ready line, kubeconfig, clean exit on SIGTERM', async (t) => {
  assert.equal(parseArgs(['--help']), 'help');
  assert.throws(() => parseArgs(['--listen']), /needs a value/);
  assert.throws(() => parseArgs(['--bogus']), /unknown flag/);
  assert.throws(() => parseArgs([]), /--listen/);
  assert.deepEqual(parseArgs(['--listen=127.0.0.1:0', '--dir', '/x', '--admin-socket', '/y', '--history', '5']), { listen: '127.0.0.1:0', dir: '/x', socketPath: '/y', historyLimit: 5 });

  const dir = tempDir(t);
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'test/lib/fake-apiserver.ts'), '--listen', '127.0.0.1:0', '--dir', dir, '--admin-socket', join(dir, 'a.sock')], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  const line = await within(new Promise<string>((resolve) => createInterface(child.stdout!).once('line', resolve)), 20_000, 'the ready line');
  const ready = JSON.parse(line) as { ready: boolean; url: string; kubeconfig: string; adminSocket: string; pid: number };
  assert.equal(ready.ready, true);
  assert.match(ready.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  assert.equal(ready.kubeconfig, join(dir, 'kubeconfig'));
  const k8s = await import('@kubernetes/client-node');
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(ready.kubeconfig);
  const nss = await kc.makeApiClient(k8s.CoreV1Api).listNamespace();
  assert.deepEqual(nss.items.map((n) => n.metadata!.name).sort(), ['default', 'kube-node-lease', 'kube-public', 'kube-system']);
  const n = await apiClient(ready.adminSocket).create('nodes', { metadata: { name: 'n1' } });
  assert.equal(n.kind, 'Node');
  child.kill('SIGTERM');
  const [code] = await once(child, 'exit');
  assert.equal(code, 0);
});
