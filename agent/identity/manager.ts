// The agent's certificate store: one key pair and SVID per local workload identity (and
// the node's own). Keys are generated here and never leave the process; only CSRs go to
// the CA, through the injected `sign` function (the control API client in the agent, the
// CA itself in tests). Certificates are renewed at half-life with jitter so a node's
// workloads, all started together, do not hit the CA in one burst, and a fresh key is
// used for every renewal. TLS contexts are built once per certificate and swapped
// atomically: a connection picks up whatever context is current when it starts, and
// established connections keep theirs.
//
// When an identity has no valid certificate (the CA is unreachable and the last one
// expired, or none was ever issued) the behaviour is explicit: 'closed' refuses to build
// a context (the caller fails the connection), 'open' returns null and the caller may go
// without mTLS (only meaningful toward PERMISSIVE destinations; STRICT ones refuse it).
import { EventEmitter } from 'node:events';
import { X509Certificate } from 'node:crypto';
import type { SecureContext } from 'node:tls';
import { Gauge, type Registry } from 'prom-client';
import { WeftError, describeError } from '../lib/errors';
import type { FailMode } from '../policy/snapshot';
import { componentLogger } from '../telemetry/logger';
import { CertificateStore, type CertificateInfo, type TlsMaterial } from './cert-store';
import { createCsr, generateSigningKey, privateKeyToPem, type KeyAlgorithm } from './pki';
import { parseSpiffeId } from './spiffe';
import { verifyChain } from './verify';

export interface SignResult {
  /** Leaf first. */
  certChainPem: string[];
  /** PEM roots to trust from now on (old and new during a root rotation). */
  trustBundle: string[];
}

/** Sends a CSR to the CA. Rejections are retried with backoff. */
export type SignFn = (csrPem: string, spiffeId: string) => Promise<SignResult>;

export interface IdentityManagerOptions {
  trustDomain: string;
  sign: SignFn;
  /** What to do when an identity has no valid certificate (see the header). */
  failMode?: FailMode;
  /** Requested SVID lifetime; the CA may clamp it. */
  ttlSeconds?: number;
  keyAlgorithm?: KeyAlgorithm;
  /** Renewal happens at lifetime x (0.5 +- jitter); default 0.05. */
  jitter?: number;
  /** Backoff after a failed signing attempt (doubles up to max). */
  retryInitialMs?: number;
  retryMaxMs?: number;
  /** Where the expiry gauge is registered (the agent's registry). */
  registry?: Registry;
  clock?: () => number;
}

export type { CertificateInfo, TlsMaterial } from './cert-store';

/** One managed identity's signing state; its certificate is in the store. */
interface Entry {
  spiffeId: string;
  timer?: NodeJS.Timeout;
  backoffMs: number;
  lastError?: string;
}

export interface IdentityManagerEvents {
  /** A new certificate (and context) is in place for this identity. */
  updated: [spiffeId: string];
  /** The trust bundle changed. */
  trustBundle: [bundle: string[]];
}

/** What the mTLS tunnel reads from a node's certificates: the IdentityManager itself,
 *  or a proxy worker's replica of the primary's (agent/node/identity-replica.ts). */
export interface IdentitySource {
  readonly trustDomain: string;
  readonly failMode: FailMode;
  certificate(spiffeId: string): CertificateInfo | undefined;
  tlsMaterial(spiffeId: string): TlsMaterial | null;
  secureContextFor(spiffeId: string): SecureContext | null;
  on<K extends keyof IdentityManagerEvents>(event: K, listener: (...args: IdentityManagerEvents[K]) => void): unknown;
  off<K extends keyof IdentityManagerEvents>(event: K, listener: (...args: IdentityManagerEvents[K]) => void): unknown;
}

export class IdentityManager extends EventEmitter<IdentityManagerEvents> implements IdentitySource {
  readonly trustDomain: string;
  readonly failMode: FailMode;
  private readonly opts: Required<Omit<IdentityManagerOptions, 'registry' | 'failMode' | 'trustDomain'>>;
  private readonly entries = new Map<string, Entry>();
  private readonly store: CertificateStore;
  private readonly expiry?: Gauge<'identity'>;
  private readonly log = componentLogger('identity');
  private closed = false;

  constructor(opts: IdentityManagerOptions) {
    super();
    this.trustDomain = opts.trustDomain;
    this.failMode = opts.failMode ?? 'closed';
    if (this.failMode !== 'open' && this.failMode !== 'closed') throw new WeftError('WEFT_ERR_INVALID_ARG', `failMode must be open or closed, got ${String(this.failMode)}`);
    this.opts = {
      sign: opts.sign,
      ttlSeconds: opts.ttlSeconds ?? 24 * 3600,
      keyAlgorithm: opts.keyAlgorithm ?? 'ecdsa-p256',
      jitter: opts.jitter ?? 0.05,
      retryInitialMs: opts.retryInitialMs ?? 1000,
      retryMaxMs: opts.retryMaxMs ?? 30_000,
      clock: opts.clock ?? Date.now,
    };
    this.store = new CertificateStore({
      failMode: this.failMode,
      clock: this.opts.clock,
      log: this.log,
      pendingNote: (id, what) => this.entries.get(id)?.lastError ?? `${what} pending`,
    });
    if (!(this.opts.jitter >= 0 && this.opts.jitter < 0.5)) throw new WeftError('WEFT_ERR_INVALID_ARG', 'jitter must be in [0, 0.5)');
    if (opts.registry) {
      this.expiry = new Gauge({
        name: 'weft_certificate_expiry_timestamp_seconds',
        help: 'Expiry time (unix seconds) of the current certificate of each local identity.',
        labelNames: ['identity'],
        registers: [opts.registry],
      });
    }
  }

  /** Starts managing an identity. Resolves true once it has a certificate, false if the
   *  first attempt failed (attempts continue in the background with backoff). */
  async add(spiffeId: string): Promise<boolean> {
    const td = parseSpiffeId(spiffeId).trustDomain;
    if (td !== this.trustDomain) throw new WeftError('WEFT_ERR_IDENTITY', `identity ${spiffeId} is not in trust domain ${this.trustDomain}`);
    const existing = this.entries.get(spiffeId);
    if (existing) return this.store.certificate(spiffeId) !== undefined;
    const e: Entry = { spiffeId, backoffMs: this.opts.retryInitialMs };
    this.entries.set(spiffeId, e);
    this.store.manage(spiffeId);
    return this.obtain(e);
  }

  /** Stops managing an identity (its workload left the node). */
  remove(spiffeId: string): void {
    const e = this.entries.get(spiffeId);
    if (!e) return;
    clearTimeout(e.timer);
    this.entries.delete(spiffeId);
    this.store.drop(spiffeId);
    this.expiry?.remove({ identity: spiffeId });
  }

  /** Makes the managed set exactly `ids` (local workloads changed): new identities are
   *  requested, departed ones dropped. Resolves when every new one had a first attempt. */
  async setIdentities(ids: Iterable<string>): Promise<void> {
    const want = new Set(ids);
    for (const id of this.entries.keys()) if (!want.has(id)) this.remove(id);
    await Promise.all([...want].filter((id) => !this.entries.has(id)).map((id) => this.add(id)));
  }

  identities(): string[] {
    return [...this.entries.keys()];
  }

  trustBundle(): string[] {
    return this.store.trustBundle();
  }

  certificate(spiffeId: string): CertificateInfo | undefined {
    return this.store.certificate(spiffeId);
  }

  /** Current key, chain and trust bundle for an identity, or the fail-mode outcome. */
  tlsMaterial(spiffeId: string): TlsMaterial | null {
    return this.store.tlsMaterial(spiffeId);
  }

  /** A TLS 1.3 context presenting `spiffeId` and trusting the bundle, cached per
   *  certificate. Throws WEFT_ERR_IDENTITY (fail-closed) or returns null (fail-open) when
   *  there is no valid certificate. */
  secureContextFor(spiffeId: string): SecureContext | null {
    return this.store.secureContextFor(spiffeId);
  }

  close(): void {
    this.closed = true;
    for (const id of [...this.entries.keys()]) this.remove(id);
  }

  private async obtain(e: Entry): Promise<boolean> {
    try {
      const key = await generateSigningKey(this.opts.keyAlgorithm);
      const res = await this.opts.sign(await createCsr(key, e.spiffeId), e.spiffeId);
      if (this.closed || this.entries.get(e.spiffeId) !== e) return false;
      // Never install what we would reject from a peer: it must chain to the bundle it
      // came with and name the identity we asked for.
      const got = verifyChain(res.certChainPem, res.trustBundle, { trustDomain: this.trustDomain, now: new Date(this.opts.clock()) });
      if (got !== e.spiffeId) throw new WeftError('WEFT_ERR_IDENTITY', `CA returned a certificate for ${got}, asked for ${e.spiffeId}`);
      const leaf = new X509Certificate(res.certChainPem[0]!);
      const previous = this.store.certificate(e.spiffeId);
      const info: CertificateInfo = {
        spiffeId: e.spiffeId,
        certChainPem: res.certChainPem,
        notBefore: new Date(leaf.validFrom),
        expiresAt: new Date(leaf.validTo),
        renewals: previous ? previous.renewals + 1 : 0,
      };
      const material: TlsMaterial = { key: await privateKeyToPem(key.privateKey), cert: res.certChainPem.join(''), ca: res.trustBundle };
      // The identity may have been removed while the key was exported: the store holds
      // only managed identities.
      if (this.closed || this.entries.get(e.spiffeId) !== e) return false;
      this.store.install(e.spiffeId, info, material);
      e.lastError = undefined;
      e.backoffMs = this.opts.retryInitialMs;
      this.expiry?.set({ identity: e.spiffeId }, info.expiresAt.getTime() / 1000);
      this.setBundle(res.trustBundle);
      this.schedule(e, this.renewDelay(info.expiresAt.getTime()));
      this.log.info({ spiffeId: e.spiffeId, expiresAt: info.expiresAt.toISOString(), renewals: info.renewals }, 'certificate issued');
      this.emit('updated', e.spiffeId);
      return true;
    } catch (err) {
      if (this.closed || this.entries.get(e.spiffeId) !== e) return false;
      e.lastError = describeError(err);
      const delay = e.backoffMs;
      e.backoffMs = Math.min(e.backoffMs * 2, this.opts.retryMaxMs);
      this.log.warn({ spiffeId: e.spiffeId, err: e.lastError, retryInMs: delay }, 'certificate request failed');
      this.schedule(e, delay);
      return false;
    }
  }

  /** Half the remaining lifetime, +- jitter. Measured from receipt, not notBefore: CAs
   *  backdate notBefore for clock skew, which for short TTLs would put the half-life in
   *  the past and renew in a loop. */
  private renewDelay(expiresAtMs: number): number {
    const remaining = expiresAtMs - this.opts.clock();
    const factor = 0.5 + (Math.random() * 2 - 1) * this.opts.jitter;
    return Math.max(0, remaining * factor);
  }

  private schedule(e: Entry, delayMs: number): void {
    clearTimeout(e.timer);
    e.timer = setTimeout(() => { void this.obtain(e); }, delayMs);
  }

  private setBundle(bundle: string[]): void {
    // Every identity's context trusts the bundle: the store rebuilds them all lazily.
    if (this.store.setBundle(bundle)) this.emit('trustBundle', bundle);
  }
}
