// A policy source plus a discovery source (Kubernetes Services, EndpointSlices, Pods):
// the policy files stay the base; whenever discovery reports a change, the last tree is
// handed to the store again, and the compiler merges the discovered objects into the
// load (policy-adapter.ts). Validation then covers both together, so a route in git
// that names a discovered Service resolves.
import type { PolicyTree } from '../snapshot-store';
import type { PolicySource } from './source';
import type { KubernetesDiscovery } from '../../discovery/kubernetes';
import { toPolicyTexts } from '../../discovery/kubernetes-objects';

export class SourceWithDiscovery implements PolicySource {
  private last: PolicyTree | undefined;
  private onTree: ((tree: PolicyTree) => Promise<unknown>) | undefined;
  private readonly onChange = () => { if (this.last && this.onTree) void this.onTree(this.last); };

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

  async stop(): Promise<void> {
    this.discovery.off('change', this.onChange);
    await Promise.all([this.base.stop(), this.discovery.stop()]);
  }
}
