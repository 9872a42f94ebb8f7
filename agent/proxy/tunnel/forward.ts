// The destination side shared by both ways into a local workload: the HBONE inbound
// listener (after mTLS) and the same-node path (no wire, identity from the kernel). Both
// must apply the same rules in the same order, so they share this code:
//   1. the target must be a workload on this node (no open relay),
//   2. L4 authorization is decided,
//   3. only then is the upstream connection made,
// and both report the same destination-side metrics.
import { connect, isIP, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WeftError } from '../../lib/errors';
import type { Logger } from '../../telemetry/logger';
import { parseSpiffeId } from '../../identity/spiffe';
import type { L4Authorizer } from './authz';
import { meterSocket, type DenyReason, type TunnelMetrics } from './metrics';
import { TunnelStream } from './stream';
import { SocketReader } from '../sockets/reader';

export interface Target { ip: string; port: number }

export interface LocalWorkload {
  /** "namespace/name". */
  key: string;
  name: string;
  namespace: string;
  /** The workload's own SPIFFE ID. */
  principal: string;
  /** "namespace/name" of a Service it backs, for the destination_service label. */
  service?: string;
}

/** Which local workload listens at ip:port, if any (the agent answers from its node view). */
export type LocalWorkloadLookup = (ip: string, port: number) => LocalWorkload | undefined;

export type SecurityPolicy = 'mutual_tls' | 'none';

export interface ForwardRequest {
  /** Verified SPIFFE ID of the caller (peer certificate, or kernel-recorded identity). */
  sourcePrincipal: string;
  /** Informational source workload name (labels only, never used for decisions). */
  sourceWorkload?: string;
  sourceIp?: string;
  target: Target;
  security: SecurityPolicy;
}

/** Destinations whose policies need per-request (L7) authorization get the stream
 *  handled at L7 instead: the hook returns the stream end to splice with the caller
 *  (the agent's inbound L7 proxy holds the other end), or null for plain L4. */
export type L7Inbound = (dest: LocalWorkload, req: ForwardRequest) => Duplex | null;

export type ForwardResult =
  /** `reader`: the upstream is a TCP socket reading through it (see forward()'s `direct`). */
  | { ok: true; upstream: Socket | Duplex; reader?: SocketReader }
  | { ok: false; status: 400 | 403 | 503; reason: DenyReason | 'upstream_unavailable'; message: string };

export interface LocalForwarderOptions {
  lookup: LocalWorkloadLookup;
  /** Per-request authorization for destinations that need it (see L7Inbound). */
  l7?: L7Inbound;
  authorizer: L4Authorizer;
  metrics: TunnelMetrics;
  log: Logger;
  connectTimeoutMs?: number;
}

/** Parses an HBONE :authority ("10.0.0.1:8080" or "[fd00::1]:8080") into a target. */
export function parseAuthority(authority: string | undefined): Target | undefined {
  if (!authority) return undefined;
  const m = /^\[([0-9a-fA-F:.]+)\]:(\d{1,5})$/.exec(authority) ?? /^([0-9.]+):(\d{1,5})$/.exec(authority);
  if (!m) return undefined;
  const port = Number(m[2]);
  return isIP(m[1]!) && port > 0 && port < 65536 ? { ip: m[1]!, port } : undefined;
}

export class LocalForwarder {
  private readonly opts: Required<LocalForwarderOptions>;

  constructor(opts: LocalForwarderOptions) {
    this.opts = { connectTimeoutMs: 5_000, l7: () => null, ...opts };
  }

  /** Steps 1-3; on success the upstream socket is connected and metered. `direct`: the
   *  caller joins the upstream with a StreamBridge, so a TCP upstream reads through a
   *  SocketReader (returned with it) instead of 'data' events. */
  async forward(req: ForwardRequest, direct = false): Promise<ForwardResult> {
    const { lookup, authorizer, metrics, log } = this.opts;
    const dest = lookup(req.target.ip, req.target.port);
    const targetText = `${req.target.ip}:${req.target.port}`;
    if (!dest) {
      metrics.deny('destination', req.sourcePrincipal, 'unknown', 'not_local_workload');
      log.warn({ source: req.sourcePrincipal, target: targetText }, 'refused: target is not a workload on this node');
      return { ok: false, status: 403, reason: 'not_local_workload', message: `${targetText} is not a workload on this node` };
    }
    // L7 rules cannot be decided per connection: the L7 proxy decides per request (and
    // checks the same principals, namespaces and ports there).
    const l7 = this.opts.l7?.(dest, req) ?? null;
    if (l7 !== null) return { ok: true, upstream: l7 };
    const sourceNamespace = parseSpiffeId(req.sourcePrincipal).namespace;
    const decision = authorizer.authorize({
      sourcePrincipal: req.sourcePrincipal, sourceNamespace, sourceIp: req.sourceIp,
      destinationWorkload: dest.key, destinationIp: req.target.ip, destinationPort: req.target.port,
    });
    if (!decision.allowed) {
      metrics.deny('destination', req.sourcePrincipal, dest.key, 'policy');
      log.info({ source: req.sourcePrincipal, destination: dest.key, port: req.target.port, reason: decision.reason }, 'refused by authorization policy');
      return { ok: false, status: 403, reason: 'policy', message: decision.reason };
    }
    let upstream: Socket;
    const reader = direct ? new SocketReader() : undefined;
    try {
      upstream = await this.connectUpstream(req.target, reader);
    } catch (e) {
      log.warn({ destination: dest.key, target: targetText, err: (e as Error).message }, 'upstream connect failed');
      return { ok: false, status: 503, reason: 'upstream_unavailable', message: `cannot connect to ${targetText}: ${(e as Error).message}` };
    }
    meterSocket(upstream, metrics.connection({
      reporter: 'destination',
      source_workload: req.sourceWorkload ?? 'unknown',
      source_namespace: sourceNamespace,
      source_principal: req.sourcePrincipal,
      destination_service: dest.service ?? 'unknown',
      destination_workload: dest.name,
      destination_namespace: dest.namespace,
      destination_principal: dest.principal,
      connection_security_policy: req.security,
    }));
    return reader ? { ok: true, upstream, reader } : { ok: true, upstream };
  }

  /** The same-node path: a connected, authorized, metered socket to the local workload,
   *  or a WeftError (PERMISSION when refused, UNAVAILABLE when it cannot connect). */
  async open(req: Omit<ForwardRequest, 'security'>): Promise<Socket | Duplex> {
    const r = await this.forward({ ...req, security: 'none' });
    if (r.ok) return r.upstream;
    throw new WeftError(r.status === 503 ? 'WEFT_ERR_UNAVAILABLE' : 'WEFT_ERR_PERMISSION', r.message, { details: { reason: r.reason } });
  }

  private connectUpstream(t: Target, reader: SocketReader | undefined): Promise<Socket> {
    return new Promise((resolve, reject) => {
      // Half-open allowed: the tunnel carries FIN in each direction separately.
      const s = connect({ host: t.ip, port: t.port, allowHalfOpen: true, noDelay: true, ...(reader ? { onread: reader.onread } : {}) });
      if (reader) reader.socket = s;
      const timer = setTimeout(() => s.destroy(new Error(`connect timeout after ${this.opts.connectTimeoutMs} ms`)), this.opts.connectTimeoutMs);
      s.once('connect', () => { clearTimeout(timer); s.removeListener('error', reject); resolve(s); });
      s.once('error', (e) => { clearTimeout(timer); reject(e); });
    });
  }
}

/** Joins two byte streams both ways, keeping half-closes, tearing both down on error.
 *  A tunnel stream not used yet is joined to the other side directly (StreamBridge: no
 *  Duplex machinery per chunk, the engine's flow control carried to the socket). */
export function splice(a: Duplex, b: Duplex): void {
  if (a instanceof TunnelStream && !(b instanceof TunnelStream) && a.bridgeTo(b)) return;
  if (b instanceof TunnelStream && !(a instanceof TunnelStream) && b.bridgeTo(a)) return;
  a.pipe(b);
  b.pipe(a);
  const abort = () => { a.destroy(); b.destroy(); };
  a.on('error', abort);
  b.on('error', abort);
  // A side closing before both its directions finished was reset: reset the other.
  const closeEarly = (x: Duplex, y: Duplex) => x.once('close', () => { if (!(x.readableEnded && x.writableFinished)) y.destroy(); });
  closeEarly(a, b);
  closeEarly(b, a);
}
