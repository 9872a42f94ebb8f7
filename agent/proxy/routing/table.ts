// The proxy's runtime route table: built once per snapshot, read on every request.
// Regexes are compiled, weights are cumulative, retry conditions are flags, so a
// request costs a few comparisons and no allocation to route.
import type { Cluster } from '../balancer/cluster';
import { TokenBucket } from './rate-limit';
import type { FaultSpec } from './fault';

/** What a matcher needs from a request; HTTP/1.1 and HTTP/2 both provide it. */
export interface RequestView {
  method: string;
  /** Path without the query. */
  path: string;
  /** Raw query string without '?', '' when none. */
  query: string;
  /** First value of a header by lower-case name. */
  header(lname: string): string | undefined;
}

/** A compiled policy regex (RE2 semantics, whole-value match, linear time). */
export interface ValueRegex { test(value: string): boolean }

export interface StringMatcher { name: string; exact?: string; regex?: ValueRegex }

export interface CompiledMatchRule {
  pathExact?: string;
  pathPrefix?: string;
  pathRegex?: ValueRegex;
  method?: string;
  headers: StringMatcher[];
  query: StringMatcher[];
}

export interface HeaderEdits {
  set: { name: string; value: string }[];
  add: { name: string; value: string }[];
  /** Lower-case names. */
  remove: string[];
}

export interface RetryRule {
  attempts: number;
  connectFailure: boolean;
  reset: boolean;
  on5xx: boolean;
  gatewayError: boolean;
  statusCodes: ReadonlySet<number>;
  /** gRPC status codes retried (from cancelled, deadline-exceeded, ...). */
  grpcCodes: ReadonlySet<number>;
  perTryTimeoutMs: number;
}

export interface BackendChoice { cluster: Cluster; /** Cumulative weight up to and including this one. */ upTo: number }

/** What to do with a matched request. One per compiled route rule. */
export interface RouteAction {
  /** "namespace/route#rule" or "default" (for metrics and logs). */
  name: string;
  backends: BackendChoice[];
  totalWeight: number;
  requestHeaders: HeaderEdits | null;
  responseHeaders: HeaderEdits | null;
  /** 0 = none. */
  timeoutMs: number;
  idleTimeoutMs: number;
  retry: RetryRule | null;
  fault: FaultSpec | null;
  rateLimit: TokenBucket | null;
}

export interface RouteEntry { match: CompiledMatchRule; action: RouteAction }

/** All routes of one destination (service VIP + port), first match wins. */
export interface ServiceRoutes {
  service: string;
  protocol: 'http' | 'grpc' | 'tcp';
  /** Port-level protocol declared by the Service; 'detect' when undeclared. */
  declared: 'http' | 'http2' | 'grpc' | 'tcp' | 'detect';
  routes: RouteEntry[];
  /** When no route matches: the service's own endpoints. */
  fallback: RouteAction;
}

function matchString(m: StringMatcher, v: string | undefined): boolean {
  if (v === undefined) return false;
  return m.regex !== undefined ? m.regex.test(v) : v === m.exact;
}

/** Value of query parameter `name` in a raw query string (first occurrence, undecoded). */
function queryParam(q: string, name: string): string | undefined {
  let i = 0;
  while (i <= q.length) {
    let amp = q.indexOf('&', i);
    if (amp < 0) amp = q.length;
    const eq = q.indexOf('=', i);
    if (eq >= 0 && eq < amp) { if (q.slice(i, eq) === name) return decodeURIComponent(q.slice(eq + 1, amp)); }
    else if (q.slice(i, amp) === name) return '';
    i = amp + 1;
  }
  return undefined;
}

export function matches(m: CompiledMatchRule, r: RequestView): boolean {
  if (m.pathExact !== undefined && r.path !== m.pathExact) return false;
  if (m.pathPrefix !== undefined && !pathHasPrefix(r.path, m.pathPrefix)) return false;
  if (m.pathRegex !== undefined && !m.pathRegex.test(r.path)) return false;
  if (m.method !== undefined && r.method !== m.method) return false;
  for (const h of m.headers) if (!matchString(h, r.header(h.name))) return false;
  for (const q of m.query) if (!matchString(q, queryParam(r.query, q.name))) return false;
  return true;
}

/** Gateway API PathPrefix: element-wise ("/foo" matches "/foo" and "/foo/x", not "/foobar"). */
function pathHasPrefix(path: string, prefix: string): boolean {
  if (prefix === '/' ) return true;
  if (!path.startsWith(prefix)) return false;
  return path.length === prefix.length || prefix.endsWith('/') || path.charCodeAt(prefix.length) === 0x2f;
}

export function selectRoute(t: ServiceRoutes, r: RequestView): RouteAction {
  const rs = t.routes;
  for (let i = 0; i < rs.length; i++) if (matches(rs[i]!.match, r)) return rs[i]!.action;
  return t.fallback;
}

/** Weighted backend choice (canary split). */
export function selectBackend(a: RouteAction): Cluster {
  const b = a.backends;
  if (b.length === 1) return b[0]!.cluster;
  const x = Math.random() * a.totalWeight;
  for (let i = 0; i < b.length; i++) if (x < b[i]!.upTo) return b[i]!.cluster;
  return b[b.length - 1]!.cluster;
}

/** An action that forwards everything to one cluster, with nothing else applied. */
export function plainAction(name: string, cluster: Cluster): RouteAction {
  return {
    name, backends: [{ cluster, upTo: 1 }], totalWeight: 1, requestHeaders: null, responseHeaders: null,
    timeoutMs: 0, idleTimeoutMs: 0, retry: null, fault: null, rateLimit: null,
  };
}

export { TokenBucket };
