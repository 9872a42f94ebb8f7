// KubernetesDiscovery against a fake API server: a node:http server that serves the
// list responses and watch streams in test/unit/fixtures/k8s/, reached through a real
// kubeconfig file. Covers the initial list, watch events, a 410 Gone (re-list), a dropped
// watch connection (re-watch from the last resourceVersion, after a backoff) and a watch
// refused with HTTP 410.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubernetesDiscovery } from '../../agent/discovery/kubernetes';
import Ajv from 'ajv';
import { workloadName, type DiscoveredObjects } from '../../agent/discovery/kubernetes-objects';
import { kindSchemas } from '../../agent/policy/kinds';
import { packageRoot } from '../../agent/lib/paths';
import { SourceWithDiscovery } from '../../agent/control/sources/with-discovery';
import { DirectorySource } from '../../agent/control/sources/directory';
import { policyCompiler } from '../../agent/control/policy-adapter';
import { componentLogger } from '../../agent/telemetry/logger';

const FIXTURES = join(__dirname, 'fixtures', 'k8s');
const fixture = (name: string): string => readFileSync(join(FIXTURES, name), 'utf8');
const TOKEN = 'fake-bearer-token-for-tests';
const PATHS = { services: '/api/v1/services', endpointslices: '/apis/discovery.k8s.io/v1/endpointslices', pods: '/api/v1/pods', nodes: '/api/v1/nodes' } as const;
type Resource = keyof typeof PATHS;

interface WatchRequest { resource: Resource; resourceVersion: string; fieldSelector: string | null; res: ServerResponse }

/** The API server's field selector, for the one field discovery uses. */
function selectByNode(listJson: string, fieldSelector: string | null): string {
  if (!fieldSelector) return listJson;
  const m = /^spec\.nodeName=(.+)$/.exec(fieldSelector);
  assert.ok(m, `unsupported field selector ${fieldSelector}`);
  const list = JSON.parse(listJson) as { items: { spec?: { nodeName?: string } }[] };
  return JSON.stringify({ ...list, items: list.items.filter((i) => i.spec?.nodeName === m[1]) });
}

/** Just enough of the API server: lists, and watches held open until the test acts. */
class FakeApiServer {
  readonly lists: Record<Resource, string> = { services: fixture('services.json'), endpointslices: fixture('endpointslices.json'), pods: fixture('pods.json'), nodes: fixture('nodes.json') };
  readonly listCalls: Record<Resource, number> = { services: 0, endpointslices: 0, pods: 0, nodes: 0 };
  readonly watches: WatchRequest[] = [];
  readonly authHeaders = new Set<string>();
  /** Lists of pods answered with HTTP 500 before the API server "recovers". */
  failPodLists = 0;
  /** Emits the resource name on every list request. */
  readonly listed = new EventEmitter();
  /** When set, the next watch of that resource is refused with HTTP 410. */
  readonly refuseNextWatch = new Set<Resource>();
  private readonly sockets = new Set<Socket>();
  private waiters: { pred: (w: WatchRequest) => boolean; resolve: (w: WatchRequest) => void }[] = [];
  private readonly server = createServer((req, res) => this.handle(req, res));

  async listen(): Promise<string> {
    this.server.on('connection', (s: Socket) => { this.sockets.add(s); s.on('close', () => this.sockets.delete(s)); });
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  close(): void {
    for (const s of this.sockets) s.destroy();
    this.server.close();
  }

  /** The open watch of a resource (the latest one). */
  watch(resource: Resource): WatchRequest {
    const w = this.watches.filter((x) => x.resource === resource && !x.res.writableEnded && !x.res.destroyed).at(-1);
    assert.ok(w, `no open watch for ${resource}`);
    return w;
  }

  /** Resolves with the first watch request after now that matches. */
  nextWatch(resource: Resource): Promise<WatchRequest> {
    return new Promise((resolve) => this.waiters.push({ pred: (w) => w.resource === resource, resolve }));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    this.authHeaders.add(String(req.headers.authorization));
    const resource = (Object.keys(PATHS) as Resource[]).find((r) => PATHS[r] === url.pathname);
    if (!resource) { res.writeHead(404, { 'content-type': 'application/json' }).end('{"kind":"Status","code":404}'); return; }
    if (url.searchParams.get('watch') !== 'true') {
      this.listCalls[resource]++;
      this.listed.emit(resource);
      if (resource === 'pods' && this.failPodLists > 0) {
        this.failPodLists--;
        res.writeHead(500, { 'content-type': 'application/json' }).end('{"kind":"Status","code":500,"message":"etcdserver: request timed out"}');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(selectByNode(this.lists[resource], url.searchParams.get('fieldSelector')));
      return;
    }
    if (this.refuseNextWatch.delete(resource)) {
      res.writeHead(410, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', message: 'too old resource version', reason: 'Expired', code: 410 }));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    const w: WatchRequest = { resource, resourceVersion: url.searchParams.get('resourceVersion') ?? '', fieldSelector: url.searchParams.get('fieldSelector'), res };
    this.watches.push(w);
    const hit = this.waiters.filter((x) => x.pred(w));
    this.waiters = this.waiters.filter((x) => !x.pred(w));
    for (const x of hit) x.resolve(w);
  }
}

/** A kubeconfig file for the fake server (plain http needs insecure-skip-tls-verify). */
function writeKubeconfig(dir: string, server: string): string {
  const path = join(dir, 'kubeconfig');
  writeFileSync(path, [
    'apiVersion: v1', 'kind: Config', 'current-context: fake',
    'clusters:', `- name: fake`, `  cluster: {server: "${server}", insecure-skip-tls-verify: true}`,
    'users:', '- name: tester', `  user: {token: ${TOKEN}}`,
    'contexts:', '- name: fake', '  context: {cluster: fake, user: tester}', '',
  ].join('\n'));
  return path;
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms); }),
  ]);
}

function nextChange(d: KubernetesDiscovery): Promise<DiscoveredObjects> {
  return within(once(d, 'change').then(([o]) => o as DiscoveredObjects), 10_000, 'a change event');
}

/** What discovery emits must pass the same schema as policy files, or the control API
 *  would reject the whole snapshot. */
const ajv = new Ajv({ allErrors: true, strict: false });
const validService = ajv.compile(kindSchemas.Service.schema);
const validWorkload = ajv.compile(kindSchemas.Workload.schema);
function assertSchemaValid(o: DiscoveredObjects): void {
  for (const s of o.services) assert.ok(validService(s), `${s.metadata.name}: ${ajv.errorsText(validService.errors)}`);
  for (const w of o.workloads) assert.ok(validWorkload(w), `${w.metadata.name}: ${ajv.errorsText(validWorkload.errors)}`);
}

const byName = (o: DiscoveredObjects): Record<string, DiscoveredObjects['workloads'][number]> =>
  Object.fromEntries(o.workloads.map((w) => [`${w.metadata.namespace}/${w.metadata.name}`, w]));

test('Kubernetes discovery: list, watch, 410 Gone, dropped connection', async (t) => {
  const api = new FakeApiServer();
  const server = await api.listen();
  const dir = mkdtempSync(join(tmpdir(), `wt-k8s-${process.pid}-`));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  t.after(() => api.close());

  const kubeconfig = writeKubeconfig(dir, server);
  // node-1's cgroup tree: only catalog-v1 (Burstable, systemd driver) has a cgroup yet.
  const cgroupRoot = join(dir, 'cgroup');
  const catalogCg = join(cgroupRoot, 'kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod3f2a1b0c_9d8e_4f7a_8b6c_5d4e3f2a1b01.slice');
  mkdirSync(catalogCg, { recursive: true });

  const d = new KubernetesDiscovery({ kubeconfig, node: { name: 'node-1', cgroupRoot }, debounceMs: 150, backoff: { initialMs: 50, maxMs: 200 } });
  t.after(() => d.stop());
  await within(d.start(), 10_000, 'the initial sync');
  assert.deepEqual([...api.authHeaders], [`Bearer ${TOKEN}`], 'the kubeconfig token is sent');

  // --- initial list
  const first = d.objects();
  assertSchemaValid(first);
  assert.deepEqual(first.services, [
    {
      apiVersion: 'weft.dev/v1alpha1', kind: 'Service',
      metadata: { name: 'kube-dns', namespace: 'kube-system', labels: { 'k8s-app': 'kube-dns', 'kubernetes.io/name': 'CoreDNS' } },
      spec: {
        vip: '10.96.0.10', selector: { 'k8s-app': 'kube-dns', 'weft.dev/ready': 'true' },
        ports: [
          // (port, protocol) is the key, as in Kubernetes: 53 over UDP and over TCP
          { name: 'dns', port: 53, targetPort: 53, protocol: 'UDP' },
          { name: 'dns-tcp', port: 53, targetPort: 53, protocol: 'TCP' },
          { name: 'metrics', port: 9153, targetPort: 9153, protocol: 'TCP' },
        ],
      },
    },
    {
      apiVersion: 'weft.dev/v1alpha1', kind: 'Service',
      metadata: { name: 'catalog', namespace: 'shop', labels: { app: 'catalog' } },
      // named targetPort "http": resolved per workload (each declares its own number)
      spec: { vip: '10.96.0.20', selector: { app: 'catalog', 'weft.dev/ready': 'true' }, ports: [{ name: 'http', port: 80, targetPort: 'http', protocol: 'HTTP' }] },
    },
    {
      apiVersion: 'weft.dev/v1alpha1', kind: 'Service',
      metadata: { name: 'catalog-headless', namespace: 'shop' },
      // clusterIP None: recorded without a VIP
      spec: { headless: true, selector: { app: 'catalog', 'weft.dev/ready': 'true' }, ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'HTTP' }] },
    },
    {
      apiVersion: 'weft.dev/v1alpha1', kind: 'Service',
      metadata: { name: 'frontend', namespace: 'shop', labels: { app: 'frontend' } },
      spec: { vip: '10.96.0.30', selector: { app: 'frontend', 'weft.dev/ready': 'true' }, ports: [{ name: 'http-web', port: 80, targetPort: 8080, protocol: 'HTTP' }] },
    },
    {
      apiVersion: 'weft.dev/v1alpha1', kind: 'Service',
      metadata: { name: 'payments', namespace: 'shop', labels: { app: 'payments' } },
      spec: { vip: '10.96.0.40', selector: { app: 'payments' }, ports: [{ name: 'api', port: 9090, targetPort: 9090, protocol: 'GRPC' }] },
    },
  ]);
  const w1 = byName(first);
  const netshoot = `default/${workloadName('netshoot.debug')}`;
  assert.match(netshoot, /^default\/netshoot-debug-[0-9a-f]{8}$/);
  assert.deepEqual(Object.keys(w1), [
    netshoot,
    'shop/catalog-v1-7d9f8b6c5d-4xq2m', 'shop/catalog-v2-5c8b7a6d4f-h9w3z', 'shop/frontend-6b7c8d9e0f-abcde', 'shop/payments-0',
    'weft-system/weft-agent-q8r7s', // hostNetwork: a plaintext workload at the node's address
  ]);
  assert.deepEqual(w1['weft-system/weft-agent-q8r7s']!.spec, { address: '192.168.56.11', node: 'node-1', serviceAccount: 'weft-agent', hostNetwork: true });
  assert.equal(w1['weft-system/weft-agent-q8r7s']!.metadata.annotations?.['weft.dev/cgroup-id'], undefined, 'no mesh cgroup for a hostNetwork pod');
  // Nodes: InternalIP (before an ExternalIP listed first), the zone label, dotted EKS names.
  assert.deepEqual(first.nodes.map((n) => [n.metadata.name, n.spec]), [
    ['ip-10-0-1-2.ec2.internal', { address: '10.0.1.2', zone: 'us-east-1a' }],
    ['node-1', { address: '192.168.56.11', zone: 'eu-west-1a' }],
    ['node-2', { address: '192.168.56.12', zone: 'eu-west-1b' }],
  ]);
  assert.deepEqual(w1['shop/catalog-v1-7d9f8b6c5d-4xq2m'], {
    apiVersion: 'weft.dev/v1alpha1', kind: 'Workload',
    metadata: {
      name: 'catalog-v1-7d9f8b6c5d-4xq2m', namespace: 'shop',
      labels: { app: 'catalog', version: 'v1', 'pod-template-hash': '7d9f8b6c5d', 'weft.dev/ready': 'true' },
      annotations: {
        'weft.dev/pod-uid': '3f2a1b0c-9d8e-4f7a-8b6c-5d4e3f2a1b01', 'weft.dev/pod-name': 'catalog-v1-7d9f8b6c5d-4xq2m',
        'weft.dev/cgroup-id': statSync(catalogCg, { bigint: true }).ino.toString(),
      },
    },
    spec: { address: '10.244.1.11', node: 'node-1', serviceAccount: 'catalog', ports: [{ name: 'http', port: 8080 }] },
  });
  const v2 = w1['shop/catalog-v2-5c8b7a6d4f-h9w3z']!;
  assert.equal(v2.metadata.labels?.['weft.dev/ready'], undefined, 'a not-ready pod is a workload but not a backend');
  assert.equal(v2.metadata.annotations?.['weft.dev/cgroup-id'], undefined, 'cgroups are resolved only for this node');
  assert.equal(w1['shop/frontend-6b7c8d9e0f-abcde']!.metadata.annotations?.['weft.dev/cgroup-id'], undefined, 'no cgroup directory yet');
  assert.equal(w1['shop/payments-0']!.spec.serviceAccount, 'payments');
  assert.equal(w1[netshoot]!.metadata.annotations?.['weft.dev/pod-name'], 'netshoot.debug');
  for (const r of ['services', 'endpointslices', 'pods', 'nodes'] as const) {
    assert.equal(api.listCalls[r], 1, `${r} listed once`);
    assert.equal(api.watch(r).resourceVersion, '1041', `${r} watched from the list's resourceVersion`);
  }

  // --- watch events: three in one write are reported as one debounced change
  let changes = 0;
  const count = (): void => { changes++; };
  d.on('change', count);
  let change = nextChange(d);
  api.watch('pods').res.write(fixture('pods-watch.ndjson'));
  const secondObjects = await change;
  assertSchemaValid(secondObjects);
  const second = byName(secondObjects);
  assert.equal(changes, 1);
  assert.equal(second['shop/catalog-v1-7d9f8b6c5d-4xq2m'], undefined, 'DELETED removes the workload');
  assert.equal(second['shop/catalog-v2-5c8b7a6d4f-h9w3z']!.metadata.labels?.['weft.dev/ready'], 'true', 'MODIFIED updates it');
  assert.deepEqual(second['shop/frontend-6b7c8d9e0f-fghij']?.spec, { address: '10.244.2.16', node: 'node-2', serviceAccount: 'frontend', ports: [{ name: 'http', port: 8080 }] }, 'ADDED adds it');

  // --- 410 Gone inside the stream: the client re-lists and watches from the new version
  api.lists.pods = fixture('pods-relist.json');
  change = nextChange(d);
  let rewatch = api.nextWatch('pods');
  const gone = api.watch('pods');
  gone.res.end(JSON.stringify({ type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'too old resource version: 1052 (1990)', reason: 'Expired', code: 410 } }) + '\n');
  assert.equal((await within(rewatch, 10_000, 'a re-watch after 410')).resourceVersion, '2000');
  assert.equal(api.listCalls.pods, 2, 're-listed after 410');
  const third = byName(await change);
  assert.equal(third[netshoot], undefined, 'deleted while the watch was down');
  assert.equal(third['shop/payments-0']!.metadata.labels?.['weft.dev/ready'], 'true');

  // --- dropped connection: re-watch from the last version, no re-list
  rewatch = api.nextWatch('pods');
  const dropped = Date.now();
  api.watch('pods').res.socket?.destroy();
  const again = await within(rewatch, 10_000, 'a re-watch after a dropped connection');
  assert.equal(again.resourceVersion, '2000');
  assert.equal(api.listCalls.pods, 2, 'a dropped watch resumes without re-listing');
  assert.ok(Date.now() - dropped >= 20, 'the re-watch waits for the backoff');
  change = nextChange(d);
  again.res.write(fixture('pods-watch-2.ndjson'));
  assert.equal(byName(await change)['shop/frontend-6b7c8d9e0f-abcde']!.metadata.labels?.version, 'v2', 'events on the new watch apply');

  // --- a watch refused with HTTP 410: re-list, then watch again
  api.refuseNextWatch.add('pods');
  const afterRefusal = new Promise<WatchRequest>((resolve) => {
    // the first new watch is refused (never recorded); the one after the re-list is kept
    void api.nextWatch('pods').then(resolve);
  });
  api.watch('pods').res.socket?.destroy();
  await within(afterRefusal, 10_000, 'a watch after the refused one');
  assert.equal(api.listCalls.pods, 3, 're-listed after the watch was refused with 410');
  d.off('change', count);
});

test('Kubernetes discovery: an agent with localPodsOnly lists and watches only its node\'s pods', async (t) => {
  const api = new FakeApiServer();
  const server = await api.listen();
  const dir = mkdtempSync(join(tmpdir(), `wt-k8s-${process.pid}-`));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  t.after(() => api.close());
  const d = new KubernetesDiscovery({ kubeconfig: writeKubeconfig(dir, server), node: { name: 'node-2', cgroupRoot: join(dir, 'none'), localPodsOnly: true } });
  t.after(() => d.stop());
  await within(d.start(), 10_000, 'the initial sync');
  assert.equal(api.watch('pods').fieldSelector, 'spec.nodeName=node-2');
  assert.equal(api.watch('services').fieldSelector, null, 'Services are still cluster-wide');
  assert.deepEqual(d.objects().workloads.map((w) => w.spec.node), ['node-2', 'node-2', 'node-2']);
  assert.equal(d.objects().services.length, 5);
  assert.equal(api.listCalls.nodes, 0, 'an agent gets node addresses from the control API, not by watching Nodes');
  assert.deepEqual(d.objects().nodes, []);
});

test('Kubernetes discovery: failed lists are retried with backoff; stop() ends a start() that cannot sync', async (t) => {
  const api = new FakeApiServer();
  api.failPodLists = 2;
  const server = await api.listen();
  const dir = mkdtempSync(join(tmpdir(), `wt-k8s-${process.pid}-`));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  t.after(() => api.close());
  const d = new KubernetesDiscovery({ kubeconfig: writeKubeconfig(dir, server), backoff: { initialMs: 20, maxMs: 100 } });
  t.after(() => d.stop());
  await within(d.start(), 10_000, 'the initial sync after two failed lists');
  assert.equal(api.listCalls.pods, 3);
  assert.equal(d.objects().workloads.length, 6);

  // An API server that never lists pods: start() keeps retrying until stop().
  const broken = new FakeApiServer();
  broken.failPodLists = Infinity;
  const d2 = new KubernetesDiscovery({ kubeconfig: writeKubeconfig(mkdtempSync(join(dir, 'broken-')), await broken.listen()), backoff: { initialMs: 20, maxMs: 100 } });
  t.after(() => broken.close());
  let settled = false;
  const starting = d2.start().finally(() => { settled = true; });
  await within(new Promise<void>((resolve) => broken.listed.on('pods', () => { if (broken.listCalls.pods >= 3) resolve(); })), 10_000, 'three pod list attempts');
  assert.equal(settled, false, 'start() waits for a sync that has not happened');
  await d2.stop();
  await assert.rejects(starting, (e: Error & { code?: string }) => e.code === 'WEFT_ERR_UNAVAILABLE');
});

test('Kubernetes discovery: the compiled dist/ module loads the ESM client through a real import()', async (t) => {
  // TypeScript must keep `await import()` in the CommonJS output (module node16) of the
  // shared informer (informer.ts loads the client for every watcher); a
  // require() there would fail at runtime with ERR_REQUIRE_ESM, which tsx would not show.
  const compiled = join(packageRoot(), 'dist', 'agent', 'discovery', 'kubernetes.js');
  const loader = join(packageRoot(), 'dist', 'agent', 'discovery', 'informer.js');
  if (!existsSync(compiled)) {
    assert.notEqual(process.env.CI, 'true', `${compiled} missing: npm test builds it before running tests`);
    t.skip('no dist/ build (npm run build:ts)');
    return;
  }
  assert.match(readFileSync(loader, 'utf8'), /await import\('@kubernetes\/client-node'\)/);
  const api = new FakeApiServer();
  const server = await api.listen();
  const dir = mkdtempSync(join(tmpdir(), `wt-k8s-${process.pid}-`));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  t.after(() => api.close());
  const mod = require(compiled) as typeof import('../../agent/discovery/kubernetes');
  const d = new mod.KubernetesDiscovery({ kubeconfig: writeKubeconfig(dir, server) });
  t.after(() => d.stop());
  await within(d.start(), 10_000, 'the initial sync (compiled module)');
  assert.equal(d.objects().services.length, 5);
  assert.equal(d.objects().nodes.length, 3);
});

test('Kubernetes discovery: an unusable kubeconfig is rejected', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), `wt-k8s-${process.pid}-`));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(kubeconfig, 'apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n');
  const d = new KubernetesDiscovery({ kubeconfig });
  await assert.rejects(d.start(), (e: Error & { code?: string }) => e.code === 'WEFT_ERR_INVALID_ARG');
  await d.stop();
});

test('weft control with --kubernetes: discovered Services join the policy files in one validated, compiled set', async (t) => {
  const api = new FakeApiServer();
  const server = await api.listen();
  const dir = mkdtempSync(join(tmpdir(), `wt-k8s-${process.pid}-`));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  t.after(() => api.close());
  const policies = join(dir, 'policies');
  mkdirSync(policies);
  // A route in git that names a Service only the cluster knows about.
  writeFileSync(join(policies, 'routes.yaml'), [
    'apiVersion: weft.dev/v1alpha1', 'kind: HTTPRoute', 'metadata: {name: catalog, namespace: shop}', 'spec:',
    '  parentRefs: [{name: catalog, port: 80}]', '  rules:', '    - backendRefs: [{name: catalog, port: 80}]', '',
  ].join('\n'));
  const discovery = new KubernetesDiscovery({ kubeconfig: writeKubeconfig(dir, server), debounceMs: 50, backoff: { initialMs: 50, maxMs: 200 } });
  const source = new SourceWithDiscovery(new DirectorySource(policies, componentLogger('test'), { rescanMs: 60_000 }), discovery);
  const compiler = policyCompiler(() => source.documents());
  const trees: string[] = [];
  const compiled: string[][] = [];
  await within(source.start(async (tree) => {
    trees.push(tree.root);
    const { objects, diagnostics } = await compiler.load(tree);
    assert.deepEqual(diagnostics, []);
    compiled.push(compiler.compile(objects, [], {}).services.map((s) => s.key));
  }), 10_000, 'the first tree');
  t.after(() => source.stop());
  assert.match(source.description, /\+ Kubernetes discovery$/);
  assert.ok(compiled[0]!.includes('shop/catalog'), `discovered services in the snapshot: ${compiled[0]}`);
  const snapshot = compiled[0]!;
  // A watch event (a new pod) makes the source hand the tree over again.
  const before = trees.length;
  api.watch('pods').res.write(fixture('pods-watch.ndjson'));
  for (let i = 0; i < 100 && trees.length === before; i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(trees.length > before, 'a discovery change triggers a recompile');
  assert.deepEqual(compiled.at(-1), snapshot, 'same services after a pod change');
});
