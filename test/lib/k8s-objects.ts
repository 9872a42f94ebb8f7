// Real-shaped Kubernetes objects, as the components that write them leave them: a Node
// as the kubelet registers it, a Pod as created (scheduler's nodeName already set) and
// its status as the kubelet reports a running container, a ClusterIP Service, and an
// EndpointSlice as the endpointslice controller writes it.
import { randomInt } from 'node:crypto';
import type { KObject } from './k8s-store';
import type { QosClass } from './kube-cgroups';

const now = (): string => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');

/** The image name pods report: there is no image, the rootfs is the host's (runc.ts). */
export const HOST_IMAGE = 'docker.io/weft/e2e-host-rootfs:latest';
const HOST_IMAGE_ID = 'docker.io/weft/e2e-host-rootfs@sha256:0000000000000000000000000000000000000000000000000000000000000000';

export interface NodeSpec {
  name: string;
  internalIP: string;
  podCIDR: string;
  zone?: string;
  labels?: Record<string, string>;
  kernelVersion?: string;
}

export function nodeObject(n: NodeSpec): KObject {
  const t = now();
  return {
    apiVersion: 'v1', kind: 'Node',
    metadata: {
      name: n.name,
      labels: {
        'kubernetes.io/hostname': n.name, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64',
        'beta.kubernetes.io/os': 'linux', 'beta.kubernetes.io/arch': 'amd64',
        ...(n.zone ? { 'topology.kubernetes.io/zone': n.zone } : {}),
        ...(n.labels ?? {}),
      },
      annotations: { 'node.alpha.kubernetes.io/ttl': '0', 'volumes.kubernetes.io/controller-managed-attach-detach': 'true' },
    },
    spec: { podCIDR: n.podCIDR, podCIDRs: [n.podCIDR] },
    status: {
      addresses: [{ type: 'InternalIP', address: n.internalIP }, { type: 'Hostname', address: n.name }],
      conditions: [
        { type: 'MemoryPressure', status: 'False', reason: 'KubeletHasSufficientMemory', message: 'kubelet has sufficient memory available', lastHeartbeatTime: t, lastTransitionTime: t },
        { type: 'DiskPressure', status: 'False', reason: 'KubeletHasNoDiskPressure', message: 'kubelet has no disk pressure', lastHeartbeatTime: t, lastTransitionTime: t },
        { type: 'PIDPressure', status: 'False', reason: 'KubeletHasSufficientPID', message: 'kubelet has sufficient PID available', lastHeartbeatTime: t, lastTransitionTime: t },
        { type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'kubelet is posting ready status', lastHeartbeatTime: t, lastTransitionTime: t },
      ],
      capacity: { cpu: '4', memory: '8Gi', pods: '110', 'ephemeral-storage': '100Gi' },
      allocatable: { cpu: '4', memory: '8Gi', pods: '110', 'ephemeral-storage': '100Gi' },
      daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
      nodeInfo: {
        machineID: '', systemUUID: '', bootID: '', kernelVersion: n.kernelVersion ?? '', osImage: 'weft e2e (host rootfs)',
        containerRuntimeVersion: 'containerd://1.7.0-weft-e2e', kubeletVersion: 'v1.30.0', kubeProxyVersion: 'v1.30.0',
        operatingSystem: 'linux', architecture: 'amd64',
      },
    },
  };
}

export type EnvValue = string | { fieldPath: string };

export interface ContainerPort { containerPort: number; name?: string; protocol?: 'TCP' | 'UDP' | 'SCTP'; hostPort?: number }
export interface HostPathVolume {
  name: string; hostPath: string; mountPath: string; readOnly?: boolean; mountPropagation?: 'None' | 'HostToContainer' | 'Bidirectional'; type?: string;
  /** A projected serviceAccountToken volume instead of a host path: the test's kubelet
   *  (Cluster.addPod) requests the token bound to the Pod and fills the directory. */
  serviceAccountToken?: ProjectedToken;
}

export interface ProjectedToken { audience?: string; expirationSeconds?: number; path: string }

export interface PodSpecInput {
  name: string;
  namespace: string;
  nodeName: string;
  serviceAccount: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  qos: QosClass;
  containerName: string;
  args: string[];
  env?: Record<string, EnvValue>;
  ports?: ContainerPort[];
  hostNetwork?: boolean;
  hostPID?: boolean;
  privileged?: boolean;
  volumes?: HostPathVolume[];
  hostAliases?: { ip: string; hostnames: string[] }[];
  /** Exact requests/limits (default: resourcesFor(qos)). */
  resources?: Record<string, Record<string, string>>;
  /** Merged (shallowly) into the object: metadata, spec, and the container. */
  overrides?: ObjectOverrides;
}

export interface ObjectOverrides {
  metadata?: Record<string, unknown>;
  spec?: Record<string, unknown>;
  container?: Record<string, unknown>;
}

/** Requests/limits that make the API server compute the wanted QoS class. */
export function resourcesFor(qos: QosClass): Record<string, Record<string, string>> {
  if (qos === 'Guaranteed') return { requests: { cpu: '100m', memory: '64Mi' }, limits: { cpu: '100m', memory: '64Mi' } };
  if (qos === 'Burstable') return { requests: { cpu: '10m', memory: '32Mi' } };
  return {};
}

export function podObject(p: PodSpecInput): KObject {
  const pod = basePodObject(p);
  if (p.overrides?.metadata) Object.assign(pod.metadata!, p.overrides.metadata);
  if (p.overrides?.spec) Object.assign(pod.spec as object, p.overrides.spec);
  if (p.overrides?.container) Object.assign((pod.spec as { containers: object[] }).containers[0]!, p.overrides.container);
  return pod;
}

function basePodObject(p: PodSpecInput): KObject {
  return {
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name: p.name, namespace: p.namespace, labels: p.labels ?? {}, ...(p.annotations ? { annotations: p.annotations } : {}) },
    spec: {
      nodeName: p.nodeName,
      serviceAccountName: p.serviceAccount,
      ...(p.hostNetwork ? { hostNetwork: true } : {}),
      ...(p.hostPID ? { hostPID: true } : {}),
      dnsPolicy: p.hostNetwork ? 'ClusterFirstWithHostNet' : 'ClusterFirst',
      restartPolicy: 'Always',
      enableServiceLinks: true,
      ...(p.hostAliases?.length ? { hostAliases: p.hostAliases } : {}),
      containers: [{
        name: p.containerName,
        image: HOST_IMAGE,
        imagePullPolicy: 'IfNotPresent',
        args: p.args,
        env: Object.entries(p.env ?? {}).map(([name, v]) => (typeof v === 'string' ? { name, value: v } : { name, valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: v.fieldPath } } })),
        ...(p.ports?.length ? { ports: p.ports.map((x) => ({ protocol: 'TCP', ...x })) } : {}),
        resources: p.resources ?? resourcesFor(p.qos),
        ...(p.privileged ? { securityContext: { privileged: true } } : {}),
        ...(p.volumes?.length ? { volumeMounts: p.volumes.map((v) => ({ name: v.name, mountPath: v.mountPath, ...(v.readOnly ? { readOnly: true } : {}), ...(v.mountPropagation ? { mountPropagation: v.mountPropagation } : {}) })) } : {}),
        terminationMessagePath: '/dev/termination-log',
        terminationMessagePolicy: 'File',
      }],
      ...(p.volumes?.length ? { volumes: p.volumes.map((v) => (v.serviceAccountToken ? { name: v.name, projected: { sources: [{ serviceAccountToken: v.serviceAccountToken }] } } : { name: v.name, hostPath: { path: v.hostPath, ...(v.type ? { type: v.type } : {}) } })) } : {}),
      tolerations: [
        { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
        { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
      ],
    },
  };
}

export interface ContainerRun { id: string; startedAt: string }
export interface ContainerTermination { id: string; exitCode: number; startedAt: string; finishedAt: string; signal?: number }

/** The status the kubelet reports for a pod whose one container runs (and is ready). */
export function runningPodStatus(s: {
  podIP: string; hostIP: string; qosClass: QosClass; startTime: string; containerName: string;
  current: ContainerRun; restartCount: number; last?: ContainerTermination;
}): Record<string, unknown> {
  const t = s.current.startedAt;
  return {
    phase: 'Running',
    conditions: [
      { type: 'PodReadyToStartContainers', status: 'True', lastProbeTime: null, lastTransitionTime: s.startTime },
      { type: 'Initialized', status: 'True', lastProbeTime: null, lastTransitionTime: s.startTime },
      { type: 'Ready', status: 'True', lastProbeTime: null, lastTransitionTime: t },
      { type: 'ContainersReady', status: 'True', lastProbeTime: null, lastTransitionTime: t },
      { type: 'PodScheduled', status: 'True', lastProbeTime: null, lastTransitionTime: s.startTime },
    ],
    hostIP: s.hostIP,
    hostIPs: [{ ip: s.hostIP }],
    podIP: s.podIP,
    podIPs: [{ ip: s.podIP }],
    startTime: s.startTime,
    qosClass: s.qosClass,
    containerStatuses: [{
      name: s.containerName,
      state: { running: { startedAt: s.current.startedAt } },
      lastState: s.last ? {
        terminated: {
          exitCode: s.last.exitCode, ...(s.last.signal ? { signal: s.last.signal } : {}),
          reason: s.last.exitCode === 0 ? 'Completed' : 'Error',
          startedAt: s.last.startedAt, finishedAt: s.last.finishedAt, containerID: `containerd://${s.last.id}`,
        },
      } : {},
      ready: true,
      restartCount: s.restartCount,
      image: HOST_IMAGE,
      imageID: HOST_IMAGE_ID,
      containerID: `containerd://${s.current.id}`,
      started: true,
    }],
  };
}

export interface ServicePort { name?: string; port: number; targetPort?: number | string; protocol?: 'TCP' | 'UDP' | 'SCTP'; appProtocol?: string }

export interface ServiceInput {
  name: string;
  namespace: string;
  selector?: Record<string, string>;
  ports: ServicePort[];
  /** Default: allocated by the API server (10.96.0.0/16). 'None' for headless. */
  clusterIP?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export function serviceObject(s: ServiceInput): KObject {
  return {
    apiVersion: 'v1', kind: 'Service',
    metadata: { name: s.name, namespace: s.namespace, ...(s.labels ? { labels: s.labels } : {}), ...(s.annotations ? { annotations: s.annotations } : {}) },
    spec: {
      type: 'ClusterIP',
      ...(s.clusterIP ? { clusterIP: s.clusterIP } : {}),
      ...(s.selector ? { selector: s.selector } : {}),
      ports: s.ports.map((p) => ({ protocol: 'TCP', ...p, targetPort: p.targetPort ?? p.port })),
      sessionAffinity: 'None',
    },
  };
}

export interface EndpointInput {
  ip: string;
  ready?: boolean;
  /** serving (default: = ready) and terminating (default false), as the controller sets them. */
  serving?: boolean;
  terminating?: boolean;
  nodeName?: string;
  zone?: string;
  /** The backing pod. */
  pod?: { name: string; namespace: string; uid: string };
  hostname?: string;
}

export interface EndpointSliceInput {
  service: string;
  namespace: string;
  /** Default: <service>-<5 random chars>, like the controller's generateName. */
  name?: string;
  /** Set ownerReferences to the Service (its uid). */
  serviceUid?: string;
  /** The ports as the backends listen (targetPort numbers), named like the Service's. */
  ports: { name?: string; port: number; protocol?: 'TCP' | 'UDP' | 'SCTP'; appProtocol?: string }[];
  endpoints: EndpointInput[];
}

export function endpointSliceObject(e: EndpointSliceInput): KObject {
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
  const name = e.name ?? `${e.service}-${Array.from({ length: 5 }, () => alphabet[randomInt(alphabet.length)]).join('')}`;
  return {
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: {
      name, namespace: e.namespace,
      labels: { 'kubernetes.io/service-name': e.service, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' },
      annotations: { 'endpoints.kubernetes.io/last-change-trigger-time': now() },
      ...(e.serviceUid ? { ownerReferences: [{ apiVersion: 'v1', kind: 'Service', name: e.service, uid: e.serviceUid, controller: true, blockOwnerDeletion: true }] } : {}),
    },
    addressType: 'IPv4',
    endpoints: e.endpoints.map((ep) => ({
      addresses: [ep.ip],
      conditions: { ready: ep.ready ?? true, serving: ep.serving ?? ep.ready ?? true, terminating: ep.terminating ?? false },
      ...(ep.hostname ? { hostname: ep.hostname } : {}),
      ...(ep.nodeName ? { nodeName: ep.nodeName } : {}),
      ...(ep.zone ? { zone: ep.zone } : {}),
      ...(ep.pod ? { targetRef: { kind: 'Pod', namespace: ep.pod.namespace, name: ep.pod.name, uid: ep.pod.uid } } : {}),
    })),
    ports: e.ports.map((p) => ({ protocol: 'TCP', ...p })),
  };
}

/** The value of a downward-API fieldPath on a pod object (what kubelet puts in env). */
export function fieldPathValue(pod: KObject, fieldPath: string): string {
  const m = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(fieldPath);
  if (m) return String(((pod.metadata as Record<string, Record<string, string> | undefined>)[m[1]!] ?? {})[m[2]!] ?? '');
  const supported = ['metadata.name', 'metadata.namespace', 'metadata.uid', 'spec.nodeName', 'spec.serviceAccountName', 'status.hostIP', 'status.podIP'];
  if (!supported.includes(fieldPath)) throw new Error(`unsupported downward API fieldPath ${JSON.stringify(fieldPath)}`);
  let cur: unknown = pod;
  for (const k of fieldPath.split('.')) cur = (cur as Record<string, unknown> | undefined)?.[k];
  return cur === undefined || cur === null ? '' : String(cur);
}

/** Kubernetes' $(VAR) expansion in command and args ($$ escapes; unknown stays as is). */
export function expandVars(s: string, env: Record<string, string>): string {
  return s.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (all, name: string | undefined) => {
    if (all === '$$') return '$';
    return name !== undefined && Object.prototype.hasOwnProperty.call(env, name) ? env[name]! : all;
  });
}
