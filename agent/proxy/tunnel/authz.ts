// L4 authorization for connections entering a local workload, with Istio's
// AuthorizationPolicy semantics: any matching DENY policy denies; otherwise, if any ALLOW
// policy applies to the workload, one of them must match; otherwise the connection is
// allowed. At L4 only principals, namespaces, ports and L4 `when` keys can be checked.
// Rules that need L7 attributes (methods, paths, request.* conditions) are handled the way
// ztunnel does: in an ALLOW policy such a rule matches nothing (the safe side: it cannot
// be proven), in a DENY policy the L7 parts are ignored and the L4 parts decide (also the
// safe side: deny more, never allow more).
import { cidrContains, parseCidr, parseIPv4 } from '../../policy/net';
import type { AuthorizationPolicyState, AuthorizationRule, AuthorizationSource, AuthorizationOperation, AuthorizationCondition } from '../../policy/snapshot';

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

/** Istio principal/namespace value matching: exact, "*", "prefix*" or "*suffix".
 *  Principals are compared without the spiffe:// scheme, as Istio writes them. */
function matchValue(pattern: string, value: string): boolean {
  if (pattern === '*') return value.length > 0;
  if (pattern.endsWith('*')) return value.startsWith(pattern.slice(0, -1));
  if (pattern.startsWith('*')) return value.endsWith(pattern.slice(1));
  return pattern === value;
}

const stripScheme = (p: string) => (p.startsWith('spiffe://') ? p.slice('spiffe://'.length) : p);

function anyMatch(patterns: string[], value: string | null, normalise: (s: string) => string = (s) => s): boolean {
  return value !== null && patterns.some((p) => matchValue(normalise(p), normalise(value)));
}

/** CIDR (or single address) matching for ipBlocks and source.ip/destination.ip; the
 *  policy compiler has validated the CIDRs, an unparsable one matches nothing. */
function ipMatch(blocks: string[], ip: string | undefined): boolean {
  const n = ip === undefined ? null : parseIPv4(ip.startsWith('::ffff:') ? ip.slice(7) : ip);
  if (n === null) return false;
  return blocks.some((b) => { const c = parseCidr(b); return typeof c !== 'string' && cidrContains(c, n); });
}

function sourceMatches(s: AuthorizationSource, r: L4Request): boolean {
  if (s.ipBlocks.length && !ipMatch(s.ipBlocks, r.sourceIp)) return false;
  if (s.notIpBlocks.length && ipMatch(s.notIpBlocks, r.sourceIp)) return false;
  if (s.principals.length && !anyMatch(s.principals, r.sourcePrincipal, stripScheme)) return false;
  if (s.notPrincipals.length && anyMatch(s.notPrincipals, r.sourcePrincipal, stripScheme)) return false;
  if (s.namespaces.length && !anyMatch(s.namespaces, r.sourceNamespace)) return false;
  if (s.notNamespaces.length && anyMatch(s.notNamespaces, r.sourceNamespace)) return false;
  return true;
}

type Tri = boolean | 'l7';

function operationMatches(o: AuthorizationOperation, r: L4Request): Tri {
  if (o.ports.length && !o.ports.includes(String(r.destinationPort))) return false;
  return o.methods.length || o.paths.length || o.notPaths.length ? 'l7' : true;
}

/** `when` keys decidable at L4, each as "does this value list match the request". */
const L4_KEYS: Record<string, (values: string[], r: L4Request) => boolean> = {
  'source.principal': (v, r) => anyMatch(v, r.sourcePrincipal, stripScheme),
  'source.namespace': (v, r) => anyMatch(v, r.sourceNamespace),
  'source.ip': (v, r) => ipMatch(v, r.sourceIp),
  'destination.ip': (v, r) => ipMatch(v, r.destinationIp),
  'destination.port': (v, r) => v.includes(String(r.destinationPort)),
};

function conditionMatches(c: AuthorizationCondition, r: L4Request): Tri {
  const match = L4_KEYS[c.key];
  if (!match) return 'l7';
  if (c.values.length && !match(c.values, r)) return false;
  if (c.notValues.length && match(c.notValues, r)) return false;
  return true;
}

/** Combines parts with "all must hold"; an L7 part keeps the result undecided at L4. */
function all(parts: Tri[]): Tri {
  if (parts.includes(false)) return false;
  return parts.includes('l7') ? 'l7' : true;
}

function ruleMatches(rule: AuthorizationRule, r: L4Request): Tri {
  const from = rule.from.length === 0 || rule.from.some((s) => sourceMatches(s, r));
  let to: Tri = true;
  if (rule.to.length) {
    const results = rule.to.map((o) => operationMatches(o, r));
    to = results.includes(true) ? true : results.includes('l7') ? 'l7' : false;
  }
  return all([from, to, ...rule.when.map((c) => conditionMatches(c, r))]);
}

export class PolicyAuthorizer implements L4Authorizer {
  private byWorkload = new Map<string, AuthorizationPolicyState[]>();

  constructor(policies: AuthorizationPolicyState[] = []) {
    this.update(policies);
  }

  /** Replaces the policy set (a new snapshot); takes effect for the next connection. */
  update(policies: AuthorizationPolicyState[]): void {
    const m = new Map<string, AuthorizationPolicyState[]>();
    for (const p of policies) for (const w of p.workloads) m.set(w, [...(m.get(w) ?? []), p]);
    this.byWorkload = m;
  }

  authorize(r: L4Request): AuthzDecision {
    const policies = this.byWorkload.get(r.destinationWorkload) ?? [];
    for (const p of policies) {
      if (p.action === 'DENY' && p.rules.some((rule) => ruleMatches(rule, r) !== false)) {
        return { allowed: false, policy: p.key, reason: `denied by DENY policy ${p.key}` };
      }
    }
    const allows = policies.filter((p) => p.action === 'ALLOW');
    if (!allows.length) return { allowed: true, reason: 'no ALLOW policy applies' };
    const hit = allows.find((p) => p.rules.some((rule) => ruleMatches(rule, r) === true));
    return hit
      ? { allowed: true, policy: hit.key, reason: `allowed by ${hit.key}` }
      : { allowed: false, reason: `no ALLOW policy matches (${allows.map((p) => p.key).join(', ')})` };
  }
}
