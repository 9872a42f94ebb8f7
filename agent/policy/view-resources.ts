// A NodeView cut into named resources, so the control API can send an agent only what
// changed (xDS "delta" style) instead of the whole view on every change:
//
//   "node"              NodeResource: mesh settings, the node's local workloads and the
//                       authorization policies that apply to them
//   "service/<ns>/<n>"  ServiceResource: one service with its endpoints, its route tables
//                       and traffic policy (node-independent, the same bytes for every
//                       node), plus this node's path decision per port (l4 | redirect)
//
// A one-endpoint change therefore touches one service resource per node (a few KB),
// not the whole service table. forNode() is assembleNodeView(nodeResources()), so the
// split and the agent's reassembly are the one code path every view goes through.
import { WeftError } from '../lib/errors';
import { parseIPv4 } from './net';
import { decidePath, type PathIndex } from './node-view';
import type {
  AuthorizationPolicyState, DatapathService, MeshSettings, NodeView, RouteTable, ServiceState, Snapshot,
  TrafficPolicyState, WorkloadState,
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
  const services = snap.services.map((service): ServiceShared => {
    const trafficPolicy = tp.get(service.key);
    return { service, routes: routes.get(service.key) ?? [], ...(trafficPolicy ? { trafficPolicy } : {}) };
  });
  return { services, index: { tp, authorized: new Set(snap.authorizationPolicies.flatMap((a) => a.workloads)) } };
}

export function portPaths(node: string, shared: ServiceShared, index: PathIndex): PortPath[] {
  return shared.service.ports.map((p) => decidePath(node, shared.service, p, index));
}

/** `localWorkloads`: the node's workloads when the caller has them grouped already. */
export function nodeResource(snap: Snapshot, node: string, localWorkloads = snap.workloads.filter((w) => w.node === node)): NodeResource {
  const local = new Set(localWorkloads.map((w) => w.key));
  return {
    node, mesh: snap.mesh, localWorkloads,
    authorizationPolicies: snap.authorizationPolicies.filter((a) => a.workloads.some((w) => local.has(w))),
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
  return n as NodeResource;
}

const byServiceKey = (a: ServiceResource, b: ServiceResource) => (a.service.key < b.service.key ? -1 : a.service.key > b.service.key ? 1 : 0);

/** What one service resource contributes to a view. */
interface ServiceContribution {
  datapath: DatapathService[];
  routes: RouteTable[];
  trafficPolicy: TrafficPolicyState | undefined;
}

/** Contributions by resource object: an agent merging deltas keeps the objects of
 *  unchanged resources, so reassembling its view redoes only the services that changed.
 *  Resources and views are never mutated, which makes sharing them safe. */
const contributions = new WeakMap<ServiceResource, ServiceContribution>();

function contribution(r: ServiceResource): ServiceContribution {
  let c = contributions.get(r);
  if (c) return c;
  const svc = r.service;
  const redirectedPorts = new Set<number>();
  const datapath = svc.ports.map((port, i): DatapathService => {
    const { mode, reason } = r.paths[i] as PortPath;
    if (mode === 'redirect') redirectedPorts.add(port.port);
    return {
      vip: svc.vip, port: port.port, protocol: port.protocol === 'UDP' ? 'udp' : 'tcp', mode, reason,
      service: svc.key, portName: port.name,
      ...(r.trafficPolicy?.loadBalancer === 'MAGLEV' ? { lb: 'maglev' as const } : {}),
      backends: svc.endpoints.map((e) => ({ ip: e.address, port: e.ports[port.name] as number, weight: e.weight })),
    };
  });
  c = {
    datapath,
    routes: r.routes.filter((t) => redirectedPorts.has(t.port)),
    trafficPolicy: redirectedPorts.size > 0 ? r.trafficPolicy : undefined,
  };
  contributions.set(r, c);
  return c;
}

/** The NodeView the resources describe; `services` in any order. */
export function assembleNodeView(version: string, node: NodeResource, services: Iterable<ServiceResource>): NodeView {
  const sorted = [...services].sort(byServiceKey);
  const datapath: DatapathService[] = [];
  const routes: RouteTable[] = [];
  const trafficPolicies: TrafficPolicyState[] = [];
  for (const r of sorted) {
    const c = contribution(r);
    datapath.push(...c.datapath);
    routes.push(...c.routes);
    if (c.trafficPolicy) trafficPolicies.push(c.trafficPolicy);
  }
  const vipOrder = new Map(sorted.map((r) => [r.service.vip, parseIPv4(r.service.vip) as number]));
  datapath.sort((a, b) => (vipOrder.get(a.vip) as number) - (vipOrder.get(b.vip) as number) || a.port - b.port);
  return {
    version, node: node.node, mesh: node.mesh, datapath,
    services: sorted.map((r) => r.service),
    routes, trafficPolicies,
    authorizationPolicies: node.authorizationPolicies,
    localWorkloads: node.localWorkloads,
  };
}
