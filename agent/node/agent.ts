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
// A snapshot is applied in an order that keeps it all-or-nothing where it matters: the
// datapath validates everything before it touches a map, so a bad snapshot is refused
// (NACKed) with nothing changed; the proxy tables are swapped after, here and in every
// proxy worker, before the snapshot is ACKed.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { resolvePodCgroup } from '../discovery/pod-cgroup';
import { networkInterfaces } from 'node:os';
import type { Registry } from 'prom-client';
import { Gauge } from 'prom-client';
import { Datapath } from '../datapath/datapath';
import { readTokenFile } from '../lib/token-file';
import { WorkloadRegistry, validateRegisterRequest, type LocalWorkload } from './workloads';
import { CgroupIdentities } from './cgroup-identities';
import { PodIndex } from './pods';
import { registerBpfMetrics } from './bpf-metrics';
import { ADMIN_TOKEN_FILE, AdminServer } from '../admin/server';
import { SyncClient } from '../sync/client';
import { IdentityManager } from '../identity/manager';
import { nodeSpiffeId } from '../identity/spiffe';
import { parseHostPort } from '../lib/listen';
import { RequestTap, accessLogFor } from './tap';
import type { Endpoint } from '../proxy/balancer/endpoint';
import type { NodeView } from '../policy/snapshot';
import { ProxyPlane, SERVING_WAIT_MS } from './proxy-plane';
import { identityState } from './identity-replica';
import type { NodeState, WorkerInfo } from './ipc';
import type { WorkerLink } from './worker-link';
import { aggregateWorkers, counterTotal } from '../telemetry/aggregate';
import { createRegistry } from '../telemetry/registry';
import { componentLogger, type Logger } from '../telemetry/logger';
import { WeftError, describeError, invalidArg } from '../lib/errors';
import { directEndpoints } from './direct-endpoints';

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
/** How long publishing a state change may wait for the proxy workers (the supervisor
 *  answers by its own, shorter, timeout; this one only covers a lost answer). */
const PUBLISH_TIMEOUT_MS = 10_000;
/** How long a scrape waits for the other workers' metrics. */
const SCRAPE_TIMEOUT_MS = 2_000;

export class NodeAgent {
  readonly registry: Registry;
  private readonly log: Logger;
  private view: NodeView | null = null;
  private identity: IdentityManager | null = null;
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
  /** Endpoint ip:port → pids of the workers whose outlier detection ejected it: it stays
   *  out of the L4 maps while any worker has it ejected. */
  private readonly ejected = new Map<string, Set<number>>();
  private stopping = false;

  private constructor(private readonly cfg: AgentConfig, private readonly datapath: Datapath) {
    this.log = componentLogger('agent', { node: cfg.node });
    this.registry = createRegistry({ node: cfg.node });
    registerBpfMetrics(this.registry, datapath);
    this.workloads = new WorkloadRegistry(datapath, { name: cfg.node, address: cfg.nodeAddress }, cfg.stateDir);
    this.pods = cfg.kubernetes ? new PodIndex({ node: cfg.node, ...cfg.kubernetes, captureRoot: cfg.kubernetes.captureRoot, ...(cfg.kubernetes.podUid ? { selfPodUid: cfg.kubernetes.podUid } : {}) }) : null;
    this.identities.replace(this.localWorkloads());
    this.link = cfg.link ?? null;

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
    this.sync.on('state', (s) => { if (s.connected) void this.registerAll(); });

    const snapshotVersion = new Gauge({
      name: 'weft_policy_snapshot_version', help: 'The policy snapshot this agent serves (value 1, version in the label).',
      labelNames: ['version'], registers: [this.registry],
    });
    this.sync.on('applied', (info) => { snapshotVersion.reset(); snapshotVersion.set({ version: info.version }, 1); });

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
      debug: {
        config: () => ({ node: cfg.node, sync: this.sync.state(), view: this.view }),
        workers: () => this.scrape(missingGauge).then((r) => r.workers),
        bpf: () => ({ inspect: Datapath.inspect(cfg.node), counters: this.datapath.counters(), services: this.datapath.services(), attachments: this.datapath.attachments, localWorkloads: this.datapath.localWorkloads(), skippedCgroups: this.datapath.skippedCgroups().map(String), eagerEndpoints: this.datapath.eagerEndpoints(), agentListener: this.datapath.agentListenerRegistered() }),
        workloads: () => this.localWorkloads(),
        pods: () => ({
          pods: (this.pods?.list() ?? []).map((p) => ({ ...p, cgroup: p.cgroup ? { path: p.cgroup.path, id: p.cgroup.id.toString() } : null })),
          recentReady: this.pods?.recentReady ?? [],
        }),
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
    await this.sync.stop();
    await this.plane.drain(graceMs);
    await this.stop();
  }

  /** Stops listening and syncing. Pinned BPF state stays: L4 traffic keeps flowing. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    await Promise.allSettled([this.sync.stop(), this.plane.close(), this.admin.close(), this.pods?.stop()]);
    this.identity?.close();
    this.datapath.close();
  }

  // ------------------------------------------------------------------ snapshots


  private async apply(view: NodeView): Promise<void> {
    if (view.node !== this.cfg.node) throw invalidArg(`snapshot is for node ${view.node}, this is ${this.cfg.node}`);
    // Validates every entry before changing any map: a bad snapshot changes nothing.
    this.datapath.applyServices(this.withoutEjected(view));
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
    this.datapath.setFailMode(view.mesh.failMode);
    this.datapath.setMtlsMode(view.mesh.mtls);
    this.view = view;
    await this.updateIdentities(view);
    // Every proxy worker routes by this snapshot before it is ACKed.
    await this.publish({ view, workloads: this.identities.list(), tapping: this.tap.subscribers > 0, ...(this.identity ? { identity: identityState(this.identity) } : {}) });
  }

  private async updateIdentities(view: NodeView): Promise<void> {
    if (this.identity && this.identity.trustDomain !== view.mesh.trustDomain) {
      this.log.warn({ from: this.identity.trustDomain, to: view.mesh.trustDomain }, 'trust domain changed: re-issuing every identity');
      await this.plane.closeTunnel();
      this.identity.close();
      this.identity = null;
    }
    if (!this.identity) {
      const identity = this.identity = new IdentityManager({
        trustDomain: view.mesh.trustDomain, failMode: view.mesh.failMode, ttlSeconds: Math.round(view.mesh.certTtlMs / 1000), registry: this.registry,
        sign: async (csr) => {
          const r = await this.sync.signCertificate(csr, Math.round((this.view?.mesh.certTtlMs ?? 0) / 1000));
          return { certChainPem: r.certChainPem, trustBundle: r.trustBundle };
        },
      });
      // Proxy workers get every new certificate and bundle (they never sign).
      const share = () => { if (this.identity === identity) void this.publish({ identity: identityState(identity) }); };
      identity.on('updated', share);
      identity.on('trustBundle', share);
      // The node SVID replaces the bootstrap token toward the control API, renewals too.
      identity.on('updated', (id) => {
        if (this.identity !== identity || id !== this.nodeIdentity(identity.trustDomain)) return;
        const m = identity.tlsMaterial(id);
        if (m) this.sync.useCertificate({ key: m.key, cert: m.cert });
      });
    }
    const wanted = new Set([this.nodeIdentity(view.mesh.trustDomain), ...view.localWorkloads.map((w) => w.identity)]);
    for (const id of this.identity.identities()) if (!wanted.has(id)) this.identity.remove(id);
    // Certificates are obtained in the background: a slow CA must not hold up the ACK.
    for (const id of wanted) void this.identity.add(id).catch((e) => this.log.warn({ identity: id, err: describeError(e) }, 'identity not added'));
    this.plane.ensureTunnel(this.identity, view.mesh.trustDomain);
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
    const live = new Set([process.pid, ...workers.map((w) => w.pid)]);
    let changed = false;
    for (const [key, pids] of this.ejected) {
      for (const pid of pids) if (!live.has(pid)) { pids.delete(pid); changed = true; }
      if (!pids.size) this.ejected.delete(key);
    }
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
    const key = `${ep.ip}:${ep.port}`;
    const pids = this.ejected.get(key) ?? new Set<number>();
    if (ejected) { pids.add(pid); this.ejected.set(key, pids); } else { pids.delete(pid); if (!pids.size) this.ejected.delete(key); }
    this.applyL4(service, key);
  }

  private applyL4(service: string, endpoint: string | null): void {
    try {
      if (this.view) this.datapath.applyServices(this.withoutEjected(this.view));
    } catch (e) {
      this.log.warn({ service, endpoint, err: describeError(e) }, 'cannot update L4 maps after an ejection');
    }
  }

  private withoutEjected(view: NodeView): NodeView['datapath'] {
    return view.datapath.map((s) => ({ ...s, backends: s.backends.filter((b) => !this.ejected.has(`${b.ip}:${b.port}`)) }));
  }

  private nodeIdentity(trustDomain: string): string {
    return nodeSpiffeId(trustDomain, this.cfg.node);
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
    this.datapath.setLocalWorkloads([...new Set([...this.workloads.addresses(), ...(this.pods ? [...this.pods.addresses(), ...nodeAddresses()] : [])])].sort());
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
    if (pods.ownCgroup) this.datapath.setSkippedCgroups([pods.ownCgroup.id]);
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

  private async registerWorkload(body: unknown): Promise<LocalWorkload & { spiffeId: string }> {
    if (this.pods) throw new WeftError('WEFT_ERR_PERMISSION', 'this agent runs in Kubernetes mode: pods get their identity from the Kubernetes API, never from a registration');
    const req = validateRegisterRequest(body);
    const fresh = !this.workloads.list().some((x) => x.namespace === req.namespace && x.name === req.name);
    const w = this.workloads.register(req);
    try {
      // Before the process starts: a peer pod's first SYN under STRICT must pass.
      this.syncLocalAddresses();
    } catch (e) {
      // Not in the kernel: not registered either (a fresh workload's cgroup is empty).
      if (fresh) try { this.workloads.deregister(w.namespace, w.name); } catch { /* logged below */ }
      this.log.error({ workload: `${w.namespace}/${w.name}`, err: describeError(e) }, 'workload address not written to the datapath');
      throw e;
    }
    // Every worker must know the new cgroup before the process starts connecting.
    this.identities.replace(this.localWorkloads());
    await this.publish({ workloads: this.identities.list() });
    // The process may start now: its cgroup exists. The control API learns about it in
    // the background (and again on every reconnect), so a slow or absent control API
    // never holds up `weft run`.
    void this.sync.registerWorkload(registration(w))
      .catch((e) => this.log.warn({ workload: `${w.namespace}/${w.name}`, err: describeError(e) }, 'workload registered locally; control API registration pending'));
    return { ...w, spiffeId: this.principalOf(w) };
  }

  private async deregisterWorkload(namespace: string, name: string): Promise<{ removed: string }> {
    const w = this.workloads.deregister(namespace, name);
    try { this.syncLocalAddresses(); } catch (e) {
      this.log.warn({ workload: `${namespace}/${name}`, err: describeError(e) }, 'workload address not removed from the datapath');
    }
    this.identities.replace(this.localWorkloads());
    await this.publish({ workloads: this.identities.list() });
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
    if (this.link && !this.workersKnown) reasons.push('proxy workers still starting');
    if (this.pods && !this.podsListed) reasons.push('this node\'s pods not listed yet (Kubernetes API)');
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
      ejections: [...this.ejected].map(([endpoint, pids]) => ({ endpoint, workers: [...pids] })),
      workloads: this.localWorkloads().map((w) => ({ key: `${w.namespace}/${w.name}`, cgroupId: w.cgroupId, address: w.address, identity: this.principalOf(w) })),
      ...(this.pods ? { pods: { listed: this.podsListed, captureRoot: this.cfg.kubernetes!.captureRoot, meshed: this.pods.workloads().length, skipped: this.pods.list().filter((p) => !p.meshed).map((p) => ({ key: p.key, reason: p.reason })) } } : {}),
      certificates: (this.identity?.identities() ?? []).map((id) => ({ identity: id, expiresAt: this.identity?.certificate(id)?.expiresAt.toISOString() ?? null })),
    };
  }
}

function readPemFile(file: string): string {
  let pem: string;
  try { pem = readFileSync(file, 'utf8'); } catch (e) {
    throw invalidArg(`cannot read the control API CA bundle ${file}: ${describeError(e)}`);
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw invalidArg(`${file}: no PEM certificate (expected the control API's CA bundle)`);
  return pem;
}

/** The addresses of this node's own interfaces (the agent runs on the host network in
 *  Kubernetes): kubelet probes a pod from whichever of them routes to it (often the pod
 *  bridge's), and mTLS STRICT must let the node itself through. */
function nodeAddresses(): string[] {
  return Object.values(networkInterfaces()).flat()
    .filter((a): a is NonNullable<typeof a> => a !== undefined && !a.internal && !(a.family === 'IPv6' && a.address.startsWith('fe80')))
    .map((a) => a.address);
}

/** What the control API is told about a local workload (`weft run`). */
function registration(w: LocalWorkload): Parameters<SyncClient['registerWorkload']>[0] {
  return { name: w.name, namespace: w.namespace, serviceAccount: w.serviceAccount, labels: w.labels, address: w.address, cgroupId: w.cgroupId };
}

/**
 * The agent's own same-node hops, spliced by sockmap from their first connection
 * (Datapath.setEagerEndpoints): its outbound listener, and the endpoints on this node of
 * the services it proxies (redirect mode), which its pools keep long-lived keep-alive
 * connections to. Measured with npm run bench:l7 (the "node path" rows).
 */
export function eagerHops(view: NodeView, outbound: { host: string; port: number }): { ip: string; port: number }[] {
  const byKey = new Map(view.services.map((s) => [s.key, s]));
  const out = new Map<string, { ip: string; port: number }>();
  const add = (ip: string, port: number) => out.set(`${ip}|${port}`, { ip, port });
  if (outbound.host !== '0.0.0.0' && outbound.host !== '::') add(outbound.host, outbound.port);
  for (const d of view.datapath) {
    if (d.mode !== 'redirect') continue;
    for (const ep of byKey.get(d.service)?.endpoints ?? []) {
      const port = ep.ports[d.portName];
      if (ep.node === view.node && port !== undefined) add(ep.address, port);
    }
  }
  return [...out.values()];
}

/**
 * The token an admin port on a non-loopback address requires for changes (workload
 * registration): STATE_DIR/admin-token, created (0600) on first use and kept across
 * restarts, so `weft run --admin-token-file` works against every agent process.
 */
export function adminToken(stateDir: string): string {
  const file = join(stateDir, ADMIN_TOKEN_FILE);
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  try { writeFileSync(file, `${randomBytes(24).toString('hex')}\n`, { mode: 0o600, flag: 'wx' }); } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  return readTokenFile(file, 'the admin token (remove an empty file and the agent writes a new one)');
}

