// Converts the policy engine's NodeView (agent/policy/snapshot.ts) into the proxy's
// runtime tables at the boundary, once per snapshot: destination (VIP:port) → routes,
// (service, port) → Cluster. Clusters persist across snapshots so latency history,
// ejections and pooled connections survive a policy update.
import type { NodeView, CompiledRoute, HeaderMatch, ServiceState, TrafficPolicyState, HeaderModifier, RetryPolicy } from '../../policy/snapshot';
import { Cluster, type ClusterSettings } from '../balancer/cluster';
import type { Endpoint, EndpointState } from '../balancer/endpoint';
import {
  plainAction, TokenBucket, type CompiledMatchRule, type HeaderEdits, type RetryRule, type RouteAction, type ServiceRoutes, type StringMatcher, type ValueRegex,
} from './table';
import { compilePolicyRegex } from '../../policy/regex';
import { preview } from '../../policy/diagnostic';
import { HEADER_VALUE_PATTERN } from '../../policy/kinds';
import { PROTECTED_HEADERS } from '../../policy/routes';
import { WeftError } from '../../lib/errors';
import { nodeAddress } from '../../policy/topology';

export type EjectionChange = (service: string, endpoint: Endpoint, ejected: boolean) => void;

const GRPC_RETRY_CODES: Record<string, number> = {
  cancelled: 1, 'deadline-exceeded': 4, 'resource-exhausted': 8, internal: 13, unavailable: 14,
};
const MAX_PASSTHROUGH = 4096;

/** Policy regexes run on RE2 semantics (linear in the request, whatever the pattern),
 *  compiled by the same function `weft validate` checks them with. */
function compileRegex(src: string, what: string): ValueRegex {
  const r = compilePolicyRegex(src);
  if ('error' in r) throw new WeftError('WEFT_ERR_INVALID_POLICY', `invalid ${what} regex ${preview(src)}: ${r.error}`);
  return r.regex;
}

function stringMatcher(h: HeaderMatch, what: string): StringMatcher {
  return h.type === 'RegularExpression' ? { name: h.name, regex: compileRegex(h.value, what) } : { name: h.name, exact: h.value };
}

// What validation guarantees, checked again where headers are written from a snapshot:
// a control API of another version, or a cached snapshot, must not make the proxy emit
// CR LF (or U+010A, which the latin1 writer turns into LF) into a message head.
const TOKEN = /^[A-Za-z0-9!#$%&'*+\-.^_`|~]{1,256}$/;
const FIELD_VALUE = new RegExp(HEADER_VALUE_PATTERN);

function checkEdit(name: string, value: string | undefined): void {
  if (!TOKEN.test(name) || PROTECTED_HEADERS.has(name.toLowerCase())) throw new WeftError('WEFT_ERR_INVALID_POLICY', `header modifier: invalid or protected header name ${preview(name)}`);
  if (value !== undefined && (value.length > 4096 || !FIELD_VALUE.test(value))) throw new WeftError('WEFT_ERR_INVALID_POLICY', `header modifier: invalid value for ${name}: ${preview(value)}`);
}

function headerEdits(m: HeaderModifier | undefined): HeaderEdits | null {
  if (m === undefined || (m.set.length === 0 && m.add.length === 0 && m.remove.length === 0)) return null;
  for (const e of [...m.set, ...m.add]) checkEdit(e.name, e.value);
  for (const n of m.remove) checkEdit(n, undefined);
  const lower = (x: { name: string; value: string }) => ({ name: x.name.toLowerCase(), value: x.value });
  return { set: m.set.map(lower), add: m.add.map(lower), remove: m.remove.map((n) => n.toLowerCase()) };
}

export function retryRule(r: RetryPolicy | undefined): RetryRule | null {
  if (r === undefined || r.attempts <= 0) return null;
  const on = new Set(r.on);
  return {
    attempts: r.attempts,
    connectFailure: on.has('connect-failure'), reset: on.has('reset'), on5xx: on.has('5xx'), gatewayError: on.has('gateway-error'),
    statusCodes: new Set(on.has('retriable-status-codes') ? r.retriableStatusCodes : []),
    grpcCodes: new Set(r.on.filter((c) => c in GRPC_RETRY_CODES).map((c) => GRPC_RETRY_CODES[c]!)),
    perTryTimeoutMs: r.perTryTimeoutMs ?? 0,
  };
}

function clusterSettings(tp: TrafficPolicyState | undefined): ClusterSettings {
  if (tp === undefined) return {};
  const c = tp.connection ?? {};
  const limits: ClusterSettings['limits'] = {};
  if (c.connectTimeoutMs !== undefined) limits.connectTimeoutMs = c.connectTimeoutMs;
  if (c.maxConnections !== undefined) limits.maxConnections = c.maxConnections;
  if (c.maxPendingRequests !== undefined) limits.maxPendingRequests = c.maxPendingRequests;
  if (c.maxRequests !== undefined) limits.maxRequests = c.maxRequests;
  if (c.maxRequestsPerConnection !== undefined) limits.maxRequestsPerConnection = c.maxRequestsPerConnection;
  const s: ClusterSettings = { limits, loadBalancer: tp.loadBalancer };
  if (tp.outlierDetection) s.outlier = tp.outlierDetection;
  if (tp.retryBudget) s.retryBudget = tp.retryBudget;
  return s;
}

export class L7Directory {
  private byDestination = new Map<string, ServiceRoutes>();
  private readonly clusters = new Map<string, Cluster>();
  private readonly passthrough = new Map<string, ServiceRoutes>();
  /** Changes whenever a lookup may answer differently (a snapshot applied, a
   *  passthrough entry evicted): per-connection caches of `lookup` compare it. */
  generation = 0;
  /** A mesh workload's own address:port (not a VIP), for connections the kernel
   *  redirected because they dialled it directly (weft_direct_v1): one endpoint, with
   *  the same metadata as in its service's cluster, so it takes the same path (the
   *  destination's authorization, the mTLS hop to its node). */
  private byEndpoint = new Map<string, ServiceRoutes>();
  /** Local workloads no Service selects, with an address of their own: every port. */
  private anyPort = new Map<string, { service: string; meta: Record<string, string> }>();
  private readonly anyPortRoutes = new Map<string, ServiceRoutes>();
  version = '';

  constructor(private readonly onEjectionChange: EjectionChange = () => {}) {}

  private listener = (service: string, e: EndpointState, ejected: boolean): void => this.onEjectionChange(service, e.endpoint, ejected);

  private clusterFor(name: string): Cluster {
    let c = this.clusters.get(name);
    if (c === undefined) { c = new Cluster(name, this.listener); this.clusters.set(name, c); }
    return c;
  }

  /** Rebuilds the tables from a snapshot's node view. Throws WEFT_ERR_INVALID_POLICY (bad regex). */
  apply(view: NodeView): void {
    this.generation++;
    const services = new Map(view.services.map((s) => [s.key, s]));
    const policies = new Map(view.trafficPolicies.map((p) => [p.service, p]));
    const live = new Set<string>();
    // Build every cluster (service, port) first, so backendRefs can point at them.
    const clusterOf = (svc: ServiceState, port: number): Cluster => {
      // A port number served over TCP and UDP (kube-dns's 53): the proxies carry TCP.
      const sp = svc.ports.find((p) => p.port === port && p.protocol !== 'UDP');
      if (sp === undefined) throw new WeftError('WEFT_ERR_INVALID_POLICY', `service ${svc.key} has no port ${port}`);
      const name = `${svc.key}:${port}`;
      const c = this.clusterFor(name);
      if (!live.has(name)) {
        live.add(name);
        // A workload that does not serve a named targetPort is no backend of this port.
        const removed = c.update(svc.endpoints.flatMap((e) => {
          const target = e.ports[sp.name] ?? (sp.targetPort > 0 ? sp.targetPort : undefined);
          if (target === undefined) return [];
          const meta: Record<string, string> = { workload: e.workload, node: e.node, identity: e.identity, namespace: e.namespace };
          if (e.hostNetwork) meta.hostNetwork = 'true';
          return [{ endpoint: { ip: e.address, port: target, meta }, weight: e.weight }];
        }), clusterSettings(policies.get(svc.key)));
        for (const r of removed) r.drain();
      }
      return c;
    };
    const tables = new Map(view.routes.map((t) => [`${t.service}:${t.port}`, t]));
    const next = new Map<string, ServiceRoutes>();
    for (const svc of view.services) {
      for (const sp of svc.ports) {
        if (sp.protocol === 'UDP') continue;
        const own = clusterOf(svc, sp.port);
        const t = tables.get(`${svc.key}:${sp.port}`);
        const declared = sp.protocol === 'HTTP' ? 'http' : sp.protocol === 'HTTP2' ? 'http2' : sp.protocol === 'GRPC' ? 'grpc' : 'tcp';
        const routes = (t?.routes ?? []).map((r) => ({ match: this.compileMatch(r), action: this.compileAction(r, services, clusterOf) }));
        next.set(`${svc.vip}:${sp.port}`, {
          service: svc.key, protocol: t?.protocol ?? (declared === 'grpc' ? 'grpc' : declared === 'tcp' ? 'tcp' : 'http'),
          declared: sp.protocol === 'TCP' && t === undefined ? 'detect' : declared, routes, fallback: plainAction('default', own),
        });
      }
    }
    const endpoints = new Map<string, ServiceRoutes>();
    for (const svc of view.services) {
      for (const sp of svc.ports) {
        if (sp.protocol === 'UDP') continue;
        for (const e of svc.endpoints) {
          const target = e.ports[sp.name] ?? (sp.targetPort > 0 ? sp.targetPort : undefined);
          if (target === undefined || e.hostNetwork) continue;
          const key = `${e.address}:${target}`;
          if (endpoints.has(key)) continue;
          const name = `direct:${key}`;
          live.add(name);
          const c = this.clusterFor(name);
          const meta: Record<string, string> = { workload: e.workload, node: e.node, identity: e.identity, namespace: e.namespace };
          for (const r of c.update([{ endpoint: { ip: e.address, port: target, meta }, weight: 1 }])) r.drain();
          endpoints.set(key, { service: svc.key, protocol: 'tcp', declared: 'tcp', routes: [], fallback: plainAction('direct', c) });
        }
      }
    }
    const anyPort = new Map<string, { service: string; meta: Record<string, string> }>();
    const guarded = new Set(view.authorizationPolicies.flatMap((p) => p.workloads));
    const own = nodeAddress(view, view.node);
    for (const w of view.localWorkloads) {
      if (w.services.length || w.address === own || !guarded.has(w.key)) continue;
      anyPort.set(w.address, { service: `workload:${w.key}`, meta: { workload: w.key, node: view.node, identity: w.identity, namespace: w.namespace } });
    }
    // Per-port routes of an address whose workload stays are kept; the others go.
    for (const key of [...this.anyPortRoutes.keys()]) {
      const ip = key.slice(0, key.lastIndexOf(':'));
      const now = anyPort.get(ip)?.meta.workload;
      if (now !== undefined && now === this.anyPort.get(ip)?.meta.workload) { live.add(`direct-any:${key}`); continue; }
      this.anyPortRoutes.delete(key);
    }
    for (const [name, c] of this.clusters) {
      if (!live.has(name) && !name.startsWith('passthrough:')) { c.close(); for (const e of c.unique()) e.drain(); this.clusters.delete(name); }
    }
    this.byDestination = next;
    this.byEndpoint = endpoints;
    this.anyPort = anyPort;
    this.version = view.version;
  }

  private compileMatch(r: CompiledRoute): CompiledMatchRule {
    const m: CompiledMatchRule = { headers: r.match.headers.map((h) => stringMatcher(h, 'header')), query: r.match.queryParams.map((q) => stringMatcher(q, 'query')) };
    const p = r.match.path;
    if (p.type === 'Exact') m.pathExact = p.value;
    else if (p.type === 'PathPrefix') { if (p.value !== '/') m.pathPrefix = p.value; }
    else m.pathRegex = compileRegex(p.value, 'path');
    if (r.match.method !== undefined) m.method = r.match.method;
    return m;
  }

  private compileAction(r: CompiledRoute, services: Map<string, ServiceState>, clusterOf: (s: ServiceState, port: number) => Cluster): RouteAction {
    let acc = 0;
    const backends = r.backends.map((b) => {
      const svc = services.get(b.service);
      if (svc === undefined) throw new WeftError('WEFT_ERR_INVALID_POLICY', `route ${r.route} refers to unknown service ${b.service}`);
      acc += b.weight;
      return { cluster: clusterOf(svc, b.port), upTo: acc };
    });
    const rl = r.rateLimit;
    return {
      name: `${r.route}#${r.rule}`, backends, totalWeight: acc,
      requestHeaders: headerEdits(r.requestHeaderModifier), responseHeaders: headerEdits(r.responseHeaderModifier),
      timeoutMs: r.timeouts?.requestMs ?? 0, idleTimeoutMs: r.timeouts?.idleMs ?? 0,
      retry: retryRule(r.retry), fault: r.fault ?? null,
      rateLimit: rl ? new TokenBucket(rl.maxTokens, rl.tokensPerFill, rl.fillIntervalMs) : null,
    };
  }

  /** Routes for a redirected connection's original destination: a known service, or
   *  pass-through to the destination itself (an address outside the mesh). */
  lookup(ip: string, port: number): ServiceRoutes {
    const key = `${ip}:${port}`;
    const known = this.byDestination.get(key) ?? this.byEndpoint.get(key) ?? this.anyPortLookup(ip, port);
    if (known !== undefined) return known;
    let p = this.passthrough.get(key);
    if (p === undefined) {
      const c = this.clusterFor(`passthrough:${key}`);
      c.update([{ endpoint: { ip, port } }]);
      p = { service: `passthrough:${key}`, protocol: 'http', declared: 'detect', routes: [], fallback: plainAction('passthrough', c) };
      if (this.passthrough.size >= MAX_PASSTHROUGH) {
        const oldest = this.passthrough.keys().next().value!;
        this.passthrough.delete(oldest);
        this.generation++;
        this.clusters.get(`passthrough:${oldest}`)?.close();
        this.clusters.delete(`passthrough:${oldest}`);
      }
      this.passthrough.set(key, p);
    }
    return p;
  }

  private anyPortLookup(ip: string, port: number): ServiceRoutes | undefined {
    const w = this.anyPort.get(ip);
    if (w === undefined) return undefined;
    const key = `${ip}:${port}`;
    let r = this.anyPortRoutes.get(key);
    if (r === undefined) {
      const c = this.clusterFor(`direct-any:${key}`);
      c.update([{ endpoint: { ip, port, meta: w.meta } }]);
      r = { service: w.service, protocol: 'tcp', declared: 'tcp', routes: [], fallback: plainAction('direct', c) };
      if (this.anyPortRoutes.size >= MAX_PASSTHROUGH) {
        const oldest = this.anyPortRoutes.keys().next().value!;
        this.anyPortRoutes.delete(oldest);
        this.clusters.get(`direct-any:${oldest}`)?.close();
        this.clusters.delete(`direct-any:${oldest}`);
      }
      this.anyPortRoutes.set(key, r);
    }
    return r;
  }

  /** Known (service-backed) destination, or undefined. */
  known(ip: string, port: number): ServiceRoutes | undefined { return this.byDestination.get(`${ip}:${port}`); }

  cluster(name: string): Cluster | undefined { return this.clusters.get(name); }

  close(): void {
    for (const c of this.clusters.values()) { c.close(); for (const e of c.unique()) e.drain(); }
  }
}
