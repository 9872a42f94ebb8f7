// The pods kubelet runs on this node, as the agent sees them: its own list + watch of
// the Pods scheduled here (a spec.nodeName field selector, so its load does not grow with
// the cluster) and of the Namespaces (for opt-outs). Each pod is mapped to its cgroup
// under kubelet's tree, which gives the kernel's cgroup id its identity (namespace,
// service account, labels), and is sorted into:
//   meshed   its sockets are captured; it is a local workload (identity, STRICT allow-list)
//   skipped  the kernel leaves its sockets alone (weft_skip_v1): hostNetwork pods (they
//            are the node), pods opted out with the label or annotation
//            `weft.dev/dataplane-mode: none` on the pod or its namespace, pods of the
//            excluded namespaces, and the agent's own pod.
// With --dataplane-default none the mesh is opt-in instead (Istio ambient's model): only
// pods with `weft.dev/dataplane-mode: mesh` on themselves or their namespace are meshed.
// A pod the watch has not delivered yet is captured (the kernel does not know it is to be
// skipped) and resolved once its event arrives; kubelet creates the pod's cgroup after the
// Pod object is bound, so pods whose cgroup is missing are looked up again shortly.
import { EventEmitter } from 'node:events';
import { dirname } from 'node:path';
import type { V1Namespace, V1Pod } from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import { resolvePodCgroup, type QosClass } from '../discovery/pod-cgroup';
import { ResilientInformer, loadKubeConfig, type Backoff } from '../discovery/informer';
import { workloadName } from '../discovery/kubernetes-objects';
import { validateWorkloadAddress, type LocalWorkload } from './workloads';
import { WeftError, describeError } from '../lib/errors';
import { componentLogger, type Logger } from '../telemetry/logger';

/** Pod or namespace label/annotation: `none` takes the pod (or every pod of the
 *  namespace) out of the mesh. Istio ambient's `istio.io/dataplane-mode` is the model. */
export const DATAPLANE_MODE = 'weft.dev/dataplane-mode';
export const DEFAULT_EXCLUDED_NAMESPACES = ['kube-system', 'weft-system'];
/** How often pods whose cgroup kubelet has not created yet are looked up again. */
const CGROUP_RETRY_MS = 100;

export interface PodIndexOptions {
  node: string;
  /** kubelet's pod tree (…/kubepods.slice or …/kubepods): where the pods' cgroups are. */
  captureRoot: string;
  kubeconfig?: string;
  excludeNamespaces?: string[];
  /** The agent's own pod (downward API metadata.uid): always skipped. */
  selfPodUid?: string;
  /** A pod whose pod and namespace say nothing: 'mesh' (default) captures it, 'none'
   *  leaves it alone (opt-in: label the namespace or pod weft.dev/dataplane-mode=mesh). */
  dataplaneDefault?: 'mesh' | 'none';
  backoff?: Backoff;
  logger?: Logger;
}

export interface PodRecord {
  uid: string;
  key: string;
  meshed: boolean;
  /** Why a pod is not meshed, in words (/debug/pods, `weft status`). */
  reason?: string;
  address?: string;
  hostNetwork: boolean;
  cgroup?: { path: string; id: bigint };
  workload: Omit<LocalWorkload, 'cgroupPath' | 'cgroupId'>;
  /** When (ms since the epoch) the pod became usable here: meshed, cgroup known. */
  readyAt?: number;
}

/** How many recent "pod usable" times /debug/pods keeps (bench:k8s reads them). */
const RECENT_READY = 4096;

export declare interface PodIndex {
  /** Something the agent derives from the pods changed (coalesced per event-loop turn). */
  on(event: 'change', listener: () => void): this;
  /** A pod became usable: meshed with its cgroup resolved (bench:k8s measures this). */
  on(event: 'ready', listener: (pod: PodRecord) => void): this;
}

export class PodIndex extends EventEmitter {
  private readonly pods = new Map<string, PodRecord>();
  private readonly namespaceModes = new Map<string, string>();
  private readonly excluded: Set<string>;
  private readonly cgroupBase: string;
  private readonly log: Logger;
  private podInformer?: ResilientInformer<V1Pod>;
  private nsInformer?: ResilientInformer<V1Namespace>;
  private retryTimer?: NodeJS.Timeout;
  private changeQueued = false;
  private stopped = false;
  private selfCgroup?: { path: string; id: bigint };
  /** The last RECENT_READY pods that became usable, oldest first (uid, key, time). */
  readonly recentReady: { uid: string; key: string; at: number }[] = [];

  constructor(private readonly opts: PodIndexOptions) {
    super();
    this.excluded = new Set(opts.excludeNamespaces ?? DEFAULT_EXCLUDED_NAMESPACES);
    // resolvePodCgroup looks for kubepods… below this directory.
    this.cgroupBase = dirname(opts.captureRoot);
    this.log = opts.logger ?? componentLogger('pods', { node: opts.node });
    if (opts.selfPodUid) this.selfCgroup = resolvePodCgroup(opts.selfPodUid, this.cgroupBase);
  }

  /** The agent's own pod cgroup, when it runs in one (resolved from --pod-uid). */
  get ownCgroup(): { path: string; id: bigint } | undefined { return this.selfCgroup; }

  /** Lists and watches; resolves once pods and namespaces have been listed. */
  async start(): Promise<void> {
    const { k8s, kc } = await loadKubeConfig(this.opts.kubeconfig);
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const selector = `spec.nodeName=${this.opts.node}`;
    let resolveSynced!: () => void;
    const synced = new Promise<void>((r) => { resolveSynced = r; });
    const onSynced = () => { if (this.podInformer?.isSynced && this.nsInformer?.isSynced) { this.recomputeAll(); resolveSynced(); } };
    const opts = { ...(this.opts.backoff ? { backoff: this.opts.backoff } : {}) };
    this.nsInformer = new ResilientInformer<V1Namespace>(k8s, kc, 'namespaces', '/api/v1/namespaces', () => core.listNamespace(), {
      add: (ns) => this.onNamespace(ns), update: (ns) => this.onNamespace(ns),
      delete: (ns) => { this.namespaceModes.delete(ns.metadata?.name ?? ''); this.recomputeAll(); },
      synced: onSynced,
    }, this.log, opts);
    this.podInformer = new ResilientInformer<V1Pod>(k8s, kc, 'pods', '/api/v1/pods', () => core.listPodForAllNamespaces({ fieldSelector: selector }), {
      add: (p) => this.onPod(p), update: (p) => this.onPod(p), delete: (p) => this.onPodDeleted(p), synced: onSynced,
    }, this.log, { ...opts, fieldSelector: selector });
    this.log.info({ server: kc.getCurrentCluster()?.server, captureRoot: this.opts.captureRoot }, 'watching this node\'s pods');
    this.nsInformer.start();
    this.podInformer.start();
    await synced;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    await Promise.allSettled([this.podInformer?.stop(), this.nsInformer?.stop()]);
  }

  list(): PodRecord[] { return [...this.pods.values()].sort((a, b) => a.key.localeCompare(b.key)); }

  /** Meshed pods whose cgroup is known: local workloads, keyed by the pod cgroup. */
  workloads(): LocalWorkload[] {
    const out: LocalWorkload[] = [];
    for (const p of this.list()) {
      if (p.meshed && p.cgroup) out.push({ ...p.workload, cgroupPath: p.cgroup.path, cgroupId: p.cgroup.id.toString() });
    }
    return out;
  }

  /** Pod cgroups whose sockets the kernel must leave alone (weft_skip_v1). */
  skippedCgroups(): bigint[] {
    const ids = new Set<bigint>();
    if (this.selfCgroup) ids.add(this.selfCgroup.id);
    for (const p of this.pods.values()) if (!p.meshed && p.cgroup) ids.add(p.cgroup.id);
    return [...ids].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  /** Addresses of this node's pods in their own network namespaces (mTLS STRICT lets
   *  same-node pods through on the kernel path). */
  addresses(): string[] {
    const out = new Set<string>();
    for (const p of this.pods.values()) if (!p.hostNetwork && p.address) out.add(p.address);
    return [...out].sort();
  }

  // --------------------------------------------------------------------- events

  private onNamespace(ns: V1Namespace): void {
    const name = ns.metadata?.name;
    if (!name) return;
    const mode = ns.metadata?.labels?.[DATAPLANE_MODE] ?? ns.metadata?.annotations?.[DATAPLANE_MODE] ?? '';
    if (this.namespaceModes.get(name) === mode) return;
    this.namespaceModes.set(name, mode);
    this.recomputeAll();
  }

  private onPod(pod: V1Pod): void {
    const uid = pod.metadata?.uid;
    if (!uid || pod.spec?.nodeName !== this.opts.node) return;
    const phase = pod.status?.phase;
    if (phase === 'Succeeded' || phase === 'Failed') { this.onPodDeleted(pod); return; }
    const before = this.pods.get(uid);
    const rec = this.record(pod, before?.cgroup);
    this.pods.set(uid, rec);
    if (!rec.cgroup) this.scheduleRetry();
    if (rec.meshed && rec.cgroup && !(before?.meshed && before.cgroup)) this.markReady(rec);
    else if (before?.readyAt && rec.meshed && rec.cgroup) rec.readyAt = before.readyAt;
    if (!before || JSON.stringify(summary(before)) !== JSON.stringify(summary(rec))) this.changed();
    this.podObjects.set(uid, pod);
  }

  private onPodDeleted(pod: V1Pod): void {
    const uid = pod.metadata?.uid;
    if (!uid) return;
    this.podObjects.delete(uid);
    if (this.pods.delete(uid)) this.changed();
  }

  /** The last Pod object per UID, to re-derive records when a namespace changes. */
  private readonly podObjects = new Map<string, V1Pod>();

  private recomputeAll(): void {
    for (const [uid, pod] of this.podObjects) {
      const before = this.pods.get(uid);
      const rec = this.record(pod, before?.cgroup);
      if (rec.meshed && rec.cgroup) { if (before?.readyAt && before.meshed) rec.readyAt = before.readyAt; else this.markReady(rec); }
      this.pods.set(uid, rec);
    }
    this.changed();
  }

  private record(pod: V1Pod, knownCgroup: PodRecord['cgroup']): PodRecord {
    const uid = pod.metadata!.uid!;
    const namespace = pod.metadata?.namespace ?? 'default';
    const key = `${namespace}/${pod.metadata?.name ?? ''}`;
    const hostNetwork = pod.spec?.hostNetwork === true;
    const cgroup = knownCgroup ?? resolvePodCgroup(uid, this.cgroupBase, pod.status?.qosClass as QosClass | undefined);
    const podMode = pod.metadata?.labels?.[DATAPLANE_MODE] ?? pod.metadata?.annotations?.[DATAPLANE_MODE];
    const nsMode = this.namespaceModes.get(namespace);
    let reason: string | undefined;
    if (uid === this.opts.selfPodUid) reason = 'the agent itself';
    else if (hostNetwork) reason = 'hostNetwork: its sockets are the node\'s';
    else if (podMode === 'none') reason = `pod ${DATAPLANE_MODE}=none`;
    else if (this.excluded.has(namespace)) reason = `namespace ${namespace} is excluded (--exclude-namespaces)`;
    else if (podMode !== 'mesh' && nsMode === 'none') reason = `namespace ${DATAPLANE_MODE}=none`;
    else if (podMode !== 'mesh' && nsMode !== 'mesh' && this.opts.dataplaneDefault === 'none') reason = `not enrolled: no ${DATAPLANE_MODE}=mesh on the pod or its namespace (--dataplane-default none)`;
    let address: string | undefined;
    for (const ip of [pod.status?.podIP, ...(pod.status?.podIPs ?? []).map((p) => p.ip)]) {
      if (!ip) continue;
      try { address = validateWorkloadAddress(ip, 'pod IP'); break; } catch { /* next */ }
    }
    if (!reason && !address) reason = 'no pod IP yet';
    return {
      uid, key, meshed: reason === undefined, ...(reason ? { reason } : {}), ...(address ? { address } : {}), hostNetwork,
      ...(cgroup ? { cgroup } : {}),
      workload: {
        name: workloadName(pod.metadata?.name ?? ''), namespace,
        serviceAccount: pod.spec?.serviceAccountName || 'default',
        labels: { ...(pod.metadata?.labels ?? {}) },
        address: address ?? '',
      },
    };
  }

  /** Pods whose cgroup is not there yet: kubelet creates it right after binding. */
  private scheduleRetry(): void {
    if (this.retryTimer || this.stopped) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      let pending = false;
      for (const [uid, pod] of this.podObjects) {
        const rec = this.pods.get(uid);
        if (!rec || rec.cgroup) continue;
        const next = this.record(pod, undefined);
        if (!next.cgroup) { pending = true; continue; }
        this.pods.set(uid, next);
        if (next.meshed) this.markReady(next);
        this.changed();
      }
      if (pending) this.scheduleRetry();
    }, CGROUP_RETRY_MS);
    this.retryTimer.unref();
  }

  private markReady(rec: PodRecord): void {
    rec.readyAt = Date.now();
    this.recentReady.push({ uid: rec.uid, key: rec.key, at: rec.readyAt });
    if (this.recentReady.length > RECENT_READY) this.recentReady.splice(0, this.recentReady.length - RECENT_READY);
    this.emit('ready', rec);
  }

  private changed(): void {
    if (this.changeQueued) return;
    this.changeQueued = true;
    queueMicrotask(() => {
      this.changeQueued = false;
      try { this.emit('change'); } catch (e) { this.log.error({ err: describeError(e) }, 'pod change handler failed'); }
    });
  }
}

function summary(p: PodRecord): unknown {
  return { ...p, cgroup: p.cgroup?.id.toString() };
}

/** `--cgroup-root` or kubelet's tree under the cgroup2 mount; a clear error without. */
export function requireCaptureRoot(found: string | undefined, cgroup2: string): string {
  if (found) return found;
  throw new WeftError('WEFT_ERR_UNAVAILABLE', `no kubelet pod cgroup tree (kubepods.slice or kubepods) below ${cgroup2}: is this a Kubernetes node, and is the host's cgroup2 tree mounted there? Pass --cgroup-root to name it`);
}
