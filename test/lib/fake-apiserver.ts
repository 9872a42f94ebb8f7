// A fake kube-apiserver for tests: the real API's URL space, object shapes, list/watch
// semantics and error Status objects for Namespaces, Nodes, Pods, Services
// (core/v1) and EndpointSlices (discovery.k8s.io/v1), over the storage in k8s-store.ts.
//
// Listeners:
// - HTTPS on `listen` (self-signed CA + serving certificate made at start, SANs include
//   the listen IP), Bearer token required except for /healthz, /livez, /readyz, /version;
//   `dir` receives ca.crt, token and a kubeconfig for it.
// - The same handlers as plain HTTP on a unix socket (`socketPath`), no token: the test's
//   admin channel into a server that runs inside a network namespace. Only the socket
//   also serves the test controls under /_fake/ (compact, close-watches, requests).
//
// As a program (to run inside a network namespace):
//   node --import tsx test/lib/fake-apiserver.ts --listen 10.80.0.2:6443 --dir DIR --admin-socket PATH
// prints one JSON line {"ready":true,...} on stdout and exits 0 on SIGTERM.
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { once } from 'node:events';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { isIP, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { API_GROUPS, RESOURCES, apiVersionOf, type ResourceType } from './k8s-resources';
import { ApiError, Store, type KObject, type WatchEvent } from './k8s-store';
import { createServingCertificates } from './serving-certs';
import { ServiceAccountTokens } from './k8s-tokens';

export { apiClient, type ApiClient } from './k8s-client';
export { ApiError, podQosClass, type KObject, type WatchEvent } from './k8s-store';

export interface FakeApiServerOptions {
  /** HTTPS listener, "IP:PORT" (port 0: any). */
  listen?: string;
  /** Writes ca.crt, token and kubeconfig here (created if missing). */
  dir?: string;
  /** Plain HTTP, no token, plus the /_fake/ test controls. */
  socketPath?: string;
  /** Default: 32 random bytes, hex. */
  token?: string;
  /** Changes kept for watches to resume from (default 1000). */
  historyLimit?: number;
  /** BOOKMARK period for watches that allow them (default 5000 ms). */
  bookmarkIntervalMs?: number;
  /** Watches without timeoutSeconds end after this (default 300 s). */
  watchTimeoutSeconds?: number;
  /** Extra DNS SANs (always: kubernetes, kubernetes.default, kubernetes.default.svc, localhost). */
  dnsNames?: string[];
  /** Namespaces that exist from the start (default: default, kube-system, kube-public, kube-node-lease). */
  namespaces?: string[];
}

export interface RequestRecord {
  at: number;
  listener: 'https' | 'socket';
  method: string;
  path: string;
  query: string;
  /** Kubernetes audit verb: list, watch, get, create, update, patch, delete (or '' for others). */
  verb: string;
  resource: string;
  subresource?: string;
  namespace?: string;
  name?: string;
  code: number;
  userAgent?: string;
}

interface Route {
  t: ResourceType;
  namespace?: string;
  name?: string;
  subresource?: string;
  legacyWatch: boolean;
}

interface OpenWatch { res: ServerResponse; end: () => void }

const json = (res: ServerResponse, code: number, body: unknown): void => {
  const data = JSON.stringify(body);
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) }).end(data);
};

const MAX_BODY = 3 * 1024 * 1024;

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) { reject(new ApiError(413, 'RequestEntityTooLarge', 'Request entity too large')); req.destroy(); return; }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function parseJson(text: string): unknown {
  try { return JSON.parse(text); } catch (e) {
    throw new ApiError(400, 'BadRequest', `the request body is not valid JSON: ${(e as Error).message}`);
  }
}

/** `/api/v1/...` or `/apis/<group>/v1/...` → the resource it names, if any. */
function route(segments: string[]): Route | undefined {
  let group: string, rest: string[];
  if (segments[0] === 'api' && segments[1] === 'v1') { group = ''; rest = segments.slice(2); }
  else if (segments[0] === 'apis' && segments.length >= 3) { group = segments[1]!; rest = segments.slice(3); if (segments[2] !== 'v1') return undefined; }
  else return undefined;
  let legacyWatch = false;
  if (rest[0] === 'watch') { legacyWatch = true; rest = rest.slice(1); }
  const inGroup = (r: string | undefined) => RESOURCES.find((t) => t.resource === r && t.group === group);
  if (rest[0] === 'namespaces' && rest.length >= 3 && inGroup(rest[2])?.namespaced) {
    if (rest.length > 5) return undefined;
    return { t: inGroup(rest[2])!, namespace: rest[1], name: rest[3], subresource: rest[4], legacyWatch };
  }
  const t = inGroup(rest[0]);
  if (!t || rest.length > 3) return undefined;
  // A namespaced kind without a namespace in the path is only a collection (all namespaces).
  if (t.namespaced && rest.length > 1) return undefined;
  return { t, name: rest[1], subresource: rest[2], legacyWatch };
}

function discovery(segments: string[], serverAddress: string): unknown {
  const p = segments.join('/');
  const resourceList = (groupVersion: string, group: string) => ({
    kind: 'APIResourceList', apiVersion: 'v1', groupVersion,
    resources: RESOURCES.filter((t) => t.group === group).flatMap((t) => [
      { name: t.resource, singularName: t.singular, namespaced: t.namespaced, kind: t.kind, verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'], ...(t.shortNames.length ? { shortNames: t.shortNames } : {}) },
      ...(t.hasStatus ? [{ name: `${t.resource}/status`, singularName: '', namespaced: t.namespaced, kind: t.kind, verbs: ['get', 'patch', 'update'] }] : []),
    ]),
  });
  const groupVersion = (g: string) => ({ groupVersion: `${g}/v1`, version: 'v1' });
  const apiGroup = (g: string) => ({ name: g, versions: [groupVersion(g)], preferredVersion: groupVersion(g) });
  const g = API_GROUPS.find((x) => p === `apis/${x}` || p === `apis/${x}/v1`);
  if (g) return p.endsWith('/v1') ? resourceList(`${g}/v1`, g) : { kind: 'APIGroup', apiVersion: 'v1', ...apiGroup(g) };
  switch (p) {
    case 'api': return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }] };
    case 'api/v1': return resourceList('v1', '');
    case 'apis': return { kind: 'APIGroupList', apiVersion: 'v1', groups: API_GROUPS.map(apiGroup) };
    case 'version': return { major: '1', minor: '30', gitVersion: 'v1.30.0-weft-fake', gitCommit: '0000000000000000000000000000000000000000', gitTreeState: 'clean', buildDate: '2026-01-01T00:00:00Z', goVersion: 'go1.22.0', compiler: 'gc', platform: 'linux/amd64' };
    default: return undefined;
  }
}

export class FakeApiServer {
  readonly store: Store;
  /** TokenRequest and TokenReview (k8s-tokens.ts). */
  readonly tokens: ServiceAccountTokens;
  readonly token: string;
  /** https://IP:PORT once listening (undefined without `listen`). */
  url?: string;
  caPem?: string;
  kubeconfigPath?: string;
  private readonly log: RequestRecord[] = [];
  private readonly watches = new Set<OpenWatch>();
  private readonly servers: Server[] = [];
  private readonly sockets = new Set<Socket>();
  private closed = false;

  private constructor(private readonly opts: FakeApiServerOptions) {
    this.store = new Store({ historyLimit: opts.historyLimit });
    this.tokens = new ServiceAccountTokens(this.store);
    this.token = opts.token ?? randomBytes(32).toString('hex');
    for (const ns of opts.namespaces ?? ['default', 'kube-system', 'kube-public', 'kube-node-lease']) {
      this.store.create('namespaces', undefined, { metadata: { name: ns } });
    }
  }

  static async start(opts: FakeApiServerOptions): Promise<FakeApiServer> {
    const s = new FakeApiServer(opts);
    try {
      await s.listen();
    } catch (e) {
      await s.close();
      throw e;
    }
    return s;
  }

  private async listen(): Promise<void> {
    const { listen, socketPath, dir } = this.opts;
    if (listen) {
      const m = /^(.+):(\d+)$/.exec(listen);
      const host = m?.[1]?.replace(/^\[|\]$/g, '');
      if (!m || !host || !isIP(host)) throw new Error(`--listen wants IP:PORT, got ${JSON.stringify(listen)}`);
      const dnsNames = ['kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local', 'localhost', ...(this.opts.dnsNames ?? [])];
      const ips = [...new Set([host, '127.0.0.1'])].filter((ip) => ip !== '0.0.0.0' && ip !== '::');
      const certs = await createServingCertificates({ ipAddresses: ips, dnsNames });
      this.caPem = certs.caPem;
      const server = createHttpsServer({ cert: certs.certPem, key: certs.keyPem }, (req, res) => { void this.handle(req, res, 'https'); });
      await this.bind(server, () => server.listen(Number(m[2]), host));
      const port = (server.address() as AddressInfo).port;
      this.url = `https://${isIP(host) === 6 ? `[${host}]` : host}:${port}`;
      if (dir) this.writeClientFiles(dir);
    }
    if (socketPath) {
      rmSync(socketPath, { force: true });
      const server = createHttpServer((req, res) => { void this.handle(req, res, 'socket'); });
      await this.bind(server, () => server.listen(socketPath));
    }
  }

  private async bind(server: Server, listen: () => void): Promise<void> {
    server.on('connection', (s: Socket) => { this.sockets.add(s); s.on('close', () => this.sockets.delete(s)); });
    server.on('secureConnection', (s: Socket) => { this.sockets.add(s); s.on('close', () => this.sockets.delete(s)); });
    this.servers.push(server);
    const failed = once(server, 'error');
    listen();
    await Promise.race([once(server, 'listening'), failed.then(([e]) => { throw e; })]);
  }

  /** ca.crt, token and kubeconfig (CA embedded, token inline, current-context set). */
  private writeClientFiles(dir: string): void {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'ca.crt'), this.caPem!);
    writeFileSync(join(dir, 'token'), this.token, { mode: 0o600 });
    this.kubeconfigPath = join(dir, 'kubeconfig');
    writeFileSync(this.kubeconfigPath, kubeconfig(this.url!, this.caPem!, this.token), { mode: 0o600 });
  }

  /** Drops the change history up to `rv` (default: all): older watches get 410 Expired. */
  compact(rv?: number): void {
    this.store.compact(rv);
  }

  /**
   * Ends every open watch stream: cleanly (the terminating chunk, as a server that shuts
   * down gracefully or times a watch out), or with `reset` by destroying the connection
   * (a crashed server or a dropped network; clients see an error, not an end).
   */
  closeWatches(opts: { reset?: boolean } = {}): number {
    const n = this.watches.size;
    for (const w of [...this.watches]) {
      if (opts.reset) w.res.socket?.destroy();
      w.end();
    }
    return n;
  }

  openWatches(): number {
    return this.watches.size;
  }

  requests(): RequestRecord[] {
    return this.log.slice();
  }

  /** Requests per "verb resource" (e.g. "list pods", "watch endpointslices"). */
  counters(): Record<string, number> {
    const c: Record<string, number> = {};
    for (const r of this.log) {
      if (!r.verb) continue;
      const key = `${r.verb} ${r.resource}${r.subresource ? `/${r.subresource}` : ''}`;
      c[key] = (c[key] ?? 0) + 1;
    }
    return c;
  }

  clearRequests(): void {
    this.log.length = 0;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.closeWatches();
    for (const s of this.servers) s.close();
    for (const s of this.sockets) s.destroy();
    await Promise.all(this.servers.filter((s) => s.listening).map((s) => once(s, 'close').catch(() => undefined)));
    if (this.opts.socketPath) rmSync(this.opts.socketPath, { force: true });
  }

  private record(r: Omit<RequestRecord, 'at'>): void {
    this.log.push({ at: Date.now(), ...r });
    if (this.log.length > 20_000) this.log.splice(0, this.log.length - 20_000);
  }

  private async handle(req: IncomingMessage, res: ServerResponse, listener: 'https' | 'socket'): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const method = req.method ?? 'GET';
    let segments: string[];
    try { segments = url.pathname.split('/').filter(Boolean).map(decodeURIComponent); } catch { segments = ['?']; }
    const r = route(segments);
    const base: Omit<RequestRecord, 'at' | 'code' | 'verb'> = {
      listener, method, path: url.pathname, query: url.search, resource: r?.t.resource ?? '',
      ...(r?.subresource ? { subresource: r.subresource } : {}), ...(r?.namespace ? { namespace: r.namespace } : {}), ...(r?.name ? { name: r.name } : {}),
      ...(req.headers['user-agent'] ? { userAgent: req.headers['user-agent'] } : {}),
    };
    let verb = '';
    const fail = (e: unknown): void => {
      const err = e instanceof ApiError ? e : new ApiError(500, 'InternalError', `Internal error occurred: ${(e as Error)?.message ?? String(e)}`);
      this.record({ ...base, verb, code: err.code });
      if (!res.headersSent) json(res, err.code, err.status());
      else res.end();
    };
    try {
      const open = ['healthz', 'livez', 'readyz', 'version'].includes(segments[0] ?? '') && segments.length === 1;
      if (listener === 'https' && !open && req.headers.authorization !== `Bearer ${this.token}`) {
        throw new ApiError(401, 'Unauthorized', 'Unauthorized');
      }
      if (listener === 'socket' && segments[0] === '_fake') { this.control(segments[1], req, res, url); this.record({ ...base, verb, code: res.statusCode }); return; }
      if (!r && this.tokens.handles(segments, method)) {
        verb = 'create';
        const out = this.tokens.serve(segments, parseJson(await readBody(req)));
        json(res, out.code, out.body);
        this.record({ ...base, verb, code: out.code });
        return;
      }
      if (!r) {
        if (method === 'GET' && ['healthz', 'livez', 'readyz'].includes(segments[0] ?? '') && segments.length === 1) {
          res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end('ok');
          this.record({ ...base, verb, code: 200 });
          return;
        }
        const d = method === 'GET' ? discovery(segments, this.url?.replace(/^https:\/\//, '') ?? 'localhost') : undefined;
        if (d) { json(res, 200, d); this.record({ ...base, verb, code: 200 }); return; }
        throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
      }
      const { t, namespace, name, subresource } = r;
      if (subresource !== undefined && (subresource !== 'status' || !t.hasStatus)) throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
      const q = url.searchParams;
      if (method === 'GET' && (name === undefined || (r.legacyWatch && subresource === undefined))) {
        const watch = r.legacyWatch || q.get('watch') === 'true' || q.get('watch') === '1';
        verb = watch ? 'watch' : 'list';
        // /watch/.../{name} (deprecated) watches one object: a metadata.name field selector.
        const byName = name === undefined ? null : `metadata.name=${name}`;
        const fieldSelector = [q.get('fieldSelector'), byName].filter(Boolean).join(',') || null;
        const query = { namespace, labelSelector: q.get('labelSelector'), fieldSelector };
        if (watch) { this.watch(t, { ...query, resourceVersion: q.get('resourceVersion') }, q, req, res, () => this.record({ ...base, verb, code: 200 })); return; }
        const list = this.store.list(t.resource, query);
        // Items of a typed list carry no kind/apiVersion in the real API's JSON.
        const items = list.items.map(({ kind: _k, apiVersion: _a, ...rest }) => rest);
        json(res, 200, { kind: `${t.kind}List`, apiVersion: apiVersionOf(t), metadata: { resourceVersion: list.resourceVersion }, items });
      } else if (method === 'GET') {
        verb = 'get';
        json(res, 200, this.store.get(t.resource, namespace, name!));
      } else if (method === 'POST' && name === undefined) {
        verb = 'create';
        if (t.namespaced && !namespace) throw new ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
        json(res, 201, this.store.create(t.resource, namespace, parseJson(await readBody(req)) as KObject));
      } else if (method === 'PUT' && name !== undefined) {
        verb = 'update';
        json(res, 200, this.store.replace(t.resource, namespace, name, parseJson(await readBody(req)) as KObject, subresource as 'status' | undefined));
      } else if (method === 'PATCH' && name !== undefined) {
        verb = 'patch';
        const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
        if (type !== 'application/merge-patch+json') {
          throw new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/merge-patch+json (this fake server supports only JSON merge patch; got ${JSON.stringify(type)})`);
        }
        json(res, 200, this.store.patch(t.resource, namespace, name, parseJson(await readBody(req)), subresource as 'status' | undefined));
      } else if (method === 'DELETE' && name !== undefined && subresource === undefined) {
        verb = 'delete';
        const text = await readBody(req);
        const opts = text ? parseJson(text) as { preconditions?: { uid?: string; resourceVersion?: string } } : {};
        json(res, 200, this.store.delete(t.resource, namespace, name, opts.preconditions));
      } else {
        throw new ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
      }
      this.record({ ...base, verb, code: res.statusCode });
    } catch (e) {
      fail(e);
    }
  }

  private watch(t: ResourceType, query: Parameters<Store['watch']>[1], q: URLSearchParams, req: IncomingMessage, res: ServerResponse, logged: () => void): void {
    const send = (e: WatchEvent): void => { if (!res.writableEnded) res.write(`${JSON.stringify(e)}\n`); };
    // Selectors and the version's syntax are checked before the stream starts (a 400);
    // an expired version is reported inside the stream, as the real API does.
    let handle: { stop(): void } | undefined;
    let expired: ApiError | undefined;
    const buffered: WatchEvent[] = [];
    let sink = (e: WatchEvent): void => { buffered.push(e); };
    try {
      handle = this.store.watch(t.resource, query, (e) => sink(e));
    } catch (e) {
      if (e instanceof ApiError && e.code === 410) expired = e; else throw e;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-cache, private', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    logged();
    if (expired) {
      send({ type: 'ERROR', object: expired.status() as unknown as KObject });
      res.end();
      return;
    }
    // From here on events go straight to the stream (the initial ones first, in order).
    for (const e of buffered) send(e);
    sink = send;
    const timers: NodeJS.Timeout[] = [];
    const timeoutSeconds = Number(q.get('timeoutSeconds') ?? '') || this.opts.watchTimeoutSeconds || 300;
    const w: OpenWatch = {
      res,
      end: () => {
        if (!this.watches.delete(w)) return;
        handle!.stop();
        for (const x of timers) clearTimeout(x);
        if (!res.writableEnded) res.end();
      },
    };
    this.watches.add(w);
    timers.push(setTimeout(w.end, timeoutSeconds * 1000));
    if (q.get('allowWatchBookmarks') === 'true') {
      const bookmark = (): void => send({ type: 'BOOKMARK', object: { kind: t.kind, apiVersion: apiVersionOf(t), metadata: { resourceVersion: this.store.resourceVersion() } } });
      timers.push(setInterval(bookmark, this.opts.bookmarkIntervalMs ?? 5000));
    }
    req.on('close', w.end);
    res.on('close', w.end);
  }

  /** /_fake/ test controls (unix socket only). */
  private control(what: string | undefined, req: IncomingMessage, res: ServerResponse, url: URL): void {
    const method = req.method ?? 'GET';
    if (what === 'compact' && method === 'POST') {
      const rv = url.searchParams.get('resourceVersion');
      this.compact(rv ? Number(rv) : undefined);
      json(res, 200, { resourceVersion: this.store.resourceVersion(), oldestResourceVersion: this.store.oldestResourceVersion() });
    } else if (what === 'close-watches' && method === 'POST') {
      json(res, 200, { closed: this.closeWatches({ reset: url.searchParams.get('reset') === 'true' }) });
    } else if (what === 'requests' && method === 'GET') {
      json(res, 200, { requests: this.requests(), counters: this.counters() });
    } else if (what === 'requests' && method === 'DELETE') {
      this.clearRequests();
      json(res, 200, {});
    } else if (what === 'state' && method === 'GET') {
      json(res, 200, { resourceVersion: this.store.resourceVersion(), oldestResourceVersion: this.store.oldestResourceVersion(), openWatches: this.openWatches(), url: this.url ?? null });
    } else {
      throw new ApiError(404, 'NotFound', `no test control ${JSON.stringify(what)}`);
    }
  }
}

/** A kubeconfig for `server` with the CA embedded and a bearer token. */
export function kubeconfig(server: string, caPem: string, token: string): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: weft-e2e',
    '  cluster:',
    `    server: ${server}`,
    `    certificate-authority-data: ${Buffer.from(caPem).toString('base64')}`,
    'users:',
    '- name: weft-e2e',
    '  user:',
    `    token: ${token}`,
    'contexts:',
    '- name: weft-e2e',
    '  context: {cluster: weft-e2e, user: weft-e2e}',
    'current-context: weft-e2e',
    '',
  ].join('\n');
}

const HELP = `usage: node --import tsx test/lib/fake-apiserver.ts --listen IP:PORT [--dir DIR] [--admin-socket PATH] [options]

A fake kube-apiserver (Namespaces, Nodes, Pods, Services, EndpointSlices) for tests.
Meant to run inside a network namespace: ip netns exec NS node --import tsx ...

  --listen IP:PORT          HTTPS listener (port 0: any free port)
  --dir DIR                 write ca.crt, token and kubeconfig there
  --admin-socket PATH       plain HTTP on a unix socket, no token, plus /_fake/ controls
  --token TOKEN             bearer token (default: random)
  --history N               changes kept for watches (default 1000)
  --bookmark-interval MS    BOOKMARK period (default 5000)
  --watch-timeout S         default watch timeout (default 300)
  --help                    this text

Prints one JSON line {"ready":true,"url":...,"kubeconfig":...,"adminSocket":...,"pid":...}
when serving; exits 0 on SIGTERM or SIGINT.
`;

export function parseArgs(argv: string[]): FakeApiServerOptions | 'help' {
  const opts: FakeApiServerOptions = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--help' || a === '-h') return 'help';
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    const num = (): number => {
      const v = value();
      if (!/^\d+$/.test(v)) throw new Error(`${flag} wants a number, got ${JSON.stringify(v)}`);
      return Number(v);
    };
    switch (flag) {
      case '--listen': opts.listen = value(); break;
      case '--dir': opts.dir = value(); break;
      case '--admin-socket': opts.socketPath = value(); break;
      case '--token': opts.token = value(); break;
      case '--history': opts.historyLimit = num(); break;
      case '--bookmark-interval': opts.bookmarkIntervalMs = num(); break;
      case '--watch-timeout': opts.watchTimeoutSeconds = num(); break;
      default: throw new Error(`unknown flag ${JSON.stringify(a)} (see --help)`);
    }
  }
  if (!opts.listen && !opts.socketPath) throw new Error('give --listen IP:PORT and/or --admin-socket PATH (see --help)');
  return opts;
}

async function main(): Promise<void> {
  let opts: FakeApiServerOptions | 'help';
  try { opts = parseArgs(process.argv.slice(2)); } catch (e) {
    process.stderr.write(`fake-apiserver: ${(e as Error).message}\n`);
    process.exit(2);
  }
  if (opts === 'help') { process.stdout.write(HELP); return; }
  const server = await FakeApiServer.start(opts);
  const stop = (): void => { void server.close().then(() => process.exit(0)); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stdout.write(`${JSON.stringify({ ready: true, url: server.url ?? null, kubeconfig: server.kubeconfigPath ?? null, dir: opts.dir ?? null, adminSocket: opts.socketPath ?? null, pid: process.pid })}\n`);
}

if (require.main === module) {
  main().catch((e) => {
    process.stderr.write(`fake-apiserver: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  });
}
