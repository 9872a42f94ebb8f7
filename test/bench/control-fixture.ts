// The control benchmark's policy set: SERVICES services with ENDPOINTS workloads spread
// evenly over NODES nodes. Every tenth service speaks HTTP and carries an HTTPRoute with
// a header match and a weighted split, so the compile exercises routes too.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface MeshShape { services: number; endpoints: number; nodes: number }

export function nodeName(i: number): string {
  return `node-${String(i).padStart(2, '0')}`;
}

export function serviceYaml(shape: MeshShape, from = 0, to = shape.services): string {
  const docs: string[] = [];
  for (let s = from; s < to; s++) {
    const http = s % 10 === 0;
    docs.push(`apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: svc-${s}, namespace: bench}
spec:
  vip: 10.96.${Math.floor(s / 250)}.${(s % 250) + 1}
  selector: {app: svc-${s}}
  ports:
    - {name: p, port: 80, targetPort: 8080, protocol: ${http ? 'HTTP' : 'TCP'}}`);
    if (http) {
      docs.push(`apiVersion: weft.dev/v1alpha1
kind: HTTPRoute
metadata: {name: route-${s}, namespace: bench}
spec:
  parentRefs: [{name: svc-${s}, port: 80}]
  rules:
    - matches: [{headers: [{name: x-canary, value: "yes"}]}]
      backendRefs: [{name: svc-${s + 1}, port: 80}]
    - backendRefs: [{name: svc-${s}, port: 80, weight: 90}, {name: svc-${s + 1}, port: 80, weight: 10}]`);
    }
  }
  return docs.join('\n---\n') + '\n';
}

/** Workloads of one node; `bump` changes one workload's weight (a realistic endpoint
 *  update: every node's view of that service changes). */
export function nodeWorkloadsYaml(shape: MeshShape, node: number, bump = 0): string {
  const perNode = shape.endpoints / shape.nodes;
  const docs: string[] = [];
  for (let k = 0; k < perNode; k++) {
    const w = node * perNode + k;
    const svc = w % shape.services;
    docs.push(`apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: w-${w}, namespace: bench, labels: {app: svc-${svc}}}
spec: {address: 10.${100 + Math.floor(w / 65536)}.${Math.floor(w / 256) % 256}.${w % 256}, node: ${nodeName(node)}, serviceAccount: svc-${svc}, weight: ${k === 0 ? 1 + bump : 1}}`);
  }
  return docs.join('\n---\n') + '\n';
}

export function writeMesh(dir: string, shape: MeshShape): void {
  mkdirSync(dir, { recursive: true });
  // One policy file holds at most 1 MiB: a thousand services per file.
  for (let from = 0, k = 0; from < shape.services; from += 1000, k++) {
    writeFileSync(join(dir, k === 0 ? 'services.yaml' : `services-${k}.yaml`), serviceYaml(shape, from, Math.min(shape.services, from + 1000)));
  }
  for (let n = 0; n < shape.nodes; n++) writeFileSync(join(dir, `workloads-${nodeName(n)}.yaml`), nodeWorkloadsYaml(shape, n));
}
