// Inbound L7 authorization: the per-request side of the one authorization engine
// (proxy/authz/engine.ts), bound to the caller of one connection. DENY policies first;
// then, if any ALLOW policy applies to the workload, the request must match one of them;
// otherwise allowed. Compiled once per snapshot; a check allocates nothing.
import type { AuthorizationPolicyState } from '../../policy/snapshot';
import { WorkloadAuthz, Subject } from '../authz/engine';
import type { RequestView } from './table';

export interface Peer {
  /** SPIFFE ID of the caller ("spiffe://td/ns/x/sa/y"), '' when unauthenticated. */
  principal: string;
  /** Workload port the request arrived for. */
  port: number;
  /** Caller's address (ipBlocks, source.ip); '' or absent when unknown. */
  ip?: string;
  /** The workload's address the connection was for (destination.ip). */
  destinationIp?: string;
}

function subject(peer: Peer): Subject {
  return new Subject({
    principal: peer.principal, destinationPort: peer.port,
    ...(peer.ip ? { sourceIp: peer.ip } : {}), ...(peer.destinationIp ? { destinationIp: peer.destinationIp } : {}),
  });
}

export class Authorizer {
  readonly policies: WorkloadAuthz;

  /** `policies`: those that apply to the workload (AuthorizationPolicyState.workloads),
   *  or the workload's entry of a snapshot's compiled engine. */
  constructor(policies: readonly AuthorizationPolicyState[] | WorkloadAuthz) {
    this.policies = policies instanceof WorkloadAuthz ? policies : new WorkloadAuthz(policies);
  }

  /** True when the request may proceed. */
  check(req: RequestView, peer: Peer): boolean {
    return this.policies.allows(subject(peer), req);
  }

  /** The per-request callback the HTTP/1.1 and HTTP/2 paths take, bound to one peer. */
  forPeer(peer: Peer): (r: RequestView) => boolean {
    const s = subject(peer);
    const p = this.policies;
    return (r) => p.allows(s, r);
  }
}

/** Authorizer for one local workload from a node view's policies. */
export function authorizerFor(workload: string, policies: AuthorizationPolicyState[]): Authorizer {
  return new Authorizer(policies.filter((p) => p.workloads.includes(workload)));
}
