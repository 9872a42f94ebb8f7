// The agent's DNS proxy, wired: the server (UDP+TCP listener), the name table rebuilt
// from every applied snapshot, the forwarder to the node's resolvers, and the kernel's
// capture of workloads' port-53 traffic (Datapath.setDnsCapture). NodeAgent owns one
// when `weft agent --dns on` (the default outside Kubernetes).
import { isIPv4 } from 'node:net';
import type { Registry } from 'prom-client';

import type { Datapath } from '../datapath/datapath';
import type { NodeView } from '../policy/snapshot';
import { describeError } from '../lib/errors';
import type { Logger } from '../telemetry/logger';
import { DnsServer } from './server';
import { MeshResolver } from './resolver';
import { DEFAULT_CLUSTER_DOMAIN, NameTable, validateClusterDomain } from './table';
import { DEFAULT_RESOLV_CONF, Forwarder, nodeResolvers, type Upstream } from './upstream';

export interface DnsConfig {
  /** Where the listener binds; also the kernel's redirect target (a specific IPv4
   *  address reachable from the workloads, like the outbound listener's). */
  listen: { host: string; port: number };
  /** Resolvers for names outside the mesh; absent: the node's resolv.conf. */
  upstreams?: Upstream[];
  resolvConf?: string;
  /** Overrides MeshConfig spec.clusterDomain. */
  clusterDomain?: string;
  /** Capture workloads' DNS in the kernel (off: the listener answers only who asks it). */
  capture: boolean;
}

export interface DnsStatus {
  listening: boolean;
  address: string;
  capture: { requested: boolean; kernel: string | null; podNamespaces: { udp: boolean; tcp: boolean } };
  clusterDomain: string;
  upstreams: string[];
  names: { name: string; service: string; addresses: string[] }[];
}

export class DnsProxy {
  private readonly resolver: MeshResolver;
  private readonly forwarder: Forwarder;
  private readonly server: DnsServer;
  private serial = 1;

  constructor(private readonly cfg: DnsConfig, private readonly datapath: Datapath, opts: { registry?: Registry; logger?: Logger; namespaceOf?: (ip: string) => string | undefined; allowed?: (ip: string) => boolean }) {
    if (cfg.capture && (!isIPv4(cfg.listen.host) || cfg.listen.host === '0.0.0.0')) {
      throw new TypeError(`DNS listener ${cfg.listen.host}: capture needs a specific IPv4 address the workloads reach (the kernel redirects their queries there)`);
    }
    if (cfg.clusterDomain !== undefined) validateClusterDomain(cfg.clusterDomain);
    this.log = opts.logger;
    this.resolver = new MeshResolver(new NameTable([], cfg.clusterDomain ?? DEFAULT_CLUSTER_DOMAIN), { serial: () => this.serial });
    this.forwarder = new Forwarder(cfg.upstreams ?? nodeResolvers(cfg.resolvConf ?? DEFAULT_RESOLV_CONF, cfg.listen));
    this.server = new DnsServer({
      host: cfg.listen.host, port: cfg.listen.port, resolver: this.resolver, forwarder: this.forwarder,
      ...(opts.namespaceOf ? { namespaceOf: opts.namespaceOf } : {}), ...(opts.allowed ? { allowed: opts.allowed } : {}),
      ...(opts.registry ? { registry: opts.registry } : {}), ...(opts.logger ? { logger: opts.logger } : {}),
    });
  }

  private readonly log: Logger | undefined;

  /** Binds, registers the sockets with the kernel, turns capture on (or off). */
  async start(): Promise<void> {
    await this.server.listen();
    try { this.datapath.setDnsListeners(this.server.fds()); } catch (e) {
      this.log?.warn({ err: describeError(e) }, 'DNS listener not registered in the kernel: queries from pods in their own network namespaces are not captured');
    }
    this.datapath.setDnsCapture(this.cfg.capture ? { ip: this.cfg.listen.host, port: this.server.port } : null);
    this.log?.info({ listen: this.server.address, capture: this.cfg.capture, upstreams: this.forwarder.upstreams.map(fmt) }, 'DNS proxy listening');
  }

  /** A new snapshot: the names of its services. */
  apply(view: NodeView): void {
    const domain = this.cfg.clusterDomain ?? view.mesh.clusterDomain ?? DEFAULT_CLUSTER_DOMAIN;
    this.resolver.setTable(new NameTable(view.services, domain));
    this.serial = (this.serial + 1) >>> 0 || 1;
  }

  get names(): NameTable { return this.resolver.names; }

  /** Stops answering. Kernel capture stays configured: once no DNS socket of this agent
   *  exists the kernel leaves queries alone, and a successor re-registers its own. */
  async close(): Promise<void> { await this.server.close(); }

  status(): DnsStatus {
    let kernel: string | null = null;
    let podNamespaces = { udp: false, tcp: false };
    try {
      const c = this.datapath.dnsCapture();
      kernel = c ? `${c.ip}:${c.port}` : null;
      podNamespaces = this.datapath.dnsListenersRegistered();
    } catch { /* datapath closed */ }
    return {
      listening: this.server.listening, address: this.server.address,
      capture: { requested: this.cfg.capture, kernel, podNamespaces },
      clusterDomain: this.resolver.names.domain,
      upstreams: this.forwarder.upstreams.map(fmt),
      names: this.resolver.names.list().map((n) => ({ name: n.fqdn, service: `${n.namespace}/${n.service}`, addresses: [...n.v4.map((b) => [...b].join('.')), ...n.v6.map(v6)] })),
    };
  }
}

const fmt = (u: Upstream) => (u.host.includes(':') ? `[${u.host}]:${u.port}` : `${u.host}:${u.port}`);
function v6(b: Buffer): string { return (b.toString('hex').match(/.{4}/g) ?? []).map((g) => g.replace(/^0+(?=.)/, '')).join(':'); }
