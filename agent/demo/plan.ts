// What the demo builds, derived from the policy files it serves: which simulated nodes
// exist, which sample-application process runs on which node (one per policy Workload,
// with the Workload's name, namespace, service account, labels, address and port), and
// the Service names the sample application calls (NAME.NAMESPACE.svc.<cluster domain>,
// answered by each node agent's DNS proxy: the kernel captures the apps' queries). The
// policies stay the one source of truth: the demo never hard-codes an address.
import { loadPolicyDir, formatDiagnostic } from '../policy';
import type { MeshConfigObject, ServiceObject, WorkloadObject } from '../policy/kinds';
import { DEFAULT_CLUSTER_DOMAIN } from '../dns/table';
import { WeftError, invalidArg } from '../lib/errors';

/** The sample application's roles, chosen by a Workload's `app` label. */
export type Role = 'frontend' | 'catalog' | 'payments' | 'cache' | 'loadgen';
const ROLES: readonly Role[] = ['frontend', 'catalog', 'payments', 'cache'];

export interface AppSpec {
  name: string;
  namespace: string;
  serviceAccount: string;
  labels: Record<string, string>;
  role: Role;
  /** Listen address (the Workload's); loadgen listens nowhere. */
  address: string | null;
  port: number | null;
}

export interface NodePlan {
  name: string;
  /** 1-based; the node's fabric address is FABRIC_PREFIX.<index>. */
  index: number;
  fabricIp: string;
  /** The 10.x.y.0/24 networks whose Workload addresses this node owns. */
  subnets: string[];
  apps: AppSpec[];
}

/** name:port of each Service the sample application calls. */
export interface ServiceAddresses { frontend: string; catalog: string; payments: string; cache: string }

export interface DemoPlan {
  nodes: NodePlan[];
  services: ServiceAddresses;
  /** Workloads the demo does not start, with why (e.g. their node is beyond --nodes). */
  skipped: string[];
}

// The fabric is 10.249.0.0/24: node N is .N, the fabric namespace itself .254.
const FABRIC_PREFIX = '10.249.0';
/** The fabric namespace's own address: the control API listens here. */
export const FABRIC_HOST_IP = `${FABRIC_PREFIX}.254`;
export const CONTROL_PORT = 15010;
export const ADMIN_PORT = 15020;
export const DEMO_NAMESPACE = 'shop';

function subnetOf(address: string): string {
  return `${address.split('.').slice(0, 3).join('.')}.0/24`;
}

/** Reads and validates the policies, then lays the sample application out on nodes. */
export function planDemo(policiesDir: string, nodeCount: number): DemoPlan {
  if (!Number.isInteger(nodeCount) || nodeCount < 1 || nodeCount > 9) throw invalidArg(`--nodes: expected 1..9, got ${nodeCount}`);
  const loaded = loadPolicyDir([policiesDir]);
  if (loaded.diagnostics.length) {
    throw new WeftError('WEFT_ERR_INVALID_POLICY', `the policies in ${policiesDir} do not validate:\n` +
      loaded.diagnostics.map((d) => `  ${formatDiagnostic(d)}`).join('\n'));
  }
  const services = new Map<string, ServiceObject>();
  const workloads: WorkloadObject[] = [];
  let clusterDomain = DEFAULT_CLUSTER_DOMAIN;
  for (const o of loaded.objects) {
    if (o.kind === 'MeshConfig') clusterDomain = (o.object as MeshConfigObject).spec.clusterDomain ?? clusterDomain;
    if (o.kind === 'Service') services.set(o.key, o.object as ServiceObject);
    if (o.kind === 'Workload') workloads.push(o.object as WorkloadObject);
  }

  const nodes: NodePlan[] = [];
  for (let i = 1; i <= nodeCount; i++) nodes.push({ name: `node-${i}`, index: i, fabricIp: `${FABRIC_PREFIX}.${i}`, subnets: [], apps: [] });
  const skipped: string[] = [];
  for (const w of workloads) {
    const ns = w.metadata.namespace ?? 'default';
    const label = `${ns}/${w.metadata.name}`;
    const node = nodes.find((n) => n.name === w.spec.node);
    const role = w.metadata.labels?.app as Role | undefined;
    if (!node) { skipped.push(`${label}: its node ${w.spec.node} is not simulated (--nodes ${nodeCount})`); continue; }
    if (!role || !ROLES.includes(role)) { skipped.push(`${label}: no sample application for app=${role ?? '(none)'}`); continue; }
    const port = w.spec.ports?.[0]?.port ?? targetPortFor(w, services);
    if (port === null) { skipped.push(`${label}: no Service selects it, so it has no port`); continue; }
    const subnet = subnetOf(w.spec.address);
    const owner = nodes.find((n) => n.subnets.includes(subnet));
    if (owner && owner !== node) throw invalidArg(`${label}: ${w.spec.address} is on ${node.name} but ${subnet} already belongs to ${owner.name} (the demo routes one /24 per node)`);
    if (!owner) node.subnets.push(subnet);
    node.apps.push({
      name: w.metadata.name, namespace: ns, serviceAccount: w.spec.serviceAccount ?? w.metadata.name,
      labels: { ...(w.metadata.labels ?? {}) }, role, address: w.spec.address, port,
    });
  }
  // The traffic driver is a workload too (so the mesh knows its identity), on the last
  // node: its calls to the frontend cross nodes over mTLS, and payments refuses it.
  nodes[nodes.length - 1]!.apps.push({
    name: 'loadgen', namespace: DEMO_NAMESPACE, serviceAccount: 'loadgen', labels: { app: 'loadgen' }, role: 'loadgen', address: null, port: null,
  });
  return { nodes, services: serviceAddresses(services, clusterDomain), skipped };
}

/** The targetPort of the first Service port whose Service selects this workload. */
function targetPortFor(w: WorkloadObject, services: Map<string, ServiceObject>): number | null {
  const labels = w.metadata.labels ?? {};
  for (const s of services.values()) {
    if ((s.metadata.namespace ?? 'default') !== (w.metadata.namespace ?? 'default')) continue;
    if (!Object.entries(s.spec.selector).every(([k, v]) => labels[k] === v)) continue;
    const p = s.spec.ports[0]!;
    return typeof p.targetPort === 'number' ? p.targetPort : p.port;
  }
  return null;
}

function serviceAddresses(services: Map<string, ServiceObject>, clusterDomain: string): ServiceAddresses {
  const at = (name: keyof ServiceAddresses): string => {
    const s = services.get(`${DEMO_NAMESPACE}/${name}`);
    if (!s) throw invalidArg(`the sample application needs a Service ${DEMO_NAMESPACE}/${name} in the policies`);
    if (s.spec.headless) throw invalidArg(`Service ${DEMO_NAMESPACE}/${name} is headless: the sample application calls it by its name, which needs a VIP`);
    return `${name}.${DEMO_NAMESPACE}.svc.${clusterDomain}:${s.spec.ports[0]!.port}`;
  };
  return { frontend: at('frontend'), catalog: at('catalog'), payments: at('payments'), cache: at('cache') };
}
