// Leader election on a coordination.k8s.io/v1 Lease, with the semantics of client-go's
// leaderelection package:
// - a candidate reads the Lease; it may take it when it does not exist (create), when
//   nobody holds it, or when the holder has not renewed for leaseDuration as measured on
//   the candidate's own clock from the moment it last saw the record change (never by
//   comparing the holder's timestamps with the local clock: the clocks may disagree);
// - every write carries the resourceVersion that was read, so of two candidates writing
//   at once one gets 409 Conflict and stays a follower;
// - the leader renews every retryPeriod; when it could not renew for renewDeadline
//   (< leaseDuration) it stops leading before anyone else can have taken over;
// - stop() releases the Lease (empty holder) so the next leader need not wait it out.
// The leader is the only replica that creates the CA Secret and performs a staged root
// rotation; every replica serves sync, signing and Explain whether it leads or not.
import { EventEmitter } from 'node:events';
import { describeError } from '../../lib/errors';
import type { Logger } from '../../telemetry/logger';
import { isConflict, type KubeObject, type KubeStateApi } from './api';

export interface LeaseSpec {
  holderIdentity?: string | null;
  leaseDurationSeconds?: number;
  acquireTime?: string | null;
  renewTime?: string | null;
  leaseTransitions?: number;
}

export interface LeaseObject extends KubeObject { spec?: LeaseSpec }

export interface LeaderElectionOptions {
  name: string;
  identity: string;
  /** How long a lease is good for after its last renewal (default 15 s). */
  leaseDurationMs?: number;
  /** The leader gives up if it could not renew for this long (default 10 s). */
  renewDeadlineMs?: number;
  /** Time between attempts (default 2 s). */
  retryPeriodMs?: number;
  /** Clock (tests). */
  now?: () => number;
}

export declare interface LeaderElector {
  on(event: 'leading' | 'following', listener: () => void): this;
  on(event: 'leader', listener: (identity: string) => void): this;
}

/** MicroTime as the API server writes it: RFC 3339 with microseconds. */
function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export class LeaderElector extends EventEmitter {
  private readonly leaseMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryMs: number;
  private readonly now: () => number;
  private leading = false;
  private observed: { key: string; at: number; holder: string } | undefined;
  private lastRenew = 0;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = true;

  constructor(private readonly api: KubeStateApi, private readonly opts: LeaderElectionOptions, private readonly log: Logger) {
    super();
    this.leaseMs = opts.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = opts.renewDeadlineMs ?? 10_000;
    this.retryMs = opts.retryPeriodMs ?? 2_000;
    this.now = opts.now ?? Date.now;
    if (!(this.leaseMs > this.renewDeadlineMs && this.renewDeadlineMs > this.retryMs)) {
      throw new Error(`leader election: need leaseDuration (${this.leaseMs}) > renewDeadline (${this.renewDeadlineMs}) > retryPeriod (${this.retryMs})`);
    }
  }

  get identity(): string { return this.opts.identity; }
  isLeader(): boolean { return this.leading; }
  /** The holder as last observed ('' when nobody holds the Lease). */
  leader(): string { return this.observed?.holder ?? ''; }

  get leaseName(): string { return this.opts.name; }

  /** Campaigns until stop(); resolves after the first attempt (leading or not). */
  async start(): Promise<void> {
    if (!this.stopped) return;
    this.stopped = false;
    this.tick();
    await this.running;
  }

  private tick(): void {
    if (this.stopped) return;
    this.running = this.attempt().then(() => undefined).finally(() => {
      this.running = undefined;
      // Followers jitter their attempts so candidates do not collide in lockstep.
      if (!this.stopped) this.timer = setTimeout(() => this.tick(), this.leading ? this.retryMs : this.retryMs * (0.8 + Math.random() * 0.4));
    });
  }

  /** One try to acquire or renew. Never throws. */
  async attempt(): Promise<boolean> {
    let ok = false;
    try {
      ok = await this.tryAcquireOrRenew();
    } catch (e) {
      if (!isConflict(e)) this.log.warn({ lease: this.opts.name, err: describeError(e) }, 'leader election: cannot reach the Lease');
    }
    const t = this.now();
    if (ok) {
      this.lastRenew = t;
      if (!this.leading) {
        this.leading = true;
        this.log.info({ lease: this.opts.name, identity: this.opts.identity }, 'leader election: now leading');
        this.emit('leading');
      }
    } else if (this.leading && (t - this.lastRenew >= this.renewDeadlineMs || this.leader() !== this.opts.identity)) {
      this.leading = false;
      this.log.warn({ lease: this.opts.name, identity: this.opts.identity, holder: this.leader() }, 'leader election: lost the lease');
      this.emit('following');
    }
    return ok;
  }

  private observe(lease: LeaseObject): void {
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    const key = `${holder}|${spec.renewTime ?? ''}|${lease.metadata.resourceVersion ?? ''}`;
    if (this.observed?.key !== key) {
      const changedHolder = this.observed?.holder !== holder;
      this.observed = { key, at: this.now(), holder };
      if (changedHolder) this.emit('leader', holder);
    }
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const t = this.now();
    const mine: LeaseSpec = { holderIdentity: this.opts.identity, leaseDurationSeconds: Math.max(1, Math.round(this.leaseMs / 1000)), renewTime: microTime(t) };
    const lease = await this.api.get<LeaseObject>('leases', this.opts.name);
    if (!lease) {
      const created = await this.api.create<LeaseObject>('leases', { metadata: { name: this.opts.name }, spec: { ...mine, acquireTime: microTime(t), leaseTransitions: 0 } });
      this.observe(created);
      return true;
    }
    this.observe(lease);
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    const durationMs = (spec.leaseDurationSeconds ?? Math.round(this.leaseMs / 1000)) * 1000;
    if (holder !== '' && holder !== this.opts.identity && (this.observed as { at: number }).at + durationMs > t) return false;
    const renewing = holder === this.opts.identity;
    const next: LeaseObject = {
      ...lease,
      spec: {
        ...spec, ...mine,
        acquireTime: renewing && spec.acquireTime ? spec.acquireTime : microTime(t),
        leaseTransitions: (spec.leaseTransitions ?? 0) + (renewing ? 0 : 1),
      },
    };
    const written = await this.api.replace<LeaseObject>('leases', next);
    this.observe(written);
    return true;
  }

  /** Stops campaigning; a leader releases the Lease so a successor need not wait. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
    if (!this.leading) return;
    this.leading = false;
    try {
      const lease = await this.api.get<LeaseObject>('leases', this.opts.name);
      if (lease?.spec?.holderIdentity === this.opts.identity) {
        await this.api.replace<LeaseObject>('leases', { ...lease, spec: { ...lease.spec, holderIdentity: null, leaseDurationSeconds: 1, renewTime: microTime(this.now()) } });
        this.log.info({ lease: this.opts.name }, 'leader election: released the lease');
      }
    } catch (e) {
      this.log.warn({ lease: this.opts.name, err: describeError(e) }, 'leader election: could not release the lease; it expires by itself');
    }
    this.emit('following');
  }
}
