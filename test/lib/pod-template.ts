// Turns a workload manifest's pod template (a DaemonSet from deploy/, say) into
// cluster.addPod() options, the way the DaemonSet controller and kubelet would run it
// on a node: command = the image's ENTRYPOINT (there is no image here, so the caller
// says what it is; the weft image's is bin/weft, see deploy/Dockerfile) + the
// container's args, env with downward-API fields, hostNetwork/hostPID/privileged,
// hostPath volumes (paths can be mapped, e.g. /sys/fs/cgroup to the node's own cgroup
// tree) and secret/configMap volumes from host directories the caller fills. The Pod
// object keeps the template's other fields (probes, lifecycle, tolerations,
// priorityClassName, dnsPolicy) and gets the DaemonSet's ownerReference and labels.
//
//   const ds = loadDaemonSet('deploy/agent-daemonset.yaml');
//   const pod = await cluster.addPod(node, podOptionsFromTemplate(ds, {
//     hostPathMap: { '/sys/fs/cgroup': node.cgroupPath, '/var/lib/weft': stateDir },
//     volumeSources: { token: tokenDir, ca: caDir },
//     hostAliases: [{ ip: CP_IP, hostnames: ['weft-control.weft-system.svc'] }],
//   }));
import { randomInt, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import type { PodOptions } from './cluster';
import type { EnvValue, HostPathVolume, ProjectedToken } from './k8s-objects';
import { REPO_ROOT } from './runc';

/** deploy/Dockerfile: WORKDIR /opt/weft, ENTRYPOINT ["weft"] (-> /opt/weft/bin/weft). */
export const WEFT_IMAGE = { entrypoint: ['/opt/weft/bin/weft'], workingDir: '/opt/weft' };

export interface Workload {
  kind: string;
  name: string;
  namespace: string;
  uid: string;
  template: { metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> }; spec: PodSpec };
}

interface EnvVar { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string }; [k: string]: unknown } }
interface VolumeMount { name: string; mountPath: string; readOnly?: boolean; mountPropagation?: 'None' | 'HostToContainer' | 'Bidirectional'; subPath?: string }
interface ContainerSpec {
  name: string; image?: string; command?: string[]; args?: string[]; workingDir?: string; env?: EnvVar[];
  ports?: { containerPort: number; name?: string; protocol?: 'TCP' | 'UDP' | 'SCTP'; hostPort?: number }[];
  resources?: Record<string, Record<string, string>>;
  securityContext?: { privileged?: boolean };
  volumeMounts?: VolumeMount[];
  [k: string]: unknown;
}
interface Volume { name: string; hostPath?: { path: string; type?: string }; secret?: { secretName: string }; configMap?: { name: string }; projected?: { sources: { serviceAccountToken?: ProjectedToken }[] }; [k: string]: unknown }
interface PodSpec {
  serviceAccountName?: string; hostNetwork?: boolean; hostPID?: boolean; containers: ContainerSpec[]; initContainers?: unknown[];
  volumes?: Volume[]; hostAliases?: { ip: string; hostnames: string[] }[]; automountServiceAccountToken?: boolean;
  [k: string]: unknown;
}

/** The first document of `kind` (default DaemonSet) in a manifest file (path relative to the checkout). */
export function loadWorkload(path: string, kind = 'DaemonSet'): Workload {
  const text = readFileSync(path.startsWith('/') ? path : join(REPO_ROOT, path), 'utf8');
  const docs = text.split(/^---\s*$/m).map((d) => parse(d) as { kind?: string; metadata?: { name: string; namespace?: string }; spec?: { template: Workload['template'] } } | null);
  const doc = docs.find((d) => d?.kind === kind);
  if (!doc?.spec?.template || !doc.metadata) throw new Error(`${path}: no ${kind} with a pod template`);
  return { kind, name: doc.metadata.name, namespace: doc.metadata.namespace ?? 'default', uid: randomUUID(), template: doc.spec.template };
}

export const loadDaemonSet = (path: string): Workload => loadWorkload(path, 'DaemonSet');

export interface TemplateOptions {
  /** Pod name; default <workload>-<5 random chars> (the controller's generateName). */
  name?: string;
  /** The image's ENTRYPOINT and WORKDIR (default WEFT_IMAGE); used when the container has no command. */
  image?: { entrypoint: string[]; workingDir?: string };
  /** hostPath path → the host path to use instead (exact match on the volume's path). */
  hostPathMap?: Record<string, string>;
  /** Non-hostPath volumes (secret, configMap, emptyDir): volume name → a host directory with its files. */
  volumeSources?: Record<string, string>;
  /** Added to the pod's hostAliases (there is no cluster DNS; this is how names resolve). */
  hostAliases?: { ip: string; hostnames: string[] }[];
  /** Replaces the container's args (e.g. to add flags for the test). */
  args?: string[];
  /** Added to (and overriding) the container's env. */
  env?: Record<string, EnvValue>;
}

const GENERATE = 'bcdfghjklmnpqrstvwxz2456789';

export function podOptionsFromTemplate(w: Workload, o: TemplateOptions = {}): PodOptions {
  const spec = w.template.spec;
  if (spec.containers.length !== 1) throw new Error(`${w.name}: the harness runs one container per pod, the template has ${spec.containers.length}`);
  if (spec.initContainers?.length) throw new Error(`${w.name}: init containers are not supported`);
  const c = spec.containers[0]!;
  const image = o.image ?? WEFT_IMAGE;
  const env: Record<string, EnvValue> = {};
  for (const e of c.env ?? []) {
    if (e.value !== undefined) env[e.name] = e.value;
    else if (e.valueFrom?.fieldRef) env[e.name] = { fieldPath: e.valueFrom.fieldRef.fieldPath };
    else if (e.valueFrom) throw new Error(`${w.name}: env ${e.name}: only value and fieldRef are supported`);
    else env[e.name] = '';
  }
  Object.assign(env, o.env ?? {});
  const volumes = new Map((spec.volumes ?? []).map((v) => [v.name, v]));
  const mounts: HostPathVolume[] = (c.volumeMounts ?? []).map((m) => {
    const v = volumes.get(m.name);
    if (!v) throw new Error(`${w.name}: volumeMount ${m.name} has no volume`);
    if (m.subPath) throw new Error(`${w.name}: volumeMount ${m.name}: subPath is not supported`);
    if (v.hostPath) {
      const mapped = o.hostPathMap?.[v.hostPath.path];
      return { name: m.name, hostPath: mapped ?? v.hostPath.path, mountPath: m.mountPath, readOnly: m.readOnly, mountPropagation: m.mountPropagation, type: v.hostPath.type };
    }
    const projected = v.projected?.sources ?? [];
    if (projected.length) {
      if (projected.length !== 1 || !projected[0]!.serviceAccountToken) throw new Error(`${w.name}: volume ${m.name}: the harness projects one serviceAccountToken source only`);
      // Cluster.addPod requests the token bound to the Pod and fills the directory.
      return { name: m.name, hostPath: '', mountPath: m.mountPath, readOnly: true, serviceAccountToken: projected[0]!.serviceAccountToken };
    }
    const source = o.volumeSources?.[m.name];
    if (!source) throw new Error(`${w.name}: volume ${m.name} (${Object.keys(v).filter((k) => k !== 'name').join(', ')}) needs a host directory in volumeSources`);
    // Kubernetes mounts secret and configMap volumes read-only whatever the mount says.
    const ro = m.readOnly || !!v.secret || !!v.configMap;
    return { name: m.name, hostPath: source, mountPath: m.mountPath, readOnly: ro };
  });
  // The fields the harness acts on are options; the rest of the spec is carried into the object.
  const { containers: _c, volumes: _v, serviceAccountName, hostNetwork, hostPID, hostAliases, automountServiceAccountToken, nodeName: _n, ...specRest } = spec;
  const { name: _name, image: _image, command, args, workingDir, env: _env, ports, resources, securityContext, volumeMounts: _vm, ...containerRest } = c;
  const hash = Array.from({ length: 10 }, () => GENERATE[randomInt(GENERATE.length)]).join('');
  const labels = { ...(w.template.metadata?.labels ?? {}), ...(w.kind === 'DaemonSet' ? { 'controller-revision-hash': hash, 'pod-template-generation': '1' } : {}) };
  return {
    name: o.name ?? `${w.name}-${Array.from({ length: 5 }, () => GENERATE[randomInt(GENERATE.length)]).join('')}`,
    namespace: w.namespace,
    serviceAccount: serviceAccountName ?? 'default',
    labels,
    annotations: w.template.metadata?.annotations,
    args: [...(command ?? image.entrypoint), ...(o.args ?? args ?? [])],
    env,
    ports,
    containerName: c.name,
    hostNetwork: !!hostNetwork,
    hostPID: !!hostPID,
    privileged: !!securityContext?.privileged,
    mounts,
    hostAliases: [...(hostAliases ?? []), ...(o.hostAliases ?? [])],
    automountServiceAccountToken: automountServiceAccountToken !== false,
    cwd: workingDir ?? image.workingDir,
    resources: resources ?? {},
    overrides: {
      // DaemonSet, Deployment (via its ReplicaSet, simplified), StatefulSet: all apps/v1.
      metadata: { ownerReferences: [{ apiVersion: 'apps/v1', kind: w.kind, name: w.name, uid: w.uid, controller: true, blockOwnerDeletion: true }] },
      spec: specRest,
      // The object shows the template's command/args; the process runs entrypoint + args.
      container: { ...containerRest, args: o.args ?? args ?? [], ...(command ? { command } : {}), ...(workingDir ? { workingDir } : {}), ...(securityContext ? { securityContext } : {}) },
    },
  };
}
