// L4 authorization for connections entering a local workload: the per-connection side
// of the one authorization engine (proxy/authz/engine.ts). At L4 only principals,
// namespaces, addresses, ports and connection `when` keys can be checked. A decision that
// depends on the request (methods, paths, headers) is refused here the way ztunnel does:
// an ALLOW rule with request parts matches nothing it cannot prove, a DENY rule with
// request parts denies (the safe side). Destinations with such rules are normally
// authorized per request instead (the tunnel's L7 hook).
import type { AuthorizationPolicyState } from '../../policy/snapshot';
import { AuthzEngine } from '../authz/engine';

export interface L4Request {
  /** Verified SPIFFE ID of the caller, or null for an unauthenticated (plaintext) one. */
  sourcePrincipal: string | null;
  sourceNamespace: string | null;
  sourceIp?: string;
  /** "namespace/name" of the local destination workload. */
  destinationWorkload: string;
  destinationIp?: string;
  destinationPort: number;
}

export interface AuthzDecision {
  allowed: boolean;
  /** The policy that decided, when one did. */
  policy?: string;
  reason: string;
}

/** What the tunnel asks; the agent implements it from snapshots (PolicyAuthorizer). */
export interface L4Authorizer {
  authorize(req: L4Request): AuthzDecision;
}

export class PolicyAuthorizer implements L4Authorizer {
  /** The snapshot's policies compiled once; the inbound L7 proxy asks the same engine. */
  engine = new AuthzEngine();

  constructor(policies: AuthorizationPolicyState[] = []) {
    this.update(policies);
  }

  /** Replaces the policy set (a new snapshot); takes effect for the next connection. */
  update(policies: AuthorizationPolicyState[]): void {
    this.engine = new AuthzEngine(policies);
  }

  authorize(r: L4Request): AuthzDecision {
    const d = this.engine.connection(r.destinationWorkload, {
      principal: r.sourcePrincipal, namespace: r.sourceNamespace, destinationPort: r.destinationPort,
      ...(r.sourceIp !== undefined ? { sourceIp: r.sourceIp } : {}), ...(r.destinationIp !== undefined ? { destinationIp: r.destinationIp } : {}),
    });
    if (d.verdict === 'allow') return { allowed: true, ...(d.policy !== undefined ? { policy: d.policy } : {}), reason: d.reason };
    // Undecidable without the request and the connection is not seen per request: refuse.
    const reason = d.verdict === 'l7' ? `${d.reason}, which a connection without per-request authorization cannot satisfy` : d.reason;
    return { allowed: false, ...(d.policy !== undefined ? { policy: d.policy } : {}), reason };
  }
}
