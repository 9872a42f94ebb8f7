// Kubernetes discovery source: lists and watches Services, EndpointSlices, Pods and (for
// the control API, which needs every node's address) Nodes through
// @kubernetes/client-node and keeps the weft Service, Workload and Node objects they map
// to (kubernetes-objects.ts), emitting a debounced 'change' when those objects change.
//
// Connection handling (410 Gone → re-list, server-ended watches resumed, reconnects with
// jittered backoff) is the shared ResilientInformer's (informer.ts); the client module is
// loaded there, with a dynamic import(), on start().
import { EventEmitter } from 'node:events';
import type { KubernetesObject, V1EndpointSlice, V1Node, V1Pod, V1Service } from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import type * as K8s from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import { WeftError } from '../lib/errors';
import { ResilientInformer, loadKubeConfig } from './informer';
import { componentLogger, type Logger } from '../telemetry/logger';
import { toPolicyObjects, type ClusterState, type DiscoveredObjects } from './kubernetes-objects';
import { resolvePodCgroup, type QosClass } from './pod-cgroup';

export interface KubernetesDiscoveryOptions {
  /** kubeconfig file; default: $KUBECONFIG, ~/.kube/config, or the in-cluster service account. */
  kubeconfig?: string;
  /** Set on a node's agent: resolve the cgroup ids of the pods scheduled on this node.
   *  With `localPodsOnly` only this node's pods are listed and watched (a field selector
   *  on spec.nodeName), so an agent's load does not grow with the cluster's pod count;
   *  the control API, which needs every pod, leaves `node` unset. */
  node?: { name: string; cgroupRoot: string; localPodsOnly?: boolean };
  /** Changes within this window are reported once (default 100 ms). The timer starts at
   *  the first change and is not pushed back by later ones, so steady churn cannot delay
   *  a report by more than this. */
  debounceMs?: number;
  /** Reconnect backoff: first delay and cap (default 500 ms, 30 s). */
  backoff?: { initialMs: number; maxMs: number };
  /** Default: the 'discovery' component logger, taken when constructed (after the CLI
   *  has configured the root logger). */
  logger?: Logger;
}

export declare interface KubernetesDiscovery {
  on(event: 'change', listener: (objects: DiscoveredObjects) => void): this;
}

type ResourceName = 'services' | 'endpointslices' | 'pods' | 'nodes';


export class KubernetesDiscovery extends EventEmitter {
  private readonly opts: Required<Pick<KubernetesDiscoveryOptions, 'debounceMs' | 'backoff'>> & KubernetesDiscoveryOptions;
  private resources: ResilientInformer<KubernetesObject>[] = [];
  private stopped = false;
  private flushTimer?: NodeJS.Timeout;
  private current: DiscoveredObjects = { services: [], workloads: [], nodes: [] };
  private currentJson = '';
  private started = false;
  /** Settles start(): resolved at the first full sync, rejected by an earlier stop(). */
  private syncWaiter?: { resolve: () => void; reject: (e: Error) => void };
  /** Pod UID → cgroup id: a pod's cgroup lives as long as the pod, so one stat() each. */
  private readonly cgroupIds = new Map<string, bigint>();
  private readonly log: Logger;

  constructor(opts: KubernetesDiscoveryOptions = {}) {
    super();
    this.opts = { debounceMs: 100, backoff: { initialMs: 500, maxMs: 30_000 }, ...opts };
    this.log = opts.logger ?? componentLogger('discovery');
  }

  /** The objects as of the last report (empty before start() resolves). */
  objects(): DiscoveredObjects {
    return this.current;
  }

  /**
   * Connects and resolves once every resource has been listed. It keeps retrying while
   * the API server is unreachable; race it with a timer to bound the wait. Rejects only
   * when the kubeconfig itself is unusable, or when stop() comes first.
   */
  async start(): Promise<void> {
    if (this.started) throw new WeftError('WEFT_ERR_INTERNAL', 'KubernetesDiscovery.start() called twice');
    this.started = true;
    const { k8s, kc } = await loadKubeConfig(this.opts.kubeconfig);
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const discovery = kc.makeApiClient(k8s.DiscoveryV1Api);
    const podSelector = this.opts.node?.localPodsOnly ? `spec.nodeName=${this.opts.node.name}` : undefined;
    const synced = new Promise<void>((resolve, reject) => { this.syncWaiter = { resolve, reject }; });
    const changed = (): void => this.scheduleFlush();
    const onSynced = (): void => { if (this.resources.every((x) => x.isSynced)) this.flush(); };
    const informer = <T extends KubernetesObject>(name: ResourceName, path: string, list: () => Promise<K8s.KubernetesListObject<T>>, fieldSelector?: string) =>
      new ResilientInformer<T>(k8s, kc, name, path, list, {
        add: changed, update: changed, synced: onSynced,
        delete: (obj) => { if (name === 'pods' && obj.metadata?.uid) this.cgroupIds.delete(obj.metadata.uid); changed(); },
      }, this.log, { backoff: this.opts.backoff, ...(fieldSelector ? { fieldSelector } : {}) }) as unknown as ResilientInformer<KubernetesObject>;
    this.resources = [
      informer('services', '/api/v1/services', () => core.listServiceForAllNamespaces()),
      informer('endpointslices', '/apis/discovery.k8s.io/v1/endpointslices', () => discovery.listEndpointSliceForAllNamespaces()),
      informer('pods', '/api/v1/pods', () => core.listPodForAllNamespaces(podSelector ? { fieldSelector: podSelector } : {}), podSelector),
    ];
    // Node addresses and zones feed the node table the control API serves; an agent
    // watching only its own pods gets that table from the control API instead.
    if (!this.opts.node?.localPodsOnly) this.resources.push(informer('nodes', '/api/v1/nodes', () => core.listNode()));
    this.log.info({ server: kc.getCurrentCluster()?.server }, 'connecting to the Kubernetes API');
    for (const r of this.resources) r.start();
    await synced;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.flushTimer);
    this.syncWaiter?.reject(new WeftError('WEFT_ERR_UNAVAILABLE', 'Kubernetes discovery stopped before the first sync'));
    this.syncWaiter = undefined;
    await Promise.all(this.resources.map((r) => r.stop()));
  }

  /** How long the last flush took: mapping 50 000 endpoints is not free, so under
   *  constant churn flushes are spaced by at least twice that (the event loop stays
   *  mostly free for the watches and the agents' streams). */
  private lastFlushMs = 0;

  private scheduleFlush(): void {
    if (this.flushTimer || !this.resources.every((r) => r.isSynced)) return;
    this.flushTimer = setTimeout(() => this.flush(), Math.max(this.opts.debounceMs, 2 * this.lastFlushMs));
  }

  private state(): ClusterState {
    const list = (name: ResourceName) => this.resources.find((r) => r.name === name)?.list();
    const nodes = list('nodes');
    return {
      services: (list('services') ?? []) as V1Service[],
      endpointSlices: (list('endpointslices') ?? []) as V1EndpointSlice[],
      pods: (list('pods') ?? []) as V1Pod[],
      ...(nodes ? { nodes: nodes as V1Node[] } : {}),
    };
  }

  private cgroupOf(pod: V1Pod): bigint | undefined {
    const node = this.opts.node;
    const uid = pod.metadata?.uid;
    if (!node || !uid || pod.spec?.nodeName !== node.name) return undefined;
    const known = this.cgroupIds.get(uid);
    if (known !== undefined) return known;
    // Not found yet is normal before the sandbox starts; the pod's next update retries.
    const found = resolvePodCgroup(uid, node.cgroupRoot, pod.status?.qosClass as QosClass | undefined);
    if (found) this.cgroupIds.set(uid, found.id);
    return found?.id;
  }

  private flush(): void {
    this.flushTimer = undefined;
    if (this.stopped) return;
    const started = performance.now();
    try { this.flushNow(); } finally { this.lastFlushMs = performance.now() - started; }
  }

  private flushNow(): void {
    const { services, workloads, nodes, skipped } = toPolicyObjects(this.state(), (p) => this.cgroupOf(p));
    const next = { services, workloads, nodes };
    const json = JSON.stringify(next);
    const first = this.syncWaiter !== undefined;
    if (json === this.currentJson && !first) return;
    this.current = next;
    this.currentJson = json;
    for (const s of skipped) this.log.debug(s, 'not mapped to a weft object');
    this.log.info({ services: services.length, workloads: workloads.length, nodes: nodes.length, skipped: skipped.length }, 'Kubernetes objects changed');
    this.syncWaiter?.resolve();
    this.syncWaiter = undefined;
    this.emit('change', next);
  }
}
