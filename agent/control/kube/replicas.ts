// `weft control --state-store kubernetes`: what one replica needs to share its durable
// state with the others through the Kubernetes API. Composition only: the API client,
// leader election on the Lease, and the CA kept in the Secret.
import type { Logger } from '../../telemetry/logger';
import type { CertificateAuthority } from '../../identity/ca';
import { KubeStateApi } from './api';
import { LeaderElector } from './lease';
import { ReplicatedCa } from './replicated-ca';

export const LEASE_NAME = 'weft-control';

export interface ReplicasOptions {
  namespace: string;
  identity: string;
  kubeconfig?: string;
  /** Default 15 s; the leader renews every 1/7 of it and steps down after 2/3. */
  leaseDurationMs?: number;
  /** How often every replica re-reads the CA Secret (default: a fifth of the lease). */
  caPollMs?: number;
  log: Logger;
}

export class Replicas {
  private replicatedCa: ReplicatedCa | undefined;

  private constructor(readonly api: KubeStateApi, readonly elector: LeaderElector, private readonly opts: ReplicasOptions) {}

  static async start(opts: ReplicasOptions): Promise<Replicas> {
    const api = await KubeStateApi.connect(opts.namespace, opts.kubeconfig);
    const leaseMs = opts.leaseDurationMs ?? 15_000;
    const elector = new LeaderElector(api, {
      name: LEASE_NAME, identity: opts.identity, leaseDurationMs: leaseMs,
      renewDeadlineMs: Math.round((leaseMs * 2) / 3), retryPeriodMs: Math.round(leaseMs / 7),
    }, opts.log);
    await elector.start();
    return new Replicas(api, elector, opts);
  }

  /** The mesh CA from the Secret (created by the leader); `onBundle` runs when the trust
   *  bundle changes (rotation, or roots another replica stored). */
  async ca(trustDomain: string, onBundle: () => void): Promise<CertificateAuthority> {
    if (!this.replicatedCa) {
      const leaseMs = this.opts.leaseDurationMs ?? 15_000;
      this.replicatedCa = new ReplicatedCa(this.api, this.elector, { trustDomain, pollMs: this.opts.caPollMs ?? Math.max(500, Math.round(leaseMs / 5)) }, this.opts.log);
      this.replicatedCa.on('bundle', onBundle);
    }
    return this.replicatedCa.start();
  }

  async stop(): Promise<void> {
    await this.replicatedCa?.stop();
    await this.elector.stop();
  }
}
