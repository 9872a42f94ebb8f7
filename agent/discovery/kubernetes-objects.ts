// Converts what the Kubernetes API lists (Services, EndpointSlices, Pods) into weft policy
// objects of kinds Service and Workload. Pure functions over plain objects, so the
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
// - hostNetwork pods are skipped: they share the node's address, so an address cannot
//   name one of them (the weft agent itself is one).
// - Service → Service: vip = the IPv4 clusterIP, ports with their protocol taken from
//   appProtocol (Kubernetes' field for it) or, failing that, Istio's port-name prefix
//   convention ("http-", "grpc-"). Named targetPorts are resolved through the Service's
//   EndpointSlices (which carry the numbers kube-controller-manager resolved), then
//   through the selected pods' container ports.
// - Headless, ExternalName and selector-less Services are skipped with a reason: weft
//   needs a VIP to capture and a selector to find backends.
import { createHash } from 'node:crypto';
import Ajv, { type ValidateFunction } from 'ajv';
import { stringify } from 'yaml';
import type { V1EndpointSlice, V1Pod, V1Service, V1ServicePort } from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import { API_VERSION, kindSchemas, type ServiceObject, type WorkloadObject } from '../policy/kinds';

/** Label weft adds to ready pods and requires in Service selectors. */
export const READY_LABEL = 'weft.dev/ready';
/** Annotations on discovered Workloads. */
export const POD_UID_ANNOTATION = 'weft.dev/pod-uid';
export const POD_NAME_ANNOTATION = 'weft.dev/pod-name';
/** Decimal cgroup v2 id of the pod, set where the node's agent resolved it. */
export const CGROUP_ID_ANNOTATION = 'weft.dev/cgroup-id';
/** EndpointSlices name their Service with this label. */
const SLICE_SERVICE_LABEL = 'kubernetes.io/service-name';

export interface ClusterState {
  services: V1Service[];
  endpointSlices: V1EndpointSlice[];
  pods: V1Pod[];
}

export interface Skipped {
  kind: 'Service' | 'Pod';
  /** namespace/name */
  key: string;
  reason: string;
}

export interface DiscoveredObjects {
  /** Sorted by namespace/name. */
  services: ServiceObject[];
  /** Sorted by namespace/name. */
  workloads: WorkloadObject[];
}

export interface ConversionResult extends DiscoveredObjects {
  skipped: Skipped[];
}

/** Returns the pod's cgroup id when this process can resolve it (the pod's node). */
export type CgroupLookup = (pod: V1Pod) => bigint | undefined;

type PortProtocol = NonNullable<ServiceObject['spec']['ports'][number]['protocol']>;

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

function isIPv4(s: string | undefined): s is string {
  const m = s === undefined ? null : IPV4.exec(s);
  return m !== null && m.slice(1).every((o) => Number(o) <= 255);
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

function resolveTargetPort(svc: V1Service, port: V1ServicePort, state: ClusterState): number | undefined {
  const t = port.targetPort;
  if (t === undefined || t === null) return undefined;
  if (typeof t === 'number') return t;
  if (/^\d+$/.test(t)) return Number(t);
  const ns = svc.metadata?.namespace;
  const name = svc.metadata?.name;
  for (const slice of state.endpointSlices) {
    if (slice.metadata?.namespace !== ns || slice.metadata?.labels?.[SLICE_SERVICE_LABEL] !== name) continue;
    const hit = slice.ports?.find((sp) => (sp.name ?? '') === (port.name ?? '') && typeof sp.port === 'number');
    if (hit?.port !== undefined) return hit.port;
  }
  const selector = svc.spec?.selector ?? {};
  for (const pod of state.pods) {
    if (pod.metadata?.namespace !== ns || !selects(selector, pod.metadata?.labels)) continue;
    for (const c of pod.spec?.containers ?? []) {
      const cp = c.ports?.find((p) => p.name === t);
      if (cp) return cp.containerPort;
    }
  }
  return undefined;
}

let validators: Record<'Service' | 'Workload', ValidateFunction> | undefined;

/**
 * Kubernetes allows names weft's schema does not (node names and service accounts may be
 * DNS subdomains with dots, IPv6-only fields…). One such object in the set would make the
 * control API reject the whole snapshot, so each object is checked against its kind's
 * schema here and skipped, with the reason, if it does not fit.
 */
function schemaError(kind: 'Service' | 'Workload', obj: unknown): string | undefined {
  if (!validators) {
    const ajv = new Ajv({ allErrors: true, strict: false });
    validators = { Service: ajv.compile(kindSchemas.Service.schema), Workload: ajv.compile(kindSchemas.Workload.schema) };
  }
  const v = validators[kind];
  return v(obj) ? undefined : (v.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''}`).join('; ');
}

function convertService(svc: V1Service, state: ClusterState, skipped: Skipped[]): ServiceObject | undefined {
  const key = keyOf(svc.metadata);
  const skip = (reason: string): undefined => { skipped.push({ kind: 'Service', key, reason }); return undefined; };
  const spec = svc.spec ?? {};
  if (spec.type === 'ExternalName') return skip('type ExternalName has no endpoints to balance');
  if (spec.clusterIP === 'None') return skip('headless (clusterIP None): clients reach pods directly, there is no VIP to capture');
  if (!spec.selector || Object.keys(spec.selector).length === 0) return skip('no selector: hand-managed endpoints are not supported');
  const vip = [...(spec.clusterIPs ?? []), spec.clusterIP].find(isIPv4);
  if (!vip) return skip('no IPv4 clusterIP (IPv6-only Services are not supported)');

  const ports: ServiceObject['spec']['ports'] = [];
  for (const p of spec.ports ?? []) {
    const protocol = portProtocol(p);
    if (!protocol) { skipped.push({ kind: 'Service', key, reason: `port ${p.port}: protocol ${p.protocol} not supported` }); continue; }
    // Kubernetes keys a Service port by (port, protocol) — kube-dns has 53/UDP and 53/TCP —
    // weft by port number alone: the first one listed is kept.
    if (ports.some((x) => x.port === p.port)) {
      skipped.push({ kind: 'Service', key, reason: `port ${p.port}/${p.protocol ?? 'TCP'}: weft Services key ports by number and ${p.port} is already mapped` });
      continue;
    }
    const targetPort = resolveTargetPort(svc, p, state);
    if (p.targetPort !== undefined && targetPort === undefined) {
      skipped.push({ kind: 'Service', key, reason: `port ${p.port}: named targetPort '${p.targetPort}' matches no endpoint or container port` });
      continue;
    }
    ports.push({ name: p.name || `port-${p.port}`, port: p.port, ...(targetPort !== undefined ? { targetPort } : {}), protocol });
  }
  if (ports.length === 0) return skip('no usable ports');

  const selector = spec.publishNotReadyAddresses ? { ...spec.selector } : { ...spec.selector, [READY_LABEL]: 'true' };
  const obj: ServiceObject = {
    apiVersion: API_VERSION,
    kind: 'Service',
    metadata: {
      name: svc.metadata?.name ?? '',
      namespace: svc.metadata?.namespace ?? 'default',
      ...(svc.metadata?.labels ? { labels: { ...svc.metadata.labels } } : {}),
    },
    spec: { vip, selector, ports },
  };
  const invalid = schemaError('Service', obj);
  return invalid ? skip(`not a valid weft Service: ${invalid}`) : obj;
}

function convertPod(pod: V1Pod, cgroupOf: CgroupLookup | undefined, skipped: Skipped[]): WorkloadObject | undefined {
  const key = keyOf(pod.metadata);
  const skip = (reason: string): undefined => { skipped.push({ kind: 'Pod', key, reason }); return undefined; };
  if (pod.spec?.hostNetwork) return skip('hostNetwork: shares the node address');
  const phase = pod.status?.phase;
  if (phase !== 'Running' && phase !== 'Pending') return skip(`phase ${phase ?? 'unknown'}`);
  const node = pod.spec?.nodeName;
  if (!node) return skip('not scheduled yet');
  const address = podIPv4(pod);
  if (!address) return skip('no IPv4 pod IP yet');

  const uid = pod.metadata?.uid ?? '';
  const annotations: Record<string, string> = { [POD_UID_ANNOTATION]: uid, [POD_NAME_ANNOTATION]: pod.metadata?.name ?? '' };
  const cgroupId = cgroupOf?.(pod);
  if (cgroupId !== undefined) annotations[CGROUP_ID_ANNOTATION] = cgroupId.toString();
  const labels = { ...(pod.metadata?.labels ?? {}) };
  if (isPodReady(pod)) labels[READY_LABEL] = 'true';
  const obj: WorkloadObject = {
    apiVersion: API_VERSION,
    kind: 'Workload',
    metadata: { name: workloadName(pod.metadata?.name ?? ''), namespace: pod.metadata?.namespace ?? 'default', labels, annotations },
    spec: { address, node, serviceAccount: pod.spec?.serviceAccountName || 'default' },
  };
  const invalid = schemaError('Workload', obj);
  return invalid ? skip(`not a valid weft Workload: ${invalid}`) : obj;
}

/** The weft objects for the current cluster state, and what was left out and why. */
export function toPolicyObjects(state: ClusterState, cgroupOf?: CgroupLookup): ConversionResult {
  const skipped: Skipped[] = [];
  const services = state.services.flatMap((s) => convertService(s, state, skipped) ?? []).sort(byKey);
  const workloads = state.pods.flatMap((p) => convertPod(p, cgroupOf, skipped) ?? []).sort(byKey);
  return { services, workloads, skipped };
}

/**
 * The objects as policy "files" for agent/policy's loadPolicyTexts(), one per object and
 * named after it (`kubernetes/Service/shop/catalog.yaml`), so a diagnostic about a
 * discovered object says which Kubernetes object it came from.
 */
export function toPolicyTexts(objects: DiscoveredObjects): { file: string; text: string }[] {
  return [...objects.services, ...objects.workloads].map((o) => ({
    file: `kubernetes/${o.kind}/${o.metadata.namespace ?? 'default'}/${o.metadata.name}.yaml`,
    text: stringify(o),
  }));
}
