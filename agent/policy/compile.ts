// Policy set (+ workloads registered by agents at runtime) → versioned Snapshot.
// Deterministic: the same inputs give byte-identical output (lists sorted, no clocks in
// the hashed content), so the version — a content hash unless the caller names one, e.g.
// the git commit — only changes when something an agent would see changes.
import { WeftError } from '../lib/errors';
import type { LoadedObject } from './load';
import type { AuthorizationPolicyObject, ServiceObject, WorkloadObject } from './kinds';
import { analyze, refKey, selectorMatches, type Model } from './model';
import { buildRouteTables, type BuiltTable } from './routes';
import { allocateVips } from './vip';
import { durationMs } from './duration';
import { spiffeId } from './identity';
import { formatDiagnostic, sortDiagnostics, type Diagnostic } from './diagnostic';
import type {
  AuthorizationPolicyState, Endpoint, NodeReport, NodeState, ServicePortState, ServiceState, Snapshot, TrafficPolicyState,
  WorkloadRegistration, WorkloadState,
} from './snapshot';
import { registrationAllowed } from './snapshot';
import { contentHash } from './content-hash';

export interface CompileOptions {
  /** Names the snapshot (e.g. a git commit); default: a hash of the content. */
  version?: string;
  /** The previously served snapshot: its allocated VIPs are kept. */
  previous?: Snapshot;
  /** Clock for createdAt (tests). */
  now?: Date;
  /** Node addresses the agents reported (Sync hello), for nodes no Node object names. */
  nodes?: readonly NodeReport[];
}

const byKey = <T extends { key: string }>(a: T, b: T) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);

/** The semantic analysis of a set of objects: the model, its route tables and every
 *  cross-object problem. */
export interface SetAnalysis {
  model: Model;
  tables: BuiltTable[];
  diagnostics: Diagnostic[];
}

export function analyzeSet(objects: readonly LoadedObject[], invalid?: ReadonlySet<string>): SetAnalysis {
  const { model, diagnostics } = analyze(objects, invalid);
  return { model, tables: buildRouteTables(model, diagnostics), diagnostics };
}

/** A loaded policy set: what loadPolicyDir() returns. */
export interface PolicySet {
  objects: readonly LoadedObject[];
  diagnostics: readonly Diagnostic[];
  /** The analysis of `objects` when the loader already ran it: compile() reuses it
   *  rather than analysing every object a second time. */
  analysis?: SetAnalysis;
}

/** Throws WEFT_ERR_INVALID_POLICY (details.diagnostics) if the set has any error — from
 *  loading or from the semantic checks, which run again here: a bad set is rejected
 *  whole, never partly compiled. */
export function compile(set: PolicySet, registered: readonly WorkloadRegistration[] = [], opts: CompileOptions = {}): Snapshot {
  const { model, tables, diagnostics } = set.analysis ?? analyzeSet(set.objects);
  if (set.diagnostics.length || diagnostics.length) {
    const sorted = sortDiagnostics(set.diagnostics.length ? set.diagnostics : diagnostics);
    throw new WeftError('WEFT_ERR_INVALID_POLICY', `policy set has ${sorted.length} error(s); first: ${formatDiagnostic(sorted[0]!)}`, { details: { diagnostics: sorted } });
  }
  const workloads = compileWorkloads(model, registered);
  const services = compileServices(model, workloads, opts.previous);
  const content = {
    mesh: model.mesh,
    services,
    workloads,
    routes: tables.map((t) => t.table),
    trafficPolicies: compileTrafficPolicies(model, services),
    authorizationPolicies: compileAuthorization(model, services, workloads),
    nodes: compileNodes(model, workloads, opts.nodes ?? []),
  };
  return { version: opts.version ?? contentHash(content), createdAt: (opts.now ?? new Date()).toISOString(), ...content };
}

/** Services indexed by namespace and by one of their selector's label pairs, so matching
 *  10 000 workloads against 1 000 services looks at a handful of candidates each. */
export function selectorIndex(model: Model): (namespace: string, labels: Record<string, string>) => string[] {
  const index = new Map<string, LoadedObject<ServiceObject>[]>();
  for (const s of model.services.values()) {
    const sel = s.object.spec.selector;
    const first = Object.keys(sel).sort()[0];
    if (first === undefined) continue; // selects nothing
    const k = `${s.object.metadata.namespace}\u0000${first}\u0000${sel[first]}`;
    const list = index.get(k);
    if (list) list.push(s); else index.set(k, [s]);
  }
  return (namespace, labels) => {
    const out: string[] = [];
    for (const [lk, lv] of Object.entries(labels)) {
      for (const s of index.get(`${namespace}\u0000${lk}\u0000${lv}`) ?? []) {
        if (selectorMatches(s.object.spec.selector, labels)) out.push(s.key);
      }
    }
    return out.sort();
  };
}

function compileWorkloads(model: Model, registered: readonly WorkloadRegistration[]): WorkloadState[] {
  const td = model.mesh.trustDomain;
  const out = new Map<string, WorkloadState>();
  const servicesOf = selectorIndex(model);
  const add = (w: WorkloadRegistration, source: WorkloadState['source']) => {
    const key = `${w.namespace}/${w.name}`;
    if (out.has(key)) return; // a policy-file Workload wins over a registration of the same name
    out.set(key, workloadState(w, source, td, servicesOf));
  };
  for (const o of model.workloads.values()) add(fromObject(o), 'policy');
  // A registration counts only while MeshConfig lets its node register that namespace
  // and service account: withdrawing the grant withdraws the workload (and so its
  // identity and its place among Services' backends).
  for (const r of registered) if (registrationAllowed(model.mesh.registrations, r.node, r.namespace, r.serviceAccount ?? 'default')) add(r, 'registered');
  return [...out.values()].sort(byKey);
}

/** One workload's state: `servicesOf` is selectorIndex() of the model. */
export function workloadState(w: WorkloadRegistration, source: WorkloadState['source'], trustDomain: string, servicesOf: (namespace: string, labels: Record<string, string>) => string[]): WorkloadState {
  const sa = w.serviceAccount ?? 'default';
  const labels = w.labels ?? {};
  return {
    key: `${w.namespace}/${w.name}`, name: w.name, namespace: w.namespace, node: w.node, address: w.address, serviceAccount: sa,
    // A hostNetwork workload is outside the mesh: no identity, so no certificate.
    identity: w.hostNetwork ? '' : spiffeId(trustDomain, w.namespace, sa), labels, weight: w.weight ?? 1,
    ...(w.hostNetwork ? { hostNetwork: true as const } : {}), source, services: servicesOf(w.namespace, labels),
  };
}

export function fromObject(o: LoadedObject<WorkloadObject>): WorkloadRegistration {
  const { metadata, spec } = o.object;
  const r: WorkloadRegistration = { name: metadata.name, namespace: metadata.namespace as string, labels: metadata.labels ?? {}, address: spec.address, node: spec.node };
  if (spec.serviceAccount) r.serviceAccount = spec.serviceAccount;
  if (spec.weight) r.weight = spec.weight;
  if (spec.hostNetwork) r.hostNetwork = true;
  return r;
}

/** A workload's port for a service port: the number, or the workload's declared port of
 *  that name (undefined: the workload does not serve this port). Registered workloads
 *  declare no ports, so they serve numeric targetPorts only. */
function endpointPort(p: ServicePortState, declared: ReadonlyMap<string, number> | undefined): number | undefined {
  return p.targetPortName === undefined ? p.targetPort : declared?.get(p.targetPortName);
}

/** Node table: Node objects first (policy files, or the cluster's Nodes through
 *  Kubernetes discovery), then what agents reported, then, for a node only Workloads
 *  name, the address they all share (a VM whose workloads listen on the host's
 *  address); a node whose workloads have different addresses gets no entry from them
 *  (pods, or workloads in their own network namespaces: none of them is the node). */
export function compileNodes(model: Model, workloads: readonly WorkloadState[], reports: readonly NodeReport[]): NodeState[] {
  const out = new Map<string, NodeState>();
  for (const [name, o] of model.nodes) {
    const { address, zone } = o.object.spec;
    out.set(name, { name, address, ...(zone !== undefined ? { zone } : {}), source: 'policy' });
  }
  for (const r of reports) if (!out.has(r.node)) out.set(r.node, { name: r.node, address: r.address, source: 'agent' });
  const shared = new Map<string, string | null>();
  for (const w of workloads) {
    if (out.has(w.node)) continue;
    const seen = shared.get(w.node);
    shared.set(w.node, seen === undefined || seen === w.address ? w.address : null);
  }
  for (const [name, address] of shared) if (address !== null) out.set(name, { name, address, source: 'workload' });
  return [...out.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function compileServices(model: Model, workloads: WorkloadState[], previous: Snapshot | undefined): ServiceState[] {
  const svcs = [...model.services.values()];
  const taken = new Set(svcs.flatMap((s) => (s.object.spec.vip ? [s.object.spec.vip] : [])));
  const prev = new Map((previous?.services ?? []).filter((s) => s.vipAllocated).map((s) => [s.key, s.vip]));
  const allocated = allocateVips(model.vipRange, svcs.filter((s) => !s.object.spec.vip && !s.object.spec.headless).map((s) => s.key), taken, prev);
  const members = new Map<string, WorkloadState[]>();
  for (const w of workloads) {
    for (const k of w.services) {
      const list = members.get(k);
      if (list) list.push(w); else members.set(k, [w]);
    }
  }
  // Declared (named) ports of policy-file Workloads, for named targetPorts.
  const declared = new Map<string, Map<string, number>>();
  for (const w of model.workloads.values()) {
    const named = declaredPorts(w);
    if (named) declared.set(w.key, named);
  }
  return svcs.map((s) => serviceState(s, s.object.spec.headless ? '' : s.object.spec.vip ?? (allocated.get(s.key) as string), members.get(s.key) ?? [], (k) => declared.get(k)))
    .sort(byKey);
}

/** A policy-file Workload's named ports (for named targetPorts), if it declares any. */
export function declaredPorts(w: LoadedObject<WorkloadObject>): Map<string, number> | undefined {
  const named = (w.object.spec.ports ?? []).flatMap((p) => (p.name !== undefined ? [[p.name, p.port] as const] : []));
  return named.length ? new Map(named) : undefined;
}

/** One service's state: `vip` as allocated ('' when headless), `members` the workloads
 *  its selector matches sorted by key, `declared` a workload's named ports. */
export function serviceState(s: LoadedObject<ServiceObject>, vip: string, members: readonly WorkloadState[], declared: (workload: string) => ReadonlyMap<string, number> | undefined): ServiceState {
  const { metadata, spec } = s.object;
  const ports = spec.ports.map((p): ServicePortState => {
    const protocol = p.protocol ?? 'TCP';
    if (typeof p.targetPort === 'string') return { name: p.name, port: p.port, targetPort: 0, targetPortName: p.targetPort, protocol };
    return { name: p.name, port: p.port, targetPort: p.targetPort ?? p.port, protocol };
  });
  const hints = spec.zoneHints ?? {};
  const endpoints = members.map((w): Endpoint => {
    const own = declared(w.key);
    const forZones = Object.prototype.hasOwnProperty.call(hints, w.name) ? [...new Set(hints[w.name])].sort() : undefined;
    return {
      workload: w.key, node: w.node, address: w.address,
      ports: Object.fromEntries(ports.flatMap((p) => { const n = endpointPort(p, own); return n === undefined ? [] : [[p.name, n]]; })),
      namespace: w.namespace, serviceAccount: w.serviceAccount, identity: w.identity, labels: w.labels, weight: w.weight,
      ...(w.hostNetwork ? { hostNetwork: true as const } : {}),
      ...(forZones?.length ? { forZones } : {}),
    };
  });
  return {
    key: s.key, name: metadata.name, namespace: metadata.namespace as string,
    vip, vipAllocated: !spec.headless && !spec.vip,
    selector: spec.selector, ports, endpoints,
    ...(spec.headless ? { headless: true as const } : {}),
    ...(spec.sessionAffinity === 'ClientIP' ? { sessionAffinity: 'ClientIP' as const } : {}),
    ...(spec.internalTrafficPolicy === 'Local' ? { internalTrafficPolicy: 'Local' as const } : {}),
  };
}

/** Services with sessionAffinity ClientIP are balanced by Maglev over the calling
 *  workload (the kernel hashes its cgroup id, the L7 balancer its identity), unless a
 *  TrafficPolicy names another load balancer, which then wins. A Service without a
 *  TrafficPolicy gets an implicit one (key = the Service's key, `implicit` set). */
function compileTrafficPolicies(model: Model, services: readonly ServiceState[]): TrafficPolicyState[] {
  const affinity = new Set(services.filter((s) => s.sessionAffinity === 'ClientIP').map((s) => s.key));
  const implicit = [...affinity].filter((k) => !model.trafficPolicies.has(k))
    .map((service): TrafficPolicyState => ({ key: service, service, loadBalancer: 'MAGLEV', tls: 'MUTUAL', implicit: 'sessionAffinity' }));
  return [...model.trafficPolicies.entries()].map(([service, o]): TrafficPolicyState => {
    const s = o.object.spec;
    const lb = s.loadBalancer?.type ?? (affinity.has(service) ? 'MAGLEV' : 'P2C_PEAK_EWMA');
    const out: TrafficPolicyState = { key: o.key, service, loadBalancer: lb, tls: s.tls?.mode ?? 'MUTUAL' };
    if (s.connectionPool) {
      const { connectTimeout, ...limits } = s.connectionPool;
      out.connection = { ...limits, ...(connectTimeout ? { connectTimeoutMs: durationMs(connectTimeout) } : {}) };
    }
    if (s.outlierDetection) {
      const d = s.outlierDetection;
      // Istio's defaults: 5 consecutive 5xx (when no trigger is named), 10s interval, 30s
      // base ejection, 10% max ejection.
      const consecutive5xx = d.consecutive5xx ?? (d.consecutiveGatewayErrors === undefined ? 5 : undefined);
      out.outlierDetection = {
        ...(consecutive5xx !== undefined ? { consecutive5xx } : {}),
        ...(d.consecutiveGatewayErrors !== undefined ? { consecutiveGatewayErrors: d.consecutiveGatewayErrors } : {}),
        intervalMs: durationMs(d.interval ?? '10s'),
        baseEjectionTimeMs: durationMs(d.baseEjectionTime ?? '30s'),
        maxEjectionPercent: d.maxEjectionPercent ?? 10,
      };
    }
    if (s.retryBudget) out.retryBudget = { ratio: s.retryBudget.ratio, minRetriesPerSecond: s.retryBudget.minRetriesPerSecond ?? 10 };
    return out;
  }).concat(implicit).sort((a, b) => (a.service < b.service ? -1 : a.service > b.service ? 1 : 0));
}

function compileAuthorization(model: Model, services: ServiceState[], workloads: WorkloadState[]): AuthorizationPolicyState[] {
  const svcByKey = new Map(services.map((s) => [s.key, s]));
  return [...model.authorizationPolicies.values()].map((o): AuthorizationPolicyState => {
    const { spec } = o.object;
    let applies: string[];
    if (spec.targetRef) applies = (svcByKey.get(refKey(spec.targetRef, o))?.endpoints ?? []).map((e) => e.workload);
    else applies = workloads.filter((w) => authorizationSelects(o, w)).map((w) => w.key);
    const rules = (spec.rules ?? []).map((r) => ({
      from: (r.from ?? []).map((f) => ({
        principals: f.source.principals ?? [], notPrincipals: f.source.notPrincipals ?? [],
        namespaces: f.source.namespaces ?? [], notNamespaces: f.source.notNamespaces ?? [],
        ipBlocks: f.source.ipBlocks ?? [], notIpBlocks: f.source.notIpBlocks ?? [],
      })),
      to: (r.to ?? []).map((t) => ({
        ports: (t.operation.ports ?? []).map(String), methods: t.operation.methods ?? [],
        paths: t.operation.paths ?? [], notPaths: t.operation.notPaths ?? [],
      })),
      when: (r.when ?? []).map((w) => ({ key: w.key, values: w.values ?? [], notValues: w.notValues ?? [] })),
    }));
    const l7 = rules.some((r) => r.when.length > 0 || r.to.some((t) => t.methods.length + t.paths.length + t.notPaths.length > 0));
    return { key: o.key, action: spec.action ?? 'ALLOW', workloads: [...new Set(applies)].sort(), rules, l7 };
  }).sort(byKey);
}

/** Whether an AuthorizationPolicy without targetRef applies to the workload: its
 *  namespace's workloads, those its selector matches when it has one. */
export function authorizationSelects(o: LoadedObject<AuthorizationPolicyObject>, w: WorkloadState): boolean {
  if (w.namespace !== o.object.metadata.namespace) return false;
  const sel = o.object.spec.selector?.matchLabels;
  return sel === undefined || Object.keys(sel).every((k) => w.labels[k] === sel[k]);
}
