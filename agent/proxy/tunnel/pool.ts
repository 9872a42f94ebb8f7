// Outbound HBONE sessions: one HTTP/2-over-mTLS session per (source identity, destination
// node), carrying many CONNECT streams. A new session (and so a TLS handshake) is made
// only when no pooled one is usable: it got GOAWAY, failed, closed, is at the peer's
// stream limit, or was made with a certificate that has since been renewed (it is then
// drained: its streams finish, new ones go to a session with the new certificate). At
// steady state a new application connection costs one HEADERS frame, no handshake.
import * as http2 from 'node:http2';
import { X509Certificate } from 'node:crypto';
import { connect as tlsConnect, type SecureContext, type TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import { WeftError, describeError } from '../../lib/errors';
import { componentLogger } from '../../telemetry/logger';
import { peerSpiffeId } from '../../identity/verify';
import { NODE_NAMESPACE, parseSpiffeId } from '../../identity/spiffe';
import type { Target } from './forward';
import type { TunnelMetrics } from './metrics';
import { H2_SETTINGS, SESSION_WINDOW, baggageFor, forwardedFor } from './wire';

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
  session: http2.ClientHttp2Session;
  context: SecureContext;
  active: number;
  usable: boolean;
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
  openTunnel(req: TunnelRequest): Promise<Duplex> {
    let context: SecureContext | null;
    try { context = this.opts.contextFor(req.sourceIdentity); } catch (e) { return Promise.reject(e); }
    if (!context) return Promise.reject(new WeftError('WEFT_ERR_IDENTITY', `no certificate for ${req.sourceIdentity}`));
    const authority = req.target.ip.includes(':') ? `[${req.target.ip}]:${req.target.port}` : `${req.target.ip}:${req.target.port}`;
    const headers: http2.OutgoingHttpHeaders = { ':method': 'CONNECT', ':authority': authority };
    const baggage = baggageFor(req.sourceWorkload);
    if (baggage) headers.baggage = baggage;
    const forwarded = forwardedFor(req.sourceIp);
    if (forwarded) headers.forwarded = forwarded;
    return this.attempt(req, context, headers, authority, true);
  }

  /** One CONNECT on a pooled session. A pooled session can die under a request (the peer
   *  closed it, a reset raced the request): nothing reached the workload then, so the
   *  request is retried once on a fresh session. A fresh session's failure (handshake
   *  refused, peer down) is final. */
  private attempt(req: TunnelRequest, context: SecureContext, headers: http2.OutgoingHttpHeaders, authority: string, mayRetry: boolean): Promise<Duplex> {
    const pooled = this.acquire(req, context);
    const reused = !pooled.session.connecting;
    return new Promise((resolve, reject) => {
      let stream: http2.ClientHttp2Stream;
      try {
        stream = pooled.session.request(headers, { endStream: false });
      } catch (e) {
        this.retire(pooled, 'request failed');
        if (mayRetry && reused) { this.attempt(req, context, headers, authority, false).then(resolve, reject); return; }
        reject(new WeftError('WEFT_ERR_UNAVAILABLE', `tunnel to ${req.nodeAddress.host}:${req.nodeAddress.port} failed: ${describeError(e)}`, { cause: e }));
        return;
      }
      this.track(pooled, stream);
      const timer = setTimeout(() => stream.close(http2.constants.NGHTTP2_CANCEL), this.opts.connectTimeoutMs);
      const fail = (e: Error) => {
        clearTimeout(timer);
        if (mayRetry && reused && (pooled.session.closed || pooled.session.destroyed)) {
          pooled.usable = false;
          this.log.debug({ err: describeError(e) }, 'pooled session failed under a request; retrying on a new one');
          this.attempt(req, context, headers, authority, false).then(resolve, reject);
          return;
        }
        reject(new WeftError('WEFT_ERR_UNAVAILABLE', `tunnel to ${authority} via ${req.nodeAddress.host}:${req.nodeAddress.port} failed: ${describeError(e)}`, { cause: e }));
      };
      const closedEarly = () => fail(new Error(`stream closed before a response (code ${stream.rstCode})`));
      stream.once('error', fail);
      stream.once('close', closedEarly);
      stream.once('response', (h) => {
        clearTimeout(timer);
        stream.removeListener('error', fail);
        stream.removeListener('close', closedEarly);
        const status = Number(h[':status']);
        if (status === 200) {
          stream.on('error', () => { /* surfaced to the caller through destroy/close */ });
          resolve(stream);
          return;
        }
        stream.close();
        const code = status === 403 ? 'WEFT_ERR_PERMISSION' : status === 503 ? 'WEFT_ERR_UNAVAILABLE' : 'WEFT_ERR_PROTOCOL';
        reject(new WeftError(code, `peer refused tunnel to ${authority}: HTTP ${status}`, { details: { status } }));
      });
    });
  }

  /** Sessions currently pooled (usable or draining), for /debug and tests. */
  sessionCount(): number {
    let n = 0;
    for (const l of this.pools.values()) n += l.length;
    return n;
  }

  close(): void {
    for (const list of this.pools.values()) for (const p of list) { clearTimeout(p.idleTimer); p.session.destroy(); }
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
    const found = list.find((p) => p.usable && p.active < this.maxStreams(p));
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
    return p.session.remoteSettings?.maxConcurrentStreams ?? DEFAULT_PEER_MAX_STREAMS;
  }

  private create(node: NodeAddress, context: SecureContext, onGone: () => void): PooledSession {
    const session = http2.connect(`https://${node.host}:${node.port}`, {
      settings: H2_SETTINGS,
      createConnection: () => {
        const socket = tlsConnect({
          host: node.host, port: node.port, secureContext: context, ALPNProtocols: ['h2'],
          rejectUnauthorized: true,
          // The server is identified by its SPIFFE ID, not a DNS name. This hook runs
          // inside the handshake, after chain verification and before anything is sent;
          // failing here (not on 'secureConnect', where destroying the socket under a
          // starting HTTP/2 session aborts node) refuses the peer cleanly.
          checkServerIdentity: (_host, cert) => this.checkServer(node, cert.raw),
        });
        socket.setNoDelay(true);
        socket.once('secureConnect', () => {
          this.handshakes++;
          this.opts.metrics?.handshakes.inc({ role: 'client' });
        });
        return socket as TLSSocket;
      },
    });
    const p: PooledSession = { session, context, active: 0, usable: true };
    session.once('connect', () => session.setLocalWindowSize(SESSION_WINDOW));
    session.on('error', (e) => { this.log.info({ node: `${node.host}:${node.port}`, err: describeError(e) }, 'tunnel session failed'); });
    session.once('goaway', () => this.retire(p, 'GOAWAY'));
    session.once('close', () => { p.usable = false; clearTimeout(p.idleTimer); onGone(); });
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

  private track(p: PooledSession, stream: http2.ClientHttp2Stream): void {
    p.active++;
    clearTimeout(p.idleTimer);
    stream.once('close', () => {
      p.active--;
      if (p.active === 0) {
        if (p.usable) this.armIdle(p); else p.session.close();
      }
    });
  }

  private armIdle(p: PooledSession): void {
    clearTimeout(p.idleTimer);
    p.idleTimer = setTimeout(() => this.retire(p, 'idle'), this.opts.idleTimeoutMs);
    p.idleTimer.unref();
  }

  /** No new streams; closes once the streams in flight are done. */
  private retire(p: PooledSession, why: string): void {
    if (!p.usable) return;
    p.usable = false;
    this.log.debug({ why }, 'retiring tunnel session');
    if (p.active === 0 && !p.session.closed) p.session.close();
  }
}
