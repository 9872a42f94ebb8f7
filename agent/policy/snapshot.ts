// The compiled, versioned policy snapshot: what `weft control` serves and node agents
// consume. It is the boundary between the policy model (YAML kinds, agent/policy/types.ts)
// and everything downstream (gRPC sync, datapath maps, L7 proxy, authorization), so it is
// plain JSON-serialisable data: no classes, no Maps, no bigint, no undefined-vs-missing
// distinctions that a JSON round trip would lose. Durations are integer milliseconds,
// references between objects are "namespace/name" keys, and every list is sorted so the
// same input always serialises to the same bytes (the version is a hash of those bytes).

/** "namespace/name" — the key of a Service, Workload or policy object. */
export type ObjectKey = string;

export type MtlsMode = 'STRICT' | 'PERMISSIVE';
export type FailMode = 'open' | 'closed';
export type PortProtocol = 'HTTP' | 'HTTP2' | 'GRPC' | 'TCP' | 'UDP';

export interface Snapshot {
  /** Content hash of everything below except createdAt, or a caller-given name (a git
   *  commit) when the source provides one. Agents ACK/NACK by this string. */
  version: string;
  /** ISO-8601 time of compilation; informational, not part of the content hash. */
  createdAt: string;
  mesh: MeshSettings;
  /** Sorted by key. */
  services: ServiceState[];
  /** Policy-file Workloads and agent-registered workloads, sorted by key. */
  workloads: WorkloadState[];
  /** One merged table per (service, port) that has HTTPRoutes or GRPCRoutes attached,
   *  sorted by service key then port. */
  routes: RouteTable[];
  /** Resolved per target Service, sorted by service key. */
  trafficPolicies: TrafficPolicyState[];
  /** Sorted by key. */
  authorizationPolicies: AuthorizationPolicyState[];
  /** Every node weft knows an address for, sorted by name (see NodeState). */
  nodes: NodeState[];
}

/** Where a node is reached (cross-node traffic goes to its address on 15008, the pod or
 *  workload address being the CONNECT target) and its zone (topology hints). */
export interface NodeState {
  /** The node name (a DNS subdomain, e.g. ip-10-0-1-2.ec2.internal). */
  name: string;
  address: string;
  zone?: string;
  /** Where the address came from, by precedence: a Node object ('policy': a policy file
   *  or, with --kubernetes, the cluster's Node: InternalIP, else ExternalIP), the
   *  agent's own report at Sync (its --node-address), or, for a node neither names,
   *  the one address every Workload on it shares ('workload': VMs whose workloads run
   *  on the host's network). A node whose workloads have several addresses and that
   *  nothing else names has no entry. */
  source: 'policy' | 'agent' | 'workload';
}

/** What agents report about their node when they connect (Sync hello). */
export interface NodeReport {
  node: string;
  address: string;
}

export interface MeshSettings {
  trustDomain: string;
  mtls: MtlsMode;
  /** Workload certificate lifetime; agents renew at half-life. */
  certTtlMs: number;
  /** What an agent does when it has no valid snapshot/policy for a connection. */
  failMode: FailMode;
  /** CIDR that Service VIPs are allocated from when a Service names none. */
  vipRange: string;
  /** MeshConfig spec.clusterDomain: the DNS domain of mesh names (absent: cluster.local,
   *  or the agent's --cluster-domain). */
  clusterDomain?: string;
  /** How L7 proxies normalize request paths (compile always sets it; absent in views
   *  from older control planes: agents then use the defaults). */
  pathNormalization?: { mergeSlashes: boolean; escapedSlashes: 'REJECT' | 'KEEP' | 'UNESCAPE' };
  /** MeshConfig spec.registrations: what each node may register at runtime (absent or
   *  no entry for a node: nothing). */
  registrations?: RegistrationGrant[];
}

export interface RegistrationGrant {
  node: string;
  namespaces: string[];
  /** Absent: any service account of those namespaces. */
  serviceAccounts?: string[];
}

/** Whether MeshConfig lets `node` register a workload of this namespace and service account. */
export function registrationAllowed(grants: readonly RegistrationGrant[] | undefined, node: string, namespace: string, serviceAccount: string): boolean {
  return (grants ?? []).some((g) => g.node === node && g.namespaces.includes(namespace) && (g.serviceAccounts === undefined || g.serviceAccounts.includes(serviceAccount)));
}

export interface ServicePortState {
  name: string;
  /** Port on the VIP. */
  port: number;
  /** Port on the workload (defaults to `port`) when the Service names a number; 0 when
   *  it names a port (targetPortName): each endpoint then has its own number in
   *  `Endpoint.ports`, and an endpoint without one is not a backend of this port. */
  targetPort: number;
  /** A named targetPort, resolved per endpoint from the workload's declared ports. */
  targetPortName?: string;
  protocol: PortProtocol;
}

/** Kernel protocol of a service port: (port, transport) is what identifies a service
 *  port, as in Kubernetes (kube-dns serves 53 over UDP and over TCP). */
export function transportOf(protocol: PortProtocol): 'tcp' | 'udp' {
  return protocol === 'UDP' ? 'udp' : 'tcp';
}

export interface Endpoint {
  workload: ObjectKey;
  node: string;
  address: string;
  /** Workload port per service port name (the service port's targetPort, a named one
   *  resolved for this workload). A port missing here is one the workload does not
   *  serve: it is not a backend of it. */
  ports: Record<string, number>;
  namespace: string;
  serviceAccount: string;
  /** SPIFFE ID: spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>. */
  identity: string;
  labels: Record<string, string>;
  /** Relative load-balancing weight (Workload spec.weight, default 1). */
  weight: number;
  /** A hostNetwork workload: not in the mesh, reached in plaintext at its address (the
   *  node's), never through a tunnel; `identity` is "". */
  hostNetwork?: true;
  /** Topology hints (EndpointSlice hints.forZones): the zones whose nodes should use
   *  this endpoint. See endpointsForNode(). */
  forZones?: string[];
}

export interface ServiceState {
  key: ObjectKey;
  name: string;
  namespace: string;
  /** "" for a headless Service. */
  vip: string;
  /** True when the VIP came from MeshConfig.vipRange rather than the Service spec. */
  vipAllocated: boolean;
  selector: Record<string, string>;
  ports: ServicePortState[];
  /** Workloads whose labels match the selector, sorted by workload key: every node's,
   *  in the snapshot and in service resources; a NodeView keeps the ones the node
   *  balances over (internalTrafficPolicy, topology hints: endpointsForNode()). */
  endpoints: Endpoint[];
  /** No VIP (clusterIP None): kept in the snapshot (explain, authorization targetRef),
   *  never in a node's view or the datapath, since there is nothing to balance. */
  headless?: true;
  /** ClientIP: balanced by Maglev over the calling workload (kernel and L7). */
  sessionAffinity?: 'ClientIP';
  /** Local: each node balances only over its own endpoints. */
  internalTrafficPolicy?: 'Local';
}

export interface WorkloadState {
  key: ObjectKey;
  name: string;
  namespace: string;
  node: string;
  address: string;
  serviceAccount: string;
  identity: string;
  labels: Record<string, string>;
  weight: number;
  /** A hostNetwork workload (see Endpoint.hostNetwork): no identity ("") and never in
   *  a node's localWorkloads, so no certificate is issued for it. */
  hostNetwork?: true;
  /** Where the workload came from: a policy file, or an agent's runtime registration. */
  source: 'policy' | 'registered';
  /** Keys of the Services whose selector matches this workload, sorted. */
  services: ObjectKey[];
}

/** What agents send when they register a workload started with `weft run` (nodes
 *  without Kubernetes). It has the same fields as a Workload policy object. */
export interface WorkloadRegistration {
  name: string;
  namespace: string;
  labels?: Record<string, string>;
  address: string;
  node: string;
  serviceAccount?: string;
  weight?: number;
  /** Workload spec.hostNetwork (policy files and Kubernetes discovery only). */
  hostNetwork?: boolean;
}

// ---------------------------------------------------------------------------- routes

export type StringMatchType = 'Exact' | 'RegularExpression';
export type PathMatchType = 'Exact' | 'PathPrefix' | 'RegularExpression';

export interface HeaderMatch {
  /** Lower-cased header name (or query parameter name, case kept). */
  name: string;
  type: StringMatchType;
  value: string;
}

/** One Gateway API match, normalised. GRPCRoute method matches are compiled into path
 *  matches (`/pkg.Service/Method` exact, `/pkg.Service/` prefix, or a regex), so the
 *  proxy has one matcher for both kinds. All present conditions must hold. */
export interface RouteMatch {
  /** Always present (a rule without matches is PathPrefix "/"). RegularExpression must
   *  match the whole path (as Envoy's safe_regex). */
  path: { type: PathMatchType; value: string };
  method?: string;
  headers: HeaderMatch[];
  queryParams: HeaderMatch[];
}

export interface WeightedBackend {
  service: ObjectKey;
  /** Service port on the backend Service. */
  port: number;
  weight: number;
}

export interface HeaderModifier {
  set: { name: string; value: string }[];
  add: { name: string; value: string }[];
  remove: string[];
}

export interface RetryPolicy {
  /** Retries after the first try (0 = no retries). */
  attempts: number;
  /** Envoy-style conditions: connect-failure, reset, 5xx, gateway-error,
   *  retriable-status-codes, and for gRPC: cancelled, deadline-exceeded, internal,
   *  resource-exhausted, unavailable. */
  on: string[];
  /** HTTP codes retried when `on` has retriable-status-codes. */
  retriableStatusCodes: number[];
  perTryTimeoutMs?: number;
}

export interface FaultInjection {
  delay?: { percent: number; fixedDelayMs: number };
  /** Exactly one of httpStatus / grpcStatus (by route protocol). */
  abort?: { percent: number; httpStatus?: number; grpcStatus?: number };
}

/** Local (per agent) token bucket, as Envoy's local_ratelimit. */
export interface LocalRateLimit {
  maxTokens: number;
  tokensPerFill: number;
  fillIntervalMs: number;
}

export interface CompiledRoute {
  /** Source object and rule index, for `weft explain` and metrics. */
  route: ObjectKey;
  rule: number;
  match: RouteMatch;
  /** Non-empty; weights > 0 (zero-weight refs are dropped at compile time). */
  backends: WeightedBackend[];
  requestHeaderModifier?: HeaderModifier;
  responseHeaderModifier?: HeaderModifier;
  timeouts?: { requestMs?: number; idleMs?: number };
  retry?: RetryPolicy;
  fault?: FaultInjection;
  rateLimit?: LocalRateLimit;
}

/** All routes attached to one service port, merged across HTTPRoute (or GRPCRoute)
 *  objects and ordered by Gateway API precedence: the proxy takes the first match.
 *  When nothing matches, traffic goes to the service's own endpoints. */
export interface RouteTable {
  service: ObjectKey;
  port: number;
  protocol: 'http' | 'grpc';
  routes: CompiledRoute[];
}

// -------------------------------------------------------------------- traffic policy

export type LoadBalancerType = 'P2C_PEAK_EWMA' | 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RANDOM' | 'MAGLEV';

export interface TrafficPolicyState {
  /** The TrafficPolicy object. */
  key: ObjectKey;
  /** Its target Service. */
  service: ObjectKey;
  loadBalancer: LoadBalancerType;
  /** mTLS for this service's traffic; 'DISABLE' only allowed with mesh mtls PERMISSIVE. */
  tls: 'MUTUAL' | 'DISABLE';
  connection?: {
    connectTimeoutMs?: number;
    maxConnections?: number;
    maxPendingRequests?: number;
    maxRequests?: number;
    maxRequestsPerConnection?: number;
  };
  outlierDetection?: {
    consecutive5xx?: number;
    consecutiveGatewayErrors?: number;
    intervalMs: number;
    baseEjectionTimeMs: number;
    maxEjectionPercent: number;
  };
  retryBudget?: { ratio: number; minRetriesPerSecond: number };
  /** Set when no TrafficPolicy object exists and the Service's sessionAffinity ClientIP
   *  asked for this one (`key` is then the Service's key). */
  implicit?: 'sessionAffinity';
}

// ---------------------------------------------------------------------- authorization

export interface AuthorizationSource {
  principals: string[];
  notPrincipals: string[];
  namespaces: string[];
  notNamespaces: string[];
  /** Source address CIDRs (Istio ipBlocks). */
  ipBlocks: string[];
  notIpBlocks: string[];
}

export interface AuthorizationOperation {
  /** Workload ports (Istio semantics), as strings as in Istio. */
  ports: string[];
  methods: string[];
  paths: string[];
  notPaths: string[];
}

export interface AuthorizationCondition {
  /** e.g. request.headers[x-user] */
  key: string;
  values: string[];
  notValues: string[];
}

/** Istio semantics: a request matches a rule when it matches any `from` entry (or there
 *  are none), any `to` entry (or none) and every `when`; it matches the policy when it
 *  matches any rule. DENY policies are evaluated before ALLOW; if any ALLOW policy
 *  applies to a workload, requests matching none of them are denied. */
export interface AuthorizationRule {
  from: AuthorizationSource[];
  to: AuthorizationOperation[];
  when: AuthorizationCondition[];
}

export interface AuthorizationPolicyState {
  key: ObjectKey;
  action: 'ALLOW' | 'DENY';
  /** Workloads the policy is enforced on (selector or targetRef resolved), sorted. */
  workloads: ObjectKey[];
  rules: AuthorizationRule[];
  /** True when some rule needs L7 (methods, paths, headers). */
  l7: boolean;
}

// ------------------------------------------------------------------------ node view

/** One entry of the connect-time service table in the kernel. */
export interface DatapathService {
  vip: string;
  port: number;
  protocol: 'tcp' | 'udp';
  /** 'l4': the kernel picks a backend and rewrites the destination, no userland.
   *  'redirect': the kernel sends the connection to the agent's outbound listener. */
  mode: 'l4' | 'redirect';
  /** 'maglev' when the service's TrafficPolicy asks for MAGLEV: the kernel hashes the
   *  connecting workload over a Maglev table (agent/lib/maglev.ts) instead of choosing at
   *  random per connection. */
  lb?: 'maglev';
  /** Why the mode was chosen, in words (for `weft explain` and logs). */
  reason: string;
  service: ObjectKey;
  portName: string;
  /** Backends as the kernel balances them (l4); for redirect the agent balances over the
   *  same set. Weight is the endpoint weight. */
  backends: { ip: string; port: number; weight: number }[];
}

/** A node's address and zone as NodeView.nodes gives them. */
export interface NodeAddress {
  address: string;
  zone?: string;
}

/** What one node's agent needs from a snapshot (forNode()). */
export interface NodeView {
  version: string;
  node: string;
  mesh: MeshSettings;
  /** Node name → address and zone, for every node weft knows an address for (from the
   *  "node" resource; {} from a control API that predates it). Cross-node traffic goes
   *  to the destination endpoint's node at this address, port 15008: use nodeAddress(). */
  nodes: Record<string, NodeAddress>;
  /** Every service port, sorted by vip, port, then protocol (udp after tcp). */
  datapath: DatapathService[];
  /** Services with their endpoints: the outbound proxy balances over these. */
  services: ServiceState[];
  /** Route tables of services whose port is redirected on this node. */
  routes: RouteTable[];
  /** Traffic policies of services reachable from this node. */
  trafficPolicies: TrafficPolicyState[];
  /** Authorization policies that apply to at least one local workload. */
  authorizationPolicies: AuthorizationPolicyState[];
  /** Workloads on this node, with their identities (inbound + certificate issuance). */
  localWorkloads: WorkloadState[];
}
