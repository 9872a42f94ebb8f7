// Which SPIFFE IDs a node may obtain certificates for: the identities of the workloads
// the snapshot places on it (policy Workloads and agent registrations alike), plus its
// own node identity. The control API passes this set to CertificateAuthority.signCsr,
// and the agent uses the same function on its NodeView to know what to request, so the
// two sides cannot disagree.
import type { Snapshot } from '../policy/snapshot';
import { nodeSpiffeId } from './spiffe';

export function identitiesForNode(snapshot: Pick<Snapshot, 'workloads' | 'mesh'>, node: string): Set<string> {
  const ids = new Set<string>([nodeSpiffeId(snapshot.mesh.trustDomain, node)]);
  for (const w of snapshot.workloads) if (w.node === node && w.identity) ids.add(w.identity); // hostNetwork: none
  return ids;
}
