// The HBONE inbound listener (port 15008): TLS 1.3 with a required client certificate
// chaining to the mesh trust bundle, HTTP/2 inside (weft's engine, h2/connection.ts), one
// CONNECT stream per tunnelled TCP connection with `:authority` = the local workload's
// ip:port. The peer's SPIFFE ID is
// checked once per session, right after the handshake and before any stream is read;
// every stream then goes through the shared LocalForwarder (local-target check,
// authorization, upstream connect, metrics).
import { createServer, type Server, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { WeftError, describeError } from '../../lib/errors';
import { componentLogger } from '../../telemetry/logger';
import { peerSpiffeId } from '../../identity/verify';
import type { IdentitySource } from '../../identity/manager';
import { H2Connection, type ConnectionHandler, type H2Stream, type StreamHandler } from '../h2/connection';
import { E } from '../h2/frame';
import { parseAuthority, type LocalForwarder } from './forward';
import type { TunnelMetrics } from './metrics';
import { StreamBridge, type Received } from './stream';
import { ALPN, H2_LIMITS, TLS13, baggageWorkload, forwardedSource, header, headerList } from './wire';
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

/** What the listener knows of one connection: the peer node's verified identity. */
interface Peer { principal: string; address: string | undefined }

export class InboundServer implements ConnectionHandler {
  private readonly server: Server;
  private readonly conns = new Set<H2Connection>();
  private readonly log = componentLogger('inbound');
  private readonly onUpdated: (id: string) => void;
  private readonly onBundle: () => void;

  constructor(private readonly opts: InboundOptions) {
    const material = opts.identity.tlsMaterial(opts.serverIdentity);
    if (!material) throw new WeftError('WEFT_ERR_IDENTITY', `no certificate for ${opts.serverIdentity}: the inbound listener cannot serve mTLS`);
    this.server = createServer({
      ...material, ...TLS13,
      requestCert: true,
      rejectUnauthorized: true,
      ALPNProtocols: ALPN,
    });
    // A renewed server certificate or a new trust bundle applies to new handshakes.
    this.onBundle = () => {
      const m = opts.identity.tlsMaterial(opts.serverIdentity);
      if (m) this.server.setSecureContext({ ...m, ...TLS13 });
    };
    this.onUpdated = (id) => { if (id === opts.serverIdentity) this.onBundle(); };
    opts.identity.on('updated', this.onUpdated);
    opts.identity.on('trustBundle', this.onBundle);

    this.server.on('secureConnection', (s: TLSSocket) => this.onSecureConnection(s));
    this.server.on('tlsClientError', (err) => {
      opts.metrics.deny('destination', null, 'unknown', 'tls_handshake');
      this.log.info({ err: describeError(err) }, 'TLS handshake refused');
    });
  }

  listen(): Promise<AddressInfo> {
    const o = this.opts;
    return listenOn(this.server, o.fd !== undefined ? { fd: o.fd } : { port: o.port ?? 15008, host: o.host ?? '0.0.0.0' });
  }

  /** The peer's SPIFFE ID is checked once, before any of its bytes is read as HTTP/2. */
  private onSecureConnection(socket: TLSSocket): void {
    this.opts.metrics.handshakes.inc({ role: 'server' });
    socket.on('error', (e) => this.log.debug({ err: describeError(e) }, 'tunnel connection error'));
    let principal: string;
    try {
      principal = peerSpiffeId(socket.getPeerX509Certificate(), this.opts.identity.trustDomain);
    } catch (e) {
      this.opts.metrics.deny('destination', null, 'unknown', 'unauthenticated');
      this.log.info({ err: describeError(e), remote: socket.remoteAddress }, 'peer certificate refused');
      socket.destroy();
      return;
    }
    if (socket.alpnProtocol !== 'h2') {
      this.opts.metrics.deny('destination', principal, 'unknown', 'bad_request');
      this.log.info({ remote: socket.remoteAddress, alpn: socket.alpnProtocol }, 'peer did not negotiate h2');
      socket.destroy();
      return;
    }
    const conn = new H2Connection(socket, false, H2_LIMITS, this);
    // Many streams share the connection: their writes of one turn go out together.
    conn.coalesce = true;
    conn.context = { principal, address: socket.remoteAddress } satisfies Peer;
    this.conns.add(conn);
  }

  /** The open HTTP/2 connections (for /debug and tests). */
  connections(): readonly H2Connection[] { return [...this.conns]; }

  onClose(c: H2Connection): void { this.conns.delete(c); }
  onGoaway(): void { /* the peer stops opening streams; the open ones finish */ }

  onStream(c: H2Connection, stream: H2Stream, headers: string[], end: boolean, oversized: boolean): void {
    const { principal, address } = c.context as Peer;
    const answer = (status: number) => c.sendHeaders(stream, [':status', String(status)], true);
    if (oversized) {
      this.opts.metrics.deny('destination', principal, 'unknown', 'bad_request');
      answer(431);
      return;
    }
    if (header(headers, ':method') !== 'CONNECT') {
      this.opts.metrics.deny('destination', principal, 'unknown', 'bad_request');
      answer(405);
      return;
    }
    const target = parseAuthority(header(headers, ':authority'));
    if (!target) {
      this.opts.metrics.deny('destination', principal, 'unknown', 'bad_request');
      answer(400);
      return;
    }
    // Until the upstream is there, what the caller sends (and whether it ends or resets
    // the stream) is kept; the stream window bounds it.
    const early = new Early(end);
    stream.handler = early;
    void this.opts.forwarder.forward({
      sourcePrincipal: principal,
      sourceWorkload: baggageWorkload(headerList(headers, 'baggage')),
      // The source workload's address as its node forwarded it (the node is
      // authenticated by its certificate chain, and only a node can mint this header on
      // a tunnel); absent, the peer node's own address.
      sourceIp: forwardedSource(header(headers, 'forwarded')) ?? address,
      target,
      security: 'mutual_tls',
    }, true).then((r) => {
      if (stream.closed) { if (r.ok) r.upstream.destroy(); return; }
      if (!r.ok) { answer(r.status); return; }
      // From here the stream is a byte stream, each direction ending on its own.
      stream.halfClose = true;
      c.sendHeaders(stream, [':status', '200'], false);
      new StreamBridge(stream, r.upstream, early.received, null, r.reader ?? null);
    }).catch((e: unknown) => {
      this.log.error({ err: describeError(e) }, 'tunnel stream failed');
      if (!stream.closed) c.reset(stream, E.INTERNAL_ERROR);
    });
  }

  /** Stops accepting; each connection gets GOAWAY and closes once its streams finished. */
  close(): Promise<void> {
    this.opts.identity.off('updated', this.onUpdated);
    this.opts.identity.off('trustBundle', this.onBundle);
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const c of [...this.conns]) c.drain();
    return closed;
  }

  /** Immediate teardown (tests, shutdown after a grace period). */
  destroy(): void {
    this.opts.identity.off('updated', this.onUpdated);
    this.opts.identity.off('trustBundle', this.onBundle);
    for (const c of [...this.conns]) c.destroy();
    this.server.close();
  }
}

/** A CONNECT stream's handler while its upstream is being connected. */
class Early implements StreamHandler {
  readonly received: Received;
  constructor(end: boolean) { this.received = { chunks: [], uncredited: 0, end }; }
  onData(_s: H2Stream, data: Buffer, end: boolean): void {
    if (data.length > 0) { this.received.chunks.push(data); this.received.uncredited += data.length; }
    if (end) this.received.end = true;
  }
  onHeaders(_s: H2Stream, _h: string[], end: boolean): void { if (end) this.received.end = true; }
  onSent(): void { /* nothing is sent before the response */ }
  onClosed(): void { /* stream.closed is checked once the upstream is there */ }
}
