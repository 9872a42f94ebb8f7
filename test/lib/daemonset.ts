// Reads deploy/agent-daemonset.yaml the way kubelet would start its container, so the
// Kubernetes e2e test runs the agent with exactly the manifest's command, args, env and
// host mounts (the manifest cannot drift from what is tested):
// - command: the container's `command`, else the image's ENTRYPOINT (from
//   deploy/Dockerfile); `args` appended; $(VAR) expanded from the container's env as
//   Kubernetes does ($$ escapes, done by Cluster.addPod);
// - projected serviceAccountToken volumes: a token bound to the Pod (Cluster.addPod);
// - env: literal values and downward-API fieldRefs (resolved by the test's kubelet,
//   Cluster.addPod, against the Pod object the API server made);
// - volumeMounts: hostPath volumes mapped to the directory the test gives for each host
//   path (the simulated node's own), secrets and configMaps to directories the test
//   filled, with Bidirectional / HostToContainer propagation kept.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { ROOT } from './weft';
import type { ProjectedToken } from './k8s-objects';

interface EnvVar { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }
interface VolumeMount { name: string; mountPath: string; readOnly?: boolean; mountPropagation?: 'None' | 'HostToContainer' | 'Bidirectional' }
interface Volume { name: string; hostPath?: { path: string }; secret?: { secretName: string }; configMap?: { name: string }; projected?: { sources: { serviceAccountToken?: ProjectedToken }[] } }
interface Container { name: string; command?: string[]; args?: string[]; env?: EnvVar[]; volumeMounts?: VolumeMount[]; lifecycle?: { preStop?: { exec?: { command: string[] } } } }
export interface PodTemplateSpec { containers: Container[]; volumes?: Volume[]; hostNetwork?: boolean; hostPID?: boolean; serviceAccountName?: string }

export interface DaemonSetManifest {
  name: string;
  namespace: string;
  labels: Record<string, string>;
  spec: PodTemplateSpec;
  updateStrategy: { type: string; rollingUpdate?: { maxSurge?: number | string; maxUnavailable?: number | string } };
}

export function readDaemonSet(file = join(ROOT, 'deploy', 'agent-daemonset.yaml')): DaemonSetManifest {
  const docs = parseAllDocuments(readFileSync(file, 'utf8')).map((d) => d.toJS() as { kind?: string; metadata?: { name: string; namespace: string }; spec?: Record<string, unknown> });
  const ds = docs.find((d) => d.kind === 'DaemonSet');
  if (!ds?.spec || !ds.metadata) throw new Error(`${file}: no DaemonSet`);
  const template = ds.spec.template as { metadata: { labels: Record<string, string> }; spec: PodTemplateSpec };
  return { name: ds.metadata.name, namespace: ds.metadata.namespace, labels: template.metadata.labels, spec: template.spec, updateStrategy: ds.spec.updateStrategy as DaemonSetManifest['updateStrategy'] };
}

/** The image's ENTRYPOINT (exec form) from deploy/Dockerfile's last stage. */
export function imageEntrypoint(file = join(ROOT, 'deploy', 'Dockerfile')): string[] {
  const lines = readFileSync(file, 'utf8').split('\n').filter((l) => /^ENTRYPOINT\s/.test(l));
  const last = lines.at(-1);
  if (!last) throw new Error(`${file}: no ENTRYPOINT`);
  return JSON.parse(last.replace(/^ENTRYPOINT\s+/, '')) as string[];
}

/** What Cluster.addPod needs to start the agent's pod as kubelet would. */
export interface AgentPodSpec {
  /** Entrypoint + args, $(VAR) references left for kubelet (addPod) to expand. */
  args: string[];
  /** Literal values and downward-API fieldRefs, in the manifest's order. */
  env: Record<string, string | { fieldPath: string }>;
  mounts: { name: string; hostPath: string; mountPath: string; readOnly?: boolean; mountPropagation?: 'None' | 'HostToContainer' | 'Bidirectional'; type?: string; serviceAccountToken?: ProjectedToken }[];
  hostNetwork: boolean;
  hostPID: boolean;
  privileged: boolean;
  serviceAccount: string;
  labels: Record<string, string>;
  preStop?: string[];
}

export interface VolumeSources {
  /** Host path in the manifest → the directory the simulated node uses for it. */
  hostPath(path: string): string;
  secret(name: string): string;
  configMap(name: string): string;
}

export function agentPodSpec(ds: DaemonSetManifest, containerName: string, volumes: VolumeSources, entrypoint = imageEntrypoint()): AgentPodSpec {
  const c = ds.spec.containers.find((x) => x.name === containerName);
  if (!c) throw new Error(`no container ${containerName} in the DaemonSet`);
  const env: AgentPodSpec['env'] = {};
  for (const e of c.env ?? []) {
    if (e.value !== undefined) env[e.name] = e.value;
    else if (e.valueFrom?.fieldRef) env[e.name] = { fieldPath: e.valueFrom.fieldRef.fieldPath };
    else throw new Error(`env ${e.name}: only values and fieldRefs are supported by the test's kubelet`);
  }
  const byName = new Map((ds.spec.volumes ?? []).map((v) => [v.name, v]));
  const mounts = (c.volumeMounts ?? []).map((m) => {
    const v = byName.get(m.name);
    if (!v) throw new Error(`volumeMount ${m.name} has no volume`);
    const projected = v.projected?.sources ?? [];
    if (projected.length) {
      if (projected.length !== 1 || !projected[0]!.serviceAccountToken) throw new Error(`volume ${m.name}: the test's kubelet projects one serviceAccountToken source only`);
      return { name: m.name, hostPath: '', mountPath: m.mountPath, readOnly: true, serviceAccountToken: projected[0]!.serviceAccountToken };
    }
    const source = v.hostPath ? volumes.hostPath(v.hostPath.path) : v.secret ? volumes.secret(v.secret.secretName) : v.configMap ? volumes.configMap(v.configMap.name) : undefined;
    if (!source) throw new Error(`volume ${m.name}: only hostPath, secret, configMap and projected serviceAccountToken are supported`);
    return {
      name: m.name, hostPath: source, mountPath: m.mountPath, readOnly: m.readOnly === true || v.secret !== undefined || v.configMap !== undefined,
      ...(m.mountPropagation ? { mountPropagation: m.mountPropagation } : {}), ...(v.hostPath ? { type: (v.hostPath as { type?: string }).type ?? '' } : {}),
    };
  });
  const preStop = c.lifecycle?.preStop?.exec?.command;
  return {
    args: [...(c.command ?? entrypoint), ...(c.args ?? [])], env, mounts,
    hostNetwork: ds.spec.hostNetwork === true, hostPID: ds.spec.hostPID === true,
    privileged: (c as { securityContext?: { privileged?: boolean } }).securityContext?.privileged === true,
    serviceAccount: ds.spec.serviceAccountName ?? 'default', labels: ds.labels,
    ...(preStop ? { preStop } : {}),
  };
}
