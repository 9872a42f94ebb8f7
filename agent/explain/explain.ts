// `weft explain`: what happens to a connection or request from a workload to HOST:PORT,
// and why — which Service, which path (kernel fast path or userland), which route rule
// of which policy object, which backends with which weights and hops, and the
// authorization verdict with the deciding policy. It is a pure function of a compiled
// snapshot, reusing the very code the agent runs (forNode's path decision, the proxy's
// route tables and matcher, the authorizer), so the explanation cannot drift from the
// behaviour.
import { forNode } from '../policy/node-view';
import type { ServiceState, Snapshot, WorkloadState } from '../policy/snapshot';
import { L7Directory } from '../proxy/routing/directory';
import { matches, type RequestView } from '../proxy/routing/table';
import { PolicyAuthorizer, type AuthzDecision } from '../proxy/tunnel/authz';
import type { AuthzEngine } from '../proxy/authz/engine';
import { WeftError } from '../lib/errors';
import { DEFAULT_PATH_NORMALIZATION, normalizePath } from '../proxy/http/path';
import { DEFAULT_CLUSTER_DOMAIN } from '../dns/table';

export interface ExplainQuery {
  /** "namespace/name", or "name" in namespace "default". */
  from: string;
  /** A VIP, a workload address, or a Service's name: NAME.NAMESPACE, NAME.NAMESPACE.svc
   *  or NAME.NAMESPACE.svc.<cluster domain> (what the agents' DNS answers). */
  host: string;
  port: number;
  path?: string;
  method?: string;
  headers?: Record<string, string>;
}

export interface ExplainedEndpoint {
  workload: string;
  address: string;
  port: number;
  node: string;
  hop: 'same node (no encryption)' | 'mTLS tunnel' | 'plaintext (hostNetwork, outside the mesh)';
  authorization: AuthzDecision;
}

export interface ExplainedBackend {
  service: string;
  /** Share of requests, percent. */
  weight: number;
  endpoints: ExplainedEndpoint[];
}

export interface Explanation {
  version: string;
  from: { workload: string; node: string; identity: string };
  to: string;
  service: { key: string; port: number; portName: string; protocol: string; name?: string; vip?: string } | null;
  path: { mode: 'l4' | 'redirect' | 'not in the mesh'; reason: string };
  route: { object: string; rule: number } | { object: null; reason: string } | null;
  backends: ExplainedBackend[];
  /** One line: allowed/denied and by what. */
  verdict: string;
}

function findWorkload(snap: Snapshot, from: string): WorkloadState {
  const key = from.includes('/') ? from : `default/${from}`;
  const w = snap.workloads.find((x) => x.key === key);
  if (!w) throw new WeftError('WEFT_ERR_NOT_FOUND', `no workload ${key} in snapshot ${snap.version}`);
  return w;
}

/** The DNS name a Service answers to on the agents (agent/dns/table.ts). */
export function serviceDnsName(snap: Snapshot, s: Pick<ServiceState, 'name' | 'namespace'>): string {
  return `${s.name}.${s.namespace}.svc.${snap.mesh.clusterDomain ?? DEFAULT_CLUSTER_DOMAIN}`;
}

function findService(snap: Snapshot, host: string, port: number): ServiceState | undefined {
  const h = host.toLowerCase().replace(/\.$/, '');
  const domain = snap.mesh.clusterDomain ?? DEFAULT_CLUSTER_DOMAIN;
  const byName = /^([a-z0-9-]+)\.([a-z0-9-]+)(\.svc)?$/.exec(h.endsWith(`.svc.${domain}`) ? h.slice(0, -domain.length - 1) : h);
  return snap.services.find((s) => (byName ? s.name === byName[1] && s.namespace === byName[2] : s.vip === host) && s.ports.some((p) => p.port === port));
}

/** Per-request (L7) verdict with the deciding policy, by the same engine the agent's
 *  tunnel and inbound L7 proxy ask. */
function l7Decision(engine: AuthzEngine, workload: string, req: RequestView, principal: string, address: string, port: number): AuthzDecision {
  const d = engine.request(workload, { principal, destinationIp: address, destinationPort: port }, req);
  return { allowed: d.verdict === 'allow', ...(d.policy !== undefined ? { policy: d.policy } : {}), reason: d.reason };
}

/** The request as the proxy routes and authorizes it: its path normalized as the
 *  mesh's pathNormalization says (http/path.ts). */
function requestView(q: ExplainQuery, snap: Snapshot): RequestView {
  const [raw, query = ''] = (q.path ?? '/').split('?', 2) as [string, string?];
  const path = normalizePath(raw, snap.mesh.pathNormalization ?? DEFAULT_PATH_NORMALIZATION);
  if (path === null) throw new WeftError('WEFT_ERR_INVALID_ARG', `path ${raw}: the L7 proxy refuses it with 400 (malformed escape, encoded '/' or '\\', fragment...)`);
  const headers = Object.fromEntries(Object.entries(q.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
  return { method: (q.method ?? 'GET').toUpperCase(), path, query, header: (n) => headers[n] };
}

export function explain(snap: Snapshot, q: ExplainQuery): Explanation {
  const src = findWorkload(snap, q.from);
  const base = { version: snap.version, from: { workload: src.key, node: src.node, identity: src.identity }, to: `${q.host}:${q.port}` };
  const svc = findService(snap, q.host, q.port);
  if (svc?.headless) {
    return {
      ...base, service: null, route: null, backends: [],
      path: { mode: 'not in the mesh', reason: `Service ${svc.key} is headless (no VIP): clients resolve its workloads' addresses and connect to them directly; mTLS and authorization of those workloads still apply` },
      verdict: 'not decided by weft',
    };
  }
  if (!svc) {
    const w = snap.workloads.find((x) => x.address === q.host);
    return {
      ...base, service: null, route: null, backends: [],
      path: { mode: 'not in the mesh', reason: w ? `${q.host} is workload ${w.key}'s own address, not a Service VIP: the kernel leaves the connection alone` : `${q.host}:${q.port} is not a Service of this mesh: the connection is not touched` },
      verdict: 'not decided by weft',
    };
  }
  // A connection is TCP: of 53/UDP and 53/TCP, explain the TCP one.
  const port = svc.ports.find((p) => p.port === q.port && p.protocol !== 'UDP') ?? svc.ports.find((p) => p.port === q.port)!;
  const view = forNode(snap, src.node);
  const dp = view.datapath.find((d) => d.service === svc.key && d.port === q.port && d.portName === port.name)!;
  // The endpoints the source's node balances over (internalTrafficPolicy, topology hints).
  const seen = new Map(view.services.map((s) => [s.key, s]));
  const authorizer = new PolicyAuthorizer(snap.authorizationPolicies);
  // HTTP, HTTP2 and gRPC ports are authorized per request (methods, paths, headers).
  const l7 = port.protocol !== 'TCP' && port.protocol !== 'UDP';
  const services = new Map(snap.services.map((s) => [s.key, s]));

  // The route the proxy would take: the same tables and matcher as the agent.
  let route: Explanation['route'] = null;
  let targets: { service: ServiceState; port: number; weight: number }[] = [{ service: svc, port: q.port, weight: 100 }];
  const table = snap.routes.find((t) => t.service === svc.key && t.port === q.port);
  if (dp.mode === 'redirect' && table) {
    const dir = new L7Directory();
    try {
      dir.apply({ ...view, routes: [table] });
      const rt = dir.lookup(svc.vip, q.port);
      const i = rt.routes.findIndex((r) => matches(r.match, requestView(q, snap)));
      if (i >= 0) {
        const compiled = table.routes[i]!;
        route = { object: compiled.route, rule: compiled.rule };
        const total = compiled.backends.reduce((a, b) => a + b.weight, 0);
        targets = compiled.backends.map((b) => ({ service: services.get(b.service)!, port: b.port, weight: Math.round((b.weight / total) * 1000) / 10 }));
      } else {
        route = { object: null, reason: `no rule of ${[...new Set(table.routes.map((r) => r.route))].join(', ')} matches: the service's own endpoints` };
      }
    } finally {
      dir.close();
    }
  }

  const backends = targets.map((t): ExplainedBackend => {
    const tp = t.service.ports.find((p) => p.port === t.port && p.protocol !== 'UDP') ?? t.service.ports.find((p) => p.port === t.port)!;
    return {
      service: t.service.key, weight: t.weight,
      // An endpoint without this port (a named targetPort it does not declare) is no backend.
      endpoints: (seen.get(t.service.key) ?? t.service).endpoints.filter((e) => e.ports[tp.name] !== undefined).map((e): ExplainedEndpoint => {
        const epPort = e.ports[tp.name] as number;
        return {
          workload: e.workload, address: e.address, port: epPort, node: e.node,
          hop: e.node === src.node ? 'same node (no encryption)' : e.hostNetwork ? 'plaintext (hostNetwork, outside the mesh)' : 'mTLS tunnel',
          authorization: l7
            ? l7Decision(authorizer.engine, e.workload, requestView(q, snap), src.identity, e.address, epPort)
            : authorizer.authorize({ sourcePrincipal: src.identity, sourceNamespace: src.namespace, destinationWorkload: e.workload, destinationIp: e.address, destinationPort: epPort }),
        };
      }),
    };
  });
  const all = backends.flatMap((b) => b.endpoints);
  const denied = all.filter((e) => !e.authorization.allowed);
  const verdict = all.length === 0
    ? 'refused: the service has no endpoints (ECONNREFUSED at connect)'
    : denied.length === 0
      ? `allowed${[...new Set(all.map((e) => e.authorization.policy).filter(Boolean))].map((p) => ` by ${p}`).join(',')}`
      : denied.length === all.length
        ? `denied: ${denied[0]!.authorization.reason}`
        : `allowed to ${all.length - denied.length} of ${all.length} endpoints; denied on ${denied.map((e) => e.workload).join(', ')} (${denied[0]!.authorization.reason})`;
  return {
    ...base,
    service: { key: svc.key, port: q.port, portName: port.name, protocol: port.protocol, name: serviceDnsName(snap, svc), vip: svc.vip },
    path: { mode: dp.mode, reason: dp.mode === 'l4' ? `kernel fast path: ${dp.reason}` : `userland (agent outbound proxy): ${dp.reason}` },
    route, backends, verdict,
  };
}
