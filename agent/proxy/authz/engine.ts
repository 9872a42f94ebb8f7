// The one authorization engine: AuthorizationPolicy (Istio semantics) compiled once per
// snapshot, asked by the tunnel per connection and by the L7 proxies per request.
//
// Semantics: any matching DENY policy denies; otherwise, if ALLOW policies apply to the
// workload, one of them must match; otherwise the request is allowed. A rule matches
// when any `from` entry (or none), any `to` entry (or none) and every `when` match.
//
// Every part of a rule reads either connection attributes (principal, namespace,
// addresses, port) or request attributes (method, path, headers). Asked without a
// request (per connection), a request part is unknown, so a decision is one of:
//   allow  - no request can change it,
//   deny   - no request can change it,
//   l7     - it depends on the request: the L7 proxy decides per request.
// The tunnel refuses on `l7` when the connection does not go through the L7 proxy
// (ztunnel's safe side: a DENY with request parts denies more, an ALLOW with request
// parts allows nothing it cannot prove). Asked with a request, there is no `l7`.
import { cidrContains, parseCidr, parseIPv4, type Cidr } from '../../lib/ip';
import type { AuthorizationCondition, AuthorizationOperation, AuthorizationPolicyState, AuthorizationRule, AuthorizationSource } from '../../policy/snapshot';
import type { RequestView } from '../routing/table';

/** Who connects and where to, as the tunnel (and the L7 proxy behind it) knows it. */
export interface ConnectionAttributes {
  /** Verified SPIFFE ID of the caller; null or '' when unauthenticated. */
  principal: string | null;
  /** The caller's namespace; by default the one its SPIFFE ID names. */
  namespace?: string | null;
  sourceIp?: string;
  destinationIp?: string;
  destinationPort: number;
}

export type Verdict = 'allow' | 'deny' | 'l7';

export interface Decision {
  verdict: Verdict;
  /** The policy that decided, when one did. */
  policy?: string;
  reason: string;
}

/** Connection attributes in the form the matchers compare (computed once per connection). */
export class Subject {
  /** Principal without the spiffe:// scheme ('' when unauthenticated). */
  readonly principal: string;
  readonly namespace: string;
  /** IPv4 addresses as numbers, -1 when unknown or not IPv4. */
  readonly sourceIp: number;
  readonly destinationIp: number;
  readonly port: string;
  constructor(a: ConnectionAttributes) {
    const p = a.principal ?? '';
    this.principal = bare(p);
    this.namespace = a.namespace ?? namespaceOf(p);
    this.sourceIp = ipv4(a.sourceIp);
    this.destinationIp = ipv4(a.destinationIp);
    this.port = String(a.destinationPort);
  }
}

// Tri-state results of a part: does not match, matches, depends on the request.
const NO = 0, YES = 1, L7 = 2;
type Tri = typeof NO | typeof YES | typeof L7;

/** A compiled part of a rule; `req` null means "asked per connection". */
type Part = (s: Subject, req: RequestView | null) => Tri;

type Matcher = (v: string) => boolean;

/** Istio string match: exact, "prefix*", "*suffix", or "*" (any non-empty value). */
function glob(p: string): Matcher {
  if (p === '*') return (v) => v !== '';
  if (p.endsWith('*')) { const pre = p.slice(0, -1); return (v) => v.startsWith(pre); }
  if (p.startsWith('*')) { const suf = p.slice(1); return (v) => v.endsWith(suf); }
  return (v) => v === p;
}

function anyOf(ps: readonly string[], normalise: (s: string) => string = (s) => s): Matcher | null {
  if (ps.length === 0) return null;
  const ms = ps.map((p) => glob(normalise(p)));
  return (v) => { for (const m of ms) if (m(v)) return true; return false; };
}

/** Istio principals have no scheme: "td/ns/x/sa/y". Patterns may be written either way. */
function bare(principal: string): string { return principal.startsWith('spiffe://') ? principal.slice(9) : principal; }
function namespaceOf(principal: string): string { const m = /\/ns\/([^/]+)\//.exec(principal); return m ? m[1]! : ''; }

function ipv4(a: string | undefined): number {
  if (a === undefined || a === '') return -1;
  return parseIPv4(a.startsWith('::ffff:') ? a.slice(7) : a) ?? -1;
}

/** CIDR (or single address) list; an entry that does not parse (the compiler rejects
 *  them) matches nothing, an unknown address matches nothing. */
function cidrs(list: readonly string[]): ((ip: number) => boolean) | null {
  if (list.length === 0) return null;
  const nets = list.map(parseCidr).filter((c): c is Cidr => typeof c !== 'string');
  return (ip) => { if (ip < 0) return false; for (const n of nets) if (cidrContains(n, ip)) return true; return false; };
}

/** "Must match this list" and "must not match that list" over one value. */
function both<T>(yes: ((v: T) => boolean) | null, no: ((v: T) => boolean) | null): ((v: T) => boolean) | null {
  if (yes === null && no === null) return null;
  return (v) => (yes === null || yes(v)) && (no === null || !no(v));
}

function source(f: AuthorizationSource): Part {
  const principal = both(anyOf(f.principals, bare), anyOf(f.notPrincipals, bare));
  const namespace = both(anyOf(f.namespaces), anyOf(f.notNamespaces));
  const ip = both(cidrs(f.ipBlocks ?? []), cidrs(f.notIpBlocks ?? []));
  return (s) => (principal === null || principal(s.principal)) && (namespace === null || namespace(s.namespace)) && (ip === null || ip(s.sourceIp)) ? YES : NO;
}

function operation(o: AuthorizationOperation): Part {
  const ports = o.ports.length > 0 ? new Set(o.ports) : null;
  const methods = anyOf(o.methods);
  const paths = both(anyOf(o.paths), anyOf(o.notPaths));
  const l7 = methods !== null || paths !== null;
  return (s, req) => {
    if (ports !== null && !ports.has(s.port)) return NO;
    if (!l7) return YES;
    if (req === null) return L7;
    return (methods === null || methods(req.method)) && (paths === null || paths(req.path)) ? YES : NO;
  };
}

const HEADER_KEY = /^request\.headers\[(.+)\]$/;

/** Connection-attribute `when` keys: what each compares. */
const CONNECTION_KEYS: Record<string, { ip: boolean; value: (s: Subject) => string | number }> = {
  'source.principal': { ip: false, value: (s) => s.principal },
  'source.namespace': { ip: false, value: (s) => s.namespace },
  'source.ip': { ip: true, value: (s) => s.sourceIp },
  'destination.ip': { ip: true, value: (s) => s.destinationIp },
  'destination.port': { ip: false, value: (s) => s.port },
};

function condition(w: AuthorizationCondition): Part {
  const known = CONNECTION_KEYS[w.key];
  if (known !== undefined) {
    if (known.ip) {
      const m = both(cidrs(w.values), cidrs(w.notValues))!;
      const value = known.value as (s: Subject) => number;
      return (s) => (m === null || m(value(s)) ? YES : NO);
    }
    const norm = w.key === 'source.principal' ? bare : (x: string) => x;
    const m = both(anyOf(w.values, norm), anyOf(w.notValues, norm));
    const value = known.value as (s: Subject) => string;
    return (s) => (m === null || m(value(s)) ? YES : NO);
  }
  // Request attributes: headers (and the method, which Istio spells request.method).
  const h = HEADER_KEY.exec(w.key);
  const header = h ? h[1]!.toLowerCase() : null;
  const vals = anyOf(w.values), nots = anyOf(w.notValues);
  return (_s, req) => {
    if (req === null) return L7;
    const v = header !== null ? req.header(header) : w.key === 'request.method' ? req.method : undefined;
    // An absent value matches a notValues-only condition ("must not be X").
    if (v === undefined) return vals === null && nots !== null ? YES : NO;
    return (vals === null || vals(v)) && (nots === null || !nots(v)) ? YES : NO;
  };
}

/** Any of the parts (an empty list matches). */
function anyPart(parts: Part[], s: Subject, req: RequestView | null): Tri {
  if (parts.length === 0) return YES;
  let r: Tri = NO;
  for (const p of parts) { const x = p(s, req); if (x === YES) return YES; if (x === L7) r = L7; }
  return r;
}

function compileRule(r: AuthorizationRule): Part {
  const from = r.from.map(source), to = r.to.map(operation), when = r.when.map(condition);
  return (s, req) => {
    const f = anyPart(from, s, req);
    if (f === NO) return NO;
    const t = anyPart(to, s, req);
    if (t === NO) return NO;
    let res: Tri = f === L7 || t === L7 ? L7 : YES;
    for (const w of when) { const x = w(s, req); if (x === NO) return NO; if (x === L7) res = L7; }
    return res;
  };
}

interface CompiledPolicy { key: string; rules: Part[] }

function compilePolicy(p: AuthorizationPolicyState): CompiledPolicy {
  return { key: p.key, rules: p.rules.map(compileRule) };
}

/** A policy matches when any rule does; a policy with no rules matches nothing. */
function policyMatch(p: CompiledPolicy, s: Subject, req: RequestView | null): Tri {
  let r: Tri = NO;
  for (const rule of p.rules) { const x = rule(s, req); if (x === YES) return YES; if (x === L7) r = L7; }
  return r;
}

const ALLOW_ALL: Decision = { verdict: 'allow', reason: 'no ALLOW policy applies' };

/** The policies of one workload, compiled. */
export class WorkloadAuthz {
  private readonly deny: CompiledPolicy[];
  private readonly allow: CompiledPolicy[];
  /** Some rule reads request attributes: decisions per connection may be `l7`. */
  readonly l7: boolean;

  constructor(policies: readonly AuthorizationPolicyState[]) {
    this.deny = policies.filter((p) => p.action === 'DENY').map(compilePolicy);
    this.allow = policies.filter((p) => p.action === 'ALLOW').map(compilePolicy);
    this.l7 = policies.some((p) => p.rules.some((r) => r.when.some((w) => CONNECTION_KEYS[w.key] === undefined) ||
      r.to.some((t) => t.methods.length + t.paths.length + t.notPaths.length > 0)));
  }

  /** The decision for a connection (`req` null: allow, deny or l7) or one request. */
  decide(s: Subject, req: RequestView | null): Decision {
    let maybeDenied: string | null = null;
    for (const p of this.deny) {
      const m = policyMatch(p, s, req);
      if (m === YES) return { verdict: 'deny', policy: p.key, reason: `denied by DENY policy ${p.key}` };
      if (m === L7 && maybeDenied === null) maybeDenied = p.key;
    }
    if (this.allow.length === 0) return maybeDenied === null ? ALLOW_ALL : { verdict: 'l7', policy: maybeDenied, reason: `DENY policy ${maybeDenied} depends on the request` };
    let maybeAllowed: string | null = null;
    for (const p of this.allow) {
      const m = policyMatch(p, s, req);
      if (m === YES) {
        if (maybeDenied !== null) return { verdict: 'l7', policy: maybeDenied, reason: `DENY policy ${maybeDenied} depends on the request` };
        return { verdict: 'allow', policy: p.key, reason: `allowed by ${p.key}` };
      }
      if (m === L7 && maybeAllowed === null) maybeAllowed = p.key;
    }
    if (maybeAllowed !== null) return { verdict: 'l7', policy: maybeAllowed, reason: `ALLOW policy ${maybeAllowed} depends on the request` };
    return { verdict: 'deny', reason: `no ALLOW policy matches (${this.allow.map((p) => p.key).join(', ')})` };
  }

  /** The per-request check of the L7 proxies (allocates nothing). */
  allows(s: Subject, req: RequestView): boolean {
    for (const p of this.deny) if (policyMatch(p, s, req) === YES) return false;
    if (this.allow.length === 0) return true;
    for (const p of this.allow) if (policyMatch(p, s, req) === YES) return true;
    return false;
  }

  /** The per-request callback of one connection (the L7 proxies take it). */
  forConnection(a: ConnectionAttributes): (req: RequestView) => boolean {
    const s = new Subject(a);
    return (req) => this.allows(s, req);
  }
}

const NONE = new WorkloadAuthz([]);

/** A snapshot's authorization policies, compiled once, per workload they apply to. */
export class AuthzEngine {
  private readonly byWorkload = new Map<string, WorkloadAuthz>();

  constructor(policies: readonly AuthorizationPolicyState[] = []) {
    const grouped = new Map<string, AuthorizationPolicyState[]>();
    for (const p of policies) for (const w of p.workloads) { const l = grouped.get(w); if (l) l.push(p); else grouped.set(w, [p]); }
    for (const [w, ps] of grouped) this.byWorkload.set(w, new WorkloadAuthz(ps));
  }

  /** The workload's compiled policies (none: everything is allowed). */
  workload(key: string): WorkloadAuthz { return this.byWorkload.get(key) ?? NONE; }

  /** Per-connection decision for a local workload. */
  connection(workload: string, a: ConnectionAttributes): Decision { return this.workload(workload).decide(new Subject(a), null); }

  /** Per-request decision (never `l7`). */
  request(workload: string, a: ConnectionAttributes, req: RequestView): Decision { return this.workload(workload).decide(new Subject(a), req); }
}
