// The part of the agent that serves connections: the outbound L7 proxy (15001), the mTLS
// tunnel (15008) and the inbound L7 authorization proxy, with the routing tables built
// from a NodeView. Every agent worker runs one — the primary (agent.ts) and each proxy
// worker (proxy-worker.ts) — fed with the same NodeView, workload table and certificates;
// only where those come from differs, so this module takes them as functions.
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect as tcpConnect, type OnReadOpts } from 'node:net';
import type { Registry } from 'prom-client';
import type { IdentitySource } from '../identity/manager';
import { formatSpiffeId, nodeSpiffeId, parseSpiffeId } from '../identity/spiffe';
import { failWithoutIdentity } from '../identity/fail-mode';
import { startTunnel, PolicyAuthorizer, type Tunnel, type LocalWorkload as TunnelWorkload } from '../proxy/tunnel';
import type { ForwardRequest } from '../proxy/tunnel/forward';
import { L7Directory } from '../proxy/routing/directory';
import { OutboundProxy, type Origin } from '../proxy/outbound';
import { InboundL7 } from '../proxy/http/inbound';
import { H2Proxy } from '../proxy/h2/proxy';
import { DEFAULT_PATH_NORMALIZATION, type PathNormalization } from '../proxy/http/path';
import { Authorizer } from '../proxy/routing/authz';
import type { AccessSink } from '../proxy/routing/access-log';
import { RequestMetrics } from '../proxy/routing/metrics';
import type { Endpoint } from '../proxy/balancer/endpoint';
import type { NodeView } from '../policy/snapshot';
import { nodeAddress } from '../policy/topology';
import { duplexPair } from '../lib/duplex-pair';
import { unmapV4 } from '../lib/ip';
import { deferredDuplex } from '../lib/deferred-duplex';
import type { LocalWorkload } from './workloads';
import { componentLogger, type Logger } from '../telemetry/logger';
import { WeftError, describeError } from '../lib/errors';

export const HBONE_PORT = 15008;
/** How long a starting worker waits for its first snapshot and node certificate before
 *  it accepts anyway. */
export const SERVING_WAIT_MS = 15_000;

export interface ProxyPlaneOptions {
  node: string;
  registry: Registry;
  /** Inbound HBONE listener address (names it in logs when `inboundFd` is given). */
  inbound: { host: string; port: number };
  inboundFd?: number;
  /** Where a redirected connection was going and who opened it (the BPF origin map). */
  lookupOrigin(ip: string, port: number): Origin | null;
  /** The local workload of a kernel cgroup id. */
  workloadByCgroup(id: bigint): LocalWorkload | undefined;
  /** Outlier detection ejected (or restored) an endpoint: the L4 maps must follow. */
  onEjection(service: string, endpoint: Endpoint, ejected: boolean): void;
  accessLog: AccessSink;
}

export class ProxyPlane {
  private readonly log: Logger;
  private view: NodeView | null = null;
  private tunnel: Tunnel | null = null;
  private tunnelStarting: Promise<void> | null = null;
  /** Resolves once a snapshot is applied and the mTLS tunnel runs: only then can the
   *  outbound listener serve redirected connections. */
  private markServing: () => void = () => {};
  readonly serving = new Promise<void>((r) => { this.markServing = r; });
  private readonly authorizer = new PolicyAuthorizer();
  private readonly directory: L7Directory;
  readonly outbound: OutboundProxy;
  private readonly requestMetrics: RequestMetrics;
  /** Destination side of L7: per-request authorization for local workloads. */
  private readonly inboundL7: InboundL7;
  private readonly inboundH2: H2Proxy;
  /** Per-request authorizers of local workloads with L7 policies (rebuilt per snapshot). */
  private l7Authorizers = new Map<string, Authorizer>();
  private localTargets = new Map<string, TunnelWorkload>();
  /** MeshConfig spec.pathNormalization, shared by every proxy here (updated in place). */
  private readonly paths: PathNormalization = { ...DEFAULT_PATH_NORMALIZATION };

  constructor(private readonly o: ProxyPlaneOptions) {
    this.log = componentLogger('proxy-plane', { node: o.node });
    this.directory = new L7Directory((service, ep, ejected) => o.onEjection(service, ep, ejected));
    this.outbound = new OutboundProxy({
      directory: this.directory,
      resolveOrigin: (s) => this.resolveOrigin(s),
      connect: (ep, origin, read) => this.connectUpstream(ep, origin, read),
      sourceOf: (id) => {
        const w = o.workloadByCgroup(BigInt(id));
        return w ? { workload: w.name, namespace: w.namespace, principal: this.principalOf(w) } : null;
      },
      metrics: (this.requestMetrics = new RequestMetrics(o.registry)),
      accessLog: o.accessLog,
      logger: componentLogger('outbound', { node: o.node }),
      paths: this.paths,
    });
    const direct = (ep: Endpoint, _origin: Origin, read?: OnReadOpts) => tcpConnect({ host: ep.ip, port: ep.port, noDelay: true, ...(read ? { onread: read } : {}) });
    const inboundLog = componentLogger('inbound-l7', { node: o.node });
    this.inboundH2 = new H2Proxy({ connect: direct, logger: inboundLog, accessLog: o.accessLog, tracer: null, paths: this.paths });
    this.inboundL7 = new InboundL7({
      connect: direct, headerTimeoutMs: 10_000, idleTimeoutMs: 300_000, maxHeadBytes: 16 * 1024, accessLog: o.accessLog, tracer: null, logger: inboundLog, paths: this.paths,
    }, this.inboundH2);
  }

  /** Swaps the routing, authorization and local-target tables to a new snapshot (the
   *  caller validated it: the primary by writing the datapath first). */
  apply(view: NodeView): void {
    Object.assign(this.paths, view.mesh.pathNormalization ?? DEFAULT_PATH_NORMALIZATION);
    this.directory.apply(view);
    this.authorizer.update(view.authorizationPolicies);
    this.localTargets = indexLocalTargets(view);
    this.l7Authorizers = new Map(view.localWorkloads
      .filter((w) => view.authorizationPolicies.some((p) => p.l7 && p.workloads.includes(w.key)))
      .map((w) => [w.key, new Authorizer(this.authorizer.engine.workload(w.key))]));
    this.view = view;
  }

  /** The mTLS listener's address once it runs. */
  get inboundAddress(): string | null {
    return this.tunnel ? `${this.o.inbound.host}:${this.tunnel.address.port}` : null;
  }

  /** Starts the tunnel once `identity` has the node certificate (the caller makes sure the
   *  node identity is managed); idempotent. */
  ensureTunnel(identity: IdentitySource, trustDomain: string): void {
    if (this.tunnel || this.tunnelStarting) return;
    const nodeIdentity = nodeSpiffeId(trustDomain, this.o.node);
    this.tunnelStarting = (async () => {
      // The 15008 listener presents the node identity: wait for its certificate.
      if (!identity.certificate(nodeIdentity)) {
        await new Promise<void>((r) => {
          const onUpdated = (id: string) => { if (id === nodeIdentity) { identity.off('updated', onUpdated); r(); } };
          identity.on('updated', onUpdated);
        });
      }
      this.tunnel = await startTunnel({
        identity, nodeIdentity, authorizer: this.authorizer, registry: this.o.registry,
        lookup: (ip, port) => this.localWorkloadAt(ip, port), l7: (dest, req) => this.inboundL7For(dest, req),
        host: this.o.inbound.host, port: this.o.inbound.port, fd: this.o.inboundFd,
      });
      this.log.info({ inbound: this.inboundAddress }, 'mTLS tunnel listening');
      this.markServing();
    })().catch((e) => { this.log.error({ err: describeError(e) }, 'cannot start the mTLS tunnel'); })
      .finally(() => { this.tunnelStarting = null; });
  }

  /** Stops the tunnel (its identity source is being replaced: trust domain change). */
  async closeTunnel(): Promise<void> {
    await this.tunnelStarting;
    await this.tunnel?.close();
    this.tunnel = null;
  }

  /** Waits until serving (snapshot + tunnel), at most `maxWaitMs`; then accepts on the
   *  outbound socket. Returns false if it gave up waiting. */
  async listen(target: { fd: number } | { host: string; port: number }, maxWaitMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const waited = await Promise.race([
      this.serving.then(() => true),
      new Promise<boolean>((r) => { timer = setTimeout(() => r(false), maxWaitMs); }),
    ]).finally(() => clearTimeout(timer));
    await this.outbound.listen(target);
    return waited;
  }

  /** Stop accepting at once (the listening sockets stay open in the supervisor, so other
   *  workers keep accepting), let what is in flight finish within `graceMs`. */
  async drain(graceMs: number): Promise<void> {
    const inbound = this.tunnel?.inbound;
    await Promise.allSettled([
      this.outbound.drain(graceMs),
      inbound && withGrace(inbound.close(), graceMs, () => inbound.destroy()),
    ]);
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.outbound.close(), this.closeTunnel()]);
    this.inboundH2.close();
    this.directory.close();
  }

  principalOf(w: LocalWorkload): string {
    return formatSpiffeId({ trustDomain: this.view?.mesh.trustDomain ?? 'cluster.local', namespace: w.namespace, serviceAccount: w.serviceAccount });
  }

  // ---------------------------------------------------------------- connections

  private resolveOrigin(s: Socket): Origin | null {
    const ip = s.remoteAddress, port = s.remotePort;
    if (!ip || !port) return null;
    return this.o.lookupOrigin(unmapV4(ip), port);
  }

  /** Upstream transport for a chosen endpoint: same node → local forwarder (authorization
   *  and metrics, no encryption); other node → a CONNECT stream in a pooled mTLS session
   *  to that node's 15008, presenting the source workload's certificate. */
  private connectUpstream(ep: Endpoint, origin: Origin, read?: OnReadOpts): Socket | Duplex {
    const source = this.o.workloadByCgroup(BigInt(origin.cgroupId));
    if (!source) throw new WeftError('WEFT_ERR_PERMISSION', `connection from cgroup ${origin.cgroupId} is not from a workload of node ${this.o.node}`);
    const tunnel = this.tunnel;
    if (!tunnel) {
      // No identity yet: only the mesh's fail mode may let the connection through.
      failWithoutIdentity(this.view?.mesh.failMode ?? 'closed', this.log, 'the mTLS tunnel is not ready (no node certificate yet)');
      return tcpConnect({ host: ep.ip, port: ep.port, noDelay: true, ...(read ? { onread: read } : {}) });
    }
    // A hostNetwork backend is the node itself, outside the mesh: no identity to tunnel
    // to, so it is dialled as it is (plaintext), like kube-proxy would.
    if (ep.meta?.hostNetwork === 'true') return tcpConnect({ host: ep.ip, port: ep.port, noDelay: true, ...(read ? { onread: read } : {}) });
    const node = ep.meta?.node;
    const sameNode = node === this.o.node;
    return deferredDuplex(tunnel.outbound.open({
      sourceIdentity: this.principalOf(source), sourceWorkload: source.name, sourceIp: source.address,
      target: { ip: ep.ip, port: ep.port },
      nodeAddress: sameNode ? null : this.tunnelEndpoint(node, ep),
    }));
  }

  /** Where a CONNECT to a workload on another node goes: that NODE's 15008 (the pod is
   *  the CONNECT target), and the node's SPIFFE ID is what its listener must present. */
  private tunnelEndpoint(node: string | undefined, ep: Endpoint): { host: string; port: number; identity?: string } {
    if (!node) throw new WeftError('WEFT_ERR_UNAVAILABLE', `endpoint ${ep.ip}:${ep.port} has no node`);
    const host = this.view ? nodeAddress(this.view, node) : undefined;
    if (!host) throw new WeftError('WEFT_ERR_UNAVAILABLE', `no address known for node ${node} (endpoint ${ep.ip}:${ep.port})`);
    return { host, port: HBONE_PORT, identity: nodeSpiffeId(this.view!.mesh.trustDomain, node) };
  }

  /** A local destination whose policies check requests (methods, paths, headers): the
   *  tunnel stream goes through the inbound L7 proxy, which authorizes every request for
   *  the caller's verified principal (403 / PERMISSION_DENIED) and forwards the rest. */
  private inboundL7For(dest: TunnelWorkload, req: ForwardRequest): Duplex | null {
    const authz = this.l7Authorizers.get(dest.key);
    if (!authz) return null;
    const [callerSide, proxySide] = duplexPair();
    const peer = { principal: req.sourcePrincipal, port: req.target.port, destinationIp: req.target.ip, ...(req.sourceIp ? { ip: req.sourceIp } : {}) };
    const series = this.requestMetrics.seriesFor({
      reporter: 'destination', source_workload: req.sourceWorkload ?? 'unknown', source_namespace: parseSpiffeId(req.sourcePrincipal).namespace,
      source_principal: req.sourcePrincipal, destination_service: dest.service ?? 'unknown', destination_workload: dest.name, connection_security_policy: req.security,
    });
    this.inboundL7.handle(proxySide, this.directory.lookup(req.target.ip, req.target.port), peer, authz, series, undefined, dest.principal);
    return callerSide;
  }

  /** Asked for every inbound connection: answered from an index built per snapshot. */
  private localWorkloadAt(ip: string, port: number): TunnelWorkload | undefined {
    return this.localTargets.get(`${ip}:${port}`) ?? this.localTargets.get(ip);
  }
}

/** ip:port → the local workload serving it (and the Service it backs there); a local
 *  workload no Service selects is reachable on any port (key: its address alone). */
function indexLocalTargets(view: NodeView): Map<string, TunnelWorkload> {
  const out = new Map<string, TunnelWorkload>();
  const own = nodeAddress(view, view.node);
  const nodeOwned = new Set(own ? [own] : []);
  for (const w of view.localWorkloads) {
    const base = { key: w.key, name: w.name, namespace: w.namespace, principal: w.identity };
    // A workload with an address of its own (a pod) is reachable on any of its ports;
    // one at the node's address (`weft run` on a VM) only on the ports its Services
    // name: a CONNECT must never reach sshd, the kubelet or the agent's admin port.
    if (!w.services.length) { if (!nodeOwned.has(w.address)) out.set(w.address, base); continue; }
    for (const svc of view.services) {
      if (!w.services.includes(svc.key)) continue;
      for (const e of svc.endpoints) {
        if (e.workload !== w.key) continue;
        for (const port of Object.values(e.ports)) if (!out.has(`${w.address}:${port}`)) out.set(`${w.address}:${port}`, { ...base, service: svc.key });
      }
    }
  }
  return out;
}

/** Waits for `p`, but no longer than `ms`; then calls `onTimeout` (a hard stop). */
function withGrace(p: Promise<void>, ms: number, onTimeout: () => void): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((r) => { timer = setTimeout(() => { onTimeout(); r(); }, ms); });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}
