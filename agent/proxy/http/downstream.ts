// One client (downstream) HTTP/1.1 connection and the request exchange on it.
//
// Lean by construction: a request head is parsed in place, routed, and its raw bytes
// (plus whatever body arrived with them) go upstream in one write; the response comes
// back the same way. Requests are served one at a time: while one is in flight the
// client socket is paused and pipelined bytes wait in `pending`, so pipelining is safe
// without queues. Callbacks are methods of this object, not per-request closures.
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { Framing, HeadError, RequestHead, findHeadEnd, parseRequestHead } from './head-parser';
import { BodyFramer, FRAMING_ERROR } from './body-framer';
import { localReply } from './replies';
import { Upstream, UpstreamFailure, type UpstreamOwner } from './upstream';
import type { Connector } from '../types';
import { rewriteHead } from './rewrite';
import { DEFAULT_PATH_NORMALIZATION, normalizePath, type PathNormalization } from './path';
import { Acquire, ConnectionPool, type PoolWaiter } from '../balancer/pool';
import type { Cluster } from '../balancer/cluster';
import type { EndpointState } from '../balancer/endpoint';
import { selectBackend, selectRoute, type HeaderEdits, type RouteAction, type ServiceRoutes, type RequestView } from '../routing/table';
import { faultAbort, faultDelay } from '../routing/fault';
import type { RequestSeries } from '../routing/metrics';
import type { AccessSink } from '../routing/access-log';
import { Tracer, type Span } from '../routing/tracing';
import type { Logger } from '../../telemetry/logger';
import type { Origin } from '../types';

export interface Http1Options {
  connect: Connector;
  /** Slow-client limit: a started head must complete within this (408). */
  headerTimeoutMs: number;
  /** Keep-alive connections idle this long are closed. */
  idleTimeoutMs: number;
  maxHeadBytes: number;
  accessLog: AccessSink | null;
  tracer: Tracer | null;
  logger: Logger;
  /** Path normalization before routing and authorization (MeshConfig
   *  spec.pathNormalization; a shared object the agent updates per snapshot). */
  paths?: PathNormalization;
}

/** Per-connection context: where the client was going and who it is. */
export interface Http1Conn {
  routes: ServiceRoutes;
  series: RequestSeries | null;
  /** Inbound L7 authorization; null on the outbound side. */
  authorize: ((r: RequestView) => boolean) | null;
  /** Where the connection was going and who opened it (passed to the connector). */
  origin: Origin;
  /** Inbound with a verified peer: the x-forwarded-client-cert value weft sets
   *  (client-supplied ones are always removed). */
  xfcc?: string | null;
}

/** Upgrade protocols forwarded to the backend; any other Upgrade is stripped. */
const ALLOWED_UPGRADES = new Set(['websocket']);

/** True when every protocol an Upgrade value offers is allowed ("websocket", "WebSocket/13"). */
export function upgradeAllowed(v: string | undefined): boolean {
  if (v === undefined) return false;
  let any = false;
  for (const p of v.split(',')) {
    const t = p.trim();
    if (t === '') continue;
    const slash = t.indexOf('/');
    if (!ALLOWED_UPGRADES.has((slash < 0 ? t : t.slice(0, slash)).toLowerCase())) return false;
    any = true;
  }
  return any;
}

/** Connection tokens that only make sense with an Upgrade the proxy strips. */
const UPGRADE_TOKENS = new Set(['upgrade', 'http2-settings']);

/** Edits that remove an Upgrade offer (and h2c's HTTP2-Settings) from a request head:
 *  the Connection header keeps its other tokens. */
function stripUpgrade(req: RequestHead, e: HeaderEdits): void {
  e.remove.push('upgrade', 'http2-settings');
  const keep: string[] = [];
  for (let i = 0; i < req.count; i++) {
    if (req.nameAt(i) !== 'connection') continue;
    for (const t of req.valueAt(i).split(',')) { const v = t.trim(); if (v !== '' && !UPGRADE_TOKENS.has(v.toLowerCase())) keep.push(v); }
  }
  if (keep.length > 0) e.set.push({ name: 'connection', value: keep.join(', ') });
  else e.remove.push('connection');
}

/** Every value of a header joined with commas (a list split over several lines). */
function allValues(h: RequestHead, lname: string): string | undefined {
  let v: string | undefined;
  for (let i = 0; i < h.count; i++) if (h.nameAt(i) === lname) v = v === undefined ? h.valueAt(i) : `${v},${h.valueAt(i)}`;
  return v;
}

function mergeEdits(a: HeaderEdits | null, b: HeaderEdits | null): HeaderEdits | null {
  if (a === null) return b;
  if (b === null) return a;
  return { set: [...b.set, ...a.set.filter((x) => !b.set.some((y) => y.name === x.name) && !b.remove.includes(x.name))], add: a.add, remove: [...a.remove, ...b.remove] };
}

/** Requests whose head + body fit in this are kept for a retry. */
const MAX_REPLAY = 64 * 1024;

const enum Phase { Head, Body, Waiting, Tunnel, Closed }

/** While draining, an idle keep-alive connection is closed after this long without a
 *  request (a busy one closes after its next response, with `Connection: close`). */
const DRAIN_IDLE_MS = 1000;

const CONNECTION_CLOSE = { name: 'connection', value: 'close' };

function withConnectionClose(e: HeaderEdits | null): HeaderEdits {
  return e === null ? { set: [CONNECTION_CLOSE], add: [], remove: [] } : { set: [...e.set, CONNECTION_CLOSE], add: e.add, remove: e.remove };
}

/** Sweeps connections for header and idle timeouts with one timer for all of them. */
export class TimeoutSweeper {
  readonly conns = new Set<Downstream>();
  tick = 0;
  private readonly timer: NodeJS.Timeout;
  constructor(readonly periodMs: number) {
    this.timer = setInterval(() => { this.tick++; for (const c of this.conns) c.sweep(this.tick); }, periodMs);
    this.timer.unref();
  }
  close(): void { clearInterval(this.timer); }
}

export function poolOf(ep: EndpointState, cluster: Cluster, connect: Connector, origin: Origin): ConnectionPool<Upstream> {
  let p = ep.h1.get(origin.cgroupId) as ConnectionPool<Upstream> | undefined;
  if (p === undefined) {
    const pool: ConnectionPool<Upstream> = new ConnectionPool<Upstream>(cluster, ep, (e) => new Upstream(e, connect(e.endpoint, origin), pool));
    ep.h1.set(origin.cgroupId, pool);
    p = pool;
  }
  return p;
}

export class Downstream implements UpstreamOwner, PoolWaiter<Upstream> {
  private phase = Phase.Head;
  /** Unconsumed client bytes: a partial head, or pipelined requests. */
  private pending: Buffer | null = null;
  private readonly req = new RequestHead();
  private readonly reqBody = new BodyFramer();
  private headStartTick = -1;
  private activeTick = 0;
  // -- the current exchange
  private action: RouteAction | null = null;
  private cluster: Cluster | null = null;
  private endpoint: EndpointState | null = null;
  private pool: ConnectionPool<Upstream> | null = null;
  private up: Upstream | null = null;
  /** Request bytes not yet written upstream (waiting for a connection). */
  private outbound: Buffer | null = null;
  /** Head + full body kept for a retry, or null when not replayable. */
  private replay: Buffer | null = null;
  private attempts = 0;
  private started = 0;
  private tryStarted = 0;
  private responseStarted = false;
  private closeAfter = false;
  /** Set when the agent drains for a restart: answer with `Connection: close`. */
  private draining = false;
  private drainTick = 0;
  private status = 0;
  private timer: NodeJS.Timeout | null = null;
  private span: Span | null = null;
  private flags = '';
  /** The request offered an Upgrade this proxy forwards: a 101 may become a tunnel. */
  private upgradeOk = false;

  constructor(
    private readonly sock: Socket | Duplex,
    private readonly conn: Http1Conn,
    private readonly o: Http1Options,
    private readonly sweeper: TimeoutSweeper,
    initial: Buffer | null,
  ) {
    if (sock instanceof Socket) sock.setNoDelay(true);
    sock.on('data', (d: Buffer) => this.onData(d));
    sock.on('drain', () => this.onClientDrain());
    sock.on('error', () => this.onClientGone());
    sock.on('close', () => this.onClientGone());
    sock.on('end', () => { if (this.phase === Phase.Head && this.pending === null) sock.end(); });
    this.activeTick = sweeper.tick;
    sweeper.conns.add(this);
    if (initial !== null && initial.length > 0) this.onData(initial);
  }

  // ------------------------------------------------------------------ client side

  private onData(d: Buffer): void {
    this.activeTick = this.sweeper.tick;
    try {
      switch (this.phase) {
        case Phase.Head: this.onHeadBytes(this.pending === null ? d : Buffer.concat([this.pending, d])); return;
        case Phase.Body: this.onBodyBytes(d); return;
        case Phase.Tunnel: if (this.up !== null && !this.up.write(d)) this.sock.pause(); return;
        case Phase.Waiting:
          // Pipelined request bytes while a response is outstanding: hold them.
          this.pending = this.pending === null ? d : Buffer.concat([this.pending, d]);
          this.sock.pause();
          return;
        default: return;
      }
    } catch (e) {
      this.o.logger.error({ err: e instanceof Error ? e.stack : String(e) }, 'internal error in HTTP/1.1 proxy');
      this.abort(500);
    }
  }

  private onHeadBytes(data: Buffer): void {
    const end = findHeadEnd(data, 0);
    if (end < 0) {
      if (data.length > this.o.maxHeadBytes) {
        this.reject(oversizeStatus(data));
        return;
      }
      // Strict line endings: a bare-LF head would never complete; refuse it now.
      if (hasBareLf(data)) { this.reject(400); return; }
      this.pending = data;
      if (this.headStartTick < 0) this.headStartTick = this.sweeper.tick;
      return;
    }
    this.pending = null;
    this.headStartTick = -1;
    if (end > this.o.maxHeadBytes) { this.reject(oversizeStatus(data)); return; }
    try { parseRequestHead(this.req, data, end); } catch (e) {
      if (e instanceof HeadError) { this.flags = e.reason; this.reject(e.status); return; }
      throw e;
    }
    this.begin(data, end);
  }

  private begin(data: Buffer, headEnd: number): void {
    const req = this.req;
    this.started = performance.now();
    this.attempts = 0;
    this.responseStarted = false;
    this.status = 0;
    this.flags = '';
    this.closeAfter = req.close;
    this.reqBody.start(req.framing, req.contentLength);
    // Where this request ends within `data`; the rest is the next (pipelined) request.
    let stop = headEnd;
    if (!this.reqBody.done) {
      stop = this.reqBody.feed(data, headEnd, data.length);
      if (stop === FRAMING_ERROR) { this.reject(400); return; }
    }
    if (this.reqBody.done) {
      this.phase = Phase.Waiting;
      if (stop < data.length) { this.pending = data.subarray(stop); this.sock.pause(); }
    } else this.phase = Phase.Body;

    // Route and authorize what the backend will serve: the normalized path, which is
    // also what is forwarded (origin-form: an absolute-form target's authority is Host).
    const path = normalizePath(req.path, this.o.paths ?? DEFAULT_PATH_NORMALIZATION);
    if (path === null) { this.flags = 'invalid_path'; this.localResponse(400); return; }
    if (path !== req.path || req.authority !== '') {
      req.path = path;
      req.newLine = `${req.method} ${path}${req.search} HTTP/1.${req.minor}`;
    }
    if (this.conn.authorize !== null && !this.conn.authorize(req)) { this.flags = 'rbac_denied'; this.localResponse(403); return; }
    const action = this.action = selectRoute(this.conn.routes, req);
    if (action.rateLimit !== null && !action.rateLimit.take(this.started)) { this.flags = 'rate_limited'; this.localResponse(429); return; }

    // Header changes of the proxy's own: client-supplied XFCC removed (and set on the
    // inbound side for a verified peer), an Upgrade other than WebSocket removed.
    let own: HeaderEdits | null = null;
    const xfcc = this.conn.xfcc ?? null;
    if (req.xfcc || xfcc !== null) {
      own = { set: xfcc !== null ? [{ name: 'x-forwarded-client-cert', value: xfcc }] : [], add: [], remove: ['x-forwarded-client-cert'] };
    }
    this.upgradeOk = req.upgrade && upgradeAllowed(allValues(req, 'upgrade'));
    if (req.upgradeHeader && !this.upgradeOk) stripUpgrade(req, own ??= { set: [], add: [], remove: [] });
    // An HTTP/1.0 absolute-form request without Host: the authority goes on as Host.
    if (req.authority !== '' && req.indexOf('host') < 0) (own ??= { set: [], add: [], remove: [] }).set.push({ name: 'host', value: req.authority });
    const edits = mergeEdits(action.requestHeaders, own);

    let head = data.subarray(0, headEnd);
    if (edits !== null || this.o.tracer !== null || req.newLine !== null) {
      this.span = this.o.tracer !== null ? this.o.tracer.start(`${req.method} ${action.name}`, req.header('traceparent')) : null;
      head = rewriteHead(req, edits, this.span !== null ? Tracer.header(this.span) : null);
      this.outbound = stop > headEnd ? Buffer.concat([head, data.subarray(headEnd, stop)]) : head;
    } else this.outbound = data.subarray(0, stop);
    this.replay = this.reqBody.done && this.outbound.length <= MAX_REPLAY ? this.outbound : null;

    if (action.fault !== null) {
      if (faultAbort(action.fault)) { this.flags = 'fault_abort'; this.localResponse(action.fault.abort!.httpStatus ?? 503); return; }
      const delay = faultDelay(action.fault);
      if (delay > 0) {
        this.flags = 'fault_delay';
        this.sock.pause();
        this.timer = setTimeout(() => { this.timer = null; this.dispatch(); }, delay);
        return;
      }
    }
    this.dispatch();
  }

  private onBodyBytes(d: Buffer): void {
    const stop = this.reqBody.feed(d, 0, d.length);
    if (stop === FRAMING_ERROR) { this.abort(400); return; }
    const part = stop === d.length ? d : d.subarray(0, stop);
    if (this.reqBody.done) {
      this.phase = Phase.Waiting;
      if (stop < d.length) { this.pending = d.subarray(stop); this.sock.pause(); }
    }
    if (this.up !== null && this.outbound === null) {
      if (!this.up.write(part)) this.sock.pause();
    } else {
      // Still waiting for a connection (or a fault delay): queue.
      this.outbound = this.outbound === null ? part : Buffer.concat([this.outbound, part]);
      this.sock.pause();
    }
  }

  private onClientDrain(): void {
    if (this.up !== null) this.up.sock.resume();
  }

  // ------------------------------------------------------------- upstream choice

  private dispatch(): void {
    const action = this.action!;
    const cluster = this.cluster = selectBackend(action);
    if (cluster.active >= cluster.limits.maxRequests) { cluster.overflows++; this.flags = 'overflow'; this.localResponse(503); return; }
    if (this.attempts === 0) cluster.budget.deposit(this.started);
    this.tryUpstream();
  }

  private tryUpstream(): void {
    const cluster = this.cluster!;
    const now = performance.now();
    const ep = this.endpoint = cluster.pick(now, this.conn.origin.cgroupId);
    if (ep === null) { this.flags = 'no_healthy_upstream'; this.localResponse(503); return; }
    this.attempts++;
    this.tryStarted = now;
    cluster.active++;
    ep.inflight++;
    const timeout = this.tryTimeout();
    if (timeout > 0) this.timer = setTimeout(() => this.onTimeout(), timeout);
    const pool = this.pool = poolOf(ep, cluster, this.o.connect, this.conn.origin);
    let r: Acquire;
    try { r = pool.acquire(this); } catch (e) {
      // The connector refused (no identity yet, source not a workload...).
      this.o.logger.warn({ err: e instanceof Error ? e.message : String(e) }, 'upstream connect refused');
      this.endTry();
      this.flags = 'connect_refused';
      this.localResponse(503);
      return;
    }
    if (r === Acquire.Ready) this.attach(pool.acquired!);
    else if (r === Acquire.Overflow) { this.endTry(); this.flags = 'overflow'; this.localResponse(503); }
    else this.sock.pause();
  }

  private tryTimeout(): number {
    const a = this.action!;
    const perTry = a.retry !== null ? a.retry.perTryTimeoutMs : 0;
    if (a.timeoutMs > 0) {
      const left = a.timeoutMs - (performance.now() - this.started);
      return perTry > 0 ? Math.max(1, Math.min(perTry, left)) : Math.max(1, left);
    }
    return perTry;
  }

  onPoolConnection(c: Upstream | null): void {
    if (this.phase === Phase.Closed) { if (c !== null) c.finish(); return; }
    if (c === null) { this.endTry(); this.localResponse(503); return; }
    this.attach(c);
  }

  private attach(up: Upstream): void {
    this.up = up;
    up.begin(this, this.req.method === 'HEAD');
    // The request asked the server to close after it (or is HTTP/1.0): do not pool.
    if (this.req.close) up.reusable = false;
    const out = this.outbound!;
    this.outbound = null;
    const ok = up.write(out);
    if (this.phase === Phase.Body || this.phase === Phase.Waiting && this.pending === null) {
      if (ok) this.sock.resume(); else this.sock.pause();
    }
  }

  onUpstreamDrain(): void {
    if (this.phase === Phase.Body || this.phase === Phase.Tunnel) this.sock.resume();
  }

  // ------------------------------------------------------------- response side

  onResponseHead(up: Upstream, bytes: Buffer, headEnd: number, stop: number): void {
    const status = this.status = up.res.status;
    const retry = this.action!.retry;
    if (status >= 500 && retry !== null && this.retriableStatus(status) && this.canRetry()) {
      this.recordTry(status, isGatewayStatus(status));
      up.abandon();
      this.up = null;
      this.retryNow();
      return;
    }
    this.responseStarted = true;
    if (up.res.close || up.reusable === false && up.res.framing === Framing.Close) this.closeAfter = true;
    let edits = this.action!.responseHeaders;
    if (this.draining) { this.closeAfter = true; edits = withConnectionClose(edits); }
    if (edits !== null) {
      const h = rewriteHead(up.res, edits, null);
      this.writeClient(stop > headEnd ? Buffer.concat([h, bytes.subarray(headEnd, stop)]) : h);
    } else this.writeClient(stop === bytes.length ? bytes : bytes.subarray(0, stop));
  }

  onResponseData(_up: Upstream, bytes: Buffer): void {
    this.responseStarted = true;
    this.activeTick = this.sweeper.tick;
    this.writeClient(bytes);
  }

  private writeClient(b: Buffer): void {
    if (!this.sock.write(b) && this.up !== null) this.up.sock.pause();
  }

  onResponseEnd(up: Upstream): void {
    if (this.phase === Phase.Tunnel) { this.sock.end(); return; }
    this.recordTry(this.status, isGatewayStatus(this.status));
    this.clearTimer();
    this.up = null;
    if (this.phase === Phase.Body) {
      // The server answered before the request body ended; the rest of the body has
      // nowhere to go, so neither connection can be reused.
      up.abandon();
      this.closeAfter = true;
    } else up.finish();
    this.finishExchange();
  }

  onUpgrade(up: Upstream, bytes: Buffer): void {
    if (!this.upgradeOk) {
      // A 101 nobody asked for (the proxy stripped the offer, or there was none): the
      // bytes that follow would escape per-request routing and authorization.
      this.flags = 'unexpected_upgrade';
      this.recordTry(502, true);
      this.abort(502);
      return;
    }
    this.clearTimer();
    this.status = 101;
    this.responseStarted = true;
    this.phase = Phase.Tunnel;
    this.sock.write(bytes);
    if (this.pending !== null) { up.write(this.pending); this.pending = null; }
    this.sock.resume();
  }

  onUpstreamFailure(up: Upstream, why: UpstreamFailure, detail: string): void {
    if (this.up !== up) return;
    this.up = null;
    if (this.phase === Phase.Tunnel) { this.sock.destroy(); return; }
    this.flags = detail;
    const gateway = why !== UpstreamFailure.Protocol;
    if (!this.responseStarted) {
      // A reused pooled connection the server had already closed: replay once, free.
      const stale = up.reused && !up.gotBytes && why === UpstreamFailure.Reset && this.replay !== null && this.phase === Phase.Waiting;
      if (stale) { this.endTry(); this.attempts--; this.retryNow(); return; }
      this.recordTry(502, gateway);
      const r = this.action!.retry;
      // Envoy semantics: 5xx and gateway-error also cover connect failures and resets.
      const wanted = r !== null && (r.on5xx || r.gatewayError ||
        (why === UpstreamFailure.ConnectFailure && r.connectFailure) || (why === UpstreamFailure.Reset && r.reset));
      if (wanted && this.canRetry()) { this.retryNow(); return; }
      this.abort(why === UpstreamFailure.ConnectFailure ? 503 : why === UpstreamFailure.Timeout ? 504 : 502);
      return;
    }
    this.recordTry(this.status, gateway);
    this.clearTimer();
    this.phase = Phase.Closed;
    this.sock.destroy();
  }

  private onTimeout(): void {
    this.clearTimer();
    const up = this.up;
    if (this.flags === '') this.flags = 'timeout';
    if (up !== null) { this.up = null; up.abandon(); }
    else if (this.pool !== null) this.pool.cancel(this);
    if (this.responseStarted) { this.recordTry(this.status, true); this.phase = Phase.Closed; this.sock.destroy(); return; }
    this.recordTry(504, true);
    const left = this.action!.timeoutMs > 0 ? this.action!.timeoutMs - (performance.now() - this.started) : 1;
    if (left > 0 && this.canRetry()) { this.retryNow(); return; }
    this.abort(504);
  }

  private retriableStatus(status: number): boolean {
    const r = this.action!.retry!;
    return r.on5xx || (r.gatewayError && status >= 502 && status <= 504) || r.statusCodes.has(status);
  }

  private canRetry(): boolean {
    const r = this.action!.retry;
    if (r === null || this.replay === null || this.phase !== Phase.Waiting || this.attempts > r.attempts) return false;
    return this.cluster!.budget.withdraw(performance.now());
  }

  private retryNow(): void {
    this.clearTimer();
    this.outbound = this.replay;
    this.tryUpstream();
  }

  /** Books the end of one try against the endpoint (latency, outlier detection, limits). */
  private recordTry(status: number, gatewayError: boolean): void {
    const ep = this.endpoint, cl = this.cluster;
    if (ep === null || cl === null) return;
    const now = performance.now();
    ep.inflight--;
    cl.active--;
    ep.observe(now - this.tryStarted, now);
    if (cl.outlier !== null) cl.outlier.record(ep, status, gatewayError, now);
    this.endpoint = null;
  }

  private endTry(): void {
    if (this.endpoint !== null) { this.endpoint.inflight--; this.cluster!.active--; this.endpoint = null; }
    this.clearTimer();
  }

  private clearTimer(): void {
    if (this.timer !== null) { clearTimeout(this.timer); this.timer = null; }
  }

  // ------------------------------------------------------------- local replies

  /** A generated response for a request that was fully parsed (keep-alive if possible). */
  private localResponse(status: number): void {
    this.status = status;
    this.clearTimer();
    if (this.phase === Phase.Body) this.closeAfter = true;
    this.sock.write(localReply(status, this.closeAfter));
    this.finishExchange();
  }

  /** Error before or instead of a response: answer if nothing was sent, then close. */
  private abort(status: number): void {
    this.clearTimer();
    if (this.up !== null) { this.up.abandon(); this.up = null; }
    if (this.endpoint !== null) this.endTry();
    this.status = status;
    if (!this.responseStarted && this.phase !== Phase.Closed) this.sock.write(localReply(status, true));
    this.closeAfter = true;
    this.finishExchange();
  }

  /** Rejects an unparseable request: status, close, no upstream involved. */
  private reject(status: number): void {
    this.status = status;
    this.pending = null;
    this.phase = Phase.Closed;
    this.sock.end(localReply(status, true));
    this.sweeper.conns.delete(this);
  }

  private finishExchange(): void {
    const dur = performance.now() - this.started;
    this.conn.series?.record(this.status, -1, dur / 1000);
    const log = this.o.accessLog;
    if (log !== null && log.wants(this.status)) {
      log.write({
        method: this.req.method, path: this.req.path, authority: this.req.host, status: this.status, grpcStatus: -1,
        durationMs: dur, route: this.action?.name ?? '', upstream: this.cluster?.name ?? '', attempts: this.attempts,
        traceId: this.span?.traceId ?? '', flags: this.flags, ...(this.conn.series ? { peer: this.conn.series.peer } : {}),
      });
    }
    if (this.span !== null) {
      this.o.tracer!.end(this.span, { 'http.method': this.req.method, 'http.target': this.req.path, 'http.status_code': this.status }, this.status >= 500);
      this.span = null;
    }
    this.replay = null;
    this.action = null;
    if (this.closeAfter || this.phase === Phase.Closed) {
      this.phase = Phase.Closed;
      this.sock.end();
      this.sweeper.conns.delete(this);
      return;
    }
    this.phase = Phase.Head;
    const next = this.pending;
    if (next !== null) { this.pending = null; this.onHeadBytes(next); }
    if (this.phase === Phase.Head) this.sock.resume();
  }

  private onClientGone(): void {
    if (this.phase === Phase.Closed && this.up === null) { this.sweeper.conns.delete(this); return; }
    this.phase = Phase.Closed;
    this.sweeper.conns.delete(this);
    this.clearTimer();
    if (this.up !== null) { this.up.abandon(); this.up = null; }
    else if (this.pool !== null) this.pool.cancel(this);
    if (this.endpoint !== null) this.endTry();
    this.sock.destroy();
  }

  /** The agent is draining (restart/upgrade): the exchange in flight finishes and its
   *  response says `Connection: close`, so the client opens its next connection to the
   *  new agent; a connection that stays idle for DRAIN_IDLE_MS is closed. */
  drain(): void {
    this.draining = true;
    this.drainTick = this.sweeper.tick;
  }

  /** Called by the sweeper: header timeout (408) and keep-alive idle timeout. */
  sweep(tick: number): void {
    const period = this.sweeper.periodMs;
    if (this.phase === Phase.Body || this.phase === Phase.Waiting) {
      // Route idle timeout: no bytes in either direction for that long.
      const idle = this.action !== null ? this.action.idleTimeoutMs : 0;
      if (idle > 0 && (tick - this.activeTick) * period >= idle) { this.flags = 'idle_timeout'; this.onTimeout(); }
      return;
    }
    if (this.phase !== Phase.Head) return;
    if (this.headStartTick >= 0 && (tick - this.headStartTick) * period >= this.o.headerTimeoutMs) { this.reject(408); return; }
    const idle = this.draining
      ? (tick - Math.max(this.activeTick, this.drainTick)) * period >= DRAIN_IDLE_MS
      : (tick - this.activeTick) * period >= this.o.idleTimeoutMs;
    if (this.pending === null && idle) {
      this.phase = Phase.Closed;
      this.sweeper.conns.delete(this);
      this.sock.end();
    }
  }
}

/** 414 when the request line alone is too long, 431 when the header block is. */
function oversizeStatus(data: Buffer): number {
  const lineEnd = data.indexOf('\r\n');
  return lineEnd < 0 || lineEnd > 8192 + 64 ? 414 : 431;
}

function isGatewayStatus(s: number): boolean { return s >= 502 && s <= 504; }

/** True when some LF in the buffer is not preceded by CR. */
function hasBareLf(b: Buffer): boolean {
  for (let i = b.indexOf(0x0a); i >= 0; i = b.indexOf(0x0a, i + 1)) if (i === 0 || b[i - 1] !== 0x0d) return true;
  return false;
}
