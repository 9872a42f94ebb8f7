// The request pipeline above the protocol codecs: authorize -> route -> rate limit ->
// fault -> circuit breaker -> pick -> retry and budget -> book -> finish (metrics, access
// log, trace). HTTP/1.1 (http/downstream.ts) and HTTP/2 (h2/proxy.ts) speak their
// protocol and call this for every decision about a request; neither repeats any of it.
//
// A codec implements `Exchange` (how to answer locally, how to forward) and owns one
// `Lifecycle` per exchange (HTTP/1.1 reuses one per connection: nothing is allocated per
// request on the common path).
import type { Cluster } from '../balancer/cluster';
import type { EndpointState } from '../balancer/endpoint';
import { selectBackend, selectRoute, type RequestView, type RouteAction, type ServiceRoutes } from '../routing/table';
import { faultAbort, faultDelay } from '../routing/fault';
import type { RequestSeries } from '../routing/metrics';
import type { AccessSink } from '../routing/access-log';
import { Tracer, type Span } from '../routing/tracing';
import { DEFAULT_PATH_NORMALIZATION, normalizePath, type PathNormalization } from '../http/path';
import type { Origin } from '../types';

/** gRPC status codes used for locally generated answers. */
export const GrpcStatus = { OK: 0, CANCELLED: 1, DEADLINE_EXCEEDED: 4, RESOURCE_EXHAUSTED: 8, PERMISSION_DENIED: 7, INTERNAL: 13, UNAVAILABLE: 14 } as const;

/** Per-connection context: where the client was going and who it is (both codecs). */
export interface ExchangeContext {
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

/** What the pipeline needs from the proxies that share it. */
export interface PipelineOptions {
  accessLog: AccessSink | null;
  tracer: Tracer | null;
  /** Path normalization (MeshConfig spec.pathNormalization; a shared object the agent
   *  updates per snapshot). */
  paths?: PathNormalization;
}

/** What a codec does for the pipeline, in its own protocol. */
export interface Exchange {
  /** Answers the request locally (HTTP status; gRPC status and message for gRPC). */
  localReply(status: number, grpcStatus: number, message: string): void;
  /** Admission passed (after a fault delay, if any): send the request upstream. */
  forward(): void;
}

/** Why a try failed, as retry policies name it (Gateway: a protocol error or timeout,
 *  which only 5xx and gateway-error cover). */
export const enum RetryOn { Status, ConnectFailure, Reset, Gateway, PerTryTimeout }

/** What fault injection made of a request. */
export const enum Fault { None, Aborted, Delayed }

export class Lifecycle {
  action: RouteAction | null = null;
  cluster: Cluster | null = null;
  /** The endpoint of the try in flight (null between tries). */
  endpoint: EndpointState | null = null;
  attempts = 0;
  started = 0;
  tryStarted = 0;
  status = 0;
  grpcStatus = -1;
  flags = '';
  span: Span | null = null;
  private delay: NodeJS.Timeout | null = null;

  constructor(private readonly ex: Exchange, private readonly o: PipelineOptions) {}

  /** A new request on the exchange. */
  begin(): void {
    this.action = null;
    this.cluster = null;
    this.endpoint = null;
    this.attempts = 0;
    this.started = performance.now();
    this.status = 0;
    this.grpcStatus = -1;
    this.flags = '';
    this.span = null;
  }

  /** The path routing and authorization see (and the backend gets), or null: 400. */
  normalize(path: string): string | null {
    const p = normalizePath(path, this.o.paths ?? DEFAULT_PATH_NORMALIZATION);
    if (p === null) { this.flags = 'invalid_path'; this.ex.localReply(400, GrpcStatus.INTERNAL, 'invalid request path'); }
    return p;
  }

  /** Authorize, route, rate limit. False when the request was answered locally. */
  admit(req: RequestView, ctx: ExchangeContext): boolean {
    if (ctx.authorize !== null && !ctx.authorize(req)) {
      this.flags = 'rbac_denied';
      this.ex.localReply(403, GrpcStatus.PERMISSION_DENIED, 'RBAC: access denied');
      return false;
    }
    const action = this.action = selectRoute(ctx.routes, req);
    if (action.rateLimit !== null && !action.rateLimit.take(this.started)) {
      this.flags = 'rate_limited';
      this.ex.localReply(429, GrpcStatus.RESOURCE_EXHAUSTED, 'local rate limit');
      return false;
    }
    return true;
  }

  /** Starts the request's span when tracing: the traceparent value to forward, or null. */
  trace(req: RequestView): string | null {
    const tracer = this.o.tracer;
    if (tracer === null) return null;
    this.span = tracer.start(`${req.method} ${this.action!.name}`, req.header('traceparent'));
    return Tracer.header(this.span);
  }

  /** Fault injection: None (forward now), Aborted (answered), or Delayed (`forward` is
   *  called after the delay; the codec holds its input meanwhile). */
  fault(): Fault {
    const f = this.action!.fault;
    if (f === null) return Fault.None;
    if (faultAbort(f)) {
      this.flags = 'fault_abort';
      this.ex.localReply(f.abort!.httpStatus ?? 503, f.abort!.grpcStatus ?? GrpcStatus.UNAVAILABLE, 'fault injected');
      return Fault.Aborted;
    }
    const d = faultDelay(f);
    if (d <= 0) return Fault.None;
    this.flags = 'fault_delay';
    this.delay = setTimeout(() => { this.delay = null; this.ex.forward(); }, d);
    return Fault.Delayed;
  }

  /** The backend cluster under its request limit (circuit breaker), with the request
   *  deposited in its retry budget; null after answering 503 (overflow, counted). */
  dispatch(): Cluster | null {
    const cluster = this.cluster = selectBackend(this.action!);
    if (cluster.active >= cluster.limits.maxRequests) {
      cluster.overflows++;
      this.flags = 'overflow';
      this.ex.localReply(503, GrpcStatus.UNAVAILABLE, 'circuit breaker open');
      return null;
    }
    cluster.budget.deposit(this.started);
    return cluster;
  }

  /** Picks the endpoint of the next try and books it as in flight; null after answering
   *  503 (no healthy endpoint). */
  pick(origin: Origin): EndpointState | null {
    const cluster = this.cluster!;
    const now = performance.now();
    const ep = this.endpoint = cluster.pick(now, origin.cgroupId);
    if (ep === null) { this.flags = 'no_healthy_upstream'; this.ex.localReply(503, GrpcStatus.UNAVAILABLE, 'no healthy upstream'); return null; }
    this.attempts++;
    this.tryStarted = now;
    cluster.active++;
    ep.inflight++;
    return ep;
  }

  /** The connection pool refused the try (overflow: counted by the pool). */
  overflow(): void {
    this.unbook();
    this.flags = 'overflow';
    this.ex.localReply(503, GrpcStatus.UNAVAILABLE, 'circuit breaker open');
  }

  /** Books the end of the try in flight: latency, outlier detection, limits. */
  book(status: number, gatewayError: boolean): void {
    const ep = this.endpoint, cl = this.cluster;
    if (ep === null || cl === null) return;
    this.endpoint = null;
    const now = performance.now();
    ep.inflight--;
    cl.active--;
    ep.observe(now - this.tryStarted, now);
    cl.outlier?.record(ep, this.grpcStatus === GrpcStatus.UNAVAILABLE ? 503 : status, gatewayError, now);
  }

  /** Ends the try in flight without a result (never reached the endpoint). */
  unbook(): void {
    const ep = this.endpoint;
    if (ep === null) return;
    this.endpoint = null;
    ep.inflight--;
    this.cluster!.active--;
  }

  /** Whether the route's retry policy wants another try for this failure and the
   *  cluster's retry budget allows one (the codec checks the request is replayable). */
  mayRetry(why: RetryOn, status: number, grpcStatus: number): boolean {
    const r = this.action?.retry ?? null;
    if (r === null || this.attempts > r.attempts) return false;
    let wanted: boolean;
    switch (why) {
      case RetryOn.Status: wanted = grpcStatus >= 0 ? r.grpcCodes.has(grpcStatus) : r.on5xx || r.statusCodes.has(status) || (r.gatewayError && status >= 502 && status <= 504); break;
      // Envoy semantics: 5xx and gateway-error also cover connect failures and resets.
      case RetryOn.ConnectFailure: wanted = r.on5xx || r.gatewayError || r.connectFailure; break;
      case RetryOn.Reset: wanted = r.on5xx || r.gatewayError || r.reset; break;
      case RetryOn.Gateway: wanted = r.on5xx || r.gatewayError; break;
      // Setting perTryTimeout is asking for another try when one runs out.
      default: wanted = true;
    }
    return wanted && this.cluster!.budget.withdraw(performance.now());
  }

  /** The timeout of the next try: the per-try timeout within what is left of the route
   *  timeout (0: none). */
  tryTimeout(): number {
    const a = this.action!;
    const perTry = a.retry !== null ? a.retry.perTryTimeoutMs : 0;
    if (a.timeoutMs > 0) {
      const left = a.timeoutMs - (performance.now() - this.started);
      return perTry > 0 ? Math.max(1, Math.min(perTry, left)) : Math.max(1, left);
    }
    return perTry;
  }

  /** The exchange is over: the try in flight (if any) is released, and the request is
   *  reported once to metrics, the access log and the trace. */
  finish(ctx: ExchangeContext, method: string, path: string, authority: string, grpc: boolean): void {
    if (this.delay !== null) { clearTimeout(this.delay); this.delay = null; }
    this.unbook();
    const dur = performance.now() - this.started;
    const grpcStatus = grpc ? this.grpcStatus : -1;
    ctx.series?.record(this.status, grpcStatus, dur / 1000);
    const span = this.span;
    const log = this.o.accessLog;
    if (log !== null && log.wants(this.status)) {
      log.write({
        method, path, authority, status: this.status, grpcStatus: this.grpcStatus, durationMs: dur,
        route: this.action?.name ?? '', upstream: this.cluster?.name ?? '', attempts: this.attempts,
        traceId: span?.traceId ?? '', flags: this.flags, ...(ctx.series ? { peer: ctx.series.peer } : {}),
      });
    }
    if (span !== null) {
      const attrs: Record<string, string | number> = { 'http.method': method, 'http.target': path, 'http.status_code': this.status };
      if (grpc) attrs['rpc.grpc.status_code'] = grpcStatus;
      this.o.tracer!.end(span, attrs, this.status >= 500 || grpcStatus > 0);
      this.span = null;
    }
    this.action = null;
  }

  /** The exchange went away before finishing (client gone): cancel a pending delay. */
  cancel(): void {
    if (this.delay !== null) { clearTimeout(this.delay); this.delay = null; }
  }
}
