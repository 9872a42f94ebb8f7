// Which endpoints of a service a node balances over, and where a node is reached. Both
// the control API (path decisions) and the agent (assembling its view) call these, so
// the kernel's backends, the L7 balancer's endpoints and `weft explain` agree.
//
// Kubernetes semantics, as kube-proxy implements them:
// - internalTrafficPolicy Local: only the endpoints on the calling node; with none, the
//   service has no backends there (connections are refused; kube-proxy drops them).
//   Topology hints are not consulted then.
// - Topology hints (EndpointSlice hints.forZones): a node in zone Z uses the endpoints
//   hinted for Z. Hints are used only when every endpoint carries some (the EndpointSlice
//   controller sets them for all endpoints or for none; a partial set means it is
//   changing its mind) and the node's zone is known; when no endpoint is hinted for Z,
//   all endpoints are used.
import type { Endpoint, NodeAddress, NodeView, ServicePortState, ServiceState } from './snapshot';

export function endpointsForNode(svc: ServiceState, node: string, zone: string | undefined): Endpoint[] {
  if (svc.internalTrafficPolicy === 'Local') return svc.endpoints.filter((e) => e.node === node);
  if (zone === undefined || svc.endpoints.length === 0 || !svc.endpoints.every((e) => e.forZones?.length)) return svc.endpoints;
  const hinted = svc.endpoints.filter((e) => e.forZones?.includes(zone));
  return hinted.length ? hinted : svc.endpoints;
}

/** The endpoints that serve `port`: a workload that does not declare a named targetPort
 *  is not a backend of that port. */
export function endpointsForPort(endpoints: readonly Endpoint[], port: ServicePortState): Endpoint[] {
  return endpoints.filter((e) => e.ports[port.name] !== undefined);
}

/** The address other nodes' agents reach `nodeName` at (its tunnel listener, 15008), or
 *  undefined when the view names none (see NodeState.source for where addresses come
 *  from). The CONNECT target stays the endpoint's own address. */
export function nodeAddress(view: Pick<NodeView, 'nodes'>, nodeName: string): string | undefined {
  const nodes = view.nodes as Record<string, NodeAddress> | undefined;
  return nodes && Object.prototype.hasOwnProperty.call(nodes, nodeName) ? nodes[nodeName]?.address : undefined;
}
