// A policy source plus a discovery source (Kubernetes Services, EndpointSlices, Pods):
// the policy files stay the base; whenever discovery reports a change, the last tree is
// handed to the store again, and the compiler merges the discovered objects into the
// load (policy-adapter.ts). Validation then covers both together, so a route in git
// that names a discovered Service resolves.
//
// Changes are coalesced: at most one reload runs and at most one waits. EndpointSlice
// churn of hundreds of updates a second (a rollout of a large Deployment) arrives as a
// stream of discovery reports; each reload sees the latest objects, so a report that
// lands while a reload runs is folded into the next one instead of queueing a reload of
// its own (with a compile of 50 000 endpoints taking longer than the report interval,
// a queue would grow without bound and the served snapshot would fall ever further
// behind).
import type { PolicyTree } from '../snapshot-store';
import type { PolicySource } from './source';
import type { KubernetesDiscovery } from '../../discovery/kubernetes';
import { toPolicyTexts } from '../../discovery/kubernetes-objects';

export class SourceWithDiscovery implements PolicySource {
  private last: PolicyTree | undefined;
  private onTree: ((tree: PolicyTree) => Promise<unknown>) | undefined;
  private reloading: Promise<void> | undefined;
  private again = false;
  /** Discovery reports that led to a reload, and reloads run (coalescing ratio). */
  readonly counts = { reports: 0, reloads: 0 };
  private readonly onChange = () => {
    this.counts.reports++;
    if (this.reloading) { this.again = true; return; }
    this.reloading = this.reloadLoop().finally(() => { this.reloading = undefined; });
  };

  constructor(private readonly base: PolicySource, private readonly discovery: KubernetesDiscovery) {}

  get description(): string { return `${this.base.description} + Kubernetes discovery`; }

  /** What the compiler merges into every load. */
  documents(): { file: string; text: string }[] { return toPolicyTexts(this.discovery.objects()); }

  async start(onTree: (tree: PolicyTree) => Promise<unknown>): Promise<void> {
    // Discovery first: the first snapshot should already have the cluster's services.
    await this.discovery.start();
    this.onTree = onTree;
    this.discovery.on('change', this.onChange);
    await this.base.start((tree) => { this.last = tree; return onTree(tree); });
  }

  private async reloadLoop(): Promise<void> {
    do {
      this.again = false;
      if (!this.last || !this.onTree) return;
      this.counts.reloads++;
      try { await this.onTree(this.last); } catch { /* the store records and logs rejections */ }
    } while (this.again);
  }

  async stop(): Promise<void> {
    this.discovery.off('change', this.onChange);
    await this.reloading;
    await Promise.all([this.base.stop(), this.discovery.stop()]);
  }
}
