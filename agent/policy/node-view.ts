// What one node's agent needs from a snapshot, with DESIGN.md's "which path a connection
// takes" decision made per service port: a port stays in the kernel (connect-time
// rewrite) only when nothing about it needs userland — protocol TCP or UDP (routes can
// only attach to HTTP/HTTP2/GRPC ports, which validation enforces), no userland
// traffic policy, no authorization on its workloads, and no mTLS hop (every
// backend is on this node, or the service's TrafficPolicy disables mTLS). UDP is never
// proxied (there is no UDP tunnel), so it is always balanced in the kernel.
import type { NodeView, Snapshot } from './snapshot';
import { assembleNodeView, nodeResources } from './view-resources';

export { decidePath, type PathIndex } from './path-decision';

/** One node's view, built through the same resources Sync sends (view-resources.ts). */
export function forNode(snap: Snapshot, node: string): NodeView {
  const r = nodeResources(snap, node);
  return assembleNodeView(snap.version, r.node, r.services);
}
