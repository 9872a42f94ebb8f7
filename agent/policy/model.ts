// The semantic view of a schema-valid policy set: objects indexed by key, mesh settings
// with defaults, and every cross-object problem (duplicates, unknown references, VIP and
// address clashes, bad CIDRs and principals) as diagnostics. `weft validate` prints the
// diagnostics; compile() refuses to run unless there are none, and builds on the indexes.
import type { Diagnostic } from './diagnostic';
import type { LoadedObject } from './load';
import type {
  AuthorizationPolicyObject, GRPCRouteObject, HTTPRouteObject, MeshConfigObject, NodeObject, PolicyObject, ServiceObject,
  TrafficPolicyObject, WorkloadObject,
} from './kinds';
import type { MeshSettings } from './snapshot';
import { cidrContains, hostRange, parseCidr, parseIPv4, type Cidr } from '../lib/ip';
import { durationMs } from './duration';
import { authzPathError, namespacePatternError, principalError } from './identity';

export type RouteObject = HTTPRouteObject | GRPCRouteObject;

export interface Model {
  mesh: MeshSettings;
  vipRange: Cidr;
  services: Map<string, LoadedObject<ServiceObject>>;
  workloads: Map<string, LoadedObject<WorkloadObject>>;
  /** By node name (Node is cluster-scoped). */
  nodes: Map<string, LoadedObject<NodeObject>>;
  routes: LoadedObject<RouteObject>[];
  /** By target Service key. */
  trafficPolicies: Map<string, LoadedObject<TrafficPolicyObject>>;
  authorizationPolicies: Map<string, LoadedObject<AuthorizationPolicyObject>>;
  /** "Kind/namespace/name" of objects that exist but failed the schema (see LoadResult). */
  invalid: ReadonlySet<string>;
}

/** True when a reference to Service `key` is broken, i.e. worth reporting: the Service
 *  neither exists nor was dropped for its own (already reported) schema errors. */
export function unknownService(model: Model, key: string): boolean {
  return !model.services.has(key) && !model.invalid.has(`Service/${key}`);
}

export const DEFAULT_MESH: MeshSettings = {
  trustDomain: 'weft.local', mtls: 'STRICT', certTtlMs: 24 * 3_600_000, failMode: 'closed', vipRange: '10.96.0.0/16',
};

/** "file:line:col" of an object's metadata.name, for "first defined at …" messages. */
export function whereIs(o: LoadedObject): string {
  const d = o.source.at(['metadata', 'name'], '');
  return `${d.file}:${d.line}:${d.col}`;
}

export function selectorMatches(selector: Record<string, string>, labels: Record<string, string> | undefined): boolean {
  const keys = Object.keys(selector);
  if (keys.length === 0) return false; // as in Kubernetes: no selector, no automatic endpoints
  return keys.every((k) => labels?.[k] === selector[k]);
}

/** "namespace/name" of a reference that may omit its namespace. */
export function refKey(ref: { name: string; namespace?: string }, from: LoadedObject): string {
  return `${ref.namespace ?? from.object.metadata.namespace}/${ref.name}`;
}

export function analyze(objects: readonly LoadedObject[], invalid: ReadonlySet<string> = new Set()): { model: Model; diagnostics: Diagnostic[] } {
  const diags: Diagnostic[] = [];

  // Duplicate names: the first definition (in file order) wins, later ones are errors.
  const seen = new Map<string, LoadedObject>();
  const unique: LoadedObject[] = [];
  for (const o of objects) {
    // Nodes are cluster-scoped: a namespace does not tell two of them apart.
    const name = o.kind === 'Node' ? o.object.metadata.name : o.key;
    const id = o.kind === 'MeshConfig' ? 'MeshConfig' : `${o.kind}/${name}`;
    const first = seen.get(id);
    if (first) {
      diags.push(o.kind === 'MeshConfig'
        ? o.source.at(['kind'], `only one MeshConfig is allowed per policy set (another is at ${whereIs(first)})`)
        : o.source.at(['metadata', 'name'], `duplicate ${o.kind} "${name}" (first defined at ${whereIs(first)})`));
      continue;
    }
    seen.set(id, o);
    unique.push(o);
  }

  const meshObj = unique.find((o) => o.kind === 'MeshConfig') as LoadedObject<MeshConfigObject> | undefined;
  const mesh = meshSettings(meshObj);
  if (mesh.certTtlMs < 60_000 && meshObj) diags.push(meshObj.source.at(['spec', 'certTTL'], `spec.certTTL: ${meshObj.object.spec.certTTL} is too short (at least 1m: certificates renew at half-life)`));
  let vipRange = parseCidr(mesh.vipRange) as Cidr;
  if (meshObj?.object.spec.vipRange !== undefined) {
    const r = parseCidr(meshObj.object.spec.vipRange);
    if (typeof r === 'string') { diags.push(meshObj.source.at(['spec', 'vipRange'], `spec.vipRange: ${r}`)); vipRange = parseCidr(DEFAULT_MESH.vipRange) as Cidr; }
    else if (r.prefix > 30) diags.push(meshObj.source.at(['spec', 'vipRange'], `spec.vipRange: /${r.prefix} is too small to allocate VIPs from (at most /30)`));
    else vipRange = r;
  }

  const of = <T extends PolicyObject>(kind: string) => unique.filter((o) => o.kind === kind) as unknown as LoadedObject<T>[];
  const model: Model = {
    mesh, vipRange,
    services: new Map(of<ServiceObject>('Service').map((o) => [o.key, o])),
    workloads: new Map(of<WorkloadObject>('Workload').map((o) => [o.key, o])),
    nodes: new Map(),
    routes: unique.filter((o) => o.kind === 'HTTPRoute' || o.kind === 'GRPCRoute') as LoadedObject<RouteObject>[],
    trafficPolicies: new Map(),
    authorizationPolicies: new Map(of<AuthorizationPolicyObject>('AuthorizationPolicy').map((o) => [o.key, o])),
    invalid,
  };

  for (const n of of<NodeObject>('Node')) model.nodes.set(n.object.metadata.name, n);
  checkServices(model, diags);
  checkWorkloads(model, diags);
  checkTrafficPolicies(model, of<TrafficPolicyObject>('TrafficPolicy'), diags);
  checkAuthorization(model, diags);
  return { model, diagnostics: diags };
}

function meshSettings(o: LoadedObject<MeshConfigObject> | undefined): MeshSettings {
  const s = o?.object.spec;
  return {
    trustDomain: s?.trustDomain ?? DEFAULT_MESH.trustDomain,
    mtls: s?.mtls?.mode ?? DEFAULT_MESH.mtls,
    certTtlMs: s?.certTTL ? durationMs(s.certTTL) : DEFAULT_MESH.certTtlMs,
    failMode: s?.failMode ?? DEFAULT_MESH.failMode,
    vipRange: s?.vipRange ?? DEFAULT_MESH.vipRange,
    ...(s?.clusterDomain ? { clusterDomain: s.clusterDomain } : {}),
    pathNormalization: { mergeSlashes: s?.pathNormalization?.mergeSlashes ?? true, escapedSlashes: s?.pathNormalization?.escapedSlashes ?? 'REJECT' },
    ...(s?.registrations ? {
      registrations: s.registrations.map((g) => ({ node: g.node, namespaces: [...g.namespaces], ...(g.serviceAccounts ? { serviceAccounts: [...g.serviceAccounts] } : {}) })),
    } : {}),
  };
}

/** The kernel's protocol of a Service port: (port, transport) identifies a port. */
function transport(p: { protocol?: string }): 'tcp' | 'udp' {
  return p.protocol === 'UDP' ? 'udp' : 'tcp';
}

function checkServices(model: Model, diags: Diagnostic[]): void {
  const vips = new Map<string, LoadedObject<ServiceObject>>();
  const needVip = [...model.services.values()].filter((s) => s.object.spec.vip === undefined && !s.object.spec.headless);
  const usable = hostRange(model.vipRange).count;
  const staticInRange = [...model.services.values()].filter((s) => s.object.spec.vip !== undefined && cidrContains(model.vipRange, parseIPv4(s.object.spec.vip) as number)).length;
  if (needVip.length > usable - staticInRange) {
    const first = needVip[0] as LoadedObject<ServiceObject>;
    diags.push(first.source.at(['spec'], `${needVip.length} Services need a VIP but the mesh VIP range ${model.mesh.vipRange} has only ${Math.max(0, usable - staticInRange)} free addresses`));
  }
  for (const svc of model.services.values()) {
    const { spec } = svc.object;
    if (spec.headless && spec.vip !== undefined) diags.push(svc.source.at(['spec', 'vip'], 'spec.vip: a headless Service has no VIP (remove spec.vip or spec.headless)'));
    if (spec.vip !== undefined) {
      const ip = parseIPv4(spec.vip) as number;
      const other = vips.get(spec.vip);
      if (other) diags.push(svc.source.at(['spec', 'vip'], `spec.vip: ${spec.vip} is already the VIP of Service "${other.key}" (${whereIs(other)})`));
      else vips.set(spec.vip, svc);
      if (!cidrContains(model.vipRange, ip)) diags.push(svc.source.at(['spec', 'vip'], `spec.vip: ${spec.vip} is outside the mesh VIP range ${model.mesh.vipRange}`));
    }
    const names = new Map<string, number>();
    // As in Kubernetes, a port number may be used once per transport (DNS: 53/UDP and
    // 53/TCP); HTTP, HTTP2 and GRPC ports are TCP.
    const ports = new Map<string, number>();
    spec.ports.forEach((p, i) => {
      const n = names.get(p.name);
      if (n !== undefined) diags.push(svc.source.at(['spec', 'ports', i, 'name'], `spec.ports[${i}].name: port name "${p.name}" is already used by spec.ports[${n}]`));
      else names.set(p.name, i);
      const id = `${p.port}/${transport(p)}`;
      const q = ports.get(id);
      if (q !== undefined) diags.push(svc.source.at(['spec', 'ports', i, 'port'], `spec.ports[${i}].port: port ${p.port} over ${transport(p).toUpperCase()} is already used by spec.ports[${q}]`));
      else ports.set(id, i);
    });
  }
}

function checkWorkloads(model: Model, diags: Diagnostic[]): void {
  const addrs = new Map<string, LoadedObject<WorkloadObject>>();
  for (const w of model.workloads.values()) {
    const { spec, metadata } = w.object;
    // hostNetwork workloads share their node's address (and each other's).
    const other = spec.hostNetwork ? undefined : addrs.get(spec.address);
    if (other) diags.push(w.source.at(['spec', 'address'], `spec.address: ${spec.address} is already the address of Workload "${other.key}" (${whereIs(other)})`));
    else if (!spec.hostNetwork) addrs.set(spec.address, w);
    if (cidrContains(model.vipRange, parseIPv4(spec.address) as number)) {
      diags.push(w.source.at(['spec', 'address'], `spec.address: ${spec.address} is inside the mesh VIP range ${model.mesh.vipRange}`));
    }
    if (!spec.ports) continue;
    const listening = new Set(spec.ports.map((p) => p.port));
    for (const svc of model.services.values()) {
      if (svc.object.metadata.namespace !== metadata.namespace || !selectorMatches(svc.object.spec.selector, metadata.labels)) continue;
      // Numbers only: a named targetPort the workload does not declare just means it is
      // not a backend of that port (Kubernetes' semantics).
      const missing = svc.object.spec.ports.map((p) => p.targetPort ?? p.port).filter((p): p is number => typeof p === 'number' && !listening.has(p));
      if (missing.length) {
        diags.push(w.source.at(['spec', 'ports'], `spec.ports: Service "${svc.key}" selects this workload but it does not listen on target port${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`));
      }
    }
  }
}

function checkTrafficPolicies(model: Model, list: LoadedObject<TrafficPolicyObject>[], diags: Diagnostic[]): void {
  for (const tp of list) {
    const target = refKey(tp.object.spec.targetRef, tp);
    if (!model.services.has(target)) {
      if (unknownService(model, target)) diags.push(tp.source.at(['spec', 'targetRef', 'name'], `spec.targetRef: unknown Service "${target}"`));
      continue;
    }
    const other = model.trafficPolicies.get(target);
    if (other) {
      diags.push(tp.source.at(['spec', 'targetRef', 'name'], `spec.targetRef: Service "${target}" already has TrafficPolicy "${other.key}" (${whereIs(other)}); merge them`));
      continue;
    }
    model.trafficPolicies.set(target, tp);
    if (tp.object.spec.tls?.mode === 'DISABLE' && model.mesh.mtls === 'STRICT') {
      diags.push(tp.source.at(['spec', 'tls', 'mode'], 'spec.tls.mode: DISABLE is not possible while MeshConfig mtls is STRICT (servers would reject plaintext)'));
    }
  }
}

/** The Istio condition keys weft evaluates (no JWT, so no request.auth.*). */
const AUTHZ_CONDITION_KEYS = [/^request\.headers\[[^\]\s]+\]$/, /^source\.(ip|namespace|principal)$/, /^destination\.(ip|port)$/];

function checkAuthorization(model: Model, diags: Diagnostic[]): void {
  for (const ap of model.authorizationPolicies.values()) {
    const { spec } = ap.object;
    if (spec.selector && spec.targetRef) diags.push(ap.source.at(['spec', 'targetRef'], 'spec: selector and targetRef are mutually exclusive'));
    if (spec.targetRef) {
      const target = refKey(spec.targetRef, ap);
      if (unknownService(model, target)) diags.push(ap.source.at(['spec', 'targetRef', 'name'], `spec.targetRef: unknown Service "${target}"`));
    }
    spec.rules?.forEach((rule, r) => {
      rule.from?.forEach((f, i) => {
        const at = ['spec', 'rules', r, 'from', i, 'source'];
        const check = (field: keyof typeof f.source, fn: (v: string) => string | null) => f.source[field]?.forEach((v, j) => {
          const err = fn(v);
          if (err) diags.push(ap.source.at([...at, field, j], `spec.rules[${r}].from[${i}].source.${field}[${j}]: ${err}`));
        });
        check('principals', principalError);
        check('notPrincipals', principalError);
        check('namespaces', namespacePatternError);
        check('notNamespaces', namespacePatternError);
        const cidr = (v: string) => { const c = parseCidr(v); return typeof c === 'string' ? c : null; };
        check('ipBlocks', cidr);
        check('notIpBlocks', cidr);
      });
      rule.when?.forEach((w, i) => {
        if (!AUTHZ_CONDITION_KEYS.some((re) => re.test(w.key))) {
          diags.push(ap.source.at(['spec', 'rules', r, 'when', i, 'key'], `spec.rules[${r}].when[${i}].key: unsupported condition key "${w.key}" (expected request.headers[<name>], source.ip, source.namespace, source.principal, destination.ip or destination.port)`));
        }
      });
      rule.to?.forEach((t, i) => {
        for (const field of ['paths', 'notPaths'] as const) {
          t.operation[field]?.forEach((v, j) => {
            const err = authzPathError(v);
            if (err) diags.push(ap.source.at(['spec', 'rules', r, 'to', i, 'operation', field, j], `spec.rules[${r}].to[${i}].operation.${field}[${j}]: ${err}`));
          });
        }
        t.operation.ports?.forEach((p, j) => {
          if (Number(p) > 65535) diags.push(ap.source.at(['spec', 'rules', r, 'to', i, 'operation', 'ports', j], `spec.rules[${r}].to[${i}].operation.ports[${j}]: ${p} is not a port (1-65535)`));
        });
      });
    });
  }
}
