// What one node's agent needs from a snapshot, with DESIGN.md's "which path a connection
// takes" decision made per service port: a port stays in the kernel (connect-time
// rewrite) only when nothing about it needs userland — protocol TCP or UDP (routes can
// only attach to HTTP/HTTP2/GRPC ports, which validation enforces), no userland
// traffic policy, no authorization on its workloads, and no mTLS hop (every
// backend is on this node, or the service's TrafficPolicy disables mTLS). UDP is never
// proxied (there is no UDP tunnel), so it is always balanced in the kernel.
import type {
  DatapathService, NodeView, ServicePortState, ServiceState, Snapshot, TrafficPolicyState,
} from './snapshot';
import { parseIPv4 } from './net';

/** Load balancers the kernel implements (weighted random, Maglev); any other setting
 *  of a TrafficPolicy needs the agent. */
const KERNEL_LB = new Set(['RANDOM', 'MAGLEV']);

function trafficPolicyNeedsUserland(tp: TrafficPolicyState | undefined): string | null {
  if (!tp) return null;
  if (tp.connection || tp.outlierDetection || tp.retryBudget) return `TrafficPolicy ${tp.key} sets connection limits, outlier detection or a retry budget`;
  if (!KERNEL_LB.has(tp.loadBalancer)) return `TrafficPolicy ${tp.key} asks for ${tp.loadBalancer} load balancing`;
  return null;
}

export function decidePath(
  node: string, svc: ServiceState, port: ServicePortState,
  index: { tp: Map<string, TrafficPolicyState>; authorized: Set<string> },
): { mode: DatapathService['mode']; reason: string } {
  if (port.protocol === 'UDP') return { mode: 'l4', reason: 'UDP is balanced in the kernel (never proxied)' };
  if (port.protocol !== 'TCP') return { mode: 'redirect', reason: `protocol ${port.protocol} is handled by the L7 proxy` };
  const tp = index.tp.get(svc.key);
  const tpReason = trafficPolicyNeedsUserland(tp);
  if (tpReason) return { mode: 'redirect', reason: tpReason };
  const guarded = svc.endpoints.find((e) => index.authorized.has(e.workload));
  if (guarded) return { mode: 'redirect', reason: `authorization policy applies to backend ${guarded.workload}` };
  if (tp?.tls === 'DISABLE') return { mode: 'l4', reason: 'mTLS is disabled for this service' };
  if (svc.endpoints.length === 0) return { mode: 'l4', reason: 'no endpoints' };
  const remote = svc.endpoints.find((e) => e.node !== node);
  if (remote) return { mode: 'redirect', reason: `backend ${remote.workload} is on ${remote.node}: needs an mTLS hop` };
  return { mode: 'l4', reason: 'plain TCP and every backend is on this node' };
}

export function forNode(snap: Snapshot, node: string): NodeView {
  const index = {
    tp: new Map(snap.trafficPolicies.map((t) => [t.service, t])),
    authorized: new Set(snap.authorizationPolicies.flatMap((a) => a.workloads)),
  };
  const datapath: DatapathService[] = [];
  for (const svc of snap.services) {
    for (const port of svc.ports) {
      const { mode, reason } = decidePath(node, svc, port, index);
      datapath.push({
        vip: svc.vip, port: port.port, protocol: port.protocol === 'UDP' ? 'udp' : 'tcp', mode, reason,
        service: svc.key, portName: port.name,
        backends: svc.endpoints.map((e) => ({ ip: e.address, port: e.ports[port.name] as number, weight: e.weight })),
      });
    }
  }
  const vipOrder = new Map(snap.services.map((s) => [s.vip, parseIPv4(s.vip) as number]));
  datapath.sort((a, b) => (vipOrder.get(a.vip) as number) - (vipOrder.get(b.vip) as number) || a.port - b.port);
  const redirected = new Set(datapath.filter((d) => d.mode === 'redirect').map((d) => d.service));
  const redirectedPorts = new Set(datapath.filter((d) => d.mode === 'redirect').map((d) => `${d.service}:${d.port}`));
  const local = snap.workloads.filter((w) => w.node === node);
  const localKeys = new Set(local.map((w) => w.key));
  return {
    version: snap.version,
    node,
    mesh: snap.mesh,
    datapath,
    services: snap.services,
    routes: snap.routes.filter((r) => redirectedPorts.has(`${r.service}:${r.port}`)),
    trafficPolicies: snap.trafficPolicies.filter((t) => redirected.has(t.service)),
    authorizationPolicies: snap.authorizationPolicies.filter((a) => a.workloads.some((w) => localKeys.has(w))),
    localWorkloads: local,
  };
}
