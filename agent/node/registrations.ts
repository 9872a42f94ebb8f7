// `weft run` workloads over the admin API (POST/DELETE /v1/workloads): registered
// locally first (cgroup, kernel allow-list, every worker's identity table) so the
// process can start at once, then told to the control API in the background and again
// on every reconnect.
import { WeftError, describeError } from '../lib/errors';
import type { SyncClient } from '../sync/client';
import type { Logger } from '../telemetry/logger';
import { validateRegisterRequest, type LocalWorkload, type WorkloadRegistry } from './workloads';

export interface RegistrationsOptions {
  workloads: WorkloadRegistry;
  sync: Pick<SyncClient, 'registerWorkload' | 'deregisterWorkload'>;
  /** Kubernetes mode: pods get their identity from the Kubernetes API only. */
  kubernetes: boolean;
  /** Writes the kernel's list of this node's workload addresses (throws on failure). */
  syncLocalAddresses: () => void;
  /** Every worker's identity table follows the local workloads; resolves once they have it. */
  refreshIdentities: () => Promise<void>;
  principalOf: (w: LocalWorkload) => string;
  log: Logger;
}

export class Registrations {
  constructor(private readonly o: RegistrationsOptions) {}

  async register(body: unknown): Promise<LocalWorkload & { spiffeId: string }> {
    if (this.o.kubernetes) throw new WeftError('WEFT_ERR_PERMISSION', 'this agent runs in Kubernetes mode: pods get their identity from the Kubernetes API, never from a registration');
    const req = validateRegisterRequest(body);
    const fresh = !this.o.workloads.list().some((x) => x.namespace === req.namespace && x.name === req.name);
    const w = this.o.workloads.register(req);
    try {
      // Before the process starts: a peer pod's first SYN under STRICT must pass.
      this.o.syncLocalAddresses();
    } catch (e) {
      // Not in the kernel: not registered either (a fresh workload's cgroup is empty).
      if (fresh) try { this.o.workloads.deregister(w.namespace, w.name); } catch { /* logged below */ }
      this.o.log.error({ workload: `${w.namespace}/${w.name}`, err: describeError(e) }, 'workload address not written to the datapath');
      throw e;
    }
    // Every worker must know the new cgroup before the process starts connecting.
    await this.o.refreshIdentities();
    // The process may start now: its cgroup exists. The control API learns about it in
    // the background (and again on every reconnect), so a slow or absent control API
    // never holds up `weft run`.
    void this.o.sync.registerWorkload(registration(w))
      .catch((e) => this.o.log.warn({ workload: `${w.namespace}/${w.name}`, err: describeError(e) }, 'workload registered locally; control API registration pending'));
    return { ...w, spiffeId: this.o.principalOf(w) };
  }

  async deregister(namespace: string, name: string): Promise<{ removed: string }> {
    const w = this.o.workloads.deregister(namespace, name);
    try { this.o.syncLocalAddresses(); } catch (e) {
      this.o.log.warn({ workload: `${namespace}/${name}`, err: describeError(e) }, 'workload address not removed from the datapath');
    }
    await this.o.refreshIdentities();
    await this.o.sync.deregisterWorkload({ name: w.name, namespace: w.namespace })
      .catch((e) => this.o.log.warn({ workload: `${namespace}/${name}`, err: describeError(e) }, 'control API deregistration failed'));
    return { removed: `${namespace}/${name}` };
  }

  /** After a reconnect: the control API hears about every local registration again. */
  async registerAll(): Promise<void> {
    for (const w of this.o.workloads.list()) {
      await this.o.sync.registerWorkload(registration(w))
        .catch((e) => this.o.log.warn({ workload: `${w.namespace}/${w.name}`, err: describeError(e) }, 'workload re-registration failed'));
    }
  }
}

/** What the control API is told about a local workload (`weft run`). */
function registration(w: LocalWorkload): Parameters<SyncClient['registerWorkload']>[0] {
  return { name: w.name, namespace: w.namespace, serviceAccount: w.serviceAccount, labels: w.labels, address: w.address, cgroupId: w.cgroupId };
}
