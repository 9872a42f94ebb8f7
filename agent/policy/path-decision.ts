// The per-port path decision of DESIGN.md ("which path a connection takes"): kernel
// (connect-time rewrite) or the proxy. See node-view.ts for the rules in prose; both the
// node view and the per-service resources Sync sends (view-resources.ts) use it.
import type { DatapathService, ServicePortState, ServiceState, TrafficPolicyState } from './snapshot';
import { endpointsForNode, endpointsForPort } from './topology';

/** Load balancers the kernel implements (weighted random, Maglev); any other setting
 *  of a TrafficPolicy needs the agent. */
const KERNEL_LB = new Set(['RANDOM', 'MAGLEV']);

function trafficPolicyNeedsUserland(tp: TrafficPolicyState | undefined): string | null {
  if (!tp) return null;
  if (tp.connection || tp.outlierDetection || tp.retryBudget) return `TrafficPolicy ${tp.key} sets connection limits, outlier detection or a retry budget`;
  if (!KERNEL_LB.has(tp.loadBalancer)) return `TrafficPolicy ${tp.key} asks for ${tp.loadBalancer} load balancing`;
  return null;
}

/** What the path decision looks at besides the service: traffic policies by service
 *  key, and the workloads some authorization policy applies to. */
export interface PathIndex {
  tp: ReadonlyMap<string, TrafficPolicyState>;
  authorized: ReadonlySet<string>;
  /** Zone by node name (topology hints); absent: no zones known. */
  zones?: ReadonlyMap<string, string>;
}

export function decidePath(node: string, svc: ServiceState, port: ServicePortState, index: PathIndex): { mode: DatapathService['mode']; reason: string } {
  if (port.protocol === 'UDP') return { mode: 'l4', reason: 'UDP is balanced in the kernel (never proxied)' };
  if (port.protocol !== 'TCP') return { mode: 'redirect', reason: `protocol ${port.protocol} is handled by the L7 proxy` };
  const tp = index.tp.get(svc.key);
  const tpReason = trafficPolicyNeedsUserland(tp);
  if (tpReason) return { mode: 'redirect', reason: tpReason };
  // The backends this node balances this port over (internalTrafficPolicy, topology
  // hints, named targetPorts), as assembleNodeView() builds them.
  const endpoints = endpointsForPort(endpointsForNode(svc, node, index.zones?.get(node)), port);
  const guarded = endpoints.find((e) => index.authorized.has(e.workload));
  if (guarded) return { mode: 'redirect', reason: `authorization policy applies to backend ${guarded.workload}` };
  if (tp?.tls === 'DISABLE') return { mode: 'l4', reason: 'mTLS is disabled for this service' };
  if (endpoints.length === 0) {
    return { mode: 'l4', reason: svc.internalTrafficPolicy === 'Local' && svc.endpoints.length ? 'internalTrafficPolicy Local and no endpoint on this node' : 'no endpoints' };
  }
  // hostNetwork backends are outside the mesh: reached in plaintext, no mTLS hop.
  const remote = endpoints.find((e) => e.node !== node && !e.hostNetwork);
  if (remote) return { mode: 'redirect', reason: `backend ${remote.workload} is on ${remote.node}: needs an mTLS hop` };
  if (endpoints.some((e) => e.hostNetwork && e.node !== node)) return { mode: 'l4', reason: 'plain TCP; backends on other nodes are hostNetwork (outside the mesh, plaintext)' };
  return { mode: 'l4', reason: 'plain TCP and every backend is on this node' };
}

