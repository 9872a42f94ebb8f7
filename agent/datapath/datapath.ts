// The datapath API the rest of the agent uses: load and attach (or adopt) the node's
// BPF programs, program services into the maps as a minimal diff, look up where a
// redirected connection was going, read counters, manage workload cgroups, and remove
// everything (`weft agent --cleanup`). State lives in bpffs pins, so a restarted agent
// adopts it: maps keep their contents and links are swapped to the new programs in
// place (BPF_LINK_UPDATE), never detached, so live traffic sees no gap.
//
// This class is the facade: each job lives in its own module and is only wired here.
//   loader.ts         load objects, attach or adopt programs, the STRICT hook
//   service-table.ts  services → svc/backend/slot maps, minimal diff with rev flips
//   splicing.ts       which endpoints are spliced through the SOCKHASH (accel map)
//   node-config.ts    fail mode and mTLS mode (cfg map)
//   workload-maps.ts  local workload addresses and direct endpoints
//   skip-map.ts       cgroups left alone
//   listener.ts       the agent's listener registration and origin lookup
//   dns-capture.ts    workloads' DNS sent to the agent's DNS server
//   counters.ts       kernel counters
//   cgroups.ts        cgroup levels, the capture root, weft's own cgroups
import { WeftError } from '../lib/errors';
import type { Counters, FailMode, MtlsMode } from './codec';
import { NodeCgroups } from './cgroups';
import { readCounters } from './counters';
import { nodeLayout, type NodeLayout } from './layout';
import { AgentListenerMap, readOrigin, type Origin } from './listener';
import { loadDatapath, setStrictHooks, type AttachResult, type DatapathOptions, type Loaded } from './loader';
import { NodeConfig } from './node-config';
import { ServiceTable, type ApplySummary } from './service-table';
import type { DatapathService } from './services';
import { SkipMap } from './skip-map';
import { Splicing } from './splicing';
import { cleanupNode, inspectNode, type CleanupReport, type NodeInspection } from './teardown';
import { DirectEndpointMap, LocalWorkloadMap } from './workload-maps';
import { DnsCapture } from './dns-capture';

export { cgroup2MountDepth, cgroupLevel } from './cgroups';
export { readOrigin, type Origin } from './listener';
export {
  DEFAULT_ACCEL_BULK_MSG_BYTES, DEFAULT_ACCEL_MIN_BYTES, DEFAULT_REDIRECT,
  type AttachResult, type DatapathOptions, type RedirectTarget,
} from './loader';
export type { ApplySummary } from './service-table';

export class Datapath {
  readonly layout: NodeLayout;
  /** Where the cgroup programs are attached in Kubernetes mode (DatapathOptions.captureRoot). */
  readonly captureRoot: string | undefined;
  /** What open() did per attached program: fresh attach or adoption of a pinned link
   *  (the STRICT hook appears and disappears with the mTLS mode). */
  readonly attachments: AttachResult[];
  private readonly loaded: Loaded;
  private readonly serviceTable: ServiceTable;
  private readonly splicing: Splicing;
  private readonly nodeConfig: NodeConfig;
  private readonly localMap: LocalWorkloadMap;
  private readonly directMap: DirectEndpointMap;
  private readonly skipMap: SkipMap;
  private readonly listener: AgentListenerMap;
  private readonly dns: DnsCapture;
  private readonly cgroups: NodeCgroups;
  private closed = false;

  private constructor(loaded: Loaded) {
    const { maps, log } = loaded;
    this.loaded = loaded;
    this.layout = loaded.layout;
    this.captureRoot = loaded.captureRoot;
    this.attachments = loaded.attachments;
    this.serviceTable = new ServiceTable(maps, log);
    this.splicing = new Splicing(maps.accel);
    this.nodeConfig = new NodeConfig(maps.cfg);
    this.localMap = new LocalWorkloadMap(maps.local, log);
    this.directMap = new DirectEndpointMap(maps.direct, log);
    this.skipMap = new SkipMap(maps, log);
    this.listener = new AgentListenerMap(maps.agentListener);
    this.dns = new DnsCapture(maps.dns, maps.dnsListeners);
    this.cgroups = new NodeCgroups(loaded.layout, loaded.captureRoot);
  }

  /** Loads and attaches, or adopts what an earlier agent pinned (loader.ts). */
  static async open(opts: DatapathOptions): Promise<Datapath> {
    return new Datapath(await loadDatapath(opts));
  }

  /** Validates every service first (nothing changes on error), then applies the
   *  minimal diff against what the maps hold now (also right after adopting). */
  applyServices(services: DatapathService[]): ApplySummary {
    this.assertOpen();
    return this.serviceTable.apply(services);
  }

  /** The services as the maps hold them now. */
  services(): DatapathService[] {
    this.assertOpen();
    return this.serviceTable.list();
  }

  /** Where a connection redirected to the agent was going, by the client's endpoint
   *  (the accepted socket's remote address). */
  lookupOrigin(clientIp: string, clientPort: number): Origin | null {
    this.assertOpen();
    return readOrigin(this.loaded.maps.origin, clientIp, clientPort);
  }

  /** Marks a server endpoint as always worth a sockmap insertion (splicing.ts). */
  accelerate(ip: string, port: number): void {
    this.assertOpen();
    this.splicing.accelerate(ip, port);
  }

  /** The server endpoints whose connections are spliced from the first one, as a diff
   *  (splicing.ts). */
  setEagerEndpoints(endpoints: { ip: string; port: number }[]): { added: number; removed: number } {
    this.assertOpen();
    return this.splicing.setEager(endpoints);
  }

  /** Endpoints currently marked eager, as `ip:port` (IPv6 in brackets). */
  eagerEndpoints(): string[] {
    this.assertOpen();
    return this.splicing.eager();
  }

  /** MeshConfig failMode for redirect-mode connects while no agent listens
   *  (node-config.ts). Call it whenever a snapshot is applied. */
  setFailMode(mode: FailMode): void {
    this.assertOpen();
    this.nodeConfig.setFailMode(mode);
  }

  failMode(): FailMode {
    this.assertOpen();
    return this.nodeConfig.read().failMode;
  }

  /** MeshConfig mTLS mode; under STRICT the ingress hook is attached (node-config.ts). */
  setMtlsMode(mode: MtlsMode): void {
    this.assertOpen();
    this.nodeConfig.setMtlsMode(mode, (on) => setStrictHooks(this.loaded, on));
  }

  mtlsMode(): MtlsMode {
    this.assertOpen();
    return this.nodeConfig.read().mtls;
  }

  /** This node's mesh workload addresses, as a validated minimal diff (workload-maps.ts). */
  setLocalWorkloads(addresses: string[]): { added: string[]; removed: string[] } {
    this.assertOpen();
    return this.localMap.set(addresses);
  }

  /** The addresses weft_local_v1 holds now. */
  localWorkloads(): string[] {
    this.assertOpen();
    return this.localMap.list();
  }

  /** The mesh workload endpoints a direct connect is redirected to the agent for, as a
   *  validated minimal diff (workload-maps.ts). */
  setDirectEndpoints(endpoints: { ip: string; port: number }[]): { added: string[]; removed: string[] } {
    this.assertOpen();
    return this.directMap.set(endpoints);
  }

  /** The endpoints weft_direct_v1 holds now, sorted. */
  directEndpoints(): { ip: string; port: number }[] {
    this.assertOpen();
    return this.directMap.list();
  }

  /** The cgroups whose sockets weft leaves alone, as a validated minimal diff (skip-map.ts). */
  setSkippedCgroups(ids: bigint[], opts: { keep?: boolean } = {}): { added: bigint[]; removed: bigint[] } {
    this.assertOpen();
    return this.skipMap.set(ids, opts.keep === true);
  }

  /** The cgroup ids weft_skip_v1 holds now, ascending. */
  skippedCgroups(): bigint[] {
    this.assertOpen();
    return this.skipMap.list();
  }

  /** Registers the agent's outbound listening socket for workloads in their own network
   *  namespaces (listener.ts). */
  setAgentListener(fd: number): void {
    this.assertOpen();
    this.listener.set(fd);
  }

  /** Workloads' DNS capture to the agent's DNS server (dns-capture.ts); null: off. */
  setDnsCapture(listener: { ip: string; port: number } | null): void {
    this.assertOpen();
    this.dns.set(listener);
  }

  /** Where the kernel sends workloads' DNS now, or null (capture off). */
  dnsCapture(): { ip: string; port: number } | null {
    this.assertOpen();
    return this.dns.get();
  }

  /** The DNS server's listening sockets, for pods in their own network namespaces. */
  setDnsListeners(fds: { udp?: number; tcp?: number }): void {
    this.assertOpen();
    this.dns.setListeners(fds);
  }

  /** Which DNS listening sockets weft_dnsl_v1 holds (live ones only). */
  dnsListenersRegistered(): { udp: boolean; tcp: boolean } {
    this.assertOpen();
    return this.dns.listenersRegistered();
  }

  /** Whether weft_agentl_v1 holds a (live) listening socket. */
  agentListenerRegistered(): boolean {
    this.assertOpen();
    return this.listener.registered();
  }

  /** Kernel counters summed over CPUs. */
  counters(): Counters {
    this.assertOpen();
    return readCounters(this.loaded.maps.ctrs);
  }

  createWorkloadCgroup(namespace: string, name: string): { path: string; id: bigint } {
    return this.cgroups.createWorkload(namespace, name);
  }

  /** Removes a workload's cgroup; refuses (WEFT_ERR_INVALID_ARG, pids listed) while
   *  processes are still in it rather than moving them out of the mesh silently. */
  removeWorkloadCgroup(namespace: string, name: string): void {
    this.cgroups.removeWorkload(namespace, name);
  }

  agentCgroupPath(): string { return this.layout.agentCgroup; }

  /** Moves a process (default: this one) into the agent cgroup: its sockets are never
   *  rewritten by the connect-family hooks, which is what prevents redirect loops. */
  joinAgentCgroup(pid: number = process.pid): void {
    this.cgroups.joinAgent(pid);
  }

  /** Drops this process's fds. Pinned links and maps stay: traffic keeps flowing. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const m of Object.values(this.loaded.maps)) m.close();
    for (const obj of this.loaded.objects.values()) obj.close();
  }

  static cleanup(node: string): CleanupReport { return cleanupNode(nodeLayout(node)); }
  static inspect(node: string): NodeInspection { return inspectNode(nodeLayout(node)); }

  private assertOpen(): void {
    if (this.closed) throw new WeftError('WEFT_ERR_INVALID_ARG', 'datapath is closed');
  }
}
