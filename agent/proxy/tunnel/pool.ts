// Outbound HBONE sessions: one HTTP/2-over-mTLS connection (weft's engine,
// h2/connection.ts) per (source identity, destination node), carrying many CONNECT
// streams. A new session (and so a TLS handshake) is made
// only when no pooled one is usable: it got GOAWAY, failed, closed, is at the peer's
// stream limit, or was made with a certificate that has since been renewed (it is then
// drained: its streams finish, new ones go to a session with the new certificate). At
// steady state a new application connection costs one HEADERS frame, no handshake.
import { X509Certificate } from 'node:crypto';
import { connect as tlsConnect, type SecureContext } from 'node:tls';
import { WeftError, describeError } from '../../lib/errors';
import { componentLogger } from '../../telemetry/logger';
import { peerSpiffeId } from '../../identity/verify';
import { NODE_NAMESPACE, parseSpiffeId } from '../../identity/spiffe';
import type { Target } from './forward';
import type { TunnelMetrics } from './metrics';
import { H2Connection, type ConnectionHandler, type H2Stream, type StreamHandler } from '../h2/connection';
import { E } from '../h2/frame';
import { ALPN, H2_LIMITS, baggageFor, forwardedFor, header } from './wire';
import { TunnelStream } from './stream';

export interface NodeAddress {
  host: string;
  port: number;
  /** SPIFFE ID the node's 15008 listener must present. Without it, any node identity
   *  (namespace weft-system) of the trust domain is accepted, never a workload's: a
   *  stolen workload certificate cannot stand in for a node's tunnel endpoint. */
  identity?: string;
}

export interface TunnelRequest {
  /** SPIFFE ID of the local workload that opened the connection (from the kernel's
   *  cgroup record, never from the application). */
  sourceIdentity: string;
  /** Informational, sent as baggage for the peer's source_workload label. */
  sourceWorkload?: string;
  /** The source workload's address (Forwarded: for=), for the peer's ipBlocks rules. */
  sourceIp?: string;
  nodeAddress: NodeAddress;
  target: Target;
}

export interface TunnelPoolOptions {
  /** Current TLS context for an identity (IdentityManager.secureContextFor). Throws or
   *  returns null when the identity has no valid certificate. */
  contextFor: (spiffeId: string) => SecureContext | null;
  trustDomain: string;
  metrics?: TunnelMetrics;
  connectTimeoutMs?: number;
  /** Close a session after this long without streams. */
  idleTimeoutMs?: number;
}

interface PooledSession {
  conn: H2Connection;
  context: SecureContext;
  /** Streams opened and not yet closed. */
  active: number;
  usable: boolean;
  /** The TLS handshake completed (a failure after it is the pooled session dying). */
  established: boolean;
  /** Why the socket failed, for the error the waiting requests get. */
  error?: Error;
  idleTimer?: NodeJS.Timeout;
}

const DEFAULT_PEER_MAX_STREAMS = 100;

export class TunnelPool {
  private readonly pools = new Map<string, PooledSession[]>();
  private readonly log = componentLogger('tunnel-pool');
  private readonly opts: Required<Omit<TunnelPoolOptions, 'metrics'>> & Pick<TunnelPoolOptions, 'metrics'>;
  /** Full TLS handshakes made by this pool (one per session). */
  handshakes = 0;

  constructor(opts: TunnelPoolOptions) {
    this.opts = { connectTimeoutMs: 5_000, idleTimeoutMs: 60_000, ...opts };
  }

  /** Opens a CONNECT tunnel to `target` through the node at `nodeAddress`. Resolves with
   *  the stream once the peer answered 200; rejects with WEFT_ERR_PERMISSION (refused by
   *  the peer: policy or not a local workload), WEFT_ERR_IDENTITY (no certificate,
   *  fail-closed) or WEFT_ERR_UNAVAILABLE (handshake, connect or upstream failure). */
  openTunnel(req: TunnelRequest): Promise<TunnelStream> {
    let context: SecureContext | null;
    try { context = this.opts.contextFor(req.sourceIdentity); } catch (e) { return Promise.reject(e); }
    if (!context) return Promise.reject(new WeftError('WEFT_ERR_IDENTITY', `no certificate for ${req.sourceIdentity}`));
    const authority = req.target.ip.includes(':') ? `[${req.target.ip}]:${req.target.port}` : `${req.target.ip}:${req.target.port}`;
    const headers = [':method', 'CONNECT', ':authority', authority];
    const baggage = baggageFor(req.sourceWorkload);
    if (baggage) headers.push('baggage', baggage);
    const forwarded = forwardedFor(req.sourceIp);
    if (forwarded) headers.push('forwarded', forwarded);
    return new Promise((resolve, reject) => this.attempt(req, context, headers, authority, true, resolve, reject));
  }

  /** One CONNECT on a pooled session. A pooled session can die under a request (the peer
   *  closed it, a reset raced the request, GOAWAY refused the stream): nothing reached
   *  the workload then, so the request is retried once on a fresh session. A fresh
   *  session's failure (handshake refused, peer down) is final. */
  private attempt(req: TunnelRequest, context: SecureContext, headers: string[], authority: string, mayRetry: boolean,
    resolve: (s: TunnelStream) => void, reject: (e: Error) => void): void {
    const pooled = this.acquire(req, context);
    const reused = pooled.established;
    const via = `${req.nodeAddress.host}:${req.nodeAddress.port}`;
    const fail = (e: Error, retriable: boolean) => {
      if (mayRetry && reused && retriable) {
        pooled.usable = false;
        this.log.debug({ err: describeError(e) }, 'pooled session failed under a request; retrying on a new one');
        this.attempt(req, context, headers, authority, false, resolve, reject);
        return;
      }
      reject(new WeftError('WEFT_ERR_UNAVAILABLE', `tunnel to ${authority} via ${via} failed: ${describeError(e)}`, { cause: e }));
    };
    let stream: H2Stream;
    const opening = new Opening(this.opts.connectTimeoutMs, {
      response: (status) => {
        if (status === 200) { resolve(new TunnelStream(stream, () => this.released(pooled))); return; }
        pooled.conn.reset(stream, E.CANCEL);
        this.released(pooled);
        const code = status === 403 ? 'WEFT_ERR_PERMISSION' : status === 503 ? 'WEFT_ERR_UNAVAILABLE' : 'WEFT_ERR_PROTOCOL';
        reject(new WeftError(code, `peer refused tunnel to ${authority}: HTTP ${status}`, { details: { status } }));
      },
      closed: (code) => {
        this.released(pooled);
        const cause = pooled.error ?? new Error(`stream closed before a response (code ${code})`);
        fail(cause, pooled.conn.destroyed || code === E.REFUSED_STREAM);
      },
      timeout: () => {
        pooled.conn.reset(stream, E.CANCEL);
        this.released(pooled);
        fail(new Error(`no response within ${this.opts.connectTimeoutMs} ms`), false);
      },
    });
    pooled.active++;
    clearTimeout(pooled.idleTimer);
    stream = pooled.conn.request(headers, false, opening);
  }

  /** Sessions currently pooled (usable or draining), for /debug and tests. */
  sessionCount(): number {
    let n = 0;
    for (const l of this.pools.values()) n += l.length;
    return n;
  }

  close(): void {
    for (const list of this.pools.values()) for (const p of list) { clearTimeout(p.idleTimer); p.conn.destroy(); }
    this.pools.clear();
  }

  private acquire(req: TunnelRequest, context: SecureContext): PooledSession {
    const key = `${req.sourceIdentity}|${req.nodeAddress.host}|${req.nodeAddress.port}|${req.nodeAddress.identity ?? ''}`;
    const list = this.pools.get(key) ?? [];
    this.pools.set(key, list);
    for (const p of list) {
      // A renewed certificate: let this session drain, new streams get a new one.
      if (p.usable && p.context !== context) this.retire(p, 'certificate renewed');
    }
    const found = list.find((p) => p.usable && p.conn.canOpenStream && !p.conn.sock.destroyed && p.active < this.maxStreams(p));
    if (found) return found;
    const created = this.create(req.nodeAddress, context, () => {
      const i = list.indexOf(created);
      if (i >= 0) list.splice(i, 1);
      if (!list.length && this.pools.get(key) === list) this.pools.delete(key);
    });
    list.push(created);
    return created;
  }

  private maxStreams(p: PooledSession): number {
    const n = p.conn.peerMaxStreams;
    return Number.isFinite(n) ? n : DEFAULT_PEER_MAX_STREAMS;
  }

  private create(node: NodeAddress, context: SecureContext, onGone: () => void): PooledSession {
    const socket = tlsConnect({
      host: node.host, port: node.port, secureContext: context, ALPNProtocols: ALPN,
      rejectUnauthorized: true,
      // The server is identified by its SPIFFE ID, not a DNS name. This hook runs
      // inside the handshake, after chain verification and before anything is sent.
      checkServerIdentity: (_host, cert) => this.checkServer(node, cert.raw),
    });
    const where = `${node.host}:${node.port}`;
    const handler: ConnectionHandler = {
      // Servers cannot open streams (PUSH_PROMISE is refused by the connection).
      onStream: (c) => c.fail(E.PROTOCOL_ERROR),
      onGoaway: () => this.retire(p, 'GOAWAY'),
      onClose: () => { p.usable = false; clearTimeout(p.idleTimer); onGone(); },
    };
    // Registered before the connection's own listener: the error is known when the
    // connection closes the streams waiting on it.
    socket.once('error', (e) => {
      p.error = e;
      this.log.info({ node: where, err: describeError(e) }, 'tunnel session failed');
    });
    socket.once('secureConnect', () => {
      if (socket.alpnProtocol !== 'h2') { socket.destroy(new WeftError('WEFT_ERR_PROTOCOL', `${where} did not negotiate h2`)); return; }
      p.established = true;
      this.handshakes++;
      this.opts.metrics?.handshakes.inc({ role: 'client' });
    });
    // The preface and SETTINGS are written now and go out right after the handshake.
    const conn = new H2Connection(socket, true, H2_LIMITS, handler);
    // Many streams share the connection: their writes of one turn go out together.
    conn.coalesce = true;
    const p: PooledSession = { conn, context, active: 0, usable: true, established: false };
    this.armIdle(p);
    return p;
  }

  private checkServer(node: NodeAddress, der: Buffer): Error | undefined {
    try {
      const id = peerSpiffeId(new X509Certificate(der), this.opts.trustDomain);
      const ok = node.identity ? id === node.identity : parseSpiffeId(id).namespace === NODE_NAMESPACE;
      return ok ? undefined : new WeftError('WEFT_ERR_UNAUTHENTICATED', `tunnel server presented ${id}, expected ${node.identity ?? 'a node identity'}`);
    } catch (e) {
      return e as Error;
    }
  }

  /** A stream of `p` is closed (or handed back before it opened). */
  private released(p: PooledSession): void {
    p.active--;
    if (p.active > 0) return;
    if (p.usable) this.armIdle(p); else p.conn.drain();
  }

  private armIdle(p: PooledSession): void {
    clearTimeout(p.idleTimer);
    p.idleTimer = setTimeout(() => this.retire(p, 'idle'), this.opts.idleTimeoutMs);
    p.idleTimer.unref();
  }

  /** No new streams; closes (GOAWAY) once the streams in flight are done. */
  private retire(p: PooledSession, why: string): void {
    if (!p.usable) return;
    p.usable = false;
    this.log.debug({ why }, 'retiring tunnel session');
    if (p.active === 0) p.conn.drain();
  }
}

/** A CONNECT waiting for its response: 1xx are skipped, the final status decides. */
class Opening implements StreamHandler {
  private readonly timer: NodeJS.Timeout;
  private settled = false;

  constructor(timeoutMs: number, private readonly on: {
    response: (status: number) => void; closed: (code: number) => void; timeout: () => void;
  }) {
    this.timer = setTimeout(() => { if (!this.settle()) return; on.timeout(); }, timeoutMs);
  }

  private settle(): boolean {
    if (this.settled) return false;
    this.settled = true;
    clearTimeout(this.timer);
    return true;
  }

  onHeaders(_s: H2Stream, headers: string[], end: boolean): void {
    const status = Number(header(headers, ':status'));
    if (status >= 100 && status < 200 && !end) return;
    if (!this.settle()) return;
    // A 200 that also ends the stream has no tunnel behind it.
    this.on.response(status === 200 && end ? 502 : status);
  }

  onData(s: H2Stream, data: Buffer): void {
    // DATA before the response: malformed (§8.1); nothing to deliver it to.
    s.conn.credit(s, data.length);
    if (this.settle()) { s.conn.reset(s, E.PROTOCOL_ERROR); this.on.closed(E.PROTOCOL_ERROR); }
  }

  onSent(): void { /* no DATA is sent before the response */ }

  onClosed(_s: H2Stream, code: number): void {
    if (this.settle()) this.on.closed(code);
  }
}
