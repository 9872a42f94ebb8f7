// One node's view of a snapshot, built through the same resources Sync sends
// (view-resources.ts); which path each service port takes is decided in
// path-decision.ts.
import type { NodeView, Snapshot } from './snapshot';
import { assembleNodeView, nodeResources } from './view-resources';

export { decidePath, type PathIndex } from './path-decision';

/** One node's view, built through the same resources Sync sends (view-resources.ts). */
export function forNode(snap: Snapshot, node: string): NodeView {
  const r = nodeResources(snap, node);
  return assembleNodeView(snap.version, r.node, r.services);
}
