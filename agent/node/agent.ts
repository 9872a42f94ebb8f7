// The node agent's composition root (the PRIMARY worker, see ipc.ts): it owns one of
// each singleton and wires them together.
//
//   Datapath (BPF maps, pinned links)  ← NodeView.datapath          (applied as a diff)
//   ProxyPlane: outbound :15001,       ← NodeView services/routes/policies, local
//     mTLS tunnel :15008, inbound L7     workloads, certificates
//   IdentityManager (CSRs, renewals)   ← NodeView mesh + local workloads, CA via control
//   WorkloadRegistry                   ← `weft run` over the admin API
//   SyncClient                         → the control API (snapshots in, ACK/NACK out)
//   AdminServer                 :15020 → /metrics, /healthz, /readyz, /debug/*, /v1/*
//   WorkerLink                         ↔ the supervisor: state out to the proxy workers,
//                                        their ejections and metrics in
//
// The jobs live in their own modules; this class only wires them: node-identity.ts (the
// IdentityManager per trust domain, shared with the workers), registrations.ts (`weft
// run` over the admin API), ejections.ts (outlier ejections in the L4 maps),
// admin-routes.ts (/debug, /v1 and the tap stream; explain-query.ts parses `weft
// explain`), token-files.ts (admin token, control CA bundle), eager-hops.ts and
// local-addresses.ts (what the kernel is told about this node's hops and addresses).
//
// A snapshot is applied in an order that keeps it all-or-nothing where it matters: the
// datapath validates everything before it touches a map, so a bad snapshot is refused
// (NACKed) with nothing changed; the proxy tables are swapped after, here and in every
// proxy worker, before the snapshot is ACKed.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { resolvePodCgroup } from '../discovery/pod-cgroup';
import type { Registry } from 'prom-client';
import { Gauge } from 'prom-client';
import { Datapath } from '../datapath/datapath';
import { readTokenFile } from '../lib/token-file';
import { WorkloadRegistry, type LocalWorkload } from './workloads';
import { CgroupIdentities } from './cgroup-identities';
import { PodIndex } from './pods';
import { registerBpfMetrics } from './bpf-metrics';
import { AdminServer } from '../admin/server';
import { SyncClient } from '../sync/client';
import { RequestTap, accessLogFor } from './tap';
import type { Endpoint } from '../proxy/balancer/endpoint';
import type { NodeView } from '../policy/snapshot';
import { ProxyPlane, SERVING_WAIT_MS } from './proxy-plane';
import type { NodeState, WorkerInfo } from './ipc';
import type { WorkerLink } from './worker-link';
import { aggregateWorkers, counterTotal } from '../telemetry/aggregate';
import { createRegistry } from '../telemetry/registry';
import { componentLogger, type Logger } from '../telemetry/logger';
import { WeftError, describeError, invalidArg } from '../lib/errors';
import { directEndpoints } from './direct-endpoints';
import { adminRoutes } from './admin-routes';
import { eagerHops } from './eager-hops';
import { Ejections } from './ejections';
import { localAddresses } from './local-addresses';
import { NodeIdentity } from './node-identity';
import { Registrations } from './registrations';
import { adminToken, readPemFile } from './token-files';
import { datapathProblems } from './datapath-health';
import { registerSyncMetrics } from './sync-metrics';
import { DnsProxy, type DnsConfig } from '../dns/proxy';
import { callerAllowed, callerNamespace } from '../dns/callers';

export interface AgentConfig {
  node: string;
  /** Control API HOST:PORT. */
  control: string;
  tokenFile: string;
  /** PEM file of the CA bundle the control API's certificate must chain to; absent means
   *  plaintext (`--control-insecure`). */
  controlCa?: string;
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
  /** The channel to the supervisor when it runs proxy workers besides this one. */
  link?: WorkerLink | null;
  /** Kubernetes node: capture the pods kubelet runs (their cgroups under `captureRoot`)
   *  and learn their identities from this node's Pods; absent: `weft run` only. */
  kubernetes?: KubernetesMode;
  /** The DNS proxy for mesh names (agent/dns/); absent: off, and the kernel's DNS
   *  capture a previous agent may have left on is turned off. */
  dns?: DnsConfig;
}

export interface KubernetesMode {
  captureRoot: string;
  kubeconfig?: string;
  excludeNamespaces?: string[];
  /** The agent's own pod (downward API): skipped by the kernel, never moved out of. */
  podUid?: string;
  dataplaneDefault?: 'mesh' | 'none';
}

export { HBONE_PORT } from './proxy-plane';
export { eagerHops } from './eager-hops';
export { adminToken } from './token-files';
/** How long publishing a state change may wait for the proxy workers (the supervisor
 *  answers by its own, shorter, timeout; this one only covers a lost answer). */
const PUBLISH_TIMEOUT_MS = 10_000;
/** How long a scrape waits for the other workers' metrics. */
const SCRAPE_TIMEOUT_MS = 2_000;

export class NodeAgent {
  readonly registry: Registry;
  private readonly log: Logger;
  private view: NodeView | null = null;
  private readonly identity: NodeIdentity;
  private readonly plane: ProxyPlane;
  private readonly admin: AdminServer;
  private readonly sync: SyncClient;
  private readonly workloads: WorkloadRegistry;
  /** This node's pods (Kubernetes mode). */
  private readonly pods: PodIndex | null;
  /** Kernel cgroup id → local workload: `weft run` registrations and meshed pods. */
  private readonly identities = new CgroupIdentities();
  private podsListed = false;
  private readonly tap: RequestTap;
  private readonly link: WorkerLink | null;
  /** The supervisor's serving workers (this one alone without a supervisor). */
  private workers: WorkerInfo[] = [{ worker: 0, role: 'primary', pid: process.pid }];
  /** The supervisor announced its workers (it does once all of them are ready). */
  private workersKnown = false;
  /** Endpoints the workers' outlier detection ejected: out of the L4 maps meanwhile. */
  private readonly ejections = new Ejections();
  private readonly registrations: Registrations;
  private stopping = false;
  private readonly dns: DnsProxy | null;

  private constructor(private readonly cfg: AgentConfig, private readonly datapath: Datapath) {
    this.log = componentLogger('agent', { node: cfg.node });
    this.registry = createRegistry({ node: cfg.node });
    registerBpfMetrics(this.registry, datapath);
    this.workloads = new WorkloadRegistry(datapath, { name: cfg.node, address: cfg.nodeAddress }, cfg.stateDir);
    this.pods = cfg.kubernetes ? new PodIndex({ node: cfg.node, ...cfg.kubernetes, captureRoot: cfg.kubernetes.captureRoot, ...(cfg.kubernetes.podUid ? { selfPodUid: cfg.kubernetes.podUid } : {}) }) : null;
    this.identities.replace(this.localWorkloads());
    this.link = cfg.link ?? null;

    this.dns = cfg.dns ? new DnsProxy(cfg.dns, datapath, {
      registry: this.registry, logger: componentLogger('dns', { node: cfg.node }),
      namespaceOf: (ip) => callerNamespace(this.localWorkloads(), ip, cfg.nodeAddress),
      allowed: (ip) => callerAllowed(this.localWorkloads(), ip),
    }) : null;

    this.tap = new RequestTap(accessLogFor(cfg.node, cfg.accessLogSample ?? 0), (tapping) => this.publish({ tapping }));

    this.plane = new ProxyPlane({
      node: cfg.node, registry: this.registry, inbound: cfg.inbound, inboundFd: cfg.listenFds?.inbound,
      lookupOrigin: (ip, port) => this.datapath.lookupOrigin(ip, port),
      workloadByCgroup: (id) => this.identities.lookup(id),
      onEjection: (service, ep, ejected) => this.onEjection(service, ep, ejected, process.pid),
      accessLog: this.tap,
    });
    this.link?.on('ejection', (m) => this.onEjection(m.service, m, m.ejected, m.pid));
    this.link?.on('workers', (w) => this.onWorkers(w));
    this.link?.on('access', (r) => this.tap.deliver(r));
    this.link?.serveMetrics(this.registry);

    readTokenFile(cfg.tokenFile, '--token-file');
    this.sync = new SyncClient({
      // Re-read per connection attempt: kubelet rotates projected ServiceAccount tokens.
      address: cfg.control, node: cfg.node, nodeAddress: cfg.nodeAddress, token: () => readTokenFile(cfg.tokenFile, '--token-file'), stateDir: cfg.stateDir,
      ...(cfg.controlCa !== undefined ? { controlCa: readPemFile(cfg.controlCa) } : {}),
      apply: (view) => this.apply(view),
      logger: componentLogger('sync', { node: cfg.node }),
    });
    this.sync.on('state', (s) => { if (s.connected) void this.registrations.registerAll(); });

    this.identity = new NodeIdentity({
      node: cfg.node, registry: this.registry, log: this.log, plane: this.plane,
      sign: async (csr) => {
        const r = await this.sync.signCertificate(csr, Math.round((this.view?.mesh.certTtlMs ?? 0) / 1000));
        return { certChainPem: r.certChainPem, trustBundle: r.trustBundle };
      },
      share: (identity) => { void this.publish({ identity }); },
      useNodeCertificate: (c) => this.sync.useCertificate(c),
    });
    this.registrations = new Registrations({
      workloads: this.workloads, sync: this.sync, kubernetes: this.pods !== null, log: this.log,
      syncLocalAddresses: () => this.syncLocalAddresses(),
      refreshIdentities: async () => {
        this.identities.replace(this.localWorkloads());
        await this.publish({ workloads: this.identities.list() });
      },
      principalOf: (w) => this.principalOf(w),
    });

    const snapshotVersion = new Gauge({
      name: 'weft_policy_snapshot_version', help: 'The policy snapshot this agent serves (value 1, version in the label).',
      labelNames: ['version'], registers: [this.registry],
    });
    this.sync.on('applied', (info) => { snapshotVersion.reset(); snapshotVersion.set({ version: info.version }, 1); });
    registerSyncMetrics(this.registry, this.sync);

    const workers = (): number => this.workers.length;
    new Gauge({ name: 'weft_agent_workers', help: 'Agent worker processes serving (the primary and the proxy workers).', registers: [this.registry], collect() { this.set(workers()); } });
    const missingGauge = new Gauge({ name: 'weft_agent_scrape_missing_workers', help: 'Workers whose metrics did not arrive in time for this scrape (their series are absent from it).', registers: [this.registry] });

    this.admin = new AdminServer({
      host: cfg.admin.host, port: cfg.admin.port, fd: cfg.listenFds?.admin, registry: this.registry, logger: componentLogger('admin', { node: cfg.node }),
      // Always a token: registrations need it from loopback callers too; other
      // routes only off loopback.
      writeToken: adminToken(cfg.stateDir),
      scrape: this.link ? () => this.scrape(missingGauge).then((r) => r.registry.metrics()) : undefined,
      health: () => this.health(),
      ...adminRoutes({
        node: cfg.node, sync: this.sync, view: () => this.view, datapath: this.datapath, pods: this.pods, tap: this.tap,
        workers: () => this.scrape(missingGauge).then((r) => r.workers),
        localWorkloads: () => this.localWorkloads(),
        certificates: () => this.identity.certificates(),
        registrations: this.registrations,
        status: () => this.status(),
      }),
    });
  }

  /** Loads (or adopts) the datapath, opens the listeners, starts syncing. */
  static async start(cfg: AgentConfig): Promise<NodeAgent> {
    mkdirSync(cfg.stateDir, { recursive: true, mode: 0o700 });
    // Kubernetes: the agent's own pod is in the skip map before any program attaches.
    const own = cfg.kubernetes?.podUid ? resolvePodCgroup(cfg.kubernetes.podUid, dirname(cfg.kubernetes.captureRoot)) : undefined;
    const datapath = await Datapath.open({
      node: cfg.node, redirect: { ipv4: cfg.outbound.host, port: cfg.outbound.port },
      ...(cfg.kubernetes ? { captureRoot: cfg.kubernetes.captureRoot, skippedCgroups: own ? [own.id] : [] } : {}),
    });
    // The agent's own sockets are never redirected: without Kubernetes they live outside
    // the workloads cgroup; in Kubernetes the agent stays in its pod's cgroup (so the
    // DaemonSet's limits bind all of it) and the kernel skips that cgroup instead.
    if (!cfg.kubernetes) datapath.joinAgentCgroup(process.pid);
    const agent = new NodeAgent(cfg, datapath);
    try {
      // Kubernetes: identities before traffic. A connection accepted before this node's
      // pods are listed could not be named (a rollout's new agent would refuse it).
      if (agent.pods) await agent.startPods(SERVING_WAIT_MS);
      // The workloads the registry kept across the restart: the kernel's allow-list
      // (adopted from the pinned map) becomes exactly theirs.
      agent.syncLocalAddresses();
      const outFd = cfg.listenFds?.outbound;
      await agent.admin.listen();
      await agent.startDns();
      await agent.sync.start();
      // Accept redirected connections only once they can be served (on a restart, the
      // previous workers keep accepting on the same socket until then).
      const waited = await agent.plane.listen(outFd !== undefined ? { fd: outFd } : cfg.outbound, SERVING_WAIT_MS);
      if (!waited) agent.log.warn({ waitedMs: SERVING_WAIT_MS }, 'no snapshot or certificate yet: accepting anyway');
      agent.registerListener(outFd ?? agent.plane.outbound.listeningFd());
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
    await this.dns?.close();
    await this.sync.stop();
    await this.plane.drain(graceMs);
    await this.stop();
  }

  /** Stops listening and syncing. Pinned BPF state stays: L4 traffic keeps flowing. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    await Promise.allSettled([this.sync.stop(), this.plane.close(), this.admin.close(), this.pods?.stop(), this.dns?.close()]);
    this.identity.close();
    this.datapath.close();
  }

  // ------------------------------------------------------------------ snapshots

  private async apply(view: NodeView): Promise<void> {
    if (view.node !== this.cfg.node) throw invalidArg(`snapshot is for node ${view.node}, this is ${this.cfg.node}`);
    // Validates every entry before changing any map: a bad snapshot changes nothing.
    this.datapath.applyServices(this.ejections.filter(view));
    // An optimisation only: a snapshot is never refused over it.
    try { this.datapath.setEagerEndpoints(eagerHops(view, this.cfg.outbound)); } catch (e) {
      this.log.warn({ err: describeError(e) }, 'same-node hops not marked for splicing; they are learned instead');
    }
    // Direct connects to these endpoints go through the agent like their service's (in
    // Kubernetes the agent's own dials are left alone through the skip map: its pod).
    try { this.datapath.setDirectEndpoints(directEndpoints(view)); } catch (e) {
      this.log.error({ err: describeError(e) }, 'direct workload endpoints not updated: a connect to a workload\'s own address may bypass its authorization');
    }
    this.plane.apply(view);
    this.dns?.apply(view);
    this.datapath.setFailMode(view.mesh.failMode);
    this.datapath.setMtlsMode(view.mesh.mtls);
    this.view = view;
    await this.identity.update(view);
    // Every proxy worker routes by this snapshot before it is ACKed.
    const identity = this.identity.state();
    await this.publish({ view, workloads: this.identities.list(), tapping: this.tap.subscribers > 0, ...(identity ? { identity } : {}) });
  }

  /** The DNS proxy, or capture off without one. Not fatal: without it workloads resolve
   *  as before (the kernel redirects only to a DNS socket that exists). */
  private async startDns(): Promise<void> {
    try {
      if (this.dns) await this.dns.start();
      else this.datapath.setDnsCapture(null);
    } catch (e) {
      this.log.error({ err: describeError(e) }, 'DNS proxy not started: workloads resolve through their own resolvers, mesh names do not resolve');
    }
  }

  // -------------------------------------------------------------- proxy workers

  /** Hands a state change to the proxy workers; resolves once they applied it (never
   *  rejects: a worker that lags is logged by the supervisor and catches up later). */
  private async publish(state: NodeState): Promise<void> {
    if (!this.link) return;
    await this.link.publish(state, PUBLISH_TIMEOUT_MS)
      .catch((e) => this.log.warn({ err: describeError(e), parts: Object.keys(state) }, 'state not confirmed by the proxy workers'));
  }

  private onWorkers(workers: WorkerInfo[]): void {
    this.workers = workers;
    this.workersKnown = true;
    // A worker that is gone took its ejections with it.
    const changed = this.ejections.keepWorkers(new Set([process.pid, ...workers.map((w) => w.pid)]));
    if (changed && this.view) this.applyL4('worker exit', null);
  }

  /** This worker's and every other worker's metrics, merged into node totals. */
  private async scrape(missingGauge: Gauge): Promise<{ registry: Registry; workers: (WorkerInfo & { requests: number })[] }> {
    const others = this.link ? await this.link.collectMetrics(SCRAPE_TIMEOUT_MS).catch(() => ({ workers: [], missing: this.workers.filter((w) => w.pid !== process.pid) })) : { workers: [], missing: [] };
    missingGauge.set(others.missing.length);
    const self = this.workers.find((w) => w.pid === process.pid) ?? { worker: 0, role: 'primary' as const, pid: process.pid };
    const parts = [{ ...self, metrics: await this.registry.getMetricsAsJSON() }, ...others.workers];
    return {
      registry: aggregateWorkers(parts),
      workers: parts.map((p) => ({ worker: p.worker, role: p.role, pid: p.pid, requests: counterTotal(p.metrics, 'weft_requests_total') })),
    };
  }

  // ---------------------------------------------------------------- ejections

  /** Ejected endpoints leave the kernel's L4 tables too (L4-only services stop using
   *  them); they come back when the ejection ends. */
  private onEjection(service: string, ep: Pick<Endpoint, 'ip' | 'port'>, ejected: boolean, pid: number): void {
    if (!this.view) return;
    this.applyL4(service, this.ejections.record(ep, ejected, pid));
  }

  private applyL4(service: string, endpoint: string | null): void {
    try {
      if (this.view) this.datapath.applyServices(this.ejections.filter(this.view));
    } catch (e) {
      this.log.warn({ service, endpoint, err: describeError(e) }, 'cannot update L4 maps after an ejection');
    }
  }

  private principalOf(w: LocalWorkload): string {
    return this.plane.principalOf(w);
  }

  // ------------------------------------------------------------------ workloads

  /** Workloads in their own network namespaces (pods) learn from the kernel that this
   *  agent listens through the listening socket in weft_agentl_v1 (bpf/sock_lb.bpf.c). */
  private registerListener(fd: number | undefined): void {
    try {
      if (fd === undefined) throw new WeftError('WEFT_ERR_INTERNAL', 'the outbound listener has no file descriptor');
      this.datapath.setAgentListener(fd);
    } catch (e) {
      this.log.error({ err: describeError(e) }, 'outbound listener not registered in the kernel: redirect-mode connections from pods in their own network namespaces get the fail mode');
    }
  }

  /** The kernel's list of this node's workload addresses (mTLS STRICT lets SYNs from
   *  them in) follows the registry. */
  private syncLocalAddresses(): void {
    this.datapath.setLocalWorkloads(localAddresses(this.workloads.addresses(), this.pods ? this.pods.addresses() : null));
  }

  /** `weft run` registrations and meshed pods: who the kernel's cgroup ids are. */
  private localWorkloads(): LocalWorkload[] {
    return [...this.workloads.list(), ...(this.pods?.workloads() ?? [])];
  }

  // ----------------------------------------------------------------------- pods

  /** Kubernetes mode: the agent's own pod is skipped before anything else (its sockets
   *  are under the capture root), then this node's pods are listed and watched; every
   *  change updates the kernel (skip map, STRICT allow-list), the identity table and
   *  the proxy workers. Listing retries until the API server answers; meanwhile the
   *  agent serves `weft run` workloads and reports not ready. */
  private async startPods(maxWaitMs: number): Promise<void> {
    const pods = this.pods!;
    // Added, not replacing: on a rollout the previous agent still runs, and its own pod
    // (and the pods it skips) must stay skipped until this agent has listed the pods —
    // replacing here un-skipped it, and its upstream dials to this node's workloads came
    // back to the agents' listener as connections from no workload.
    if (pods.ownCgroup) this.datapath.setSkippedCgroups([pods.ownCgroup.id], { keep: true });
    else this.log.warn({ podUid: this.cfg.kubernetes?.podUid ?? null }, 'own pod cgroup not found (set --pod-uid / $POD_UID from the downward API): the agent\'s sockets are skipped only once its Pod is listed');
    pods.on('change', () => this.onPodsChanged());
    const listed = pods.start().then(() => {
      this.podsListed = true;
      this.log.info({ pods: pods.list().length, meshed: pods.workloads().length }, 'pods listed');
      this.onPodsChanged();
      return true;
    });
    listed.catch((e) => this.log.error({ err: describeError(e) }, 'cannot watch this node\'s pods'));
    let timer: NodeJS.Timeout | undefined;
    const inTime = await Promise.race([listed, new Promise<false>((r) => { timer = setTimeout(() => r(false), maxWaitMs); })]).finally(() => clearTimeout(timer));
    if (!inTime) this.log.warn({ waitedMs: maxWaitMs }, 'this node\'s pods are not listed yet (Kubernetes API): starting anyway, pods are named once they are');
  }

  private onPodsChanged(): void {
    if (!this.pods || this.stopping) return;
    try {
      this.datapath.setSkippedCgroups(this.pods.skippedCgroups());
      this.syncLocalAddresses();
    } catch (e) {
      this.log.error({ err: describeError(e) }, 'pod changes not written to the datapath');
    }
    this.identities.replace(this.localWorkloads());
    void this.publish({ workloads: this.identities.list() });
  }

  // --------------------------------------------------------------------- status

  private health(): { ready: boolean; reasons: string[] } {
    const reasons: string[] = [];
    if (!this.view) reasons.push('no policy snapshot applied yet');
    if (this.sync.state().fatal) reasons.push(`control API refused this agent: ${this.sync.state().lastError}`);
    if (this.link && !this.workersKnown) reasons.push('proxy workers still starting');
    if (this.pods && !this.podsListed) reasons.push('this node\'s pods not listed yet (Kubernetes API)');
    reasons.push(...datapathProblems(this.cfg.node, this.datapath.attachments));
    return { ready: reasons.length === 0, reasons };
  }

  status(): Record<string, unknown> {
    const s = this.sync.state();
    return {
      node: this.cfg.node,
      control: { address: this.cfg.control, connected: s.connected, version: s.version, fromCache: s.fromCache, lastError: s.lastError, lastNack: s.lastNack, tls: this.cfg.controlCa !== undefined, auth: this.sync.authMethod() },
      datapath: { programs: this.datapath.attachments.map((a) => ({ program: a.program, linkId: a.linkId, progId: a.progId, adopted: a.adopted })), services: this.view?.datapath.length ?? 0, counters: this.datapath.counters() },
      listeners: { outbound: `${this.cfg.outbound.host}:${this.cfg.outbound.port}`, inbound: this.plane.inboundAddress, admin: `${this.cfg.admin.host}:${this.cfg.admin.port}` },
      workers: this.workers,
      ...(this.dns ? { dns: this.dns.status() } : { dns: null }),
      ejections: this.ejections.list(),
      workloads: this.localWorkloads().map((w) => ({ key: `${w.namespace}/${w.name}`, cgroupId: w.cgroupId, address: w.address, identity: this.principalOf(w) })),
      ...(this.pods ? { pods: { listed: this.podsListed, captureRoot: this.cfg.kubernetes!.captureRoot, meshed: this.pods.workloads().length, skipped: this.pods.list().filter((p) => !p.meshed).map((p) => ({ key: p.key, reason: p.reason })) } } : {}),
      certificates: (this.identity.current?.identities() ?? []).map((id) => ({ identity: id, expiresAt: this.identity.current?.certificate(id)?.expiresAt.toISOString() ?? null })),
    };
  }
}
