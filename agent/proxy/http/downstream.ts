// One client (downstream) HTTP/1.1 connection and the request exchange on it.
//
// Lean by construction: a request head is parsed in place, routed, and its raw bytes
// (plus whatever body arrived with them) go upstream in one write; the response comes
// back the same way. Requests are served one at a time: while one is in flight the
// client socket is paused and pipelined bytes wait in `pending`, so pipelining is safe
// without queues. Callbacks are methods of this object, not per-request closures.
//
// This file speaks HTTP/1.1 only: what to do with a request (authorization, routing,
// limits, faults, endpoint choice, retries, telemetry) is the pipeline's
// (pipeline/lifecycle.ts, shared with HTTP/2); connections come from the one pool
// (pipeline/pool.ts) under the cluster's limits.
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { Framing, HeadError, RequestHead, findHeadEnd, parseRequestHead } from './head-parser';
import { BodyFramer, FRAMING_ERROR } from './body-framer';
import { localReply } from './replies';
import { Upstream, UpstreamFailure, type UpstreamOwner } from './upstream';
import { isPlainTcp, readAccepted } from '../sockets/onread';
import type { Connector } from '../types';
import { rewriteHead } from './rewrite';
import { Acquire, ConnectionPool, type PoolWaiter } from '../pipeline/pool';
import { Fault, Lifecycle, RetryOn, type Exchange, type ExchangeContext, type PipelineOptions } from '../pipeline/lifecycle';
import type { Cluster } from '../balancer/cluster';
import type { EndpointState } from '../balancer/endpoint';
import type { HeaderEdits } from '../routing/table';
import type { Logger } from '../../telemetry/logger';
import type { Origin } from '../types';

export interface Http1Options extends PipelineOptions {
  connect: Connector;
  /** Slow-client limit: a started head must complete within this (408). */
  headerTimeoutMs: number;
  /** Keep-alive connections idle this long are closed. */
  idleTimeoutMs: number;
  maxHeadBytes: number;
  logger: Logger;
}

/** Per-connection context: where the client was going and who it is. */
export type Http1Conn = ExchangeContext;

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

/** The HTTP/1.1 pool to `ep` for `origin` (created on first use). */
export function poolOf(ep: EndpointState, cluster: Cluster, connect: Connector, origin: Origin): ConnectionPool<Upstream> {
  let p = ep.h1.get(origin.cgroupId) as ConnectionPool<Upstream> | undefined;
  if (p === undefined) {
    const pool: ConnectionPool<Upstream> = new ConnectionPool<Upstream>(cluster, ep, (e) => new Upstream(e, (read) => connect(e.endpoint, origin, read), pool));
    ep.h1.set(origin.cgroupId, pool);
    p = pool;
  }
  return p;
}

export class Downstream implements UpstreamOwner, PoolWaiter<Upstream>, Exchange {
  private phase = Phase.Head;
  /** Unconsumed client bytes: a partial head, or pipelined requests. */
  private pending: Buffer | null = null;
  private readonly req = new RequestHead();
  private readonly reqBody = new BodyFramer();
  private headStartTick = -1;
  private activeTick = 0;
  // -- the current exchange: policy, routing, tries and telemetry in the pipeline
  private readonly lc: Lifecycle;
  private pool: ConnectionPool<Upstream> | null = null;
  private up: Upstream | null = null;
  /** Request bytes not yet written upstream (waiting for a connection). */
  private outbound: Buffer | null = null;
  /** Head + full body kept for a retry, or null when not replayable. */
  private replay: Buffer | null = null;
  private responseStarted = false;
  private closeAfter = false;
  /** Set when the agent drains for a restart: answer with `Connection: close`. */
  private draining = false;
  private drainTick = 0;
  /** The try's timeout (per-try within the route timeout). */
  private timer: NodeJS.Timeout | null = null;
  /** The request offered an Upgrade this proxy forwards: a 101 may become a tunnel. */
  private upgradeOk = false;
  /** The client is a TCP socket (writes are done or copied when write() returns with
   *  nothing pending), not a TLS socket or a stream pair that keeps the buffers. */
  private readonly plainClient: boolean;

  constructor(
    private readonly sock: Socket | Duplex,
    private readonly conn: Http1Conn,
    private readonly o: Http1Options,
    private readonly sweeper: TimeoutSweeper,
    initial: Buffer | null,
  ) {
    this.lc = new Lifecycle(this, o);
    this.plainClient = isPlainTcp(sock);
    if (sock instanceof Socket) sock.setNoDelay(true);
    // A plain TCP client reads through `onread` (sockets/onread.ts); 'data' still brings
    // bytes the stream held before the switch (and everything on other transports).
    readAccepted(sock, (d) => this.onData(d));
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
      if (e instanceof HeadError) { this.lc.flags = e.reason; this.reject(e.status); return; }
      throw e;
    }
    this.begin(data, end);
  }

  private begin(data: Buffer, headEnd: number): void {
    const req = this.req;
    const lc = this.lc;
    lc.begin();
    this.responseStarted = false;
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
    const path = lc.normalize(req.path);
    if (path === null) return;
    if (path !== req.path || req.authority !== '') {
      req.path = path;
      req.newLine = `${req.method} ${path}${req.search} HTTP/1.${req.minor}`;
    }
    if (!lc.admit(req, this.conn)) return;
    const action = lc.action!;

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
      head = rewriteHead(req, edits, lc.trace(req));
      this.outbound = stop > headEnd ? Buffer.concat([head, data.subarray(headEnd, stop)]) : head;
    } else this.outbound = data.subarray(0, stop);
    this.replay = this.reqBody.done && this.outbound.length <= MAX_REPLAY ? this.outbound : null;

    switch (lc.fault()) {
      case Fault.None: this.forward(); return;
      case Fault.Delayed: this.sock.pause(); return;
      default: return;
    }
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

  /** Resumes reading the client if it is paused. resume() on a flowing stream is not
   *  free (it schedules a tick that re-runs the stream's flow): skipped per request. */
  private resumeClient(): void {
    if (this.sock.isPaused()) this.sock.resume();
  }

  private onClientDrain(): void {
    if (this.up !== null) this.up.sock.resume();
  }

  // ------------------------------------------------------------- upstream choice

  /** Admission passed (Exchange): the circuit breaker, then the first try. */
  forward(): void {
    if (this.phase === Phase.Closed) return;
    if (this.lc.dispatch() === null) return;
    this.tryUpstream();
  }

  private tryUpstream(): void {
    const lc = this.lc;
    const ep = lc.pick(this.conn.origin);
    if (ep === null) return;
    const timeout = lc.tryTimeout();
    if (timeout > 0) this.timer = setTimeout(() => this.onTimeout(), timeout);
    const pool = this.pool = poolOf(ep, lc.cluster!, this.o.connect, this.conn.origin);
    let r: Acquire;
    try { r = pool.acquire(this); } catch (e) {
      // The connector refused (no identity yet, source not a workload...).
      this.o.logger.warn({ err: e instanceof Error ? e.message : String(e) }, 'upstream connect refused');
      this.endTry();
      lc.flags = 'connect_refused';
      this.localResponse(503);
      return;
    }
    if (r === Acquire.Ready) this.attach(pool.acquired!);
    else if (r === Acquire.Overflow) { this.clearTimer(); lc.overflow(); }
    else this.sock.pause();
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
      if (ok) this.resumeClient(); else this.sock.pause();
    }
  }

  onUpstreamDrain(): void {
    if (this.phase === Phase.Body || this.phase === Phase.Tunnel) this.resumeClient();
  }

  // ------------------------------------------------------------- response side

  onResponseHead(up: Upstream, bytes: Buffer, headEnd: number, stop: number): void {
    const status = this.lc.status = up.res.status;
    if (status >= 500 && this.replayable() && this.lc.mayRetry(RetryOn.Status, status, -1)) {
      this.recordTry(status, isGatewayStatus(status));
      up.abandon();
      this.up = null;
      this.retryNow();
      return;
    }
    this.responseStarted = true;
    if (up.res.close || up.reusable === false && up.res.framing === Framing.Close) this.closeAfter = true;
    let edits = this.lc.action!.responseHeaders;
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

  /** Response bytes to the client. They may be a slice of the upstream's reused read
   *  buffer: when the client socket keeps a reference (the write did not complete at
   *  once, or the client is a stream pair), the upstream must not reuse it. */
  private writeClient(b: Buffer): void {
    const ok = this.sock.write(b);
    const up = this.up;
    if (up === null) return;
    if (!this.plainClient || this.sock.writableLength > 0) up.keepRead();
    if (!ok) up.sock.pause();
  }

  onResponseEnd(up: Upstream): void {
    if (this.phase === Phase.Tunnel) { this.sock.end(); return; }
    this.recordTry(this.lc.status, isGatewayStatus(this.lc.status));
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
      this.lc.flags = 'unexpected_upgrade';
      this.recordTry(502, true);
      this.abort(502);
      return;
    }
    this.clearTimer();
    this.lc.status = 101;
    this.responseStarted = true;
    this.phase = Phase.Tunnel;
    up.keepRead();
    this.sock.write(bytes);
    if (this.pending !== null) { up.write(this.pending); this.pending = null; }
    this.sock.resume();
  }

  onUpstreamFailure(up: Upstream, why: UpstreamFailure, detail: string): void {
    if (this.up !== up) return;
    this.up = null;
    if (this.phase === Phase.Tunnel) { this.sock.destroy(); return; }
    this.lc.flags = detail;
    const gateway = why !== UpstreamFailure.Protocol;
    if (!this.responseStarted) {
      // A reused pooled connection the server had already closed: replay once, free.
      const stale = up.reused && !up.gotBytes && why === UpstreamFailure.Reset && this.replayable();
      if (stale) { this.endTry(); this.lc.attempts--; this.retryNow(); return; }
      this.recordTry(502, gateway);
      const on = why === UpstreamFailure.ConnectFailure ? RetryOn.ConnectFailure : why === UpstreamFailure.Reset ? RetryOn.Reset : RetryOn.Gateway;
      if (this.replayable() && this.lc.mayRetry(on, 502, -1)) { this.retryNow(); return; }
      this.abort(why === UpstreamFailure.ConnectFailure ? 503 : why === UpstreamFailure.Timeout ? 504 : 502);
      return;
    }
    this.recordTry(this.lc.status, gateway);
    this.clearTimer();
    this.phase = Phase.Closed;
    this.sock.destroy();
  }

  private onTimeout(): void {
    this.clearTimer();
    const up = this.up;
    const lc = this.lc;
    if (lc.flags === '') lc.flags = 'timeout';
    if (up !== null) { this.up = null; up.abandon(); }
    else if (this.pool !== null) this.pool.cancel(this);
    if (this.responseStarted) { this.recordTry(lc.status, true); this.phase = Phase.Closed; this.sock.destroy(); return; }
    this.recordTry(504, true);
    const left = lc.action!.timeoutMs > 0 ? lc.action!.timeoutMs - (performance.now() - lc.started) : 1;
    if (left > 0 && this.replayable() && lc.mayRetry(RetryOn.PerTryTimeout, 504, -1)) { this.retryNow(); return; }
    this.abort(504);
  }

  /** The request can be sent again: complete, small enough to have been kept, and no
   *  response byte reached the client. */
  private replayable(): boolean {
    return this.replay !== null && this.phase === Phase.Waiting;
  }

  private retryNow(): void {
    this.clearTimer();
    this.outbound = this.replay;
    this.tryUpstream();
  }

  /** Books the end of one try against the endpoint (latency, outlier detection, limits). */
  private recordTry(status: number, gatewayError: boolean): void {
    this.lc.book(status, gatewayError);
  }

  private endTry(): void {
    this.lc.unbook();
    this.clearTimer();
  }

  private clearTimer(): void {
    if (this.timer !== null) { clearTimeout(this.timer); this.timer = null; }
  }

  // ------------------------------------------------------------- local replies

  /** A generated response for a request that was fully parsed (keep-alive if possible). */
  private localResponse(status: number): void {
    this.lc.status = status;
    this.clearTimer();
    if (this.phase === Phase.Body) this.closeAfter = true;
    this.sock.write(localReply(status, this.closeAfter));
    this.finishExchange();
  }

  /** Error before or instead of a response: answer if nothing was sent, then close. */
  private abort(status: number): void {
    this.clearTimer();
    if (this.up !== null) { this.up.abandon(); this.up = null; }
    this.endTry();
    this.lc.status = status;
    if (!this.responseStarted && this.phase !== Phase.Closed) this.sock.write(localReply(status, true));
    this.closeAfter = true;
    this.finishExchange();
  }

  /** Rejects an unparseable request: status, close, no upstream involved. */
  private reject(status: number): void {
    this.lc.status = status;
    this.pending = null;
    this.phase = Phase.Closed;
    this.sock.end(localReply(status, true));
    this.sweeper.conns.delete(this);
  }

  /** Exchange: a locally generated answer (403, 429, 503...) in HTTP/1.1. */
  localReply(status: number): void { this.localResponse(status); }

  private finishExchange(): void {
    const req = this.req;
    this.lc.finish(this.conn, req.method, req.path, req.host, false);
    this.replay = null;
    if (this.closeAfter || this.phase === Phase.Closed) {
      this.phase = Phase.Closed;
      this.sock.end();
      this.sweeper.conns.delete(this);
      return;
    }
    this.phase = Phase.Head;
    const next = this.pending;
    if (next !== null) { this.pending = null; this.onHeadBytes(next); }
    if (this.phase === Phase.Head) this.resumeClient();
  }

  private onClientGone(): void {
    if (this.phase === Phase.Closed && this.up === null) { this.sweeper.conns.delete(this); return; }
    this.phase = Phase.Closed;
    this.sweeper.conns.delete(this);
    this.clearTimer();
    if (this.up !== null) { this.up.abandon(); this.up = null; }
    else if (this.pool !== null) this.pool.cancel(this);
    this.endTry();
    this.lc.cancel();
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
      const action = this.lc.action;
      const idle = action !== null ? action.idleTimeoutMs : 0;
      if (idle > 0 && (tick - this.activeTick) * period >= idle) { this.lc.flags = 'idle_timeout'; this.onTimeout(); }
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
