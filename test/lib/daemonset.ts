// Reads deploy/agent-daemonset.yaml the way kubelet would start its container, so the
// Kubernetes e2e test runs the agent with exactly the manifest's command, args, env and
// host mounts (the manifest cannot drift from what is tested):
// - command: the container's `command`, else the image's ENTRYPOINT (from
//   deploy/Dockerfile); `args` appended; $(VAR) expanded from the container's env as
//   Kubernetes does ($$ escapes);
// - env: literal values and downward-API fieldRefs resolved against the Pod object;
// - volumeMounts: hostPath volumes mapped to the directory the test gives for each host
//   path (the simulated node's own), secrets and configMaps to directories the test
//   filled, with Bidirectional / HostToContainer propagation kept.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { ROOT } from './weft';

interface EnvVar { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }
interface VolumeMount { name: string; mountPath: string; readOnly?: boolean; mountPropagation?: 'None' | 'HostToContainer' | 'Bidirectional' }
interface Volume { name: string; hostPath?: { path: string }; secret?: { secretName: string }; configMap?: { name: string } }
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

export interface PodFacts { uid: string; name: string; namespace: string; nodeName: string; hostIP: string; podIP: string; serviceAccountName: string }

export interface ResolvedMount { source: string; destination: string; readonly: boolean; propagation: 'private' | 'rslave' | 'rshared' }

export interface ResolvedContainer {
  argv: string[];
  env: Record<string, string>;
  mounts: ResolvedMount[];
  preStop?: string[];
}

export interface VolumeSources {
  /** Host path in the manifest → the directory the simulated node uses for it. */
  hostPath(path: string): string;
  secret(name: string): string;
  configMap(name: string): string;
}

function fieldRef(path: string, pod: PodFacts): string {
  switch (path) {
    case 'metadata.uid': return pod.uid;
    case 'metadata.name': return pod.name;
    case 'metadata.namespace': return pod.namespace;
    case 'spec.nodeName': return pod.nodeName;
    case 'spec.serviceAccountName': return pod.serviceAccountName;
    case 'status.hostIP': return pod.hostIP;
    case 'status.podIP': return pod.podIP;
    default: throw new Error(`fieldRef ${path} is not supported by the test's kubelet`);
  }
}

/** Kubernetes' $(VAR) expansion: defined variables are replaced, $$ is a literal $,
 *  undefined references stay as written. */
export function expand(s: string, env: Record<string, string>): string {
  return s.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, name: string | undefined) => (m === '$$' ? '$' : name !== undefined && name in env ? env[name]! : m));
}

export function resolveContainer(ds: DaemonSetManifest, containerName: string, pod: PodFacts, volumes: VolumeSources, entrypoint = imageEntrypoint()): ResolvedContainer {
  const c = ds.spec.containers.find((x) => x.name === containerName);
  if (!c) throw new Error(`no container ${containerName} in the DaemonSet`);
  const env: Record<string, string> = {};
  for (const e of c.env ?? []) env[e.name] = e.value !== undefined ? expand(e.value, env) : fieldRef(e.valueFrom?.fieldRef?.fieldPath ?? '', pod);
  const argv = [...(c.command ?? entrypoint), ...(c.args ?? [])].map((a) => expand(a, env));
  const byName = new Map((ds.spec.volumes ?? []).map((v) => [v.name, v]));
  const mounts = (c.volumeMounts ?? []).map((m): ResolvedMount => {
    const v = byName.get(m.name);
    if (!v) throw new Error(`volumeMount ${m.name} has no volume`);
    const source = v.hostPath ? volumes.hostPath(v.hostPath.path) : v.secret ? volumes.secret(v.secret.secretName) : v.configMap ? volumes.configMap(v.configMap.name) : undefined;
    if (!source) throw new Error(`volume ${m.name}: only hostPath, secret and configMap are supported`);
    const propagation = m.mountPropagation === 'Bidirectional' ? 'rshared' : m.mountPropagation === 'HostToContainer' ? 'rslave' : 'private';
    return { source, destination: m.mountPath, readonly: m.readOnly === true || v.secret !== undefined || v.configMap !== undefined, propagation };
  });
  const preStop = c.lifecycle?.preStop?.exec?.command;
  return { argv, env, mounts, ...(preStop ? { preStop } : {}) };
}
