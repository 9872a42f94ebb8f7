// A NodeView cut into named resources, so the control API can send an agent only what
// changed (xDS "delta" style) instead of the whole view on every change:
//
//   "node"              NodeResource: mesh settings, the node's local workloads and the
//                       authorization policies that apply to them, and the node table
//                       (every known node's address and zone: where tunnels go)
//   "service/<ns>/<n>"  ServiceResource: one service with its endpoints, its route tables
//                       and traffic policy (node-independent, the same bytes for every
//                       node), plus this node's path decision per port (l4 | redirect)
//
// A one-endpoint change therefore touches one service resource per node (a few KB),
// not the whole service table. Service resources carry every endpoint; which ones a
// node balances over (internalTrafficPolicy Local, topology hints: topology.ts) is
// decided when the view is assembled, from the node's own name and zone, so the shared
// bytes stay node-independent. Headless Services have no resource (nothing to balance). forNode() is assembleNodeView(nodeResources()), so the
// split and the agent's reassembly are the one code path every view goes through.
import { createHash } from 'node:crypto';
import { WeftError } from '../lib/errors';
import { parseIPv4 } from '../lib/ip';
import { decidePath, type PathIndex } from './path-decision';
import { endpointsForNode, endpointsForPort } from './topology';
import {
  transportOf,
  type AuthorizationPolicyState, type DatapathService, type MeshSettings, type NodeAddress, type NodeView, type RouteTable,
  type ServiceState, type Snapshot, type TrafficPolicyState, type WorkloadState,
} from './snapshot';

export const NODE_RESOURCE = 'node';
export const SERVICE_RESOURCE_PREFIX = 'service/';

/** What every node receives for a service, whatever the node. */
export interface ServiceShared {
  service: ServiceState;
  /** The service's route tables (all ports, sorted by port); the view keeps only the
   *  ones on ports this node redirects. */
  routes: RouteTable[];
  trafficPolicy?: TrafficPolicyState;
}

/** This node's decision for one service port (the order of service.ports). */
export interface PortPath {
  mode: DatapathService['mode'];
  reason: string;
}

export interface ServiceResource extends ServiceShared {
  paths: PortPath[];
}

export interface NodeResource {
  node: string;
  mesh: MeshSettings;
  localWorkloads: WorkloadState[];
  authorizationPolicies: AuthorizationPolicyState[];
  /** Every known node (Snapshot.nodes) by name. Absent from control APIs that predate
   *  it: the view then has an empty table. */
  nodes?: Record<string, NodeAddress>;
}

const DIGEST_MOD = 1n << 128n;

/** One resource's term of a resource set digest: 128 bits of sha256(name, version). */
export function resourceDigestTerm(name: string, version: string): bigint {
  return BigInt(`0x${createHash('sha256').update(`${name}\n${version}`).digest('hex').slice(0, 32)}`);
}

/** The digest of a set of resources by name and version, as an agent's Sync hello may
 *  give it instead of listing them (initial_resources_digest): the sum of their terms
 *  modulo 2^128, so it does not depend on order and can be updated per resource
 *  (subtract the old term, add the new one). */
export function resourceSetDigest(entries: Iterable<readonly [string, string]>): string {
  let sum = 0n;
  for (const [name, version] of entries) sum += resourceDigestTerm(name, version);
  return digestString(sum);
}

/** A sum of terms as the hello carries it. */
export function digestString(sum: bigint): string {
  return (((sum % DIGEST_MOD) + DIGEST_MOD) % DIGEST_MOD).toString(16).padStart(32, '0');
}

export function serviceResourceName(key: string): string {
  return SERVICE_RESOURCE_PREFIX + key;
}

/** Node-independent parts of a snapshot: one ServiceShared per service (in key order)
 *  and the index the path decision needs. Computed once per snapshot, not per node. */
export interface SharedParts {
  services: ServiceShared[];
  index: PathIndex;
}

export function sharedParts(snap: Snapshot): SharedParts {
  const routes = new Map<string, RouteTable[]>();
  for (const r of snap.routes) {
    const list = routes.get(r.service);
    if (list) list.push(r); else routes.set(r.service, [r]);
  }
  const tp = new Map(snap.trafficPolicies.map((t) => [t.service, t]));
  const services = snap.services.filter((s) => !s.headless).map((service): ServiceShared => {
    const trafficPolicy = tp.get(service.key);
    return { service, routes: routes.get(service.key) ?? [], ...(trafficPolicy ? { trafficPolicy } : {}) };
  });
  return {
    services,
    index: { tp, authorized: new Set(snap.authorizationPolicies.flatMap((a) => a.workloads)), zones: nodeZones(snap) },
  };
}

/** Zone by node name, for the path decision (topology hints). */
export function nodeZones(snap: Pick<Snapshot, 'nodes'>): Map<string, string> {
  return new Map((snap.nodes ?? []).flatMap((n) => (n.zone !== undefined ? [[n.name, n.zone] as const] : [])));
}

export function portPaths(node: string, shared: ServiceShared, index: PathIndex): PortPath[] {
  return shared.service.ports.map((p) => decidePath(node, shared.service, p, index));
}

/** The node table of a snapshot, built once per snapshot and shared by every node. */
const nodeTables = new WeakMap<Snapshot, Record<string, NodeAddress>>();

export function nodeTable(snap: Snapshot): Record<string, NodeAddress> {
  let t = nodeTables.get(snap);
  if (!t) {
    t = Object.fromEntries((snap.nodes ?? []).map((n) => [n.name, { address: n.address, ...(n.zone !== undefined ? { zone: n.zone } : {}) }]));
    nodeTables.set(snap, t);
  }
  return t;
}

/** `localWorkloads`: the node's workloads when the caller has them grouped already.
 *  hostNetwork workloads are not local workloads: they get no identity and nothing is
 *  delivered to them through the agent. */
export function nodeResource(snap: Snapshot, node: string, onNode = snap.workloads.filter((w) => w.node === node)): NodeResource {
  const localWorkloads = onNode.some((w) => w.hostNetwork) ? onNode.filter((w) => !w.hostNetwork) : onNode;
  const local = new Set(localWorkloads.map((w) => w.key));
  return {
    node, mesh: snap.mesh, localWorkloads,
    authorizationPolicies: snap.authorizationPolicies.filter((a) => a.workloads.some((w) => local.has(w))),
    nodes: nodeTable(snap),
  };
}

/** Every resource of one node's view, built from scratch (no caching). */
export function nodeResources(snap: Snapshot, node: string, shared: SharedParts = sharedParts(snap)): { node: NodeResource; services: ServiceResource[] } {
  return {
    node: nodeResource(snap, node),
    services: shared.services.map((s) => ({ ...s, paths: portPaths(node, s, shared.index) })),
  };
}

function invalid(message: string): WeftError {
  return new WeftError('WEFT_ERR_PROTOCOL', message);
}

/** Checks the fields assembly relies on, so a malformed resource is refused (NACKed)
 *  rather than half-applied. */
export function checkServiceResource(name: string, r: unknown): ServiceResource {
  const s = r as Partial<ServiceResource> | null;
  const svc = s?.service;
  if (typeof s !== 'object' || s === null || typeof svc !== 'object' || svc === null || typeof svc.key !== 'string'
    || !Array.isArray(svc.ports) || !Array.isArray(svc.endpoints) || !Array.isArray(s.routes) || !Array.isArray(s.paths)) {
    throw invalid(`resource ${name} is not a service resource`);
  }
  if (name !== serviceResourceName(svc.key)) throw invalid(`resource ${name} carries service ${svc.key}`);
  if (s.paths.length !== svc.ports.length) throw invalid(`resource ${name} has ${s.paths.length} path decisions for ${svc.ports.length} ports`);
  if (typeof svc.vip !== 'string' || parseIPv4(svc.vip) === null) throw invalid(`resource ${name} has no IPv4 VIP`);
  return s as ServiceResource;
}

export function checkNodeResource(r: unknown, node: string): NodeResource {
  const n = r as Partial<NodeResource> | null;
  if (typeof n !== 'object' || n === null || typeof n.mesh !== 'object' || n.mesh === null
    || !Array.isArray(n.localWorkloads) || !Array.isArray(n.authorizationPolicies)) {
    throw invalid(`resource ${NODE_RESOURCE} is not a node resource`);
  }
  if (n.node !== node) throw invalid(`resource ${NODE_RESOURCE} is for node '${String(n.node)}', not '${node}'`);
  if (n.nodes !== undefined) {
    if (typeof n.nodes !== 'object' || n.nodes === null || Array.isArray(n.nodes)) throw invalid(`resource ${NODE_RESOURCE}: nodes is not a table`);
    for (const [name, a] of Object.entries(n.nodes)) {
      if (typeof a !== 'object' || a === null || typeof a.address !== 'string' || (a.zone !== undefined && typeof a.zone !== 'string')) {
        throw invalid(`resource ${NODE_RESOURCE}: node '${name.slice(0, 120)}' has no address`);
      }
    }
  }
  return n as NodeResource;
}

const byServiceKey = (a: ServiceResource, b: ServiceResource) => (a.service.key < b.service.key ? -1 : a.service.key > b.service.key ? 1 : 0);

/** What one service resource contributes to a view. */
interface ServiceContribution {
  /** The node and zone it was computed for. */
  node: string;
  zone: string | undefined;
  /** The service as this node sees it: only the endpoints it balances over. */
  service: ServiceState;
  datapath: DatapathService[];
  routes: RouteTable[];
  trafficPolicy: TrafficPolicyState | undefined;
}

/** Contributions by resource object: an agent merging deltas keeps the objects of
 *  unchanged resources, so reassembling its view redoes only the services that changed.
 *  Resources and views are never mutated, which makes sharing them safe. */
const contributions = new WeakMap<ServiceResource, ServiceContribution>();

function contribution(r: ServiceResource, node: string, zone: string | undefined): ServiceContribution {
  let c = contributions.get(r);
  if (c && c.node === node && c.zone === zone) return c;
  const all = r.service;
  const endpoints = endpointsForNode(all, node, zone);
  const svc = endpoints === all.endpoints ? all : { ...all, endpoints };
  const redirectedPorts = new Set<number>();
  // sessionAffinity ClientIP compiles to an implicit MAGLEV traffic policy; an explicit
  // TrafficPolicy's load balancer wins over it. A resource from an older control API may
  // carry the affinity without the policy.
  const maglev = r.trafficPolicy ? r.trafficPolicy.loadBalancer === 'MAGLEV' : all.sessionAffinity === 'ClientIP';
  const datapath = svc.ports.map((port, i): DatapathService => {
    const { mode, reason } = r.paths[i] as PortPath;
    if (mode === 'redirect') redirectedPorts.add(port.port);
    return {
      vip: svc.vip, port: port.port, protocol: transportOf(port.protocol), mode, reason,
      service: svc.key, portName: port.name,
      ...(maglev ? { lb: 'maglev' as const } : {}),
      backends: endpointsForPort(endpoints, port).map((e) => ({ ip: e.address, port: e.ports[port.name] as number, weight: e.weight })),
    };
  });
  c = {
    node, zone, service: svc,
    datapath,
    routes: r.routes.filter((t) => redirectedPorts.has(t.port)),
    trafficPolicy: redirectedPorts.size > 0 ? r.trafficPolicy : undefined,
  };
  contributions.set(r, c);
  return c;
}

const PROTOCOL_ORDER = { tcp: 0, udp: 1 } as const;

/** The NodeView the resources describe; `services` in any order. */
export function assembleNodeView(version: string, node: NodeResource, services: Iterable<ServiceResource>): NodeView {
  const sorted = [...services].sort(byServiceKey);
  const nodes = node.nodes ?? {};
  const zone = Object.prototype.hasOwnProperty.call(nodes, node.node) ? nodes[node.node]?.zone : undefined;
  const datapath: DatapathService[] = [];
  const routes: RouteTable[] = [];
  const trafficPolicies: TrafficPolicyState[] = [];
  const viewServices: ServiceState[] = [];
  for (const r of sorted) {
    const c = contribution(r, node.node, zone);
    viewServices.push(c.service);
    datapath.push(...c.datapath);
    routes.push(...c.routes);
    if (c.trafficPolicy) trafficPolicies.push(c.trafficPolicy);
  }
  const vipOrder = new Map(sorted.map((r) => [r.service.vip, parseIPv4(r.service.vip) as number]));
  datapath.sort((a, b) => (vipOrder.get(a.vip) as number) - (vipOrder.get(b.vip) as number) || a.port - b.port
    || PROTOCOL_ORDER[a.protocol] - PROTOCOL_ORDER[b.protocol]);
  return {
    version, node: node.node, mesh: node.mesh, nodes, datapath,
    services: viewServices,
    routes, trafficPolicies,
    authorizationPolicies: node.authorizationPolicies,
    localWorkloads: node.localWorkloads,
  };
}
