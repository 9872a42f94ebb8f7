// Inbound L7 authorization: AuthorizationPolicy (Istio semantics) evaluated per request
// for the caller's SPIFFE principal. DENY policies first; then, if any ALLOW policy
// applies to the workload, the request must match one of them; otherwise allowed.
// Policies are compiled once per snapshot into matchers; a check allocates nothing.
import type { AuthorizationPolicyState, AuthorizationRule } from '../../policy/snapshot';
import type { RequestView } from './table';

export interface Peer {
  /** SPIFFE ID of the caller ("spiffe://td/ns/x/sa/y"), '' when unauthenticated. */
  principal: string;
  /** Workload port the request arrived for. */
  port: number;
  /** Caller's address (for ipBlocks); '' when unknown. */
  ip?: string;
}

type Matcher = (v: string) => boolean;

/** Istio string match: exact, "prefix*", "*suffix", or "*". */
function glob(p: string): Matcher {
  if (p === '*') return (v) => v !== '';
  if (p.endsWith('*')) { const pre = p.slice(0, -1); return (v) => v.startsWith(pre); }
  if (p.startsWith('*')) { const suf = p.slice(1); return (v) => v.endsWith(suf); }
  return (v) => v === p;
}

function anyOf(ps: string[]): Matcher | null {
  if (ps.length === 0) return null;
  const ms = ps.map(glob);
  return (v) => ms.some((m) => m(v));
}

/** Istio principals have no scheme: "td/ns/x/sa/y". */
function bare(principal: string): string { return principal.startsWith('spiffe://') ? principal.slice(9) : principal; }
function namespaceOf(principal: string): string { const m = /\/ns\/([^/]+)\//.exec(principal); return m ? m[1]! : ''; }

interface Ctx { principal: string; namespace: string; port: string; ip: number; req: RequestView }

function ipv4(a: string): number {
  const p = a.startsWith('::ffff:') ? a.slice(7).split('.') : a.split('.');
  if (p.length !== 4) return -1;
  let n = 0;
  for (const x of p) { const v = Number(x); if (!/^\d{1,3}$/.test(x) || v > 255) return -1; n = n * 256 + v; }
  return n;
}

/** IPv4 CIDR list matcher ("10.0.0.0/8" or a bare address); IPv6 entries never match. */
function cidrs(list: string[]): ((ip: number) => boolean) | null {
  if (list.length === 0) return null;
  const nets = list.map((c) => {
    const [a, bits] = c.split('/');
    const len = bits === undefined ? 32 : Number(bits);
    const size = 2 ** (32 - len);
    const base = ipv4(a!);
    return { lo: base < 0 ? -1 : Math.floor(base / size) * size, size };
  });
  return (ip) => ip >= 0 && nets.some((n) => n.lo >= 0 && ip >= n.lo && ip < n.lo + n.size);
}

type Check = (c: Ctx) => boolean;

function condValue(key: string, c: Ctx): string | undefined {
  const h = /^request\.headers\[(.+)\]$/.exec(key);
  if (h) return c.req.header(h[1]!.toLowerCase());
  switch (key) {
    case 'source.principal': return c.principal;
    case 'source.namespace': return c.namespace;
    case 'destination.port': return c.port;
    case 'request.method': return c.req.method;
    default: return undefined;
  }
}

function compileRule(r: AuthorizationRule): Check {
  const froms = r.from.map((f) => {
    // Patterns may be written with or without the spiffe:// scheme; compare both bare.
    const pr = anyOf(f.principals.map(bare)), npr = anyOf(f.notPrincipals.map(bare)), ns = anyOf(f.namespaces), nns = anyOf(f.notNamespaces);
    const ips = cidrs(f.ipBlocks ?? []), nips = cidrs(f.notIpBlocks ?? []);
    return (c: Ctx) => (pr === null || pr(c.principal)) && (npr === null || !npr(c.principal)) &&
      (ns === null || ns(c.namespace)) && (nns === null || !nns(c.namespace)) &&
      (ips === null || ips(c.ip)) && (nips === null || !nips(c.ip));
  });
  const tos = r.to.map((t) => {
    const ports = t.ports.length ? new Set(t.ports) : null;
    const methods = anyOf(t.methods), paths = anyOf(t.paths), notPaths = anyOf(t.notPaths);
    return (c: Ctx) => (ports === null || ports.has(c.port)) && (methods === null || methods(c.req.method)) &&
      (paths === null || paths(c.req.path)) && (notPaths === null || !notPaths(c.req.path));
  });
  const whens = r.when.map((w) => {
    const vals = anyOf(w.values), nots = anyOf(w.notValues);
    return (c: Ctx) => {
      const v = condValue(w.key, c);
      if (v === undefined) return vals === null && nots !== null;
      return (vals === null || vals(v)) && (nots === null || !nots(v));
    };
  });
  return (c) => (froms.length === 0 || froms.some((f) => f(c))) && (tos.length === 0 || tos.some((t) => t(c))) && whens.every((w) => w(c));
}

function compilePolicy(p: AuthorizationPolicyState): Check {
  // A policy with no rules matches nothing for ALLOW (deny all) and nothing for DENY.
  const rules = p.rules.map(compileRule);
  return (c) => rules.some((r) => r(c));
}

export class Authorizer {
  private readonly deny: Check[];
  private readonly allow: Check[];
  readonly hasAllow: boolean;

  /** `policies`: those that apply to the workload (AuthorizationPolicyState.workloads). */
  constructor(policies: AuthorizationPolicyState[]) {
    this.deny = policies.filter((p) => p.action === 'DENY').map(compilePolicy);
    this.allow = policies.filter((p) => p.action === 'ALLOW').map(compilePolicy);
    this.hasAllow = this.allow.length > 0;
  }

  /** True when the request may proceed. */
  check(req: RequestView, peer: Peer): boolean {
    const principal = bare(peer.principal);
    const c: Ctx = { principal, namespace: namespaceOf(peer.principal), port: String(peer.port), ip: peer.ip ? ipv4(peer.ip) : -1, req };
    for (const d of this.deny) if (d(c)) return false;
    if (!this.hasAllow) return true;
    for (const a of this.allow) if (a(c)) return true;
    return false;
  }

  /** The per-request callback the HTTP/1.1 and HTTP/2 paths take, bound to one peer. */
  forPeer(peer: Peer): (r: RequestView) => boolean {
    return (r) => this.check(r, peer);
  }
}

/** Authorizer for one local workload from a node view's policies. */
export function authorizerFor(workload: string, policies: AuthorizationPolicyState[]): Authorizer {
  return new Authorizer(policies.filter((p) => p.workloads.includes(workload)));
}
