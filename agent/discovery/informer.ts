// One Kubernetes resource kept in memory by list + watch, with the reconnect policy
// every weft watcher shares. On top of @kubernetes/client-node's ListWatch (list once,
// then watch from the list's resourceVersion, with bookmarks):
// - 410 Gone (the resourceVersion fell out of the API server's watch window), as an HTTP
//   status or as an ERROR event in the stream: ListWatch forgets the version and
//   re-lists; objects missing from the new list are reported as deleted.
// - A watch the server ends cleanly (API servers time watches out after minutes):
//   ListWatch re-watches from the last version it saw.
// - A dropped connection or a failed list: ListWatch stops and reports an error; it is
//   restarted after an exponential backoff with jitter, so a restarting API server is not
//   stampeded by every node's agent at once.
//
// @kubernetes/client-node 1.x is an ES module and this project compiles to CommonJS, so
// it is loaded with a dynamic import() (kept a real import() by module node16).
import type { KubernetesObject } from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import type * as K8s from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import { WeftError, describeError } from '../lib/errors';
import type { Logger } from '../telemetry/logger';

export type KubeClient = typeof import('@kubernetes/client-node', { with: { 'resolution-mode': 'import' } });

export interface Backoff { initialMs: number; maxMs: number }
export const DEFAULT_BACKOFF: Backoff = { initialMs: 500, maxMs: 30_000 };

/** Loads the client module and a KubeConfig: a file, or $KUBECONFIG / ~/.kube/config /
 *  the in-cluster service account (KUBERNETES_SERVICE_HOST + the mounted token). */
export async function loadKubeConfig(kubeconfig?: string): Promise<{ k8s: KubeClient; kc: K8s.KubeConfig }> {
  const k8s = await import('@kubernetes/client-node');
  const kc = new k8s.KubeConfig();
  try {
    if (kubeconfig) kc.loadFromFile(kubeconfig);
    else kc.loadFromDefault();
  } catch (e) {
    throw new WeftError('WEFT_ERR_INVALID_ARG', `kubeconfig: ${describeError(e)}`, { cause: e });
  }
  if (!kc.getCurrentCluster()) throw new WeftError('WEFT_ERR_INVALID_ARG', 'kubeconfig: no current cluster (outside a pod, pass --kubeconfig or set $KUBECONFIG)');
  return { k8s, kc };
}

export interface InformerEvents<T> {
  add?(obj: T): void;
  update?(obj: T): void;
  delete?(obj: T): void;
  /** The first complete list arrived (called once). */
  synced?(): void;
}

/** A list + watch of one resource path that reconnects by itself until stop(). */
export class ResilientInformer<T extends KubernetesObject> {
  private readonly informer: K8s.Informer<T> & K8s.ObjectCache<T>;
  private attempt = 0;
  private failed = false;
  private stopped = false;
  private synced = false;
  private retry?: NodeJS.Timeout;

  constructor(
    k8s: KubeClient, kc: K8s.KubeConfig,
    readonly name: string,
    path: string,
    list: () => Promise<K8s.KubernetesListObject<T>>,
    private readonly events: InformerEvents<T>,
    private readonly log: Logger,
    opts: { fieldSelector?: string; backoff?: Backoff } = {},
  ) {
    this.backoff = opts.backoff ?? DEFAULT_BACKOFF;
    // ListWatch rather than makeInformer: only the former takes a field selector.
    this.informer = new k8s.ListWatch<T>(path, new k8s.Watch(kc), list, false, undefined, opts.fieldSelector);
    if (events.add) this.informer.on('add', events.add);
    if (events.update) this.informer.on('update', events.update);
    if (events.delete) this.informer.on('delete', events.delete);
    this.informer.on('error', (err) => this.onError(err));
  }

  private readonly backoff: Backoff;

  get isSynced(): boolean { return this.synced; }

  list(): readonly T[] { return this.informer.list(); }

  start(): void { void this.connect(); }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retry);
    await this.informer.stop();
  }

  private async connect(): Promise<void> {
    this.retry = undefined;
    this.failed = false;
    try {
      // Lists (when it has no resourceVersion) and opens the watch; failures arrive
      // through the 'error' callback, not as a rejection.
      await this.informer.start();
    } catch (e) {
      this.onError(e);
    }
    if (this.failed || this.stopped) return;
    this.attempt = 0;
    if (!this.synced) {
      this.synced = true;
      this.log.debug({ resource: this.name }, 'listed');
      this.events.synced?.();
    }
  }

  private onError(err: unknown): void {
    this.failed = true;
    if (this.stopped || this.retry) return;
    const { initialMs, maxMs } = this.backoff;
    const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(this.attempt++, 20));
    const delay = Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
    this.log.warn({ resource: this.name, err: describeError(err), retryInMs: delay }, 'Kubernetes watch failed; reconnecting');
    this.retry = setTimeout(() => void this.connect(), delay);
  }
}
