// Converts what the Kubernetes API lists (Services, EndpointSlices, Pods, Nodes) into weft
// policy objects of kinds Service, Workload and Node. Pure functions over plain objects, so the
// conversion is tested without any API server, and the watch machinery
// (kubernetes.ts) stays about connections only. The discovery model (Kubernetes) is kept
// apart from weft's model and converted here, at the boundary, as ztunnel does.
//
// Mapping, and why:
// - Pod → Workload: address = pod IP, node = spec.nodeName, serviceAccount, labels. Every
//   running pod with an IP is a Workload, ready or not, because a pod that is not ready
//   yet still makes outbound calls and needs its identity. Readiness only decides
//   whether the pod is a Service *backend*: ready pods carry READY_LABEL and Service
//   selectors require it (unless publishNotReadyAddresses), which is exactly
//   Kubernetes' own endpoint semantics expressed in weft's selector model.
// - hostNetwork pods become Workloads with spec.hostNetwork: valid backends at the node's
//   address, outside the mesh (no identity is issued for them; reached in plaintext).
// - A pod's Workload declares its ports (spec.ports): its named container ports, the
//   numbers its Services' EndpointSlices resolved for named targetPorts (they win: they
//   are kube-controller-manager's own resolution), and every numeric targetPort of a
//   Service that selects it (Kubernetes' containerPorts are informational, so a Service
//   may target an undeclared port). Named targetPorts are then resolved per workload by
//   the compiler: different pods may expose one name on different numbers.
// - Service → Service: vip = the IPv4 clusterIP, ports with their protocol taken from
//   appProtocol (Kubernetes' field for it) or, failing that, Istio's port-name prefix
//   convention ("http-", "grpc-"). Ports are keyed by (port, protocol), so kube-dns keeps
//   53/UDP and 53/TCP. sessionAffinity ClientIP and internalTrafficPolicy Local carry
//   over; EndpointSlice hints.forZones become spec.zoneHints (by Workload name).
// - Headless Services (clusterIP None) become headless weft Services: no VIP, nothing to
//   balance, but recorded (explain, authorization targetRef); their pods are Workloads
//   with identities like any other.
// - Node → Node: address = the first IPv4 InternalIP, else ExternalIP; zone from the
//   topology.kubernetes.io/zone label. Cross-node tunnels go to this address.
// - Left to kube-proxy (and skipped or ignored here): ExternalName Services, selector-less
//   Services (hand-managed endpoints), NodePort, LoadBalancer, externalIPs and
//   externalTrafficPolicy (traffic entering from outside the cluster).
import { createHash } from 'node:crypto';
import Ajv, { type ValidateFunction } from 'ajv';
import { stringify } from 'yaml';
import type { V1EndpointSlice, V1Node, V1Pod, V1Service, V1ServicePort } from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import { API_VERSION, kindSchemas, type NodeObject, type ServiceObject, type WorkloadObject } from '../policy/kinds';
import { parseIPv4 } from '../lib/ip';

/** Label weft adds to ready pods and requires in Service selectors. */
export const READY_LABEL = 'weft.dev/ready';
/** Annotations on discovered Workloads. */
export const POD_UID_ANNOTATION = 'weft.dev/pod-uid';
export const POD_NAME_ANNOTATION = 'weft.dev/pod-name';
/** Decimal cgroup v2 id of the pod, set where the node's agent resolved it. */
export const CGROUP_ID_ANNOTATION = 'weft.dev/cgroup-id';
/** EndpointSlices name their Service with this label. */
const SLICE_SERVICE_LABEL = 'kubernetes.io/service-name';
/** The zone label kubelet (or the cloud provider) sets on Nodes; the beta one before 1.17. */
export const ZONE_LABEL = 'topology.kubernetes.io/zone';
const ZONE_LABEL_BETA = 'failure-domain.beta.kubernetes.io/zone';

export interface ClusterState {
  services: V1Service[];
  endpointSlices: V1EndpointSlice[];
  pods: V1Pod[];
  /** Absent: nodes are not watched (an agent with localPodsOnly). */
  nodes?: V1Node[];
}

export interface Skipped {
  kind: 'Service' | 'Pod' | 'Node';
  /** namespace/name */
  key: string;
  reason: string;
}

export interface DiscoveredObjects {
  /** Sorted by namespace/name. */
  services: ServiceObject[];
  /** Sorted by namespace/name. */
  workloads: WorkloadObject[];
  /** Sorted by name. */
  nodes: NodeObject[];
}

export interface ConversionResult extends DiscoveredObjects {
  skipped: Skipped[];
}

/** Returns the pod's cgroup id when this process can resolve it (the pod's node). */
export type CgroupLookup = (pod: V1Pod) => bigint | undefined;

type PortProtocol = NonNullable<ServiceObject['spec']['ports'][number]['protocol']>;

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** An IPv4 address as the API server may write it (legacy leading zeros accepted). */
function isIPv4(s: string | undefined): s is string {
  return s !== undefined && parseIPv4(s, { leadingZeros: true }) !== null;
}

function keyOf(meta: { namespace?: string; name?: string } | undefined): string {
  return `${meta?.namespace ?? 'default'}/${meta?.name ?? ''}`;
}

function byKey<T extends { metadata: { name: string; namespace?: string } }>(a: T, b: T): number {
  const ka = keyOf(a.metadata);
  const kb = keyOf(b.metadata);
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

/**
 * Pod names are DNS subdomains (dots, up to 253 characters); weft object names are DNS
 * labels. Names that already fit are kept; others get dots replaced and, if too long, a
 * hash suffix so two long names with a common prefix stay distinct.
 */
export function workloadName(podName: string): string {
  if (DNS_LABEL.test(podName) && podName.length <= 63) return podName;
  const flat = podName.toLowerCase().replace(/[^a-z0-9-]/g, '-');
  const hash = createHash('sha256').update(podName).digest('hex').slice(0, 8);
  const head = flat.slice(0, 63 - 9).replace(/^-+|-+$/g, '') || 'pod';
  return `${head}-${hash}`;
}

/** appProtocol first (Kubernetes' field for it), then Istio's port-name prefixes. */
export function portProtocol(p: Pick<V1ServicePort, 'name' | 'protocol' | 'appProtocol'>): PortProtocol | undefined {
  if (p.protocol === 'UDP') return 'UDP';
  if (p.protocol === 'SCTP') return undefined;
  const app = p.appProtocol?.toLowerCase();
  if (app !== undefined) {
    if (app === 'http' || app === 'http/1.1') return 'HTTP';
    if (app === 'kubernetes.io/h2c' || app === 'h2c' || app === 'http2') return 'HTTP2';
    if (app === 'grpc') return 'GRPC';
    // tls, https, kubernetes.io/ws(s), mysql…: weft treats these as opaque TCP.
    return 'TCP';
  }
  const prefix = /^(http2|http|grpc)(-|$)/.exec(p.name ?? '')?.[1];
  return prefix === 'http' ? 'HTTP' : prefix === 'http2' ? 'HTTP2' : prefix === 'grpc' ? 'GRPC' : 'TCP';
}

function isPodReady(pod: V1Pod): boolean {
  if (pod.metadata?.deletionTimestamp) return false;
  return pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

function podIPv4(pod: V1Pod): string | undefined {
  const ips = [pod.status?.podIP, ...(pod.status?.podIPs ?? []).map((p) => p.ip)];
  return ips.find(isIPv4);
}

function selects(selector: Record<string, string>, labels: Record<string, string> | undefined): boolean {
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

/** A Service port's targetPort: a number, a name, or undefined (= port). */
function targetPortOf(port: V1ServicePort): number | string | undefined {
  const t = port.targetPort;
  if (t === undefined || t === null || t === '') return undefined;
  if (typeof t === 'number') return t;
  return /^\d+$/.test(t) ? Number(t) : t;
}

const NAMED_PORT = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** Per-pod facts the EndpointSlices of every Service carry, indexed once per conversion. */
interface SliceIndex {
  /** Pod key (namespace/name) → targetPort name → number (what the slices resolved). */
  namedPorts: Map<string, Map<string, number>>;
  /** Service key → pod name → hints.forZones. */
  hints: Map<string, Map<string, string[]>>;
}

function indexSlices(state: ClusterState): SliceIndex {
  const services = new Map(state.services.map((s) => [keyOf(s.metadata), s]));
  const namedPorts = new Map<string, Map<string, number>>();
  const hints = new Map<string, Map<string, string[]>>();
  for (const slice of state.endpointSlices) {
    const ns = slice.metadata?.namespace ?? 'default';
    const svcName = slice.metadata?.labels?.[SLICE_SERVICE_LABEL];
    if (!svcName || slice.addressType !== 'IPv4') continue;
    const svcKey = `${ns}/${svcName}`;
    const svc = services.get(svcKey);
    // Service port name → the targetPort name it stands for (named targetPorts only).
    const names = new Map<string, string>();
    for (const p of svc?.spec?.ports ?? []) {
      const t = targetPortOf(p);
      if (typeof t === 'string') names.set(p.name ?? '', t);
    }
    for (const ep of slice.endpoints ?? []) {
      const ref = ep.targetRef;
      if (ref?.kind !== 'Pod' || !ref.name || (ref.namespace ?? ns) !== ns) continue;
      const podKey = `${ns}/${ref.name}`;
      for (const sp of slice.ports ?? []) {
        const t = names.get(sp.name ?? '');
        if (t === undefined || typeof sp.port !== 'number') continue;
        let m = namedPorts.get(podKey);
        if (!m) namedPorts.set(podKey, (m = new Map()));
        m.set(t, sp.port);
      }
      const zones = (ep.hints?.forZones ?? []).map((z) => z.name).filter((z): z is string => typeof z === 'string' && z !== '');
      if (zones.length) {
        let m = hints.get(svcKey);
        if (!m) hints.set(svcKey, (m = new Map()));
        m.set(ref.name, zones);
      }
    }
  }
  return { namedPorts, hints };
}

let validators: Record<'Service' | 'Workload' | 'Node', ValidateFunction> | undefined;

/**
 * Kubernetes allows names weft's schema does not (node names and service accounts may be
 * DNS subdomains with dots, IPv6-only fields…). One such object in the set would make the
 * control API reject the whole snapshot, so each object is checked against its kind's
 * schema here and skipped, with the reason, if it does not fit.
 */
function schemaError(kind: 'Service' | 'Workload' | 'Node', obj: unknown): string | undefined {
  if (!validators) {
    const ajv = new Ajv({ allErrors: true, strict: false });
    validators = { Service: ajv.compile(kindSchemas.Service.schema), Workload: ajv.compile(kindSchemas.Workload.schema), Node: ajv.compile(kindSchemas.Node.schema) };
  }
  const v = validators[kind];
  return v(obj) ? undefined : (v.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''}`).join('; ');
}

function convertService(svc: V1Service, slices: SliceIndex, skipped: Skipped[]): ServiceObject | undefined {
  const key = keyOf(svc.metadata);
  const skip = (reason: string): undefined => { skipped.push({ kind: 'Service', key, reason }); return undefined; };
  const spec = svc.spec ?? {};
  if (spec.type === 'ExternalName') return skip('type ExternalName is a DNS alias: nothing to balance (left to cluster DNS)');
  if (!spec.selector || Object.keys(spec.selector).length === 0) return skip('no selector: hand-managed endpoints are not supported');
  const headless = spec.clusterIP === 'None';
  const vip = headless ? undefined : [...(spec.clusterIPs ?? []), spec.clusterIP].find(isIPv4);
  if (!headless && !vip) return skip('no IPv4 clusterIP (IPv6-only Services are not supported)');

  const ports: ServiceObject['spec']['ports'] = [];
  for (const p of spec.ports ?? []) {
    const protocol = portProtocol(p);
    if (!protocol) { skipped.push({ kind: 'Service', key, reason: `port ${p.port}: protocol ${p.protocol} not supported` }); continue; }
    const targetPort = targetPortOf(p);
    if (typeof targetPort === 'string' && (!NAMED_PORT.test(targetPort) || targetPort.length > 15)) {
      skipped.push({ kind: 'Service', key, reason: `port ${p.port}: targetPort '${targetPort}' is not a port name` });
      continue;
    }
    // Ports are keyed by (port, protocol), as in Kubernetes: kube-dns has 53/UDP and 53/TCP.
    ports.push({ name: p.name || `port-${p.port}${protocol === 'UDP' ? '-udp' : ''}`, port: p.port, ...(targetPort !== undefined ? { targetPort } : {}), protocol });
  }
  if (ports.length === 0) return skip(headless ? 'headless without ports: nothing to record (its pods are Workloads all the same)' : 'no usable ports');

  const selector = spec.publishNotReadyAddresses ? { ...spec.selector } : { ...spec.selector, [READY_LABEL]: 'true' };
  const hints = slices.hints.get(key);
  const zoneHints = hints?.size ? Object.fromEntries([...hints].map(([pod, zones]) => [workloadName(pod), [...new Set(zones)].sort()]).sort(([a], [b]) => (a! < b! ? -1 : a! > b! ? 1 : 0))) : undefined;
  const obj: ServiceObject = {
    apiVersion: API_VERSION,
    kind: 'Service',
    metadata: {
      name: svc.metadata?.name ?? '',
      namespace: svc.metadata?.namespace ?? 'default',
      ...(svc.metadata?.labels ? { labels: { ...svc.metadata.labels } } : {}),
    },
    spec: {
      ...(vip ? { vip } : {}),
      ...(headless ? { headless: true } : {}),
      selector, ports,
      ...(spec.sessionAffinity === 'ClientIP' ? { sessionAffinity: 'ClientIP' as const } : {}),
      ...(spec.internalTrafficPolicy === 'Local' ? { internalTrafficPolicy: 'Local' as const } : {}),
      ...(zoneHints ? { zoneHints } : {}),
    },
  };
  const invalid = schemaError('Service', obj);
  return invalid ? skip(`not a valid weft Service: ${invalid}`) : obj;
}

/** The ports a pod's Workload declares (see the header): named container ports, the
 *  slices' resolution of named targetPorts, numeric targetPorts of its Services. */
function podPorts(pod: V1Pod, state: ClusterState, slices: SliceIndex): NonNullable<WorkloadObject['spec']['ports']> {
  const named = new Map<string, number>();
  for (const c of pod.spec?.containers ?? []) {
    for (const cp of c.ports ?? []) {
      if (cp.name && NAMED_PORT.test(cp.name) && cp.name.length <= 15 && cp.protocol !== 'SCTP' && !named.has(cp.name)) named.set(cp.name, cp.containerPort);
    }
  }
  for (const [name, port] of slices.namedPorts.get(keyOf(pod.metadata)) ?? []) named.set(name, port);
  const numbers = new Set<number>();
  for (const s of state.services) {
    if (s.metadata?.namespace !== pod.metadata?.namespace || !s.spec?.selector || Object.keys(s.spec.selector).length === 0) continue;
    if (!selects(s.spec.selector, pod.metadata?.labels)) continue;
    for (const p of s.spec.ports ?? []) {
      const t = targetPortOf(p) ?? p.port;
      if (typeof t === 'number' && t >= 1 && t <= 65535) numbers.add(t);
    }
  }
  const out: NonNullable<WorkloadObject['spec']['ports']> = [...named].map(([name, port]) => ({ name, port }));
  for (const n of numbers) if (!out.some((p) => p.port === n)) out.push({ port: n });
  return out.sort((a, b) => a.port - b.port || ((a.name ?? '') < (b.name ?? '') ? -1 : 1));
}

function convertPod(pod: V1Pod, state: ClusterState, slices: SliceIndex, cgroupOf: CgroupLookup | undefined, skipped: Skipped[]): WorkloadObject | undefined {
  const key = keyOf(pod.metadata);
  const skip = (reason: string): undefined => { skipped.push({ kind: 'Pod', key, reason }); return undefined; };
  const hostNetwork = pod.spec?.hostNetwork === true;
  const phase = pod.status?.phase;
  if (phase !== 'Running' && phase !== 'Pending') return skip(`phase ${phase ?? 'unknown'}`);
  const node = pod.spec?.nodeName;
  if (!node) return skip('not scheduled yet');
  const address = podIPv4(pod);
  if (!address) return skip('no IPv4 pod IP yet');

  const uid = pod.metadata?.uid ?? '';
  const annotations: Record<string, string> = { [POD_UID_ANNOTATION]: uid, [POD_NAME_ANNOTATION]: pod.metadata?.name ?? '' };
  // A hostNetwork pod runs in the node's cgroups and network: not a mesh workload.
  const cgroupId = hostNetwork ? undefined : cgroupOf?.(pod);
  if (cgroupId !== undefined) annotations[CGROUP_ID_ANNOTATION] = cgroupId.toString();
  const labels = { ...(pod.metadata?.labels ?? {}) };
  if (isPodReady(pod)) labels[READY_LABEL] = 'true';
  const ports = podPorts(pod, state, slices);
  const obj: WorkloadObject = {
    apiVersion: API_VERSION,
    kind: 'Workload',
    metadata: { name: workloadName(pod.metadata?.name ?? ''), namespace: pod.metadata?.namespace ?? 'default', labels, annotations },
    spec: {
      address, node, serviceAccount: pod.spec?.serviceAccountName || 'default',
      ...(ports.length ? { ports } : {}),
      ...(hostNetwork ? { hostNetwork: true } : {}),
    },
  };
  const invalid = schemaError('Workload', obj);
  return invalid ? skip(`not a valid weft Workload: ${invalid}`) : obj;
}

function convertNode(n: V1Node, skipped: Skipped[]): NodeObject | undefined {
  const name = n.metadata?.name ?? '';
  const skip = (reason: string): undefined => { skipped.push({ kind: 'Node', key: name, reason }); return undefined; };
  const addresses = n.status?.addresses ?? [];
  const address = addresses.find((a) => a.type === 'InternalIP' && isIPv4(a.address))?.address
    ?? addresses.find((a) => a.type === 'ExternalIP' && isIPv4(a.address))?.address;
  if (!address) return skip('no IPv4 InternalIP or ExternalIP in status.addresses');
  const zone = n.metadata?.labels?.[ZONE_LABEL] ?? n.metadata?.labels?.[ZONE_LABEL_BETA];
  const obj: NodeObject = {
    apiVersion: API_VERSION,
    kind: 'Node',
    metadata: { name },
    spec: { address, ...(zone ? { zone } : {}) },
  };
  const invalid = schemaError('Node', obj);
  return invalid ? skip(`not a valid weft Node: ${invalid}`) : obj;
}

/** The weft objects for the current cluster state, and what was left out and why. */
export function toPolicyObjects(state: ClusterState, cgroupOf?: CgroupLookup): ConversionResult {
  const skipped: Skipped[] = [];
  const slices = indexSlices(state);
  const services = state.services.flatMap((s) => convertService(s, slices, skipped) ?? []).sort(byKey);
  const workloads = state.pods.flatMap((p) => convertPod(p, state, slices, cgroupOf, skipped) ?? []).sort(byKey);
  const nodes = (state.nodes ?? []).flatMap((n) => convertNode(n, skipped) ?? [])
    .sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0));
  return { services, workloads, nodes, skipped };
}

/**
 * The objects as policy "files" for agent/policy's loadPolicyTexts(), one per object and
 * named after it (`kubernetes/Service/shop/catalog.yaml`), so a diagnostic about a
 * discovered object says which Kubernetes object it came from.
 */
export function toPolicyTexts(objects: DiscoveredObjects): { file: string; text: string }[] {
  return [
    ...[...objects.services, ...objects.workloads].map((o) => ({
      file: `kubernetes/${o.kind}/${o.metadata.namespace ?? 'default'}/${o.metadata.name}.yaml`,
      text: stringify(o),
    })),
    ...(objects.nodes ?? []).map((o) => ({ file: `kubernetes/Node/${o.metadata.name}.yaml`, text: stringify(o) })),
  ];
}
