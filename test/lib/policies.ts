// Policy YAML for end-to-end tests: small builders so each test states only what matters
// (a Service with its VIP and port, the Workloads behind it, extra objects verbatim).
export interface TestService {
  name: string;
  vip: string;
  port: number;
  targetPort: number;
  protocol: 'TCP' | 'UDP' | 'HTTP' | 'HTTP2' | 'GRPC';
  /** Workloads selected by the Service (label app=<service name>): name → address. */
  workloads: Record<string, string>;
}

const doc = (kind: string, body: string) => `apiVersion: weft.dev/v1alpha1\nkind: ${kind}\n${body}`;

export function serviceYaml(s: TestService, node: string): string[] {
  const portName = s.protocol.toLowerCase();
  return [
    doc('Service', `metadata: {name: ${s.name}, namespace: default}
spec:
  vip: ${s.vip}
  selector: {app: ${s.name}}
  ports: [{name: ${portName}, port: ${s.port}, targetPort: ${s.targetPort}, protocol: ${s.protocol}}]`),
    ...Object.entries(s.workloads).map(([w, address]) => workloadYaml(w, address, node, s.name, { app: s.name })),
  ];
}

export function workloadYaml(name: string, address: string, node: string, serviceAccount: string, labels: Record<string, string> = {}): string {
  const l = Object.entries(labels).map(([k, v]) => `${k}: ${v}`).join(', ');
  return doc('Workload', `metadata: {name: ${name}, namespace: default${l ? `, labels: {${l}}` : ''}}
spec: {address: ${address}, node: ${node}, serviceAccount: ${serviceAccount}}`);
}

/** A policy file: services (with their workloads) and any extra documents. */
export function policyFile(node: string, services: TestService[], extra: string[] = []): string {
  return [...services.flatMap((s) => serviceYaml(s, node)), ...extra].join('\n---\n') + '\n';
}

/** A MeshConfig (defaults otherwise) that lets `node` register workloads of `namespaces`
 *  with `weft run`: without a grant the control API refuses registrations. */
export function registrationGrant(node: string, namespaces: string[] = ['default']): string {
  return `apiVersion: weft.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  trustDomain: weft.local
  registrations: [{node: ${node}, namespaces: [${namespaces.join(', ')}]}]`;
}
