// Kubernetes discovery source: lists and watches Services, EndpointSlices, Pods and (for
// the control API, which needs every node's address) Nodes through
// @kubernetes/client-node and keeps the weft Service, Workload and Node objects they map
// to (kubernetes-objects.ts), emitting a debounced 'change' when those objects change.
//
// Connection handling, on top of the client's ListWatch (list once, then watch from the
// list's resourceVersion):
// - 410 Gone (the resourceVersion fell out of the API server's watch window), as an HTTP
//   status or as an ERROR event in the stream: ListWatch forgets the version and
//   re-lists; objects missing from the new list are reported as deleted.
// - A watch the server ends cleanly (API servers time watches out after minutes):
//   ListWatch re-watches from the last version it saw.
// - A dropped connection or a failed list: ListWatch stops and reports an error; we
//   restart it after an exponential backoff with jitter, so a restarting API server is
//   not stampeded by every node's agent at once.
//
// @kubernetes/client-node 1.x is an ES module and this project compiles to CommonJS, so
// it is loaded with a dynamic import() (TypeScript with module node16 keeps it a real
// import(), which works from tsx and from dist/ alike), once, on start().
import { EventEmitter } from 'node:events';
import type { KubernetesObject, V1EndpointSlice, V1Node, V1Pod, V1Service } from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import type * as K8s from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import { WeftError, describeError } from '../lib/errors';
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

type Informer<T extends KubernetesObject> = K8s.Informer<T> & K8s.ObjectCache<T>;

interface Resource {
  name: 'services' | 'endpointslices' | 'pods' | 'nodes';
  informer: Informer<KubernetesObject>;
  synced: boolean;
  attempt: number;
  failed: boolean;
  retry?: NodeJS.Timeout;
}


export class KubernetesDiscovery extends EventEmitter {
  private readonly opts: Required<Pick<KubernetesDiscoveryOptions, 'debounceMs' | 'backoff'>> & KubernetesDiscoveryOptions;
  private resources: Resource[] = [];
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
    const k8s = await import('@kubernetes/client-node');
    const kc = new k8s.KubeConfig();
    try {
      if (this.opts.kubeconfig) kc.loadFromFile(this.opts.kubeconfig);
      else kc.loadFromDefault();
    } catch (e) {
      throw new WeftError('WEFT_ERR_INVALID_ARG', `kubeconfig: ${describeError(e)}`, { cause: e });
    }
    if (!kc.getCurrentCluster()) throw new WeftError('WEFT_ERR_INVALID_ARG', 'kubeconfig: no current cluster');
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const discovery = kc.makeApiClient(k8s.DiscoveryV1Api);
    const podSelector = this.opts.node?.localPodsOnly ? `spec.nodeName=${this.opts.node.name}` : undefined;
    // ListWatch rather than makeInformer: only the former takes a field selector.
    const informer = <T extends KubernetesObject>(path: string, list: () => Promise<K8s.KubernetesListObject<T>>, fieldSelector?: string) =>
      new k8s.ListWatch<T>(path, new k8s.Watch(kc), list, false, undefined, fieldSelector) as unknown as Informer<KubernetesObject>;
    const informers: [Resource['name'], Informer<KubernetesObject>][] = [
      ['services', informer('/api/v1/services', () => core.listServiceForAllNamespaces())],
      ['endpointslices', informer('/apis/discovery.k8s.io/v1/endpointslices', () => discovery.listEndpointSliceForAllNamespaces())],
      ['pods', informer('/api/v1/pods', () => core.listPodForAllNamespaces(podSelector ? { fieldSelector: podSelector } : {}), podSelector)],
    ];
    // Node addresses and zones feed the node table the control API serves; an agent
    // watching only its own pods gets that table from the control API instead.
    if (!this.opts.node?.localPodsOnly) informers.push(['nodes', informer('/api/v1/nodes', () => core.listNode())]);
    const synced = new Promise<void>((resolve, reject) => { this.syncWaiter = { resolve, reject }; });
    for (const [name, informer] of informers) {
      const r: Resource = { name, informer, synced: false, attempt: 0, failed: false };
      const changed = (): void => this.scheduleFlush();
      informer.on('add', changed);
      informer.on('update', changed);
      informer.on('delete', (obj) => { if (name === 'pods' && obj.metadata?.uid) this.cgroupIds.delete(obj.metadata.uid); changed(); });
      informer.on('error', (err) => this.onError(r, err));
      this.resources.push(r);
    }
    this.log.info({ server: kc.getCurrentCluster()?.server }, 'connecting to the Kubernetes API');
    for (const r of this.resources) void this.connect(r);
    await synced;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.flushTimer);
    this.syncWaiter?.reject(new WeftError('WEFT_ERR_UNAVAILABLE', 'Kubernetes discovery stopped before the first sync'));
    this.syncWaiter = undefined;
    for (const r of this.resources) {
      clearTimeout(r.retry);
      await r.informer.stop();
    }
  }

  private async connect(r: Resource): Promise<void> {
    r.retry = undefined;
    r.failed = false;
    try {
      // Lists (when it has no resourceVersion) and opens the watch; failures arrive
      // through the informer's 'error' callback, not as a rejection.
      await r.informer.start();
    } catch (e) {
      this.onError(r, e);
    }
    if (r.failed || this.stopped) return;
    r.attempt = 0;
    if (!r.synced) {
      r.synced = true;
      this.log.debug({ resource: r.name }, 'listed');
      if (this.resources.every((x) => x.synced)) this.flush();
    }
  }

  private onError(r: Resource, err: unknown): void {
    r.failed = true;
    if (this.stopped || r.retry) return;
    const { initialMs, maxMs } = this.opts.backoff;
    const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(r.attempt++, 20));
    const delay = Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
    this.log.warn({ resource: r.name, err: describeError(err), retryInMs: delay }, 'Kubernetes watch failed; reconnecting');
    r.retry = setTimeout(() => void this.connect(r), delay);
  }

  private scheduleFlush(): void {
    if (this.flushTimer || !this.resources.every((r) => r.synced)) return;
    this.flushTimer = setTimeout(() => this.flush(), this.opts.debounceMs);
  }

  private state(): ClusterState {
    const list = (name: Resource['name']) => this.resources.find((r) => r.name === name)?.informer.list();
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
