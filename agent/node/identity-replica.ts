// A proxy worker's view of the node's certificates: the primary's IdentityManager owns
// the keys' lifecycle (one CSR per identity and renewal for the whole node, whatever the
// number of workers) and publishes each identity's current key, chain and trust bundle;
// this replica installs them and serves them to the tunnel exactly as the manager would
// (same events, same fail-open/closed answers), so the tunnel code cannot tell them apart.
import { EventEmitter } from 'node:events';
import type { SecureContext } from 'node:tls';
import type { CertificateInfo, IdentityManager, IdentityManagerEvents, IdentitySource, TlsMaterial } from '../identity/manager';
import { CertificateStore } from '../identity/cert-store';
import type { FailMode } from '../policy/snapshot';
import { componentLogger } from '../telemetry/logger';
import type { IdentityState } from './ipc';

export class IdentityReplica extends EventEmitter<IdentityManagerEvents> implements IdentitySource {
  readonly trustDomain: string;
  readonly failMode: FailMode;
  private readonly store: CertificateStore;

  constructor(state: IdentityState, clock: () => number = Date.now) {
    super();
    this.trustDomain = state.trustDomain;
    this.failMode = state.failMode;
    this.store = new CertificateStore({
      failMode: this.failMode,
      clock,
      log: componentLogger('identity-replica'),
      pendingNote: (_id, what) => `${what} pending in the primary`,
    });
    this.install(state);
  }

  /** Replaces the held set with the primary's; emits 'updated' for every identity whose
   *  certificate changed and 'trustBundle' when the bundle did. */
  install(state: IdentityState): void {
    const changed: string[] = [];
    const wanted = new Set(state.identities.map((i) => i.spiffeId));
    for (const id of this.store.ids()) if (!wanted.has(id)) this.store.drop(id);
    for (const { spiffeId, entry } of state.identities) {
      if (!entry) this.store.forget(spiffeId);
      // Same certificate: the store keeps its context (the bundle may still have moved,
      // handled below).
      else if (this.store.install(spiffeId, entry.info, entry.material)) changed.push(spiffeId);
    }
    const bundleChanged = this.store.setBundle(state.trustBundle);
    for (const id of changed) this.emit('updated', id);
    if (bundleChanged) this.emit('trustBundle', state.trustBundle);
  }

  trustBundle(): string[] {
    return this.store.trustBundle();
  }

  certificate(spiffeId: string): CertificateInfo | undefined {
    return this.store.certificate(spiffeId);
  }

  tlsMaterial(spiffeId: string): TlsMaterial | null {
    return this.store.tlsMaterial(spiffeId);
  }

  secureContextFor(spiffeId: string): SecureContext | null {
    return this.store.secureContextFor(spiffeId);
  }

  close(): void {
    this.store.clear();
    this.removeAllListeners();
  }
}

/** The primary side: what `IdentityReplica.install` needs, read from the manager. */
export function identityState(m: IdentityManager): IdentityState {
  return {
    trustDomain: m.trustDomain,
    failMode: m.failMode,
    trustBundle: m.trustBundle(),
    identities: m.identities().map((spiffeId) => {
      const info = m.certificate(spiffeId);
      // certificate() is set only together with the material, and tlsMaterial() of an
      // expired one would throw in fail-closed mode: read it only while it is valid.
      let material: TlsMaterial | null = null;
      if (info && info.expiresAt.getTime() > Date.now()) {
        try { material = m.tlsMaterial(spiffeId); } catch { material = null; }
      }
      return { spiffeId, entry: info && material ? { info, material } : null };
    }),
  };
}
