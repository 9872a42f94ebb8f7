// The one place the served snapshot changes. Sources report "the policy tree changed";
// registrations report "the workload set changed"; either way the store recompiles and
// either adopts the result or rejects it whole. Rejection keeps the last good snapshot
// (and the last good policy objects, so workload registrations still take effect while
// a broken commit sits in the repo) and records why for logs, metrics and Status.
import { EventEmitter } from 'node:events';
import { createHash } from 'node:crypto';
import type { Snapshot } from '../policy/snapshot';
import { forNode } from '../policy/node-view';
import { ViewResourceCache, type NodeResources } from '../policy/view-cache';
import { describeError, isWeftError } from '../lib/errors';
import type { Logger } from '../telemetry/logger';
import type { PolicyCompiler, PolicyTree } from './policy-compiler';
import type { RegistrationStore } from './registrations';
import type { ControlMetrics } from './metrics';

export interface Rejection {
  revision: string;
  diagnostics: string[];
  at: number;
}

export type { PolicyTree } from './policy-compiler';

export declare interface SnapshotStore {
  on(event: 'update', listener: (snapshot: Snapshot) => void): this;
}

export class SnapshotStore extends EventEmitter {
  private current: Snapshot | undefined;
  private currentSince = 0;
  private objects: unknown;
  private tree: PolicyTree | undefined;
  private rejection: Rejection | undefined;
  private reload: { at: number; accepted: boolean } | undefined;
  private readonly views = new ViewResourceCache();
  /** Rebuilds are serialised: a change arriving mid-compile waits for the next turn. */
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly compiler: PolicyCompiler,
    private readonly registrations: RegistrationStore,
    private readonly metrics: ControlMetrics,
    private readonly log: Logger,
    private readonly opts: { nodeReports?: boolean } = {},
  ) {
    super();
    this.setMaxListeners(0);
  }

  snapshot(): Snapshot | undefined { return this.current; }
  since(): number { return this.currentSince; }
  lastRejection(): Rejection | undefined { return this.rejection; }
  /** The last policy reload: when, and whether it was accepted. */
  lastReload(): { at: number; accepted: boolean } | undefined { return this.reload; }

  /** The node's whole view of the current snapshot as JSON (state-of-the-world Sync).
   *  Built per push and not kept: fifty multi-megabyte views would double the control
   *  API's memory, and agents that sync by delta never ask for it. */
  nodeView(node: string): { version: string; bytes: Buffer } | undefined {
    const snap = this.current;
    if (!snap) return undefined;
    return { version: snap.version, bytes: Buffer.from(JSON.stringify(forNode(snap, node))) };
  }

  /** The node's view of the current snapshot as named, content-versioned resources
   *  (delta Sync); shared with other nodes wherever the content is the same. */
  nodeResources(node: string): { version: string; resources: NodeResources } | undefined {
    const snap = this.current;
    if (!snap) return undefined;
    return { version: snap.version, resources: this.views.resources(node) };
  }

  /** No stream of `node` is open any more: its cached resource entries can go. */
  releaseNode(node: string): void {
    this.views.release(node);
  }

  /** A source reports a new tree: load, validate and compile it. Resolves to true when it
   *  was adopted (or changed nothing), false when rejected. */
  policyChanged(tree: PolicyTree): Promise<boolean> {
    return this.serialise(async () => {
      const started = process.hrtime.bigint();
      const loaded = await this.compiler.load(tree);
      if (loaded.diagnostics.length) return this.reject(tree, loaded.diagnostics);
      const result = this.tryCompile(loaded.objects, tree);
      this.metrics.compileSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
      if ('diagnostics' in result) return this.reject(tree, result.diagnostics);
      this.objects = loaded.objects;
      this.tree = tree;
      this.metrics.lastReloadSuccess.set(1);
      this.reload = { at: Date.now(), accepted: true };
      this.adopt(result.snapshot, tree.revision ? `commit ${tree.revision}` : 'policy change');
      return true;
    });
  }

  /**
   * A node's agent reported its address (Sync hello). When that changes the node table's
   * input, it is persisted and the last good objects are recompiled (a Node object, when
   * one names the node, still wins inside the compiler). Replicas ignore reports: each
   * hears only its own agents', and they must all compile the same snapshot.
   */
  nodeReported(node: string, address: string): Promise<void> {
    if (this.opts.nodeReports === false || !this.registrations.setNodeAddress(node, address)) return Promise.resolve();
    return this.serialise(async () => {
      await this.registrations.persistNodes();
      if (!this.tree) return;
      const result = this.tryCompile(this.objects, this.tree);
      if ('diagnostics' in result) {
        this.log.warn({ node, address, problems: result.diagnostics.length }, 'recompiling with a reported node address failed; keeping the current snapshot');
        return;
      }
      this.adopt(result.snapshot, `node ${node} reported address ${address}`);
    });
  }

  /**
   * Registrations changed: recompile the last good objects. Resolves with the version
   * that includes the change, or throws the compiler's WEFT_ERR_INVALID_POLICY error (the
   * caller undoes its registration; nothing is adopted).
   */
  registrationsChanged(): Promise<string | undefined> {
    return this.serialise(async () => {
      if (!this.tree) return undefined;
      const result = this.tryCompile(this.objects, this.tree);
      if ('diagnostics' in result) throw result.error;
      this.adopt(result.snapshot, 'workload registration');
      return result.snapshot.version;
    });
  }

  private serialise<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  private tryCompile(objects: unknown, tree: PolicyTree): { snapshot: Snapshot } | { diagnostics: string[]; error: unknown } {
    try {
      const version = this.versionFor(tree);
      const nodes = this.registrations.nodeReports();
      return { snapshot: this.compiler.compile(objects, this.registrations.list(), { ...(version ? { version } : {}), ...(this.current ? { previous: this.current } : {}), ...(nodes.length ? { nodes } : {}) }) };
    } catch (e) {
      if (!isWeftError(e, 'WEFT_ERR_INVALID_POLICY')) throw e;
      const d = e.details?.diagnostics;
      return { diagnostics: Array.isArray(d) && d.length ? d.map(String) : [describeError(e)], error: e };
    }
  }

  /** Git trees are versioned by commit; with runtime registrations or reported node
   *  addresses in the mix the commit alone no longer names the content, so a short hash
   *  of them is added. */
  private versionFor(tree: PolicyTree): string | undefined {
    if (!tree.revision) return undefined;
    const nodes = this.registrations.nodeReports();
    if (this.registrations.size === 0 && nodes.length === 0) return tree.revision;
    const h = createHash('sha256').update(JSON.stringify(this.registrations.list()));
    if (nodes.length) h.update(JSON.stringify(nodes));
    return `${tree.revision}+reg.${h.digest('hex').slice(0, 12)}`;
  }

  private adopt(snapshot: Snapshot, why: string): void {
    if (this.current?.version === snapshot.version) return;
    const previous = this.current?.version;
    this.current = snapshot;
    this.views.setSnapshot(snapshot);
    this.currentSince = Date.now();
    this.metrics.setVersion(snapshot.version);
    this.log.info({ version: snapshot.version, previous, why, services: snapshot.services.length, workloads: snapshot.workloads.length }, 'serving new snapshot');
    this.emit('update', snapshot);
  }

  private reject(tree: PolicyTree, diagnostics: string[]): false {
    this.rejection = { revision: tree.revision ?? '', diagnostics, at: Date.now() };
    this.reload = { at: this.rejection.at, accepted: false };
    this.metrics.rejections.inc();
    this.metrics.lastReloadSuccess.set(0);
    this.log.error({ revision: tree.revision, problems: diagnostics.length, keptVersion: this.current?.version }, 'policy change rejected; the last good snapshot keeps serving');
    for (const d of diagnostics) this.log.error(d);
    return false;
  }
}
