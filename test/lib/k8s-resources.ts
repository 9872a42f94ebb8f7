// The kinds the fake API server serves: where each lives in the URL space, whether it
// is namespaced, has a status subresource, and which fields a field selector may name
// (the real API server indexes only these; anything else is a 400).
export interface ResourceType {
  /** Plural, as in the URL: 'pods'. */
  resource: string;
  singular: string;
  /** '' for the core group. */
  group: string;
  version: string;
  kind: string;
  namespaced: boolean;
  hasStatus: boolean;
  shortNames: string[];
  /** Field selector labels beyond metadata.name / metadata.namespace. */
  fields: string[];
}

export const RESOURCES: readonly ResourceType[] = [
  { resource: 'namespaces', singular: 'namespace', group: '', version: 'v1', kind: 'Namespace', namespaced: false, hasStatus: true, shortNames: ['ns'], fields: ['status.phase'] },
  { resource: 'nodes', singular: 'node', group: '', version: 'v1', kind: 'Node', namespaced: false, hasStatus: true, shortNames: ['no'], fields: ['spec.unschedulable'] },
  {
    resource: 'pods', singular: 'pod', group: '', version: 'v1', kind: 'Pod', namespaced: true, hasStatus: true, shortNames: ['po'],
    fields: ['spec.nodeName', 'spec.restartPolicy', 'spec.schedulerName', 'spec.serviceAccountName', 'spec.hostNetwork', 'status.phase', 'status.podIP', 'status.nominatedNodeName'],
  },
  { resource: 'services', singular: 'service', group: '', version: 'v1', kind: 'Service', namespaced: true, hasStatus: true, shortNames: ['svc'], fields: ['spec.clusterIP', 'spec.type'] },
  { resource: 'endpointslices', singular: 'endpointslice', group: 'discovery.k8s.io', version: 'v1', kind: 'EndpointSlice', namespaced: true, hasStatus: false, shortNames: [], fields: ['addressType'] },
  // The control API's durable state when it runs replicated: the CA in a Secret, shared
  // documents in ConfigMaps or Secrets, leader election on a Lease.
  { resource: 'secrets', singular: 'secret', group: '', version: 'v1', kind: 'Secret', namespaced: true, hasStatus: false, shortNames: [], fields: ['type'] },
  { resource: 'configmaps', singular: 'configmap', group: '', version: 'v1', kind: 'ConfigMap', namespaced: true, hasStatus: false, shortNames: ['cm'], fields: [] },
  { resource: 'leases', singular: 'lease', group: 'coordination.k8s.io', version: 'v1', kind: 'Lease', namespaced: true, hasStatus: false, shortNames: [], fields: [] },
];

/** API groups besides the core group, in discovery order. */
export const API_GROUPS: readonly string[] = [...new Set(RESOURCES.filter((r) => r.group).map((r) => r.group))];

export function apiVersionOf(t: ResourceType): string {
  return t.group ? `${t.group}/${t.version}` : t.version;
}

/** '/api/v1' or '/apis/<group>/<version>'. */
export function groupPrefix(t: ResourceType): string {
  return t.group ? `/apis/${t.group}/${t.version}` : `/api/${t.version}`;
}

export function resourceType(resource: string): ResourceType {
  const t = RESOURCES.find((r) => r.resource === resource);
  if (!t) throw new Error(`unknown resource ${JSON.stringify(resource)} (have ${RESOURCES.map((r) => r.resource).join(', ')})`);
  return t;
}

/** URL path of a collection or an object (namespace ignored for cluster-scoped kinds). */
export function resourcePath(t: ResourceType, namespace?: string, name?: string, subresource?: string): string {
  let p = groupPrefix(t);
  if (t.namespaced && namespace) p += `/namespaces/${encodeURIComponent(namespace)}`;
  p += `/${t.resource}`;
  if (name !== undefined) p += `/${encodeURIComponent(name)}`;
  if (subresource) p += `/${subresource}`;
  return p;
}
