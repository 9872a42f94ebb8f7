// HTTP/2 (h2c prior knowledge) and gRPC proxying on our own frame-level engine
// (connection.ts): no node:http2, no per-stream stream objects or events.
//
// Each client stream is routed like an HTTP/1.1 request (same matcher, weights,
// limits) and forwarded on a pooled, multiplexed upstream connection to the chosen
// endpoint. DATA payloads pass through as slices of what was read; a stream's receive
// window is credited only once its bytes left through the other side, so a slow
// receiver stops its sender. Trailers, grpc-timeout deadlines and RST_STREAM
// cancellation are carried both ways. What to do with a request is the pipeline's
// (pipeline/lifecycle.ts, shared with HTTP/1.1); this file speaks HTTP/2.
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Connector, Origin } from '../types';
import type { Cluster } from '../balancer/cluster';
import type { EndpointState } from '../balancer/endpoint';
import type { HeaderEdits, RequestView, ServiceRoutes } from '../routing/table';
import type { RequestSeries } from '../routing/metrics';
import type { Logger } from '../../telemetry/logger';
import { parseGrpcTimeout } from './grpc-timeout';
import { H2Connection, type ConnectionHandler, type ConnectionLimits, type H2Stream, type StreamHandler } from './connection';
import { E } from './frame';
import { UpstreamPool, type H2Upstream } from './upstream-pool';
import { Acquire, type ConnectionPool, type PoolWaiter } from '../pipeline/pool';
import { Fault, GrpcStatus, Lifecycle, RetryOn, type Exchange, type ExchangeContext, type PipelineOptions } from '../pipeline/lifecycle';

export interface H2Options extends PipelineOptions {
  connect: Connector;
  logger: Logger;
  maxConcurrentStreams: number;
  maxHeaderListSize: number;
  /** Client stream resets per second on one connection before it is closed (rapid reset). */
  maxResetsPerSecond: number;
  /** Per-stream buffering in each direction (the stream window is 4x this). */
  highWaterMark: number;
  /** Streams on one upstream connection before another is opened... */
  streamsPerSession: number;
  /** ...up to this many connections per (endpoint, source). */
  sessionsPerEndpoint: number;
}

export type H2Conn = ExchangeContext;

/** Request bodies up to this size are kept for retries. */
const MAX_REPLAY = 64 * 1024;

// x-forwarded-client-cert: only weft may say who the client certificate named.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings', 'x-forwarded-client-cert']);

export { GrpcStatus } from '../pipeline/lifecycle';

/** First value of `name` in a flat [name, value, ...] list. */
function field(h: readonly string[], name: string): string | undefined {
  for (let i = 0; i < h.length; i += 2) if (h[i] === name) return h[i + 1];
  return undefined;
}

/** A request header list is malformed (§8.3): pseudo-headers after regular ones or
 *  unknown, or a missing :method/:scheme/:path. (Field syntax is checked by the decoder.) */
function malformedRequest(h: readonly string[]): boolean {
  let regular = false, method = false, scheme = false, path = false, authority = false;
  let host: string | undefined;
  for (let i = 0; i < h.length; i += 2) {
    const n = h[i]!;
    if (n.charCodeAt(0) === 0x3a) {
      if (regular) return true;
      // Each pseudo-header at most once: two :path fields are two answers to "which path".
      if (n === ':method') { if (method) return true; method = true; } else if (n === ':scheme') { if (scheme) return true; scheme = true; } else if (n === ':path') { if (path) return true; path = h[i + 1] !== ''; }
      else if (n === ':authority') { if (authority) return true; authority = true; }
      else return true;
    } else {
      regular = true;
      if (n === 'host') host = h[i + 1]!;
    }
  }
  // §8.3.1: a Host naming another site than :authority is malformed (the same rule as
  // an HTTP/1.1 absolute-form target whose authority is not Host).
  if (authority && host !== undefined && host.toLowerCase() !== (field(h, ':authority') ?? '').toLowerCase()) return true;
  return !method || !scheme || !path;
}

class StreamView implements RequestView {
  method: string; path: string; query: string;
  /** '?' and the raw query, or '' when :path has no '?'. */
  search: string;
  constructor(readonly h: readonly string[]) {
    this.method = field(h, ':method') ?? '';
    const p = field(h, ':path') ?? '/';
    const q = p.indexOf('?');
    this.path = q < 0 ? p : p.slice(0, q);
    this.query = q < 0 ? '' : p.slice(q + 1);
    this.search = q < 0 ? '' : p.slice(q);
  }
  header(n: string): string | undefined { return field(this.h, n === 'host' ? ':authority' : n); }
}

function dropped(n: string, v: string, pseudo: boolean): boolean {
  return HOP_BY_HOP.has(n) || (n === 'te' && v !== 'trailers') || (!pseudo && n.charCodeAt(0) === 0x3a);
}

/** `h` without hop-by-hop fields (and, unless `pseudo`, pseudo-headers) — `h` itself
 *  when nothing is dropped and no copy is asked for (the common case: no allocation). */
function forwardable(h: string[], pseudo: boolean, copy: boolean): string[] {
  let i = 0;
  if (!copy) while (i < h.length && !dropped(h[i]!, h[i + 1]!, pseudo)) i += 2;
  if (i === h.length) return h;
  const out = h.slice(0, i);
  for (; i < h.length; i += 2) if (!dropped(h[i]!, h[i + 1]!, pseudo)) out.push(h[i]!, h[i + 1]!);
  return out;
}

function applyEdits(out: string[], edits: HeaderEdits): void {
  if (edits.remove.length > 0 || edits.set.length > 0) {
    const drop = new Set([...edits.remove, ...edits.set.map((s) => s.name)]);
    let w = 0;
    for (let i = 0; i < out.length; i += 2) if (!drop.has(out[i]!)) { out[w++] = out[i]!; out[w++] = out[i + 1]!; }
    out.length = w;
  }
  for (const s of edits.set) out.push(s.name, s.value);
  for (const a of edits.add) out.push(a.name, a.value);
}

export class H2Proxy implements ConnectionHandler {
  private readonly o: H2Options;
  private readonly limits: ConnectionLimits;
  private readonly pool: UpstreamPool;
  private readonly downstream = new Set<H2Connection>();
  private drained: (() => void) | null = null;
  private draining: Promise<void> | null = null;

  constructor(o: Partial<H2Options> & Pick<H2Options, 'connect' | 'logger' | 'accessLog' | 'tracer'>) {
    this.o = {
      maxConcurrentStreams: 256, maxHeaderListSize: 16 * 1024, maxResetsPerSecond: 200, highWaterMark: 64 * 1024,
      streamsPerSession: 100, sessionsPerEndpoint: 8, ...o,
    };
    this.limits = {
      maxConcurrentStreams: this.o.maxConcurrentStreams, maxHeaderListSize: this.o.maxHeaderListSize,
      streamWindow: this.o.highWaterMark * 4, connectionWindow: 16 * 1024 * 1024,
      maxResetsPerSecond: this.o.maxResetsPerSecond, maxControlPerSecond: 1000,
    };
    this.pool = new UpstreamPool({ connect: o.connect, limits: this.limits, streamsPerSession: this.o.streamsPerSession, sessionsPerEndpoint: this.o.sessionsPerEndpoint });
  }

  /** Takes over an accepted socket; `initial` are bytes already read (the preface). */
  handle(sock: Socket | Duplex, routes: ServiceRoutes, origin: Origin, series: RequestSeries | null, authorize: H2Conn['authorize'], initial: Buffer | null, xfcc: string | null = null): void {
    const c = new H2Connection(sock, false, this.limits, this);
    c.context = { routes, origin, series, authorize, xfcc } satisfies H2Conn;
    this.downstream.add(c);
    if (initial !== null) c.feed(initial);
    sock.resume();
  }

  onStream(c: H2Connection, s: H2Stream, headers: string[], end: boolean, oversized: boolean): void {
    if (malformedRequest(headers) && !oversized) { c.reset(s, E.PROTOCOL_ERROR); return; }
    new H2Exchange(this, c, s, headers, end).start(oversized);
  }

  onGoaway(): void { /* a client going away finishes its open streams */ }

  onClose(c: H2Connection): void {
    this.downstream.delete(c);
    if (this.downstream.size === 0 && this.drained !== null) { this.drained(); this.drained = null; this.draining = null; }
  }

  get options(): H2Options { return this.o; }
  /** The upstream connection pool for `ep` and `origin` (the cluster's limits apply). */
  poolFor(ep: EndpointState, cluster: Cluster, origin: Origin): ConnectionPool<H2Upstream> { return this.pool.poolFor(ep, cluster, origin); }

  /** Agent restart: GOAWAY to every client connection; streams in flight finish, new
   *  ones go to a new connection (the new agent). Resolves when all are closed. */
  drain(): Promise<void> {
    if (this.downstream.size === 0) return Promise.resolve();
    this.draining ??= new Promise<void>((r) => { this.drained = r; });
    for (const c of [...this.downstream]) c.drain();
    return this.draining;
  }

  close(): void {
    for (const c of [...this.downstream]) c.destroy();
    this.pool.close();
  }
}

/** One proxied stream: the client's (down) and, once forwarded, the upstream's (up).
 *  HTTP/2 only: every decision about the request is the pipeline's (Lifecycle). */
class H2Exchange implements StreamHandler, Exchange, PoolWaiter<H2Upstream> {
  private readonly view: StreamView;
  private readonly grpc: boolean;
  private readonly ctx: H2Conn;
  private readonly lc: Lifecycle;
  private up: H2Stream | null = null;
  /** The pooled connection the current try holds a stream on, and that stream. */
  private lease: H2Upstream | null = null;
  private leased: H2Stream | null = null;
  private pool: ConnectionPool<H2Upstream> | null = null;
  /** Queued in the pool for a stream (cluster pending-request limit). */
  private waiting = false;
  private timer: NodeJS.Timeout | null = null;
  /** The current try's per-try timeout (retry policy), and the route idle timeout. */
  private tryTimer: NodeJS.Timeout | null = null;
  private idleTimer: NodeJS.Timeout | null = null;
  /** When a frame last moved either way (read by the idle timer only). */
  private lastActive = 0;
  private responded = false;
  /** The upstream response is complete. */
  private upDone = false;
  private finished = false;
  private outHeaders: string[] | null = null;
  /** The :path to forward when normalization changed it. */
  private newPath: string | null = null;
  /** Request body held for a retry (or until an upstream stream exists); null once too
   *  large or once the response started. */
  private body: Buffer[] | null = [];
  private bodyBytes = 0;
  private reqEnded: boolean;
  private reqTrailers: string[] | null = null;

  constructor(private readonly proxy: H2Proxy, private readonly dc: H2Connection, private readonly down: H2Stream, private readonly headers: string[], end: boolean) {
    this.view = new StreamView(headers);
    this.grpc = (field(headers, 'content-type') ?? '').startsWith('application/grpc');
    this.ctx = dc.context as H2Conn;
    this.reqEnded = end;
    this.lc = new Lifecycle(this, proxy.options);
    this.lc.begin();
    down.handler = this;
  }

  start(oversized: boolean): void {
    const lc = this.lc;
    if (oversized) { lc.flags = 'header_overflow'; this.local(431, GrpcStatus.RESOURCE_EXHAUSTED, 'request header list too large'); return; }
    // Route and authorize what the backend will serve: the normalized path, which is
    // also what is forwarded. A fragment never belongs in :path.
    if (this.view.search.includes('#')) { lc.flags = 'invalid_path'; this.local(400, GrpcStatus.INTERNAL, 'invalid request path'); return; }
    const path = lc.normalize(this.view.path);
    if (path === null) return;
    if (path !== this.view.path) { this.view.path = path; this.newPath = path + this.view.search; }
    if (!lc.admit(this.view, this.ctx)) return;
    if (lc.fault() === Fault.None) this.forward();
  }

  /** Exchange: a locally generated answer. */
  localReply(status: number, grpcStatus: number, message: string): void { this.local(status, grpcStatus, message); }

  /** Deadline: the route timeout and the caller's grpc-timeout, whichever is sooner. */
  private deadlineMs(): number {
    const action = this.lc.action!;
    let ms = action.timeoutMs;
    const gt = this.grpc ? parseGrpcTimeout(field(this.headers, 'grpc-timeout')) : -1;
    if (gt >= 0 && (ms === 0 || gt < ms)) ms = gt;
    if (ms > 0) ms = Math.max(0, ms - (performance.now() - this.lc.started));
    return ms === 0 && (action.timeoutMs > 0 || gt >= 0) ? 1 : ms;
  }

  /** Admission passed (Exchange): circuit breaker, the upstream header list, the first try. */
  forward(): void {
    if (this.finished) return;
    const lc = this.lc;
    if (lc.dispatch() === null) return;
    const action = lc.action!;
    const tracing = this.proxy.options.tracer !== null;
    const xfcc = this.ctx.xfcc ?? null;
    const out = forwardable(this.headers, true, action.requestHeaders !== null || tracing || this.newPath !== null || xfcc !== null);
    if (this.newPath !== null) for (let i = 0; i < out.length; i += 2) if (out[i] === ':path') { out[i + 1] = this.newPath; break; }
    if (action.requestHeaders !== null) applyEdits(out, action.requestHeaders);
    if (xfcc !== null) out.push('x-forwarded-client-cert', xfcc);
    const traceparent = lc.trace(this.view);
    if (traceparent !== null) {
      let i = 0;
      while (i < out.length && out[i] !== 'traceparent') i += 2;
      if (i < out.length) out[i + 1] = traceparent; else out.push('traceparent', traceparent);
    }
    this.outHeaders = out;
    const deadline = this.deadlineMs();
    if (deadline > 0) this.timer = setTimeout(() => this.onDeadline(), deadline);
    const idle = action.idleTimeoutMs;
    if (idle > 0) { this.lastActive = performance.now(); this.idleTimer = setTimeout(() => this.onIdle(), idle); }
    this.attempt();
  }

  /** One try against an endpoint of the chosen cluster. */
  private attempt(): void {
    const lc = this.lc;
    const ep = lc.pick(this.ctx.origin);
    if (ep === null) return;
    const perTry = lc.action!.retry?.perTryTimeoutMs ?? 0;
    if (perTry > 0) this.tryTimer = setTimeout(() => this.onTryTimeout(), perTry);
    const pool = this.pool = this.proxy.poolFor(ep, lc.cluster!, this.ctx.origin);
    let r: Acquire;
    try {
      r = pool.acquire(this);
    } catch (e) {
      this.failUpstream(String(e), true);
      return;
    }
    if (r === Acquire.Ready) this.send(pool.acquired!);
    else if (r === Acquire.Overflow) { this.clearTryTimer(); lc.overflow(); }
    else this.waiting = true;
  }

  /** The pool had no stream free and now has one (or failed: null). */
  onPoolConnection(c: H2Upstream | null): void {
    this.waiting = false;
    if (this.finished) { if (c !== null) this.pool!.release(c); return; }
    if (c === null) { this.lc.unbook(); this.clearTryTimer(); this.local(503, GrpcStatus.UNAVAILABLE, 'upstream unavailable'); return; }
    this.send(c);
  }

  /** Opens the try's stream on a leased connection and sends what the client sent so far. */
  private send(u: H2Upstream): void {
    this.lease = u;
    const uc = u.conn;
    const body = this.body, trailers = this.reqTrailers;
    const noBody = this.reqEnded && (body === null || body.length === 0) && trailers === null;
    const up = this.up = this.leased = uc.request(this.outHeaders!, noBody, this);
    if (noBody || body === null) return;
    for (let i = 0; i < body.length; i++) uc.sendData(up, body[i]!, this.reqEnded && trailers === null && i === body.length - 1);
    if (trailers !== null) uc.sendHeaders(up, trailers, true);
  }

  /** The try's stream is over (closed, or reset by us): its slot goes back to the pool. */
  private releaseLease(): void {
    const l = this.lease;
    if (l === null) return;
    this.lease = null;
    this.leased = null;
    this.pool!.release(l);
  }

  /** Leaves the pool's queue (timeout, retry elsewhere, client gone). */
  private stopWaiting(): void {
    if (!this.waiting) return;
    this.waiting = false;
    this.pool!.cancel(this);
  }

  /** Resets the try's stream (if open) and gives its slot back. */
  private cancelUp(code: number): void {
    const up = this.up;
    this.up = null;
    if (up !== null) up.conn.reset(up, code);
    if (up === this.leased) this.releaseLease();
  }

  // ---- events from either stream
  onHeaders(s: H2Stream, h: string[], end: boolean): void {
    if (this.idleTimer !== null) this.lastActive = performance.now();
    if (s === this.down) {
      // Request trailers: forwarded, and kept for a later attempt with the body.
      if (!end) { this.dc.reset(s, E.PROTOCOL_ERROR); this.onClosed(s, E.PROTOCOL_ERROR); return; }
      this.reqEnded = true;
      this.reqTrailers = forwardable(h, false, false);
      const up = this.up;
      if (up !== null) up.conn.sendHeaders(up, this.reqTrailers, true);
      return;
    }
    if (s !== this.up) return;
    if (!this.responded) { this.onResponse(h, end); return; }
    const g = field(h, 'grpc-status');
    if (g !== undefined) this.lc.grpcStatus = Number(g);
    // Book before forwarding: ending the client's stream finishes this exchange.
    if (end) this.onUpEnd();
    this.dc.sendHeaders(this.down, forwardable(h, false, false), true);
  }

  onData(s: H2Stream, data: Buffer, end: boolean): void {
    if (this.idleTimer !== null) this.lastActive = performance.now();
    if (s === this.down) {
      if (end) this.reqEnded = true;
      const up = this.up;
      if (up === null || this.body !== null) {
        if (this.body !== null && (up === null || this.bodyBytes + data.length <= MAX_REPLAY)) { this.body.push(data); this.bodyBytes += data.length; }
        else this.body = null;
      }
      if (up !== null) up.conn.sendData(up, data, end);
      return;
    }
    if (s !== this.up) return;
    if (end) this.onUpEnd();
    this.dc.sendData(this.down, data, end);
  }

  onSent(s: H2Stream, n: number): void {
    // Bytes left for the other side: the sender may send that much more.
    if (s === this.up) this.dc.credit(this.down, n);
    else if (s === this.down && this.up !== null) this.up.conn.credit(this.up, n);
  }

  onClosed(s: H2Stream, code: number): void {
    if (s === this.leased) this.releaseLease();
    if (s === this.down) this.onDownClosed(code);
    else if (s === this.up) this.onUpClosed(code);
  }

  /** A failed try may be retried when nothing reached the client and the body is replayable. */
  private retry(why: RetryOn, status: number, grpcStatus: number): boolean {
    if (this.responded || this.finished || this.body === null || !this.lc.mayRetry(why, status, grpcStatus)) return false;
    this.stopWaiting();
    this.cancelUp(E.CANCEL);
    this.lc.grpcStatus = -1;
    this.attempt();
    return true;
  }

  private onResponse(h: string[], end: boolean): void {
    if (this.finished) return;
    const lc = this.lc;
    const status = Number(field(h, ':status') ?? 0);
    if (status >= 100 && status < 200 && !end) return; // interim responses are not forwarded
    const g = field(h, 'grpc-status');
    const trailersOnly = g !== undefined;
    if (trailersOnly || status >= 500) {
      const gs = trailersOnly ? Number(g) : -1;
      if (trailersOnly) lc.grpcStatus = gs;
      this.book(trailersOnly && gs === GrpcStatus.UNAVAILABLE ? 503 : status, false);
      if (this.retry(RetryOn.Status, status, gs)) return;
    }
    lc.status = status;
    if (trailersOnly) lc.grpcStatus = Number(g);
    // Forwarded as received (':status' and all) unless hop-by-hop fields go or edits apply.
    const edits = lc.action!.responseHeaders;
    const out = forwardable(h, true, edits !== null);
    if (edits !== null) applyEdits(out, edits);
    this.responded = true;
    this.body = null;
    if (end) this.onUpEnd();
    this.dc.sendHeaders(this.down, out, end);
  }

  /** The upstream response ended (END_STREAM on DATA or trailers). */
  private onUpEnd(): void {
    if (this.upDone) return;
    this.upDone = true;
    this.book(this.lc.status, this.lc.grpcStatus === GrpcStatus.UNAVAILABLE);
  }

  /** The try took longer than the retry policy's per-try timeout: another try if the
   *  budget allows and nothing reached the client yet, else a timeout like the deadline. */
  private onTryTimeout(): void {
    this.tryTimer = null;
    if (this.finished) return;
    this.lc.flags = 'per_try_timeout';
    this.book(504, true);
    if (this.retry(RetryOn.PerTryTimeout, 504, -1)) return;
    this.timeOut('per_try_timeout');
  }

  /** Route idle timeout: no frame either way for that long. */
  private onIdle(): void {
    this.idleTimer = null;
    if (this.finished) return;
    const idle = this.lc.action!.idleTimeoutMs;
    const quiet = performance.now() - this.lastActive;
    if (quiet < idle) { this.idleTimer = setTimeout(() => this.onIdle(), idle - quiet); return; }
    this.timeOut('idle_timeout');
  }

  private onDeadline(): void {
    this.timer = null;
    this.timeOut('timeout');
  }

  /** Ends the exchange for a timeout: 504 / DEADLINE_EXCEEDED before the response
   *  started, DEADLINE_EXCEEDED trailers (gRPC) or a reset after. */
  private timeOut(flags: string): void {
    if (this.finished) return;
    this.lc.flags = flags;
    this.stopWaiting();
    this.cancelUp(E.CANCEL);
    this.book(504, true);
    if (!this.responded) this.local(504, GrpcStatus.DEADLINE_EXCEEDED, 'deadline exceeded');
    else if (this.grpc) {
      this.lc.grpcStatus = GrpcStatus.DEADLINE_EXCEEDED;
      this.dc.sendHeaders(this.down, ['grpc-status', String(GrpcStatus.DEADLINE_EXCEEDED), 'grpc-message', 'deadline exceeded'], true);
    } else this.dc.reset(this.down, E.CANCEL);
  }

  private failUpstream(detail: string, connectFailure: boolean): void {
    if (this.finished) return;
    this.lc.flags = detail;
    this.book(502, true);
    if (this.retry(connectFailure ? RetryOn.ConnectFailure : RetryOn.Reset, 502, -1)) return;
    this.up = null;
    if (!this.responded) this.local(502, GrpcStatus.UNAVAILABLE, `upstream error: ${detail}`);
    else this.dc.reset(this.down, E.INTERNAL_ERROR);
  }

  private onUpClosed(code: number): void {
    if (this.finished) return;
    if (code === 0) { if (!this.upDone) this.failUpstream('upstream closed before responding', false); return; }
    if (this.upDone) return;
    // The upstream reset the stream (or its connection failed): pass the reset on.
    const refused = code === E.REFUSED_STREAM;
    this.book(this.responded ? this.lc.status : 502, !this.responded);
    if (!this.responded && this.retry(refused ? RetryOn.ConnectFailure : RetryOn.Reset, 502, -1)) return;
    this.up = null;
    if (!this.responded) { this.lc.flags = refused ? 'upstream_refused' : 'upstream_reset'; this.local(502, refused ? GrpcStatus.UNAVAILABLE : GrpcStatus.CANCELLED, 'upstream reset'); }
    else this.dc.reset(this.down, code === E.NO_ERROR ? E.CANCEL : code);
  }

  private onDownClosed(code: number): void {
    this.clearTimers();
    this.stopWaiting();
    const up = this.up;
    this.up = null;
    // A complete exchange closes its upstream stream by itself; anything else is cancelled.
    if (up !== null && !up.closed && !(this.upDone && up.localEnd)) {
      up.conn.reset(up, E.CANCEL);
      if (up === this.leased) this.releaseLease();
      if (!this.upDone && code !== 0) {
        // The client cancelled (RST_STREAM) or went away: cancel upstream too.
        this.lc.flags = 'client_cancelled';
        this.book(499, false);
      }
    }
    this.finish();
  }

  /** Books the try against the endpoint: latency, outlier detection, limits. */
  private book(status: number, gatewayError: boolean): void {
    this.clearTryTimer();
    const lc = this.lc;
    if (lc.endpoint === null) return;
    lc.book(status, gatewayError);
    if (lc.status === 0) lc.status = status;
  }

  /** Answers locally: HTTP status, or for gRPC a trailers-only response. */
  private local(status: number, grpcStatus: number, message: string): void {
    if (this.down.closed || this.responded) return;
    this.clearTimers();
    this.stopWaiting();
    this.responded = true;
    this.body = null;
    const lc = this.lc;
    if (this.grpc) {
      lc.status = 200;
      lc.grpcStatus = grpcStatus;
      this.dc.sendHeaders(this.down, [':status', '200', 'content-type', 'application/grpc', 'grpc-status', String(grpcStatus), 'grpc-message', encodeURIComponent(message)], true);
    } else {
      lc.status = status;
      this.dc.sendHeaders(this.down, [':status', String(status), 'content-type', 'text/plain'], false);
      this.dc.sendData(this.down, Buffer.from(`${message}\n`), true);
    }
  }

  private clearTryTimer(): void {
    if (this.tryTimer !== null) { clearTimeout(this.tryTimer); this.tryTimer = null; }
  }

  private clearTimers(): void {
    if (this.timer !== null) { clearTimeout(this.timer); this.timer = null; }
    this.clearTryTimer();
    if (this.idleTimer !== null) { clearTimeout(this.idleTimer); this.idleTimer = null; }
  }

  private finish(): void {
    if (this.finished) return;
    this.clearTimers();
    this.stopWaiting();
    this.finished = true;
    this.body = null;
    const lc = this.lc;
    if (lc.status === 0) lc.status = this.responded ? 200 : 499;
    lc.finish(this.ctx, this.view.method, this.view.path, field(this.headers, ':authority') ?? '', this.grpc);
  }
}
