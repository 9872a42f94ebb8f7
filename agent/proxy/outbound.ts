// The outbound listener (port 15001): the kernel redirects application connections
// here. For each one we ask `resolveOrigin` where it was going and who opened it (the
// integrator plugs in the BPF map lookup), pick a protocol — declared by the Service or
// detected from the first bytes — and hand the socket to the HTTP/1.1 proxy, the HTTP/2
// (gRPC) proxy, or an opaque TCP relay.
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { Downstream, TimeoutSweeper, type Http1Options } from './http/downstream';
import type { Connector, Origin, SourceInfo } from './types';
import { H2Proxy, type H2Options } from './h2/proxy';
import type { L7Directory } from './routing/directory';
import type { ServiceRoutes } from './routing/table';
import { selectBackend } from './routing/table';
import type { RequestMetrics, RequestSeries } from './routing/metrics';
import type { AccessSink } from './routing/access-log';
import type { Tracer } from './routing/tracing';
import { parseSni } from './tls-sni';
import { splice } from './tunnel/forward';
import { isDeferredDuplex } from '../lib/deferred-duplex';
import { describeError } from '../lib/errors';
import { componentLogger, type Logger } from '../telemetry/logger';
import { listenOn, type ListenTarget } from '../lib/listen';
import type { PathNormalization } from './http/path';

export type { Origin, SourceInfo } from './types';

export interface OutboundOptions {
  directory: L7Directory;
  resolveOrigin(socket: Socket): Origin | null;
  /** Opens a transport to an upstream endpoint (direct TCP or the mTLS tunnel). */
  connect: Connector;
  /** Who a cgroup is (for metrics labels); unknown sources are labelled "unknown". */
  sourceOf?(cgroupId: bigint | number): SourceInfo | null;
  metrics?: RequestMetrics;
  accessLog?: AccessSink;
  tracer?: Tracer;
  /** Routes an app-originated TLS connection by SNI (null: to its original destination). */
  routeSni?(sni: string, origin: Origin): ServiceRoutes | null;
  detectTimeoutMs?: number;
  headerTimeoutMs?: number;
  idleTimeoutMs?: number;
  maxHeadBytes?: number;
  h2?: Partial<H2Options>;
  logger?: Logger;
  /** Path normalization (MeshConfig spec.pathNormalization); a shared object the agent
   *  updates in place per snapshot. Default: merge slashes, reject %2F/%5C. */
  paths?: PathNormalization;
}

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export const enum Detected { Http1, H2, Tls, Opaque, NeedMore }

/** Classifies a connection from its first bytes. */
export function detectProtocol(b: Buffer): Detected {
  if (b.length === 0) return Detected.NeedMore;
  if (b[0] === 0x16) return b.length < 3 ? Detected.NeedMore : b[1] === 0x03 ? Detected.Tls : Detected.Opaque;
  const n = Math.min(b.length, H2_PREFACE.length);
  if (b.compare(H2_PREFACE, 0, n, 0, n) === 0) return n === H2_PREFACE.length ? Detected.H2 : Detected.NeedMore;
  // HTTP/1.x: a method token (upper-case letters) then a space, within 16 bytes.
  for (let i = 0; i < b.length && i < 17; i++) {
    const c = b[i]!;
    if (c === 0x20) return i > 0 ? Detected.Http1 : Detected.Opaque;
    if ((c < 0x41 || c > 0x5a) && c !== 0x2d && c !== 0x5f) return Detected.Opaque;
  }
  return b.length >= 17 ? Detected.Opaque : Detected.NeedMore;
}

export class OutboundProxy {
  private readonly server: Server;
  private readonly sweeper = new TimeoutSweeper(100);
  private readonly h1: Http1Options;
  private readonly h2: H2Proxy;
  private readonly log: Logger;
  private readonly sockets = new Set<Socket>();

  constructor(private readonly o: OutboundOptions) {
    this.log = o.logger ?? componentLogger('outbound');
    this.h1 = {
      connect: o.connect, headerTimeoutMs: o.headerTimeoutMs ?? 10_000, idleTimeoutMs: o.idleTimeoutMs ?? 300_000,
      maxHeadBytes: o.maxHeadBytes ?? 16 * 1024, accessLog: o.accessLog ?? null, tracer: o.tracer ?? null, logger: this.log,
      ...(o.paths ? { paths: o.paths } : {}),
    };
    this.h2 = new H2Proxy({ connect: o.connect, logger: this.log, accessLog: o.accessLog ?? null, tracer: o.tracer ?? null, ...(o.paths ? { paths: o.paths } : {}), ...o.h2 });
    this.server = createServer({ noDelay: true }, (s) => this.accept(s));
    this.server.on('error', (e) => this.log.error({ err: e.message }, 'outbound listener error'));
  }

  /** Listens on PORT/HOST, or on a target (e.g. a socket inherited from the supervisor). */
  listen(port: number | ListenTarget = 15001, host = '127.0.0.1'): Promise<AddressInfo> {
    return listenOn(this.server, typeof port === 'number' ? { port, host } : port);
  }

  private series(routes: ServiceRoutes, origin: Origin): RequestSeries | null {
    const m = this.o.metrics;
    if (m === undefined) return null;
    const src = this.o.sourceOf?.(origin.cgroupId) ?? null;
    return m.seriesFor({
      reporter: 'source', source_workload: src?.workload ?? 'unknown', source_namespace: src?.namespace ?? 'unknown',
      source_principal: src?.principal ?? 'unknown', destination_service: routes.service, destination_workload: 'unknown',
      connection_security_policy: 'unknown',
    });
  }

  private accept(s: Socket): void {
    this.sockets.add(s);
    s.once('close', () => this.sockets.delete(s));
    s.on('error', () => s.destroy());
    const origin = this.o.resolveOrigin(s);
    if (origin === null) {
      this.log.warn({ remote: `${s.remoteAddress}:${s.remotePort}` }, 'no original destination for redirected connection');
      s.destroy();
      return;
    }
    const routes = this.o.directory.lookup(origin.dstIp, origin.dstPort);
    switch (routes.declared) {
      case 'http': this.http1(s, routes, origin, null); return;
      case 'http2': case 'grpc': this.h2.handle(s, routes, origin, this.series(routes, origin), null, null); return;
      case 'tcp': this.opaque(s, routes, origin, null); return;
      default: this.detect(s, routes, origin);
    }
  }

  private detect(s: Socket, routes: ServiceRoutes, origin: Origin): void {
    let buf: Buffer | null = null;
    const done = (kind: Detected): void => {
      clearTimeout(timer);
      s.off('data', onData);
      s.pause();
      const first = buf;
      switch (kind) {
        case Detected.Http1: this.http1(s, routes, origin, first); return;
        case Detected.H2: this.h2.handle(s, routes, origin, this.series(routes, origin), null, first); return;
        case Detected.Tls: {
          const sni = first !== null ? parseSni(first) : null;
          const r = sni !== null && this.o.routeSni ? this.o.routeSni(sni, origin) : null;
          this.opaque(s, r ?? routes, origin, first);
          return;
        }
        default: this.opaque(s, routes, origin, first);
      }
    };
    const onData = (d: Buffer): void => {
      buf = buf === null ? d : Buffer.concat([buf, d]);
      const k = detectProtocol(buf);
      if (k === Detected.Tls && parseSni(buf) === null && buf.length < 16384 && tlsRecordIncomplete(buf)) return;
      if (k !== Detected.NeedMore) done(k);
    };
    // Server-first protocols (SMTP, MySQL...) send nothing: after a short wait, relay.
    const timer = setTimeout(() => done(buf === null ? Detected.Opaque : detectProtocol(buf) === Detected.NeedMore ? Detected.Opaque : detectProtocol(buf)), this.o.detectTimeoutMs ?? 200);
    s.on('data', onData);
  }

  private http1(s: Socket, routes: ServiceRoutes, origin: Origin, first: Buffer | null): void {
    // Routes are looked up per request, not once per connection: a keep-alive client
    // must see new route weights and matches as soon as a snapshot is applied.
    // The lookup is cached per connection until the directory changes.
    const directory = this.o.directory;
    let generation = directory.generation, current = routes;
    const routesNow = (): ServiceRoutes => {
      if (generation !== directory.generation) { current = directory.lookup(origin.dstIp, origin.dstPort); generation = directory.generation; }
      return current;
    };
    new Downstream(s, { get routes() { return routesNow(); }, series: this.series(routes, origin), authorize: null, origin }, this.h1, this.sweeper, first);
    s.resume();
  }

  /** Byte relay for TLS from the app and unknown protocols: L4 balancing over the service. */
  private opaque(s: Socket, routes: ServiceRoutes, origin: Origin, first: Buffer | null): void {
    const cluster = selectBackend(routes.fallback);
    const ep = cluster.pick(performance.now(), origin.cgroupId);
    if (ep === null) { s.destroy(); return; }
    let up: Socket | Duplex;
    try { up = this.o.connect(ep.endpoint, origin); } catch (e) {
      this.log.warn({ err: String(e) }, 'upstream connect failed');
      s.destroy();
      return;
    }
    // A tunnel stream still being opened: join the client socket to it directly once it
    // is open (the tunnel's splice bridges the socket to the HTTP/2 stream), instead of
    // relaying through the stand-in Duplex.
    const opening = isDeferredDuplex(up) ? up.takeOver() : null;
    if (opening !== null) {
      s.pause();
      opening.then((t) => {
        if (s.destroyed) { t.destroy(); return; }
        if (first !== null) s.unshift(first);
        splice(s, t);
        s.resume();
      }, (e: Error) => {
        this.log.debug({ err: describeError(e) }, 'tunnel to upstream failed');
        s.destroy();
      });
      return;
    }
    if (first !== null) up.write(first);
    up.on('error', () => s.destroy());
    s.on('error', () => up.destroy());
    s.pipe(up);
    up.pipe(s);
    s.on('close', () => up.destroy());
    up.on('close', () => s.destroy());
    s.resume();
  }

  address(): AddressInfo { return this.server.address() as AddressInfo; }

  /** The listening socket's fd once listening (libuv's handle; Linux only). */
  listeningFd(): number | undefined {
    const fd = (this.server as unknown as { _handle?: { fd?: number } | null })._handle?.fd;
    return typeof fd === 'number' && fd >= 0 ? fd : undefined;
  }

  /** Graceful stop for a restart: stop accepting (the supervisor keeps the listening
   *  socket, so the next agent accepts), let HTTP/1.1 exchanges finish with
   *  `Connection: close` and HTTP/2 sessions get GOAWAY; opaque relays run until they end
   *  or the grace period is over. */
  async drain(graceMs: number): Promise<void> {
    const stopped = new Promise<void>((r) => this.server.close(() => r()));
    for (const d of this.sweeper.conns) d.drain();
    void this.h2.drain();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([stopped, new Promise<void>((r) => { timer = setTimeout(r, graceMs); })]);
    clearTimeout(timer);
    await this.close();
  }

  async close(): Promise<void> {
    this.sweeper.close();
    const closed = new Promise<void>((r) => this.server.close(() => r()));
    // server.close() waits for open connections: end them first.
    for (const s of this.sockets) s.destroy();
    this.h2.close();
    await closed;
  }
}

/** True when the first TLS record (ClientHello) has not fully arrived yet. */
function tlsRecordIncomplete(b: Buffer): boolean {
  return b.length < 5 || b.length < 5 + b.readUInt16BE(3);
}
