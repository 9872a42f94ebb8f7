// The policy kinds, each defined once as a schema value (see schema-builder.ts for why).
// Field shapes follow Gateway API (routes, parentRefs, backendRefs, filters, timeouts),
// Istio (AuthorizationPolicy, connection pool, outlier detection) and Linkerd (retry
// budget), so users of those projects recognise them.
import {
  array, boolean, integer, literal, number, object, optional, record, string, union,
  type Static, type TSchema,
} from './schema-builder';
import { DNS_SUBDOMAIN_MAX, DNS_SUBDOMAIN_PATTERN } from '../lib/names';

export const API_VERSION = 'weft.dev/v1alpha1';

// ------------------------------------------------------------------ shared pieces
// `title` names the format in error messages ("… is not a valid duration …").

const dnsLabel = string({ title: 'DNS label (lowercase letters, digits and "-", at most 63)', pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', maxLength: 63 });
/** Kubernetes node names and service account names are DNS subdomains. */
const dnsSubdomain = string({ title: 'DNS subdomain (lowercase letters, digits, "-" and ".", at most 253)', pattern: DNS_SUBDOMAIN_PATTERN, maxLength: DNS_SUBDOMAIN_MAX });
const ipv4 = string({ title: 'IPv4 address', pattern: '^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$' });
/** Go-style duration: "1.5s", "250ms", "1h30m". */
export const DURATION_PATTERN = '^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$';
const duration = string({ title: 'duration (e.g. "1.5s", "250ms")', pattern: DURATION_PATTERN });
const port = integer({ minimum: 1, maximum: 65535 });
const labelKey = '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$';
const labels = record(string({ maxLength: 63 }), { propertyNames: { title: 'label key', pattern: labelKey, maxLength: 253 } });
const percent = number({ minimum: 0, maximum: 100 });
const headerName = string({ title: 'HTTP header name', pattern: "^[A-Za-z0-9!#$%&'*+\\-.^_`|~]+$", maxLength: 256 });
/** RFC 9110 field-value characters: visible ASCII, space, tab and obs-text (0x80-0xFF).
 *  No CR, LF, NUL or other controls (a value with CR LF would add headers or end the
 *  head: request smuggling), nothing above U+00FF (the HTTP/1.1 writer encodes latin1,
 *  where U+010A becomes LF). */
export const HEADER_VALUE_PATTERN = '^[\\t\\x20-\\x7E\\x80-\\xFF]*$';
const headerValue = string({ title: 'HTTP header value (no CR, LF, NUL or other control characters, nothing above U+00FF)', pattern: HEADER_VALUE_PATTERN, maxLength: 4096 });

/** Node names are Kubernetes node names (DNS subdomains, e.g. ip-10-0-1-2.ec2.internal). */
const nodeMetadata = object({
  name: dnsSubdomain,
  namespace: optional(dnsLabel),
  labels: optional(labels),
  annotations: optional(record(string())),
});

const metadata = object({
  name: dnsLabel,
  namespace: optional(dnsLabel),
  labels: optional(labels),
  annotations: optional(record(string())),
});

function envelope<const K extends string, S>(kind: K, spec: TSchema<S>, description: string, meta = metadata) {
  return object({
    apiVersion: literal([API_VERSION]),
    kind: literal([kind]),
    metadata: meta,
    spec,
  }, { description });
}

// ------------------------------------------------------------------ Service

/** A named container port (Kubernetes IANA_SVC_NAME: at most 15 characters). */
const portName = string({ title: 'port name (lowercase letters, digits and "-", at most 15)', pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', maxLength: 15 });
/** Availability zones as Kubernetes names them (topology.kubernetes.io/zone values). */
const zone = string({ title: 'zone name', pattern: '^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$', maxLength: 63 });

const servicePort = object({
  name: dnsLabel,
  port,
  targetPort: optional(union(port, portName, { title: 'target port (1-65535, or the name of a port the workloads declare)', description: 'default: port. A name is resolved per workload, from its spec.ports, so different workloads may listen on different numbers; a workload that does not declare the name is not a backend of this port' })),
  protocol: optional(literal(['HTTP', 'HTTP2', 'GRPC', 'TCP', 'UDP'], { description: 'default TCP. A port number may appear twice, once over UDP and once over TCP (or HTTP, HTTP2, GRPC), as DNS on 53' })),
});

const serviceSpec = object({
  vip: optional(ipv4),
  headless: optional(boolean({ description: 'no VIP (Kubernetes clusterIP: None): nothing is balanced, clients reach the workloads by their own addresses; the Service is still listed and its workloads keep their identities, mTLS and authorization' })),
  selector: labels,
  ports: array(servicePort, { minItems: 1 }),
  sessionAffinity: optional(literal(['None', 'ClientIP'], { description: 'ClientIP: each calling workload keeps to one endpoint (Maglev over the caller, in the kernel and in the L7 balancer) for as long as the endpoint set allows, with no timeout' })),
  internalTrafficPolicy: optional(literal(['Cluster', 'Local'], { description: 'Local: a node balances only over the endpoints on that node; with none there, connections are refused' })),
  zoneHints: optional(record(array(zone, { minItems: 1 }), {
    description: 'EndpointSlice hints.forZones by Workload name (Kubernetes discovery fills it in): a node in zone Z balances over the endpoints hinted for Z, or over all of them when none is, or when some endpoint has no hint',
    propertyNames: { title: 'Workload name', pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', maxLength: 63 },
  })),
});

// ------------------------------------------------------------------ Workload

const workloadSpec = object({
  address: ipv4,
  node: dnsSubdomain,
  serviceAccount: optional(dnsSubdomain),
  weight: optional(integer({ minimum: 1, maximum: 10000, description: 'relative load-balancing weight, default 1' })),
  ports: optional(array(object({ name: optional(portName), port }), { minItems: 1, description: 'ports the workload listens on; when set, every selecting Service\'s numeric targetPort must be one of them, and named targetPorts are resolved here' })),
  hostNetwork: optional(boolean({ description: 'the workload shares its node\'s network (Kubernetes hostNetwork): it is a plaintext backend at the node\'s address, outside the mesh (no identity is issued for it); several such workloads may share one address' })),
});

// ------------------------------------------------------------------ Node

const nodeSpec = object({
  address: ipv4,
  zone: optional(zone),
});


// ------------------------------------------------------------------ routes

const parentRef = object({
  kind: optional(literal(['Service'])),
  name: dnsLabel,
  namespace: optional(dnsLabel),
  port: optional(port),
});

const backendRef = object({
  kind: optional(literal(['Service'])),
  name: dnsLabel,
  namespace: optional(dnsLabel),
  port: optional(port),
  weight: optional(integer({ minimum: 0, maximum: 1000000, description: 'default 1' })),
});

const stringMatch = {
  type: optional(literal(['Exact', 'RegularExpression'], { description: 'default Exact' })),
  name: headerName,
  value: string(),
};
const headerMatch = object(stringMatch);
const queryMatch = object({ ...stringMatch, name: string({ minLength: 1 }) });

const headerModifier = object({
  set: optional(array(object({ name: headerName, value: headerValue }))),
  add: optional(array(object({ name: headerName, value: headerValue }))),
  remove: optional(array(headerName)),
});

const filter = object({
  type: literal(['RequestHeaderModifier', 'ResponseHeaderModifier']),
  requestHeaderModifier: optional(headerModifier),
  responseHeaderModifier: optional(headerModifier),
});

const timeouts = object({ request: optional(duration), idle: optional(duration) });

export const RETRY_ON_HTTP = ['connect-failure', 'reset', '5xx', 'gateway-error', 'retriable-status-codes'] as const;
export const RETRY_ON_GRPC = ['connect-failure', 'reset', 'cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted', 'unavailable'] as const;

function retries<const O extends readonly string[]>(on: O, statusCodes: boolean) {
  return object({
    attempts: integer({ minimum: 0, maximum: 10 }),
    on: optional(array(literal(on), { minItems: 1 })),
    perTryTimeout: optional(duration),
    ...(statusCodes ? { retriableStatusCodes: optional(array(integer({ minimum: 100, maximum: 599 }), { minItems: 1 })) } : {}),
  });
}

const faultDelay = optional(object({ percent, fixedDelay: duration }));
const httpFault = object({ delay: faultDelay, abort: optional(object({ percent, httpStatus: integer({ minimum: 200, maximum: 599 }) })) });
const grpcFault = object({ delay: faultDelay, abort: optional(object({ percent, grpcStatus: integer({ minimum: 1, maximum: 16 }) })) });

const rateLimit = object({
  local: object({
    tokenBucket: object({
      maxTokens: integer({ minimum: 1 }),
      tokensPerFill: optional(integer({ minimum: 1, description: 'default 1' })),
      fillInterval: duration,
    }),
  }),
});

function ruleFields<M, R, F>(matches: TSchema<M>, retry: TSchema<R>, faults: TSchema<F>) {
  return {
    name: optional(dnsLabel),
    matches: optional(array(matches)),
    filters: optional(array(filter)),
    backendRefs: array(backendRef, { minItems: 1 }),
    timeouts: optional(timeouts),
    retries: optional(retry),
    fault: optional(faults),
    rateLimit: optional(rateLimit),
  };
}

const httpMatch = object({
  path: optional(object({
    type: optional(literal(['Exact', 'PathPrefix', 'RegularExpression'], { description: 'default PathPrefix' })),
    value: optional(string({ description: 'default "/"' })),
  })),
  method: optional(literal(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'])),
  headers: optional(array(headerMatch)),
  queryParams: optional(array(queryMatch)),
});

const httpRouteSpec = object({
  parentRefs: array(parentRef, { minItems: 1 }),
  rules: array(object(ruleFields(httpMatch, retries(RETRY_ON_HTTP, true), httpFault)), { minItems: 1 }),
});

const grpcMatch = object({
  method: optional(object({
    type: optional(literal(['Exact', 'RegularExpression'], { description: 'default Exact' })),
    service: optional(string({ minLength: 1 })),
    method: optional(string({ minLength: 1 })),
  }, { minProperties: 1 })),
  headers: optional(array(headerMatch)),
});

const grpcRouteSpec = object({
  parentRefs: array(parentRef, { minItems: 1 }),
  rules: array(object(ruleFields(grpcMatch, retries(RETRY_ON_GRPC, false), grpcFault)), { minItems: 1 }),
});

// ------------------------------------------------------------------ TrafficPolicy

const serviceTargetRef = object({ kind: optional(literal(['Service'])), name: dnsLabel, namespace: optional(dnsLabel) });

const trafficPolicySpec = object({
  targetRef: serviceTargetRef,
  loadBalancer: optional(object({ type: literal(['P2C_PEAK_EWMA', 'ROUND_ROBIN', 'LEAST_REQUEST', 'RANDOM', 'MAGLEV'], { description: 'default P2C_PEAK_EWMA. RANDOM and MAGLEV are done in the kernel when nothing else needs the agent; MAGLEV hashes the calling workload, so its connections and requests keep to one endpoint' }) })),
  tls: optional(object({ mode: literal(['MUTUAL', 'DISABLE']) })),
  connectionPool: optional(object({
    connectTimeout: optional(duration),
    maxConnections: optional(integer({ minimum: 1 })),
    maxPendingRequests: optional(integer({ minimum: 1 })),
    maxRequests: optional(integer({ minimum: 1, description: 'in-flight requests' })),
    maxRequestsPerConnection: optional(integer({ minimum: 1 })),
  })),
  outlierDetection: optional(object({
    consecutive5xx: optional(integer({ minimum: 1 })),
    consecutiveGatewayErrors: optional(integer({ minimum: 1 })),
    interval: optional(duration),
    baseEjectionTime: optional(duration),
    maxEjectionPercent: optional(integer({ minimum: 0, maximum: 100 })),
  })),
  retryBudget: optional(object({
    ratio: number({ minimum: 0, maximum: 1 }),
    minRetriesPerSecond: optional(integer({ minimum: 0 })),
  })),
});

// ------------------------------------------------------------------ AuthorizationPolicy

const stringList = optional(array(string({ minLength: 1 }), { minItems: 1 }));
const authzSource = object({
  principals: stringList, notPrincipals: stringList,
  namespaces: stringList, notNamespaces: stringList,
  ipBlocks: stringList, notIpBlocks: stringList,
}, { minProperties: 1 });
const authzOperation = object({
  ports: optional(array(union(port, string({ pattern: '^[1-9][0-9]{0,4}$' }), { title: 'port (1-65535)' }), { minItems: 1 })),
  methods: stringList,
  paths: stringList,
  notPaths: stringList,
}, { minProperties: 1 });

const authorizationPolicySpec = object({
  selector: optional(object({ matchLabels: labels })),
  targetRef: optional(serviceTargetRef),
  action: optional(literal(['ALLOW', 'DENY'], { description: 'default ALLOW' })),
  rules: optional(array(object({
    from: optional(array(object({ source: authzSource }), { minItems: 1 })),
    to: optional(array(object({ operation: authzOperation }), { minItems: 1 })),
    when: optional(array(object({ key: string({ minLength: 1 }), values: stringList, notValues: stringList }), { minItems: 1 })),
  }))),
});

// ------------------------------------------------------------------ MeshConfig

const meshConfigSpec = object({
  trustDomain: string({ title: 'trust domain (lowercase letters, digits, ".", "-", "_")', pattern: '^[a-z0-9._-]+$', maxLength: 255 }),
  mtls: optional(object({ mode: literal(['STRICT', 'PERMISSIVE']) })),
  certTTL: optional(duration),
  failMode: optional(literal(['open', 'closed'])),
  vipRange: optional(string({ title: 'IPv4 CIDR (e.g. 10.96.0.0/16)', pattern: '^[0-9.]+/[0-9]{1,2}$' })),
  clusterDomain: optional(string({ title: 'DNS domain of mesh service names (default cluster.local)', description: 'Agents answer NAME.NAMESPACE.svc.<clusterDomain> with the Service\'s VIP (weft agent --dns); --cluster-domain overrides it per node', pattern: '^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$', maxLength: 200 })),
  pathNormalization: optional(object({
    mergeSlashes: optional(boolean({ description: 'merge runs of "/" before routing and authorization (default true)' })),
    escapedSlashes: optional(literal(['REJECT', 'KEEP', 'UNESCAPE'], { description: '%2F and %5C in a path: 400 (REJECT, default), forwarded as they are (KEEP), or decoded to "/" (UNESCAPE)' })),
  }, { description: 'L7 request paths are normalized (dot segments, unreserved escapes) before routing and authorization, and forwarded normalized' })),
  registrations: optional(array(object({
    node: dnsSubdomain,
    namespaces: array(dnsLabel, { minItems: 1, description: 'namespaces this node may register workloads in' }),
    serviceAccounts: optional(array(dnsSubdomain, { minItems: 1, description: 'the service accounts it may register (default: any in those namespaces)' })),
  }), { description: 'Which workloads each node\'s agent may register at runtime (`weft run`), and so obtain the identities of: a node without an entry may register none. Pods (Kubernetes) and Workload objects are not registrations' })),
});

// ------------------------------------------------------------------ the kinds

export const kindSchemas = {
  Service: envelope('Service', serviceSpec, 'A set of workloads behind a virtual IP'),
  Workload: envelope('Workload', workloadSpec, 'A static endpoint (where no Kubernetes API lists the pods)'),
  HTTPRoute: envelope('HTTPRoute', httpRouteSpec, 'HTTP routing for a Service (Gateway API shape)'),
  GRPCRoute: envelope('GRPCRoute', grpcRouteSpec, 'gRPC routing for a Service (Gateway API shape)'),
  TrafficPolicy: envelope('TrafficPolicy', trafficPolicySpec, 'Load balancing, connection limits, outlier detection and retry budget for a Service'),
  AuthorizationPolicy: envelope('AuthorizationPolicy', authorizationPolicySpec, 'Who may call a workload (Istio shape)'),
  MeshConfig: envelope('MeshConfig', meshConfigSpec, 'Mesh-wide settings; at most one per policy set'),
  Node: envelope('Node', nodeSpec, 'A node\'s address (where other nodes open mTLS tunnels, port 15008) and zone; cluster-scoped (a namespace is ignored). Kubernetes discovery lists the cluster\'s Nodes; without Kubernetes, agents report their --node-address', nodeMetadata),
};

export type Kind = keyof typeof kindSchemas;
export const KINDS = Object.keys(kindSchemas) as Kind[];

export type ServiceObject = Static<typeof kindSchemas.Service>;
export type WorkloadObject = Static<typeof kindSchemas.Workload>;
export type HTTPRouteObject = Static<typeof kindSchemas.HTTPRoute>;
export type GRPCRouteObject = Static<typeof kindSchemas.GRPCRoute>;
export type TrafficPolicyObject = Static<typeof kindSchemas.TrafficPolicy>;
export type AuthorizationPolicyObject = Static<typeof kindSchemas.AuthorizationPolicy>;
export type MeshConfigObject = Static<typeof kindSchemas.MeshConfig>;
export type NodeObject = Static<typeof kindSchemas.Node>;
export type PolicyObject =
  | ServiceObject | WorkloadObject | HTTPRouteObject | GRPCRouteObject
  | TrafficPolicyObject | AuthorizationPolicyObject | MeshConfigObject | NodeObject;

export type HTTPMatch = Static<typeof httpMatch>;
export type GRPCMatch = Static<typeof grpcMatch>;
export type BackendRef = Static<typeof backendRef>;
export type Filter = Static<typeof filter>;
export type Metadata = Static<typeof metadata>;
