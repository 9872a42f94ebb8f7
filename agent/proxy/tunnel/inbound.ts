// The HBONE inbound listener (port 15008): TLS 1.3 with a required client certificate
// chaining to the mesh trust bundle, HTTP/2 inside, one CONNECT stream per tunnelled TCP
// connection with `:authority` = the local workload's ip:port. The peer's SPIFFE ID is
// checked once per session, right after the handshake and before any stream is read;
// every stream then goes through the shared LocalForwarder (local-target check,
// authorization, upstream connect, metrics).
import * as http2 from 'node:http2';
import type { TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { WeftError, describeError } from '../../lib/errors';
import { componentLogger } from '../../telemetry/logger';
import { peerSpiffeId } from '../../identity/verify';
import type { IdentitySource } from '../../identity/manager';
import { parseAuthority, splice, type LocalForwarder } from './forward';
import type { TunnelMetrics } from './metrics';
import { H2_SETTINGS, SESSION_WINDOW, TLS13, baggageWorkload, forwardedSource } from './wire';
import { listenOn } from '../../lib/listen';

export interface InboundOptions {
  identity: Pick<IdentitySource, 'tlsMaterial' | 'on' | 'off' | 'trustDomain'>;
  /** The identity this listener presents (the node's own SPIFFE ID). */
  serverIdentity: string;
  forwarder: LocalForwarder;
  metrics: TunnelMetrics;
  host?: string;
  /** Default 15008; 0 picks a free port (tests). */
  port?: number;
  /** A listening socket inherited from the agent's supervisor (overrides host/port). */
  fd?: number;
}

export class InboundServer {
  private readonly server: http2.Http2SecureServer;
  private readonly principals = new WeakMap<http2.ServerHttp2Session, string>();
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private readonly log = componentLogger('inbound');
  private readonly onUpdated: (id: string) => void;
  private readonly onBundle: () => void;

  constructor(private readonly opts: InboundOptions) {
    const material = opts.identity.tlsMaterial(opts.serverIdentity);
    if (!material) throw new WeftError('WEFT_ERR_IDENTITY', `no certificate for ${opts.serverIdentity}: the inbound listener cannot serve mTLS`);
    this.server = http2.createSecureServer({
      ...material, ...TLS13,
      requestCert: true,
      rejectUnauthorized: true,
      allowHTTP1: false,
      settings: H2_SETTINGS,
    });
    // A renewed server certificate or a new trust bundle applies to new handshakes.
    this.onBundle = () => {
      const m = opts.identity.tlsMaterial(opts.serverIdentity);
      if (m) this.server.setSecureContext({ ...m, ...TLS13 });
    };
    this.onUpdated = (id) => { if (id === opts.serverIdentity) this.onBundle(); };
    opts.identity.on('updated', this.onUpdated);
    opts.identity.on('trustBundle', this.onBundle);

    this.server.on('secureConnection', (s: TLSSocket) => { s.setNoDelay(true); opts.metrics.handshakes.inc({ role: 'server' }); });
    this.server.on('tlsClientError', (err) => {
      opts.metrics.deny('destination', null, 'unknown', 'tls_handshake');
      this.log.info({ err: describeError(err) }, 'TLS handshake refused');
    });
    this.server.on('session', (session) => this.onSession(session));
    this.server.on('stream', (stream, headers) => this.onStream(stream, headers));
  }

  listen(): Promise<AddressInfo> {
    const o = this.opts;
    return listenOn(this.server, o.fd !== undefined ? { fd: o.fd } : { port: o.port ?? 15008, host: o.host ?? '0.0.0.0' });
  }

  private onSession(session: http2.ServerHttp2Session): void {
    const socket = session.socket as TLSSocket;
    session.on('error', (e) => this.log.debug({ err: describeError(e) }, 'session error'));
    let principal: string;
    try {
      principal = peerSpiffeId(socket.getPeerX509Certificate(), this.opts.identity.trustDomain);
    } catch (e) {
      this.opts.metrics.deny('destination', null, 'unknown', 'unauthenticated');
      this.log.info({ err: describeError(e), remote: socket.remoteAddress }, 'peer certificate refused');
      session.destroy();
      return;
    }
    this.principals.set(session, principal);
    this.sessions.add(session);
    session.once('close', () => this.sessions.delete(session));
    session.setLocalWindowSize(SESSION_WINDOW);
  }

  private onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    stream.on('error', () => { /* reset by the peer; splice tears the upstream down */ });
    const principal = this.principals.get(stream.session as http2.ServerHttp2Session);
    if (!principal) { stream.close(http2.constants.NGHTTP2_REFUSED_STREAM); return; }
    if (headers[':method'] !== 'CONNECT') {
      this.opts.metrics.deny('destination', principal, 'unknown', 'bad_request');
      stream.respond({ ':status': 405 }, { endStream: true });
      return;
    }
    const target = parseAuthority(headers[':authority']);
    if (!target) {
      this.opts.metrics.deny('destination', principal, 'unknown', 'bad_request');
      stream.respond({ ':status': 400 }, { endStream: true });
      return;
    }
    const socket = stream.session?.socket;
    void this.opts.forwarder.forward({
      sourcePrincipal: principal,
      sourceWorkload: baggageWorkload(headers.baggage),
      // The source workload's address as its node forwarded it (the node is
      // authenticated by its certificate chain, and only a node can mint this header on
      // a tunnel); absent, the peer node's own address.
      sourceIp: forwardedSource(headers.forwarded) ?? socket?.remoteAddress,
      target,
      security: 'mutual_tls',
    }).then((r) => {
      if (stream.destroyed) { if (r.ok) r.upstream.destroy(); return; }
      if (!r.ok) { stream.respond({ ':status': r.status }, { endStream: true }); return; }
      stream.respond({ ':status': 200 });
      splice(stream, r.upstream);
    }).catch((e: unknown) => {
      this.log.error({ err: describeError(e) }, 'tunnel stream failed');
      if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    });
  }

  /** Stops accepting, closes sessions gracefully (streams in flight finish). */
  close(): Promise<void> {
    this.opts.identity.off('updated', this.onUpdated);
    this.opts.identity.off('trustBundle', this.onBundle);
    for (const s of this.sessions) s.close();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** Immediate teardown (tests, shutdown after a grace period). */
  destroy(): void {
    this.opts.identity.off('updated', this.onUpdated);
    this.opts.identity.off('trustBundle', this.onBundle);
    for (const s of this.sessions) s.destroy();
    this.server.close();
  }
}
