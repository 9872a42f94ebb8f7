// HTTP/2 (h2c prior knowledge) and gRPC proxying on node:http2.
//
// Each client stream is routed like an HTTP/1.1 request (same matcher, weights,
// limits) and forwarded on a pooled, multiplexed client session to the chosen endpoint.
// Bodies move with pipe() in both directions so HTTP/2 flow control reaches the peer
// at the other end: a slow receiver stops its sender instead of filling our memory.
// Trailers, grpc-timeout deadlines and RST_STREAM cancellation are carried both ways.
import http2, { constants as C, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import { Socket as NetSocket, type Socket } from 'node:net';
import type { Connector } from '../http/upstream';
import type { Cluster } from '../balancer/cluster';
import type { EndpointState } from '../balancer/endpoint';
import { selectBackend, selectRoute, type RequestView, type RouteAction, type ServiceRoutes } from '../routing/table';
import { faultAbort, faultDelay } from '../routing/fault';
import type { RequestSeries } from '../routing/metrics';
import type { AccessSink } from '../routing/access-log';
import { Tracer } from '../routing/tracing';
import type { Logger } from '../../telemetry/logger';
import { parseGrpcTimeout } from './grpc-timeout';
import type { Origin } from '../outbound';

export interface H2Options {
  connect: Connector;
  logger: Logger;
  accessLog: AccessSink | null;
  tracer: Tracer | null;
  maxConcurrentStreams: number;
  maxHeaderListSize: number;
  /** Client stream resets per second on one connection before it is closed (rapid reset). */
  maxResetsPerSecond: number;
  /** Per-stream buffering in each direction. */
  highWaterMark: number;
  /** Streams on one upstream session before another session is opened... */
  streamsPerSession: number;
  /** ...up to this many sessions per (endpoint, source). */
  sessionsPerEndpoint: number;
}

export interface H2Conn {
  routes: ServiceRoutes;
  origin: Origin;
  series: RequestSeries | null;
  /** Inbound L7 authorization; null on the outbound side. */
  authorize: ((r: RequestView) => boolean) | null;
}

/** Request bodies up to this size are kept for retries. */
const MAX_REPLAY = 64 * 1024;

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings']);

/** gRPC status codes used for locally generated answers. */
export const GrpcStatus = { OK: 0, CANCELLED: 1, DEADLINE_EXCEEDED: 4, RESOURCE_EXHAUSTED: 8, PERMISSION_DENIED: 7, INTERNAL: 13, UNAVAILABLE: 14 } as const;

class StreamView implements RequestView {
  method: string; path: string; query: string;
  constructor(readonly h: IncomingHttpHeaders) {
    this.method = String(h[':method'] ?? '');
    const p = String(h[':path'] ?? '/');
    const q = p.indexOf('?');
    this.path = q < 0 ? p : p.slice(0, q);
    this.query = q < 0 ? '' : p.slice(q + 1);
  }
  header(n: string): string | undefined { const v = this.h[n === 'host' ? ':authority' : n]; return Array.isArray(v) ? v[0] : v; }
}

/** An upstream HTTP/2 session and the streams open on it. */
interface UpstreamSession { session: ClientHttp2Session; active: number }

/** The sessions to one (endpoint, source); drain() closes them gracefully. */
class SessionGroup {
  sessions: UpstreamSession[] = [];
  remove(u: UpstreamSession): void { const i = this.sessions.indexOf(u); if (i >= 0) this.sessions.splice(i, 1); }
  drain(): void { for (const u of this.sessions.splice(0)) u.session.close(); }
}

interface ConnState { conn: H2Conn; resets: number; resetWindow: number; session: ServerHttp2Session | null }

export class H2Proxy {
  private readonly o: H2Options;
  private readonly server: http2.Http2Server;
  private readonly states = new WeakMap<ServerHttp2Session, ConnState>();
  private next: ConnState | null = null;
  private readonly upstreamSessions = new Set<ClientHttp2Session>();
  private readonly downstreamSessions = new Set<ServerHttp2Session>();

  constructor(o: Partial<H2Options> & Pick<H2Options, 'connect' | 'logger' | 'accessLog' | 'tracer'>) {
    this.o = {
      maxConcurrentStreams: 256, maxHeaderListSize: 16 * 1024, maxResetsPerSecond: 200, highWaterMark: 64 * 1024,
      streamsPerSession: 16, sessionsPerEndpoint: 8, ...o,
    };
    this.server = http2.createServer({
      settings: { maxConcurrentStreams: this.o.maxConcurrentStreams, maxHeaderListSize: this.o.maxHeaderListSize },
      maxSessionInvalidFrames: 100, maxSessionRejectedStreams: 100,
    });
    this.server.on('session', (s) => {
      if (this.next !== null) { this.next.session = s; this.states.set(s, this.next); this.next = null; }
      s.on('error', () => s.destroy());
      this.downstreamSessions.add(s);
      s.once('close', () => this.downstreamSessions.delete(s));
    });
    this.server.on('stream', (st, h) => this.onStream(st, h));
  }

  /** Takes over an accepted socket; `initial` are bytes already read (the preface). */
  handle(sock: Socket, routes: ServiceRoutes, origin: Origin, series: RequestSeries | null, authorize: H2Conn['authorize'], initial: Buffer | null): void {
    if (initial !== null) sock.unshift(initial);
    // The server creates the session synchronously inside 'connection'.
    this.next = { conn: { routes, origin, series, authorize }, resets: 0, resetWindow: 0, session: null };
    // No resume(): the session reads from the socket handle itself and takes what is
    // buffered (the unshifted preface) on the next tick; flowing mode would drop it.
    this.server.emit('connection', sock);
    this.next = null;
  }

  private sessionFor(ep: EndpointState, origin: Origin): UpstreamSession {
    let group = ep.h2.get(origin.cgroupId) as SessionGroup | undefined;
    if (group === undefined) { group = new SessionGroup(); ep.h2.set(origin.cgroupId, group); }
    // Least-loaded live session; a new one when all are busy. Many streams on one
    // session serialise on one upstream connection (and one server event loop turn).
    let best: UpstreamSession | null = null;
    for (const u of group.sessions) if (best === null || u.active < best.active) best = u;
    if (best !== null && (best.active < this.o.streamsPerSession || group.sessions.length >= this.o.sessionsPerEndpoint)) return best;
    const session = http2.connect(`http://${ep.endpoint.ip}:${ep.endpoint.port}`, {
      createConnection: () => {
        const s = this.o.connect(ep.endpoint, origin);
        // Without this, Nagle + delayed ACK add ~40 ms to small gRPC frames.
        if (s instanceof NetSocket) s.setNoDelay(true);
        return s as Socket;
      },
      settings: { enablePush: false, initialWindowSize: this.o.highWaterMark * 4 },
    });
    const u: UpstreamSession = { session, active: 0 };
    session.on('error', () => { /* surfaced on the streams */ });
    const forget = (): void => { group!.remove(u); this.upstreamSessions.delete(session); };
    session.on('close', forget);
    session.on('goaway', forget);
    this.upstreamSessions.add(session);
    group.sessions.push(u);
    return u;
  }

  private onStream(down: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    const state = this.states.get(down.session as ServerHttp2Session);
    if (state === undefined) { down.close(C.NGHTTP2_REFUSED_STREAM); return; }
    new H2Exchange(this, state, down, headers).start();
  }

  /** Rapid-reset protection: counts client resets per connection per second. */
  noteClientReset(state: ConnState): void {
    const session = state.session;
    if (session === null || session.destroyed) return;
    const now = performance.now();
    if (now - state.resetWindow > 1000) { state.resetWindow = now; state.resets = 0; }
    if (++state.resets > this.o.maxResetsPerSecond) {
      this.o.logger.warn('closing HTTP/2 connection: too many stream resets');
      session.goaway(C.NGHTTP2_ENHANCE_YOUR_CALM);
      session.destroy();
    }
  }

  get options(): H2Options { return this.o; }
  upstream(ep: EndpointState, origin: Origin): UpstreamSession { return this.sessionFor(ep, origin); }

  /** Agent restart: GOAWAY to every client session; streams in flight finish, new ones
   *  go to a new connection (the new agent). Resolves when all sessions are closed. */
  drain(): Promise<void> {
    const closing = [...this.downstreamSessions].map((s) => new Promise<void>((r) => s.close(() => r())));
    return Promise.all(closing).then(() => undefined);
  }

  close(): void {
    for (const s of this.downstreamSessions) s.destroy();
    for (const s of this.upstreamSessions) s.destroy();
    this.server.close();
  }
}

/** One proxied stream. */
class H2Exchange {
  private readonly view: StreamView;
  private readonly grpc: boolean;
  private action: RouteAction | null = null;
  private cluster: Cluster | null = null;
  private endpoint: EndpointState | null = null;
  private up: ClientHttp2Stream | null = null;
  private readonly started = performance.now();
  private status = 0;
  private grpcStatus = -1;
  private timer: NodeJS.Timeout | null = null;
  private trailers: Record<string, string | string[]> | null = null;
  private responded = false;
  private finished = false;
  private flags = '';
  private outHeaders: Record<string, string | string[]> | null = null;
  /** Request body kept for a retry; null once too large or once the response started. */
  private replay: Buffer[] | null = [];
  private replayBytes = 0;
  private reqEnded = false;
  private attempts = 0;
  private tryStarted = 0;

  constructor(private readonly proxy: H2Proxy, private readonly state: ConnState, private readonly down: ServerHttp2Stream, private readonly headers: IncomingHttpHeaders) {
    this.view = new StreamView(headers);
    this.grpc = String(headers['content-type'] ?? '').startsWith('application/grpc');
  }

  start(): void {
    const conn = this.state.conn;
    const down = this.down;
    down.on('error', () => { /* reported through 'close' */ });
    down.on('close', () => this.onDownClose());
    if (conn.authorize !== null && !conn.authorize(this.view)) {
      this.flags = 'rbac_denied';
      this.local(403, GrpcStatus.PERMISSION_DENIED, 'RBAC: access denied');
      return;
    }
    const action = this.action = selectRoute(conn.routes, this.view);
    if (action.rateLimit !== null && !action.rateLimit.take(this.started)) {
      this.flags = 'rate_limited';
      this.local(429, GrpcStatus.RESOURCE_EXHAUSTED, 'local rate limit');
      return;
    }
    if (action.fault !== null) {
      if (faultAbort(action.fault)) {
        const a = action.fault.abort!;
        this.flags = 'fault_abort';
        this.local(a.httpStatus ?? 503, a.grpcStatus ?? GrpcStatus.UNAVAILABLE, 'fault injected');
        return;
      }
      const d = faultDelay(action.fault);
      if (d > 0) { this.flags = 'fault_delay'; setTimeout(() => this.forward(), d); return; }
    }
    this.forward();
  }

  /** Deadline: the route timeout and the caller's grpc-timeout, whichever is sooner. */
  private deadlineMs(): number {
    let ms = this.action!.timeoutMs;
    const gt = this.grpc ? parseGrpcTimeout(this.headers['grpc-timeout']) : -1;
    if (gt >= 0 && (ms === 0 || gt < ms)) ms = gt;
    if (ms > 0) ms = Math.max(0, ms - (performance.now() - this.started));
    return ms === 0 && (this.action!.timeoutMs > 0 || gt >= 0) ? 1 : ms;
  }

  private forward(): void {
    if (this.finished) return;
    const cluster = this.cluster = selectBackend(this.action!);
    if (cluster.active >= cluster.limits.maxRequests) { this.flags = 'overflow'; this.local(503, GrpcStatus.UNAVAILABLE, 'circuit breaker open'); return; }
    const out: Record<string, string | string[]> = {};
    for (const k in this.headers) {
      if (HOP_BY_HOP.has(k) || (k === 'te' && this.headers[k] !== 'trailers')) continue;
      const v = this.headers[k];
      if (v !== undefined) out[k] = v;
    }
    const edits = this.action!.requestHeaders;
    if (edits !== null) {
      for (const r of edits.remove) delete out[r];
      for (const s of edits.set) out[s.name] = s.value;
      for (const a of edits.add) { const prev = out[a.name]; out[a.name] = prev === undefined ? a.value : ([] as string[]).concat(prev, a.value); }
    }
    const tracer = this.proxy.options.tracer;
    const span = tracer !== null ? tracer.start(`${this.view.method} ${this.action!.name}`, this.view.header('traceparent')) : null;
    if (span !== null) {
      out.traceparent = Tracer.header(span);
      this.down.once('close', () => tracer!.end(span, { 'http.method': this.view.method, 'http.target': this.view.path, 'http.status_code': this.status, 'rpc.grpc.status_code': this.grpcStatus }, this.status >= 500 || this.grpcStatus > 0));
    }
    this.outHeaders = out;
    cluster.budget.deposit(this.started);
    const deadline = this.deadlineMs();
    if (deadline > 0) this.timer = setTimeout(() => this.onDeadline(), deadline);
    // Request body: forwarded as it comes, and kept (up to MAX_REPLAY) while a retry is
    // still possible. Manual flow control instead of pipe() so the target can change.
    this.down.on('data', (d: Buffer) => this.onDownData(d));
    this.down.on('end', () => { this.reqEnded = true; if (this.up !== null && !this.up.destroyed) this.up.end(); });
    this.down.once('wantTrailers', () => this.down.sendTrailers(this.trailers ?? { 'grpc-status': String(this.grpcStatus < 0 ? 0 : this.grpcStatus) }));
    this.attempt();
  }

  private onDownData(d: Buffer): void {
    if (this.replay !== null) {
      this.replayBytes += d.length;
      if (this.replayBytes <= MAX_REPLAY) this.replay.push(d); else this.replay = null;
    }
    const up = this.up;
    if (up !== null && !up.destroyed && !up.write(d)) this.down.pause();
  }

  /** One try against an endpoint of the chosen cluster. */
  private attempt(): void {
    const cluster = this.cluster!;
    const ep = this.endpoint = cluster.pick(performance.now());
    if (ep === null) { this.flags = 'no_healthy_upstream'; this.local(503, GrpcStatus.UNAVAILABLE, 'no healthy upstream'); return; }
    cluster.active++;
    ep.inflight++;
    this.attempts++;
    this.tryStarted = performance.now();
    let up: ClientHttp2Stream;
    let us: UpstreamSession;
    try {
      us = this.proxy.upstream(ep, this.state.conn.origin);
      up = us.session.request(this.outHeaders!, { endStream: false });
    } catch (e) {
      this.failUpstream(String(e), true);
      return;
    }
    us.active++;
    up.once('close', () => { us.active--; });
    this.up = up;
    up.on('response', (h) => { if (this.up === up) this.onResponse(h); });
    up.on('trailers', (t) => { if (this.up !== up) return; this.trailers = filterHeaders(t); const g = t['grpc-status']; if (g !== undefined) this.grpcStatus = Number(g); });
    up.on('error', (e: NodeJS.ErrnoException) => { if (this.up === up) this.failUpstream(e.message, e.code === 'ECONNREFUSED' || e.code === 'ERR_HTTP2_STREAM_ERROR'); });
    up.on('close', () => { if (this.up === up) this.onUpClose(up.rstCode ?? 0); });
    up.on('drain', () => { if (this.up === up) this.down.resume(); });
    if (this.attempts > 1) for (const b of this.replay!) up.write(b);
    if (this.reqEnded) up.end();
  }

  /** A failed try may be retried when nothing reached the client and the body is replayable. */
  private retry(kind: 'status' | 'connect' | 'reset', status: number, grpcStatus: number): boolean {
    const r = this.action!.retry;
    if (r === null || this.responded || this.finished || this.replay === null || this.attempts > r.attempts) return false;
    const wanted = kind === 'status'
      ? (grpcStatus >= 0 ? r.grpcCodes.has(grpcStatus) : r.on5xx || r.statusCodes.has(status) || (r.gatewayError && status >= 502 && status <= 504))
      : r.on5xx || r.gatewayError || (kind === 'connect' ? r.connectFailure : r.reset);
    if (!wanted || !this.cluster!.budget.withdraw(performance.now())) return false;
    const up = this.up;
    this.up = null;
    if (up !== null && !up.destroyed) up.close(C.NGHTTP2_CANCEL);
    this.grpcStatus = -1;
    this.trailers = null;
    this.attempt();
    return true;
  }

  private onResponse(h: IncomingHttpHeaders): void {
    if (this.finished || this.down.destroyed) return;
    const status = Number(h[':status'] ?? 0);
    const g = h['grpc-status'];
    const trailersOnly = g !== undefined;
    if (trailersOnly || status >= 500) {
      const gs = trailersOnly ? Number(g) : -1;
      this.book(trailersOnly && gs === GrpcStatus.UNAVAILABLE ? 503 : status, false);
      if (this.retry('status', status, gs)) return;
    }
    this.status = status;
    if (trailersOnly) this.grpcStatus = Number(g);
    const out = filterHeaders(h);
    out[':status'] = String(this.status);
    const edits = this.action!.responseHeaders;
    if (edits !== null) {
      for (const r of edits.remove) delete out[r];
      for (const s of edits.set) out[s.name] = s.value;
      for (const a of edits.add) out[a.name] = a.value;
    }
    this.responded = true;
    this.replay = null;
    if (trailersOnly) { this.down.respond(out, { endStream: true }); return; }
    this.down.respond(out, { waitForTrailers: this.grpc });
    this.up!.pipe(this.down);
  }

  private onDeadline(): void {
    this.timer = null;
    this.flags = 'timeout';
    if (this.up !== null && !this.up.destroyed) this.up.close(C.NGHTTP2_CANCEL);
    this.book(504, true);
    if (!this.responded) this.local(504, GrpcStatus.DEADLINE_EXCEEDED, 'deadline exceeded');
    else if (this.grpc) { this.trailers = { 'grpc-status': String(GrpcStatus.DEADLINE_EXCEEDED), 'grpc-message': 'deadline exceeded' }; this.grpcStatus = GrpcStatus.DEADLINE_EXCEEDED; this.up?.unpipe(this.down); this.down.end(); }
    else this.down.close(C.NGHTTP2_CANCEL);
  }

  private failUpstream(detail: string, connectFailure: boolean): void {
    if (this.finished) return;
    this.flags = detail;
    this.book(502, true);
    if (this.retry(connectFailure ? 'connect' : 'reset', 502, -1)) return;
    if (!this.responded) this.local(502, GrpcStatus.UNAVAILABLE, `upstream error: ${detail}`);
    else this.down.close(C.NGHTTP2_INTERNAL_ERROR);
  }

  private onUpClose(rst: number): void {
    if (this.finished) return;
    if (rst !== 0 && rst !== C.NGHTTP2_NO_ERROR) {
      // The upstream reset the stream: pass the reset on (cancellation both ways).
      this.book(this.responded ? this.status : 502, !this.responded);
      if (!this.responded && this.retry(rst === C.NGHTTP2_REFUSED_STREAM ? 'connect' : 'reset', 502, -1)) return;
      if (!this.responded) this.local(502, rst === C.NGHTTP2_REFUSED_STREAM ? GrpcStatus.UNAVAILABLE : GrpcStatus.CANCELLED, 'upstream reset');
      else if (!this.down.destroyed) this.down.close(rst);
      return;
    }
    if (!this.responded) { this.failUpstream('upstream closed before responding', false); return; }
    this.book(this.status, this.grpcStatus === GrpcStatus.UNAVAILABLE);
  }

  private onDownClose(): void {
    if (this.timer !== null) { clearTimeout(this.timer); this.timer = null; }
    const up = this.up;
    if (!this.finished && up !== null && !up.destroyed) {
      // The client cancelled (RST_STREAM) or went away: cancel upstream too.
      up.close(C.NGHTTP2_CANCEL);
      this.flags = 'client_cancelled';
      this.book(499, false);
    }
    if (this.down.rstCode !== undefined && this.down.rstCode !== C.NGHTTP2_NO_ERROR && !this.responded) {
      this.proxy.noteClientReset(this.state);
    }
    this.finish();
  }

  /** Books the try against the endpoint: latency, outlier detection, limits. */
  private book(status: number, gatewayError: boolean): void {
    const ep = this.endpoint, cl = this.cluster;
    if (ep === null || cl === null) return;
    this.endpoint = null;
    const now = performance.now();
    ep.inflight--;
    cl.active--;
    ep.observe(now - this.tryStarted, now);
    cl.outlier?.record(ep, this.grpcStatus === GrpcStatus.UNAVAILABLE ? 503 : status, gatewayError, now);
    if (this.status === 0) this.status = status;
  }

  /** Answers locally: HTTP status, or for gRPC a trailers-only response. */
  private local(status: number, grpcStatus: number, message: string): void {
    if (this.down.destroyed || this.down.headersSent) return;
    if (this.timer !== null) { clearTimeout(this.timer); this.timer = null; }
    this.responded = true;
    if (this.grpc) {
      this.status = 200;
      this.grpcStatus = grpcStatus;
      this.down.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(grpcStatus), 'grpc-message': encodeURIComponent(message) }, { endStream: true });
    } else {
      this.status = status;
      this.down.respond({ ':status': status, 'content-type': 'text/plain' });
      this.down.end(`${message}\n`);
    }
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.status === 0) this.status = this.responded ? 200 : 499;
    const dur = performance.now() - this.started;
    this.state.conn.series?.record(this.status, this.grpc ? this.grpcStatus : -1, dur / 1000);
    const log = this.proxy.options.accessLog;
    if (log !== null && log.wants(this.status)) {
      log.write({
        method: this.view.method, path: this.view.path, authority: String(this.headers[':authority'] ?? ''), status: this.status,
        grpcStatus: this.grpcStatus, durationMs: dur, route: this.action?.name ?? '', upstream: this.cluster?.name ?? '', attempts: this.attempts, traceId: '', flags: this.flags,
      });
    }
  }
}

function filterHeaders(h: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const k in h) {
    if (k.charCodeAt(0) === 0x3a || HOP_BY_HOP.has(k)) continue;
    const v = h[k];
    if (v !== undefined) out[k] = v;
  }
  return out;
}
