// The certificates a node holds, one per identity, and what a TLS endpoint gets from
// them: the validity check with the fail-mode answer (null when failing open,
// WEFT_ERR_IDENTITY when closed) and the TLS 1.3 context, built once per certificate and
// trust bundle. The IdentityManager fills it from the CA; a proxy worker's IdentityReplica
// from the primary's manager. Neither decides these answers itself.
import { createSecureContext, type SecureContext } from 'node:tls';
import type { FailMode } from '../policy/snapshot';
import type { Logger } from '../telemetry/logger';
import { failWithoutIdentity } from './fail-mode';
import { TLS13 } from './pki';

/** What a TLS endpoint needs for one identity. */
export interface TlsMaterial {
  key: string;
  cert: string;
  ca: string[];
}

export interface CertificateInfo {
  spiffeId: string;
  certChainPem: string[];
  notBefore: Date;
  expiresAt: Date;
  /** Renewals completed since the identity was added (0 = first certificate). */
  renewals: number;
}

interface Held {
  info: CertificateInfo;
  material: TlsMaterial;
  context?: SecureContext;
}

export interface CertificateStoreOptions {
  failMode: FailMode;
  clock: () => number;
  log: Logger;
  /** Why an identity has no valid certificate yet, for the error and the warning:
   *  `what` is 'renewal' (it had one, expired) or 'signing' (it never had one). */
  pendingNote: (spiffeId: string, what: 'renewal' | 'signing') => string;
}

export class CertificateStore {
  /** Identity → its certificate, or null while managed without one. */
  private readonly held = new Map<string, Held | null>();
  private bundle: string[] = [];

  constructor(private readonly o: CertificateStoreOptions) {}

  /** Starts holding an identity (without a certificate until `install`). */
  manage(spiffeId: string): void {
    if (!this.held.has(spiffeId)) this.held.set(spiffeId, null);
  }

  /** Holds the identity without a certificate (the source has none for it). */
  forget(spiffeId: string): void {
    this.held.set(spiffeId, null);
  }

  drop(spiffeId: string): void {
    this.held.delete(spiffeId);
  }

  ids(): string[] {
    return [...this.held.keys()];
  }

  /** Puts a certificate in place. Returns true when it is a new one (key or chain
   *  changed): its context is then rebuilt on next use; false keeps the current one. */
  install(spiffeId: string, info: CertificateInfo, material: TlsMaterial): boolean {
    const prev = this.held.get(spiffeId);
    if (prev && prev.material.cert === material.cert && prev.material.key === material.key) {
      prev.info = info;
      prev.material = material;
      return false;
    }
    // Swap: one assignment, the next secureContextFor() builds the new context.
    this.held.set(spiffeId, { info, material });
    return true;
  }

  /** Replaces the trust bundle every identity's context trusts. Returns false when it is
   *  the same; otherwise every context is rebuilt lazily. */
  setBundle(bundle: string[]): boolean {
    if (bundle.length === this.bundle.length && bundle.every((p, i) => p === this.bundle[i])) return false;
    this.bundle = bundle;
    for (const h of this.held.values()) {
      if (h) { h.material = { ...h.material, ca: bundle }; h.context = undefined; }
    }
    return true;
  }

  trustBundle(): string[] {
    return this.bundle;
  }

  /** The current certificate, valid or not. */
  certificate(spiffeId: string): CertificateInfo | undefined {
    return this.held.get(spiffeId)?.info;
  }

  /** Current key, chain and trust bundle for an identity, or the fail-mode outcome. */
  tlsMaterial(spiffeId: string): TlsMaterial | null {
    return this.usable(spiffeId)?.material ?? null;
  }

  /** A TLS 1.3 context presenting `spiffeId` and trusting the bundle, cached per
   *  certificate. Throws WEFT_ERR_IDENTITY (fail-closed) or returns null (fail-open) when
   *  there is no valid certificate. */
  secureContextFor(spiffeId: string): SecureContext | null {
    const h = this.usable(spiffeId);
    if (!h) return null;
    h.context ??= createSecureContext({ ...h.material, ...TLS13 });
    return h.context;
  }

  clear(): void {
    this.held.clear();
  }

  private usable(spiffeId: string): Held | null {
    const h = this.held.get(spiffeId);
    if (h && h.info.expiresAt.getTime() > this.o.clock()) return h;
    const why = h === undefined ? `identity ${spiffeId} is not managed on this node`
      : h ? `certificate for ${spiffeId} expired at ${h.info.expiresAt.toISOString()} (${this.o.pendingNote(spiffeId, 'renewal')})`
        : `no certificate for ${spiffeId} yet (${this.o.pendingNote(spiffeId, 'signing')})`;
    failWithoutIdentity(this.o.failMode, this.o.log, why, { spiffeId });
    return null;
  }
}
