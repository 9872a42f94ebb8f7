// The admin port (DESIGN.md: 15020, loopback only by default): Prometheus /metrics,
// liveness and readiness, read-only /debug/* views, and the small JSON API that local
// CLIs (`weft run`, `weft status`, `weft tap`) use. It never serves anything to the
// mesh: it binds to loopback unless the operator says otherwise.
import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { WeftError, describeError } from '../lib/errors';
import { listenOn } from '../lib/listen';
import { unmapV4 } from '../lib/ip';
import type { Logger } from '../telemetry/logger';

export interface HealthReport {
  /** Ready = programs attached and a snapshot applied (or the cached one). */
  ready: boolean;
  reasons: string[];
}

/** A JSON endpoint: returns a JSON-serialisable body or throws a WeftError. */
export type JsonHandler = (body: unknown, url: URL) => Promise<unknown> | unknown;

export interface AdminOptions {
  host: string;
  port: number;
  /** A listening socket inherited from the agent's supervisor (host/port then only
   *  name it in logs). */
  fd?: number;
  registry: Registry;
  /** The /metrics body when it is more than `registry` (an agent with several workers
   *  serves node totals); default: `registry.metrics()`. */
  scrape?: () => Promise<string>;
  health: () => HealthReport;
  /** GET /debug/<name> → JSON (or a promise of it). */
  debug: Record<string, () => unknown>;
  /** `METHOD /path` → handler, e.g. 'POST /v1/workloads'. */
  api?: Record<string, JsonHandler>;
  /** When set, callers that are not on loopback must send `authorization: Bearer
   *  <token>` for everything but GET /metrics, /healthz and /readyz (Prometheus and
   *  kubelet probes): an admin port on a node address is reachable from pods, which must
   *  neither register workloads, addresses or service accounts of their choosing nor
   *  read the node's configuration, status, explanations or other workloads' requests
   *  (`/debug/*`, `/v1/status`, `/v1/explain`, `/v1/tap`). */
  writeToken?: string;
  /** `METHOD /path` routes that need the token from every caller, loopback included:
   *  default REGISTRATION_ROUTES. Without a writeToken they are refused outright. */
  tokenAlways?: ReadonlySet<string>;
  /** Streaming endpoints (e.g. `GET /v1/tap`): the handler owns the response. */
  streams?: Record<string, (req: IncomingMessage, res: ServerResponse, url: URL) => void>;
  logger: Logger;
}

const MAX_BODY = 1 << 20;

/** What any caller may GET: Prometheus scrapes and kubelet probes. */
const OPEN_PATHS = new Set(['/metrics', '/healthz', '/readyz']);

/** Workload registration: on a node, any process (and any hostNetwork pod) is a
 *  loopback caller, so registering an identity, labels and an address takes the token. */
export const REGISTRATION_ROUTES: ReadonlySet<string> = new Set(['POST /v1/workloads', 'DELETE /v1/workloads']);

/** The admin token's file name in the agent's --state-dir (see AdminOptions.writeToken). */
export const ADMIN_TOKEN_FILE = 'admin-token';

const STATUS_BY_CODE: Partial<Record<WeftError['code'], number>> = {
  WEFT_ERR_INVALID_ARG: 400,
  WEFT_ERR_INVALID_SERVICE: 400,
  WEFT_ERR_NOT_FOUND: 404,
  WEFT_ERR_PERMISSION: 403,
  WEFT_ERR_CAPACITY: 409,
  WEFT_ERR_CONFLICT: 409,
  WEFT_ERR_UNAVAILABLE: 503,
};

function send(res: ServerResponse, status: number, body: string, type = 'application/json'): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function readJson(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) { reject(new WeftError('WEFT_ERR_INVALID_ARG', 'request body too large')); req.destroy(); return; }
      chunks.push(c);
    });
    req.on('end', () => {
      if (!size) return resolve(undefined);
      try { resolve(JSON.parse(Buffer.concat(chunks).toString('utf8'))); } catch { reject(new WeftError('WEFT_ERR_INVALID_ARG', 'request body is not JSON')); }
    });
    req.on('error', reject);
  });
}

export class AdminServer {
  private readonly server: Server;

  constructor(private readonly opts: AdminOptions) {
    this.server = createServer((req, res) => { void this.handle(req, res); });
  }

  listen(): Promise<AddressInfo> {
    const o = this.opts;
    return listenOn(this.server, o.fd !== undefined ? { fd: o.fd } : { port: o.port, host: o.host });
  }

  /** Stops accepting; open requests finish (a draining agent stays observable). */
  stopAccepting(): void {
    this.server.close();
    this.server.closeIdleConnections();
  }

  close(): Promise<void> {
    return new Promise((resolve) => { this.server.close(() => resolve()); this.server.closeAllConnections(); });
  }

  /** True when the caller may use `path`: the open probes, a loopback caller, or the
   *  token; registration routes need the token from everyone. */
  private allowed(req: IncomingMessage, path: string): boolean {
    if (req.method === 'GET' && OPEN_PATHS.has(path)) return true;
    return this.tokenOk(req, (this.opts.tokenAlways ?? REGISTRATION_ROUTES).has(`${req.method} ${path}`));
  }

  private tokenOk(req: IncomingMessage, always: boolean): boolean {
    const token = this.opts.writeToken;
    if (token === undefined) return !always;
    if (!always && isLoopbackAddress(req.socket.remoteAddress)) return true;
    const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
    const given = Buffer.from(m?.[1] ?? ''), want = Buffer.from(token);
    return given.length === want.length && timingSafeEqual(given, want);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Only origin-form targets: '//host/x' would otherwise be read as a URL's authority.
    const raw = req.url ?? '/';
    const url = new URL(raw.startsWith('/') && !raw.startsWith('//') ? raw : '/', 'http://admin');
    const path = url.pathname;
    try {
      if (!this.allowed(req, path)) {
        return send(res, 401, JSON.stringify({ error: `${req.method} ${path} from ${req.socket.remoteAddress} needs the agent's admin token (STATE_DIR/${ADMIN_TOKEN_FILE}${this.opts.writeToken === undefined ? ', and this server has none' : ''})`, code: 'WEFT_ERR_PERMISSION' }) + '\n');
      }
      if (req.method === 'GET' && path === '/metrics') {
        const body = this.opts.scrape ? await this.opts.scrape() : await this.opts.registry.metrics();
        return send(res, 200, body, this.opts.registry.contentType);
      }
      if (req.method === 'GET' && path === '/healthz') return send(res, 200, 'ok\n', 'text/plain');
      if (req.method === 'GET' && path === '/readyz') {
        const h = this.opts.health();
        return send(res, h.ready ? 200 : 503, h.ready ? 'ready\n' : `not ready: ${h.reasons.join('; ')}\n`, 'text/plain');
      }
      if (req.method === 'GET' && path.startsWith('/debug/')) {
        const view = this.opts.debug[path.slice('/debug/'.length)];
        if (view) return send(res, 200, JSON.stringify(await view(), bigintReplacer, 2) + '\n');
      }
      const stream = this.opts.streams?.[`${req.method} ${path}`];
      if (stream) return stream(req, res, url);
      const api = this.opts.api?.[`${req.method} ${path}`];
      if (api) {
        const body = req.method === 'GET' ? undefined : await readJson(req);
        return send(res, 200, JSON.stringify((await api(body, url)) ?? {}, bigintReplacer) + '\n');
      }
      send(res, 404, JSON.stringify({ error: `no admin endpoint ${req.method} ${path}` }) + '\n');
    } catch (e) {
      const code = e instanceof WeftError ? e.code : 'WEFT_ERR_INTERNAL';
      const status = (e instanceof WeftError && STATUS_BY_CODE[e.code]) || 500;
      if (status === 500) this.opts.logger.error({ err: describeError(e), path }, 'admin request failed');
      if (!res.headersSent) send(res, status, JSON.stringify({ error: describeError(e), code }) + '\n');
      else res.destroy();
    }
  }
}

/** JSON.stringify replacer: cgroup ids and BPF counters are bigints. */
export function bigintReplacer(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value;
}

/** 127.0.0.0/8, ::1 and their IPv4-mapped forms: a caller in the agent's own network
 *  namespace, i.e. on the node itself. */
export function isLoopbackAddress(addr: string | undefined): boolean {
  if (!addr) return false;
  const a = unmapV4(addr);
  return a === '::1' || /^127\.\d+\.\d+\.\d+$/.test(a);
}
