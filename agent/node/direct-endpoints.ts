// Which mesh workload endpoints a direct connect (to the workload's own address, not a
// Service VIP) must reach through the agent: weft_direct_v1, read by connect4/6
// (bpf/sock_lb.bpf.c). A direct connection takes the path its service's connections
// take from this node, so it meets the same authorization and mTLS hop:
// - every endpoint (address:port, hostNetwork ones excepted: they are outside the mesh)
//   of a TCP service port this node redirects — redirect mode is what a destination's
//   authorization policy, an mTLS hop to another node or L7 handling asks for;
// - a local workload that some authorization policy applies to, has an address of its
//   own and backs no Service: every port of it (port 0).
// The view holds the services this node reaches and the policies of its own workloads,
// so a workload on another node is covered when a Service reachable from here selects
// it; one behind no Service (or only a headless one) is not.
import type { NodeView } from '../policy/snapshot';
import { nodeAddress } from '../policy/topology';

export function directEndpoints(view: NodeView): { ip: string; port: number }[] {
  const redirected = new Set(view.datapath.filter((d) => d.protocol === 'tcp' && d.mode === 'redirect').map((d) => `${d.service}|${d.portName}`));
  const out = new Map<string, { ip: string; port: number }>();
  for (const svc of view.services) {
    for (const sp of svc.ports) {
      if (sp.protocol === 'UDP' || !redirected.has(`${svc.key}|${sp.name}`)) continue;
      for (const e of svc.endpoints) {
        const port = e.ports[sp.name] ?? (sp.targetPort > 0 ? sp.targetPort : undefined);
        if (port === undefined || e.hostNetwork) continue;
        out.set(`${e.address}|${port}`, { ip: e.address, port });
      }
    }
  }
  const guarded = new Set(view.authorizationPolicies.flatMap((p) => p.workloads));
  const own = nodeAddress(view, view.node);
  for (const w of view.localWorkloads) {
    if (w.services.length || w.address === own || !guarded.has(w.key)) continue;
    out.set(`${w.address}|0`, { ip: w.address, port: 0 });
  }
  return [...out.values()].sort((a, b) => (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : a.port - b.port));
}
