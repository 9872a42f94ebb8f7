// The node agent's composition root: it owns one of each part and wires them together.
//
//   Datapath (BPF maps, pinned links)  ← NodeView.datapath          (applied as a diff)
//   L7Directory + OutboundProxy :15001 ← NodeView services/routes/policies
//   IdentityManager + tunnel    :15008 ← NodeView mesh + local workloads, CA via control
//   WorkloadRegistry                   ← `weft run` over the admin API
//   SyncClient                         → the control API (snapshots in, ACK/NACK out)
//   AdminServer                 :15020 → /metrics, /healthz, /readyz, /debug/*, /v1/*
//
// A snapshot is applied in an order that keeps it all-or-nothing where it matters: the
// datapath validates everything before it touches a map, so a bad snapshot is refused
// (NACKed) with nothing changed; the proxy tables are swapped after.
import type { Socket } from 'node:net';
import { mkdirSync, readFileSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import { connect as tcpConnect } from 'node:net';
import type { Registry } from 'prom-client';
import { Gauge } from 'prom-client';
import { Datapath } from '../datapath/datapath';
import { WorkloadRegistry, validateRegisterRequest, type LocalWorkload } from './workloads';
import { deferredDuplex } from './deferred-duplex';
import { registerBpfMetrics } from './bpf-metrics';
import { AdminServer } from '../admin/server';
import { SyncClient } from '../sync/client';
import { IdentityManager } from '../identity/manager';
import { formatSpiffeId, nodeSpiffeId, parseSpiffeId } from '../identity/spiffe';
import { startTunnel, PolicyAuthorizer, type Tunnel, type LocalWorkload as TunnelWorkload } from '../proxy/tunnel';
import type { ForwardRequest } from '../proxy/tunnel/forward';
import { L7Directory } from '../proxy/routing/directory';
import { OutboundProxy, type Origin } from '../proxy/outbound';
import { InboundL7 } from '../proxy/http/inbound';
import { H2Proxy } from '../proxy/h2/proxy';
import { authorizerFor, type Authorizer } from '../proxy/routing/authz';
import { duplexPair } from '../lib/duplex-pair';
import { parseHostPort } from '../lib/listen';
import { RequestMetrics } from '../proxy/routing/metrics';
import { RequestTap } from './tap';
import { AccessLog } from '../proxy/routing/access-log';
import type { Endpoint } from '../proxy/balancer/endpoint';
import type { NodeView } from '../policy/snapshot';
import { createRegistry } from '../telemetry/registry';
import { componentLogger, type Logger } from '../telemetry/logger';
import { WeftError, describeError, invalidArg } from '../lib/errors';

export interface AgentConfig {
  node: string;
  /** Control API HOST:PORT. */
  control: string;
  tokenFile: string;
  stateDir: string;
  admin: { host: string; port: number };
  /** Outbound capture listener; also the redirect target written into the kernel. */
  outbound: { host: string; port: number };
  /** Inbound HBONE listener (mTLS from other nodes). */
  inbound: { host: string; port: number };
  /** This node's address: workloads started with `weft run` are registered with it. */
  nodeAddress: string;
  /** Listening sockets inherited from the supervisor, by name (outbound, inbound, admin). */
  listenFds?: Record<string, number>;
  /** Fraction of requests written to the JSON access log (0 = off); with any sampling
   *  on, 5xx responses are always logged. */
  accessLogSample?: number;
}

export const HBONE_PORT = 15008;
/** How long a starting agent waits for its first snapshot and node certificate. */
const SERVING_WAIT_MS = 15_000;

function sleep(ms: number): Promise<void> { return new Promise((r) => setTimeout(r, ms).unref()); }

export class NodeAgent {
  readonly registry: Registry;
  private readonly log: Logger;
  private view: NodeView | null = null;
  private identity: IdentityManager | null = null;
  private tunnel: Tunnel | null = null;
  private tunnelStarting: Promise<void> | null = null;
  /** Resolves once a snapshot is applied and the mTLS tunnel runs: only then can the
   *  outbound listener serve redirected connections. */
  private markServing: () => void = () => {};
  private readonly serving = new Promise<void>((r) => { this.markServing = r; });
  private readonly authorizer = new PolicyAuthorizer();
  private readonly directory: L7Directory;
  private readonly outbound: OutboundProxy;
  private readonly admin: AdminServer;
  private readonly sync: SyncClient;
  private readonly workloads: WorkloadRegistry;
  private readonly tap: RequestTap;
  private readonly requestMetrics: RequestMetrics;
  /** Destination side of L7: per-request authorization for local workloads. */
  private readonly inboundL7: InboundL7;
  private readonly inboundH2: H2Proxy;
  /** Per-request authorizers of local workloads with L7 policies (rebuilt per snapshot). */
  private l7Authorizers = new Map<string, Authorizer>();
  private localTargets = new Map<string, TunnelWorkload>();
  private stopping = false;

  private constructor(private readonly cfg: AgentConfig, private readonly datapath: Datapath) {
    this.log = componentLogger('agent', { node: cfg.node });
    this.registry = createRegistry({ node: cfg.node });
    registerBpfMetrics(this.registry, datapath);
    this.workloads = new WorkloadRegistry(datapath, { name: cfg.node, address: cfg.nodeAddress }, cfg.stateDir);

    const sample = cfg.accessLogSample ?? 0;
    this.tap = new RequestTap(sample > 0 ? new AccessLog({ logger: componentLogger('access', { node: cfg.node }), sampleRate: sample, logErrors: true }) : null);

    this.directory = new L7Directory((service, ep, ejected) => this.onEjection(service, ep, ejected));
    this.outbound = new OutboundProxy({
      directory: this.directory,
      resolveOrigin: (s) => this.resolveOrigin(s),
      connect: (ep, origin) => this.connectUpstream(ep, origin),
      sourceOf: (id) => {
        const w = this.workloads.byCgroupId(BigInt(id));
        return w ? { workload: w.name, namespace: w.namespace, principal: this.principalOf(w) } : null;
      },
      metrics: (this.requestMetrics = new RequestMetrics(this.registry)),
      accessLog: this.tap,
      logger: componentLogger('outbound', { node: cfg.node }),
    });

    const direct = (ep: Endpoint) => tcpConnect({ host: ep.ip, port: ep.port, noDelay: true });
    const inboundLog = componentLogger('inbound-l7', { node: cfg.node });
    this.inboundH2 = new H2Proxy({ connect: direct, logger: inboundLog, accessLog: this.tap, tracer: null });
    this.inboundL7 = new InboundL7({
      connect: direct, headerTimeoutMs: 10_000, idleTimeoutMs: 300_000, maxHeadBytes: 16 * 1024, accessLog: this.tap, tracer: null, logger: inboundLog,
    }, this.inboundH2);

    const token = readToken(cfg.tokenFile);
    this.sync = new SyncClient({
      address: cfg.control, node: cfg.node, token, stateDir: cfg.stateDir,
      apply: (view) => this.apply(view),
      logger: componentLogger('sync', { node: cfg.node }),
    });
    this.sync.on('state', (s) => { if (s.connected) void this.registerAll(); });

    const snapshotVersion = new Gauge({
      name: 'weft_policy_snapshot_version', help: 'The policy snapshot this agent serves (value 1, version in the label).',
      labelNames: ['version'], registers: [this.registry],
    });
    this.sync.on('applied', (info) => { snapshotVersion.reset(); snapshotVersion.set({ version: info.version }, 1); });

    this.admin = new AdminServer({
      host: cfg.admin.host, port: cfg.admin.port, fd: cfg.listenFds?.admin, registry: this.registry, logger: componentLogger('admin', { node: cfg.node }),
      health: () => this.health(),
      debug: {
        config: () => ({ node: cfg.node, sync: this.sync.state(), view: this.view }),
        bpf: () => ({ inspect: Datapath.inspect(cfg.node), counters: this.datapath.counters(), services: this.datapath.services(), attachments: this.datapath.attachments }),
        workloads: () => this.workloads.list(),
        certificates: () => (this.identity?.identities() ?? []).map((id) => this.identity?.certificate(id) ?? { spiffeId: id, pending: true }),
      },
      api: {
        'POST /v1/workloads': (body) => this.registerWorkload(body),
        'DELETE /v1/workloads': (_b, url) => this.deregisterWorkload(url.searchParams.get('namespace') ?? '', url.searchParams.get('name') ?? ''),
        'GET /v1/status': () => this.status(),
        'GET /v1/explain': (_b, url) => this.explain(url.searchParams),
      },
      streams: { 'GET /v1/tap': (req, res, url) => this.tap.serve(req, res, url) },
    });
  }

  /** Loads (or adopts) the datapath, opens the listeners, starts syncing. */
  static async start(cfg: AgentConfig): Promise<NodeAgent> {
    mkdirSync(cfg.stateDir, { recursive: true, mode: 0o700 });
    const datapath = await Datapath.open({ node: cfg.node, redirect: { ipv4: cfg.outbound.host, port: cfg.outbound.port } });
    // The agent's own sockets live outside the workloads cgroup: never redirected.
    datapath.joinAgentCgroup(process.pid);
    const agent = new NodeAgent(cfg, datapath);
    try {
      const outFd = cfg.listenFds?.outbound;
      await agent.admin.listen();
      await agent.sync.start();
      // Accept redirected connections only once they can be served (on a restart, the
      // previous worker keeps accepting on the same socket until then).
      const waited = await Promise.race([agent.serving.then(() => true), sleep(SERVING_WAIT_MS).then(() => false)]);
      if (!waited) agent.log.warn({ waitedMs: SERVING_WAIT_MS }, 'no snapshot or certificate yet: accepting anyway');
      await agent.outbound.listen(outFd !== undefined ? { fd: outFd } : cfg.outbound);
    } catch (e) {
      await agent.stop();
      throw e;
    }
    agent.log.info({ admin: `${cfg.admin.host}:${cfg.admin.port}`, outbound: `${cfg.outbound.host}:${cfg.outbound.port}` }, 'agent started');
    return agent;
  }

  /** Graceful exit (restart, upgrade, shutdown): stop accepting at once — the listening
   *  sockets stay open in the supervisor, so a successor keeps accepting — let what is in
   *  flight finish within `graceMs`, then stop. */
  async drain(graceMs: number): Promise<void> {
    this.log.info({ graceMs }, 'draining');
    this.admin.stopAccepting();
    await this.sync.stop();
    const inbound = this.tunnel?.inbound;
    await Promise.allSettled([
      this.outbound.drain(graceMs),
      inbound && withGrace(inbound.close(), graceMs, () => inbound.destroy()),
    ]);
    await this.stop();
  }

  /** Stops listening and syncing. Pinned BPF state stays: L4 traffic keeps flowing. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    await Promise.allSettled([this.sync.stop(), this.outbound.close(), this.admin.close(), this.tunnel?.close()]);
    this.identity?.close();
    this.inboundH2.close();
    this.directory.close();
    this.datapath.close();
  }

  // ------------------------------------------------------------------ snapshots

  private async apply(view: NodeView): Promise<void> {
    if (view.node !== this.cfg.node) throw invalidArg(`snapshot is for node ${view.node}, this is ${this.cfg.node}`);
    // Validates every entry before changing any map: a bad snapshot changes nothing.
    this.datapath.applyServices(this.withoutEjected(view));
    this.directory.apply(view);
    this.authorizer.update(view.authorizationPolicies);
    this.localTargets = NodeAgent.indexLocalTargets(view);
    this.l7Authorizers = new Map(view.localWorkloads
      .filter((w) => view.authorizationPolicies.some((p) => p.l7 && p.workloads.includes(w.key)))
      .map((w) => [w.key, authorizerFor(w.key, view.authorizationPolicies)]));
    this.datapath.setFailMode(view.mesh.failMode);
    this.datapath.setMtlsMode(view.mesh.mtls);
    this.view = view;
    await this.updateIdentities(view);
  }

  private async updateIdentities(view: NodeView): Promise<void> {
    if (this.identity && this.identity.trustDomain !== view.mesh.trustDomain) {
      this.log.warn({ from: this.identity.trustDomain, to: view.mesh.trustDomain }, 'trust domain changed: re-issuing every identity');
      await this.tunnel?.close();
      this.identity.close();
      this.identity = null;
      this.tunnel = null;
    }
    if (!this.identity) {
      this.identity = new IdentityManager({
        trustDomain: view.mesh.trustDomain, failMode: view.mesh.failMode, ttlSeconds: Math.round(view.mesh.certTtlMs / 1000), registry: this.registry,
        sign: async (csr) => {
          const r = await this.sync.signCertificate(csr, Math.round((this.view?.mesh.certTtlMs ?? 0) / 1000));
          return { certChainPem: r.certChainPem, trustBundle: r.trustBundle };
        },
      });
    }
    const wanted = new Set([this.nodeIdentity(view.mesh.trustDomain), ...view.localWorkloads.map((w) => w.identity)]);
    for (const id of this.identity.identities()) if (!wanted.has(id)) this.identity.remove(id);
    // Certificates are obtained in the background: a slow CA must not hold up the ACK.
    for (const id of wanted) void this.identity.add(id).catch((e) => this.log.warn({ identity: id, err: describeError(e) }, 'identity not added'));
    this.ensureTunnel(view);
  }

  private ensureTunnel(view: NodeView): void {
    if (this.tunnel || this.tunnelStarting || !this.identity) return;
    const identity = this.identity;
    const nodeIdentity = this.nodeIdentity(view.mesh.trustDomain);
    this.tunnelStarting = (async () => {
      // The 15008 listener presents the node identity: wait for its certificate.
      if (!(await identity.add(nodeIdentity))) await new Promise<void>((r) => identity.on('updated', (id) => { if (id === nodeIdentity) r(); }));
      this.tunnel = await startTunnel({
        identity, nodeIdentity, authorizer: this.authorizer, registry: this.registry,
        lookup: (ip, port) => this.localWorkloadAt(ip, port), l7: (dest, req) => this.inboundL7For(dest, req), host: this.cfg.inbound.host, port: this.cfg.inbound.port, fd: this.cfg.listenFds?.inbound,
      });
      this.log.info({ inbound: `${this.cfg.inbound.host}:${this.tunnel.address.port}` }, 'mTLS tunnel listening');
      this.markServing();
    })().catch((e) => { this.log.error({ err: describeError(e) }, 'cannot start the mTLS tunnel'); })
      .finally(() => { this.tunnelStarting = null; });
  }

  // ---------------------------------------------------------------- connections

  private resolveOrigin(s: Socket): Origin | null {
    const ip = s.remoteAddress, port = s.remotePort;
    if (!ip || !port) return null;
    return this.datapath.lookupOrigin(ip.startsWith('::ffff:') ? ip.slice(7) : ip, port);
  }

  /** Upstream transport for a chosen endpoint: same node → local forwarder (authorization
   *  and metrics, no encryption); other node → a CONNECT stream in a pooled mTLS session
   *  to that node's 15008, presenting the source workload's certificate. */
  private connectUpstream(ep: Endpoint, origin: Origin): Socket | Duplex {
    const source = this.workloads.byCgroupId(BigInt(origin.cgroupId));
    if (!source) throw new WeftError('WEFT_ERR_PERMISSION', `connection from cgroup ${origin.cgroupId} is not from a workload of node ${this.cfg.node}`);
    const tunnel = this.tunnel;
    if (!tunnel) {
      // No identity yet: only the mesh's fail mode may let the connection through.
      if (this.view?.mesh.failMode === 'open') return tcpConnect({ host: ep.ip, port: ep.port, noDelay: true });
      throw new WeftError('WEFT_ERR_IDENTITY', 'the mTLS tunnel is not ready (no node certificate yet)');
    }
    const sameNode = ep.meta?.node === this.cfg.node;
    return deferredDuplex(tunnel.outbound.open({
      sourceIdentity: this.principalOf(source), sourceWorkload: source.name,
      target: { ip: ep.ip, port: ep.port },
      nodeAddress: sameNode ? null : { host: ep.ip, port: HBONE_PORT },
    }));
  }

  /** A local destination whose policies check requests (methods, paths, headers): the
   *  tunnel stream goes through the inbound L7 proxy, which authorizes every request for
   *  the caller's verified principal (403 / PERMISSION_DENIED) and forwards the rest. */
  private inboundL7For(dest: TunnelWorkload, req: ForwardRequest): Duplex | null {
    const authz = this.l7Authorizers.get(dest.key);
    if (!authz) return null;
    const [callerSide, proxySide] = duplexPair();
    const peer = { principal: req.sourcePrincipal, port: req.target.port, ...(req.sourceIp ? { ip: req.sourceIp } : {}) };
    const series = this.requestMetrics.seriesFor({
      reporter: 'destination', source_workload: req.sourceWorkload ?? 'unknown', source_namespace: parseSpiffeId(req.sourcePrincipal).namespace,
      source_principal: req.sourcePrincipal, destination_service: dest.service ?? 'unknown', destination_workload: dest.name, connection_security_policy: req.security,
    });
    this.inboundL7.handle(proxySide, this.directory.lookup(req.target.ip, req.target.port), peer, authz, series);
    return callerSide;
  }

  /** Ejected endpoints leave the kernel's L4 tables too (L4-only services stop using
   *  them); they come back when the ejection ends. */
  private onEjection(service: string, ep: Endpoint, ejected: boolean): void {
    const view = this.view;
    if (!view) return;
    this.ejected[ejected ? 'add' : 'delete'](`${ep.ip}:${ep.port}`);
    try {
      this.datapath.applyServices(this.withoutEjected(view));
    } catch (e) {
      this.log.warn({ service, endpoint: `${ep.ip}:${ep.port}`, err: describeError(e) }, 'cannot update L4 maps after an ejection');
    }
  }

  private readonly ejected = new Set<string>();

  private withoutEjected(view: NodeView): NodeView['datapath'] {
    return view.datapath.map((s) => ({ ...s, backends: s.backends.filter((b) => !this.ejected.has(`${b.ip}:${b.port}`)) }));
  }

  /** Asked for every inbound connection: answered from an index built per snapshot. */
  private localWorkloadAt(ip: string, port: number): TunnelWorkload | undefined {
    return this.localTargets.get(`${ip}:${port}`) ?? this.localTargets.get(ip);
  }

  /** ip:port → the local workload serving it (and the Service it backs there); a local
   *  workload no Service selects is reachable on any port (key: its address alone). */
  private static indexLocalTargets(view: NodeView): Map<string, TunnelWorkload> {
    const out = new Map<string, TunnelWorkload>();
    for (const w of view.localWorkloads) {
      const base = { key: w.key, name: w.name, namespace: w.namespace, principal: w.identity };
      if (!w.services.length) { out.set(w.address, base); continue; }
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

  private nodeIdentity(trustDomain: string): string {
    return nodeSpiffeId(trustDomain, this.cfg.node);
  }

  private principalOf(w: LocalWorkload): string {
    return formatSpiffeId({ trustDomain: this.view?.mesh.trustDomain ?? 'cluster.local', namespace: w.namespace, serviceAccount: w.serviceAccount });
  }

  // ------------------------------------------------------------------ workloads

  private registerWorkload(body: unknown): LocalWorkload & { spiffeId: string } {
    const w = this.workloads.register(validateRegisterRequest(body));
    // The process may start now: its cgroup exists. The control API learns about it in
    // the background (and again on every reconnect), so a slow or absent control API
    // never holds up `weft run`.
    void this.sync.registerWorkload(registration(w))
      .catch((e) => this.log.warn({ workload: `${w.namespace}/${w.name}`, err: describeError(e) }, 'workload registered locally; control API registration pending'));
    return { ...w, spiffeId: this.principalOf(w) };
  }

  private async deregisterWorkload(namespace: string, name: string): Promise<{ removed: string }> {
    const w = this.workloads.deregister(namespace, name);
    await this.sync.deregisterWorkload({ name: w.name, namespace: w.namespace })
      .catch((e) => this.log.warn({ workload: `${namespace}/${name}`, err: describeError(e) }, 'control API deregistration failed'));
    return { removed: `${namespace}/${name}` };
  }

  private async registerAll(): Promise<void> {
    for (const w of this.workloads.list()) {
      await this.sync.registerWorkload(registration(w))
        .catch((e) => this.log.warn({ workload: `${w.namespace}/${w.name}`, err: describeError(e) }, 'workload re-registration failed'));
    }
  }

  // --------------------------------------------------------------------- status

  /** `weft explain`: the control API reasons over the full snapshot (this node only
   *  has its own view). */
  private explain(q: URLSearchParams): Promise<unknown> {
    const from = q.get('from') ?? '';
    if (!from) throw invalidArg('from: the source workload (namespace/name) is required');
    const to = parseHostPort(q.get('to') ?? '', 'to');
    const headers: Record<string, string> = {};
    for (const h of q.getAll('header')) {
      const i = h.indexOf(':');
      if (i <= 0) throw invalidArg(`header: expected name:value, got '${h}'`);
      headers[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
    }
    return this.sync.explain({
      from, host: to.host, port: to.port,
      path: q.get('path') ?? '', method: q.get('method') ?? '', headers,
    });
  }

  private health(): { ready: boolean; reasons: string[] } {
    const reasons: string[] = [];
    if (!this.view) reasons.push('no policy snapshot applied yet');
    if (this.sync.state().fatal) reasons.push(`control API refused this agent: ${this.sync.state().lastError}`);
    return { ready: reasons.length === 0, reasons };
  }

  status(): Record<string, unknown> {
    const s = this.sync.state();
    return {
      node: this.cfg.node,
      control: { address: this.cfg.control, connected: s.connected, version: s.version, fromCache: s.fromCache, lastError: s.lastError, lastNack: s.lastNack },
      datapath: { programs: this.datapath.attachments.map((a) => ({ program: a.program, linkId: a.linkId, progId: a.progId, adopted: a.adopted })), services: this.view?.datapath.length ?? 0, counters: this.datapath.counters() },
      listeners: { outbound: `${this.cfg.outbound.host}:${this.cfg.outbound.port}`, inbound: this.tunnel ? `${this.cfg.inbound.host}:${this.tunnel.address.port}` : null, admin: `${this.cfg.admin.host}:${this.cfg.admin.port}` },
      workloads: this.workloads.list().map((w) => ({ key: `${w.namespace}/${w.name}`, cgroupId: w.cgroupId, identity: this.principalOf(w) })),
      certificates: (this.identity?.identities() ?? []).map((id) => ({ identity: id, expiresAt: this.identity?.certificate(id)?.expiresAt.toISOString() ?? null })),
    };
  }
}

function readToken(file: string): string {
  try {
    const t = readFileSync(file, 'utf8').trim();
    if (!t) throw invalidArg(`token file ${file} is empty`);
    return t;
  } catch (e) {
    if (e instanceof WeftError) throw e;
    throw invalidArg(`cannot read the token file ${file}: ${describeError(e)}`);
  }
}

/** Waits for `p`, but no longer than `ms`; then calls `onTimeout` (a hard stop). */
function withGrace(p: Promise<void>, ms: number, onTimeout: () => void): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((r) => { timer = setTimeout(() => { onTimeout(); r(); }, ms); });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** What the control API is told about a local workload (`weft run`). */
function registration(w: LocalWorkload): Parameters<SyncClient['registerWorkload']>[0] {
  return { name: w.name, namespace: w.namespace, serviceAccount: w.serviceAccount, labels: w.labels, address: w.address, cgroupId: w.cgroupId };
}
