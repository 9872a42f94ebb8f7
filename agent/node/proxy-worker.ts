// A PROXY worker (see ipc.ts): one more process accepting on the node's shared outbound
// (15001) and inbound (15008) sockets, so L7 and mTLS use every core. It owns nothing
// node-wide: the NodeView, the workload table and the certificates come from the primary
// through the supervisor, connection origins from the pinned BPF map, and its outlier
// ejections go back to the primary (the only writer of the L4 maps). Its metrics are
// collected by the primary for /metrics.
import type { Registry } from 'prom-client';
import type { NodeView } from '../policy/snapshot';
import { ProxyPlane, SERVING_WAIT_MS } from './proxy-plane';
import { IdentityReplica } from './identity-replica';
import { OriginMap, joinAgentCgroup } from './origin-map';
import { ForwardingTap, accessLogFor } from './tap';
import { CgroupIdentities } from './cgroup-identities';
import type { IdentityState, NodeState } from './ipc';
import type { WorkerLink } from './worker-link';
import { createRegistry } from '../telemetry/registry';
import { componentLogger, type Logger } from '../telemetry/logger';
import { describeError } from '../lib/errors';

export interface ProxyWorkerConfig {
  node: string;
  worker: number;
  outbound: { host: string; port: number };
  inbound: { host: string; port: number };
  listenFds: Record<string, number>;
  accessLogSample?: number;
  link: WorkerLink;
  /** Kubernetes mode: the worker stays in the agent pod's cgroup (the kernel skips it). */
  kubernetes?: boolean;
}

export class ProxyWorker {
  readonly registry: Registry;
  private readonly log: Logger;
  private readonly plane: ProxyPlane;
  private readonly origins: OriginMap;
  private view: NodeView | null = null;
  private identity: IdentityReplica | null = null;
  private readonly identities = new CgroupIdentities();
  private readonly tap: ForwardingTap;
  /** Endpoints this worker's outlier detection holds ejected, by service: re-reported
   *  with every new snapshot, so a primary that restarted (and lost its table) learns
   *  them again. */
  private readonly ejected = new Map<string, { service: string; ip: string; port: number }>();

  private constructor(cfg: ProxyWorkerConfig) {
    this.log = componentLogger('proxy-worker', { node: cfg.node, worker: cfg.worker });
    this.registry = createRegistry({ node: cfg.node });
    // Sockets this process opens (upstream connections) must never be redirected back:
    // outside Kubernetes it joins the agent cgroup; in Kubernetes it stays in the agent
    // pod's cgroup, which the primary put in the kernel's skip map.
    if (!cfg.kubernetes) joinAgentCgroup(cfg.node);
    this.origins = new OriginMap(cfg.node);
    const tap = this.tap = new ForwardingTap(accessLogFor(cfg.node, cfg.accessLogSample ?? 0), (record) => cfg.link.send({ type: 'access', record }));
    this.plane = new ProxyPlane({
      node: cfg.node, registry: this.registry, inbound: cfg.inbound, inboundFd: cfg.listenFds.inbound,
      lookupOrigin: (ip, port) => this.origins.lookup(ip, port),
      workloadByCgroup: (id) => this.identities.lookup(id),
      onEjection: (service, ep, ejected) => {
        const key = `${service}|${ep.ip}:${ep.port}`;
        if (ejected) this.ejected.set(key, { service, ip: ep.ip, port: ep.port }); else this.ejected.delete(key);
        cfg.link.send({ type: 'ejection', service, ip: ep.ip, port: ep.port, ejected });
      },
      accessLog: tap,
    });
    cfg.link.serveMetrics(this.registry);
    cfg.link.on('state', (state, seq) => {
      if (state.view) for (const e of this.ejected.values()) cfg.link.send({ type: 'ejection', ...e, ejected: true });
      void this.apply(state)
        .catch((e) => this.log.error({ err: describeError(e) }, 'cannot apply the primary\'s state'))
        .finally(() => cfg.link.send({ type: 'state-applied', seq }));
    });
  }

  /** Asks the supervisor for the node state, then accepts once it can serve. */
  static async start(cfg: ProxyWorkerConfig): Promise<ProxyWorker> {
    const w = new ProxyWorker(cfg);
    try {
      cfg.link.send({ type: 'hello' });
      const outFd = cfg.listenFds.outbound;
      const waited = await w.plane.listen(outFd !== undefined ? { fd: outFd } : cfg.outbound, SERVING_WAIT_MS);
      if (!waited) w.log.warn({ waitedMs: SERVING_WAIT_MS }, 'no state from the primary yet: accepting anyway');
    } catch (e) {
      await w.stop();
      throw e;
    }
    w.log.info({ pid: process.pid }, 'proxy worker started');
    return w;
  }

  async drain(graceMs: number): Promise<void> {
    this.log.info({ graceMs }, 'draining');
    await this.plane.drain(graceMs);
    await this.stop();
  }

  async stop(): Promise<void> {
    await this.plane.close();
    this.identity?.close();
    this.origins.close();
  }

  private async apply(state: NodeState): Promise<void> {
    if (state.tapping !== undefined) this.tap.tapping = state.tapping;
    if (state.workloads) this.identities.replace(state.workloads);
    if (state.view) { this.plane.apply(state.view); this.view = state.view; }
    if (state.identity) await this.installIdentity(state.identity);
    if (this.view && this.identity) this.plane.ensureTunnel(this.identity, this.view.mesh.trustDomain);
  }

  private async installIdentity(s: IdentityState): Promise<void> {
    if (this.identity && (this.identity.trustDomain !== s.trustDomain || this.identity.failMode !== s.failMode)) {
      // The tunnel was built for the old identity source: rebuild it with the new one.
      await this.plane.closeTunnel();
      this.identity.close();
      this.identity = null;
    }
    if (this.identity) this.identity.install(s);
    else this.identity = new IdentityReplica(s);
  }
}
