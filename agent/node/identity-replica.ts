// A proxy worker's view of the node's certificates: the primary's IdentityManager owns
// the keys' lifecycle (one CSR per identity and renewal for the whole node, whatever the
// number of workers) and publishes each identity's current key, chain and trust bundle;
// this replica installs them and serves them to the tunnel exactly as the manager would
// (same events, same fail-open/closed answers), so the tunnel code cannot tell them apart.
import { EventEmitter } from 'node:events';
import { createSecureContext, type SecureContext } from 'node:tls';
import type { CertificateInfo, IdentityManager, IdentityManagerEvents, IdentitySource, TlsMaterial } from '../identity/manager';
import type { FailMode } from '../policy/snapshot';
import { TLS13 } from '../identity/pki';
import { WeftError } from '../lib/errors';
import { componentLogger } from '../telemetry/logger';
import type { IdentityEntry, IdentityState } from './ipc';

interface Held extends IdentityEntry { context?: SecureContext }

export class IdentityReplica extends EventEmitter<IdentityManagerEvents> implements IdentitySource {
  readonly trustDomain: string;
  readonly failMode: FailMode;
  private readonly held = new Map<string, Held | null>();
  private bundleHeld: string[] = [];
  private readonly log = componentLogger('identity-replica');

  constructor(state: IdentityState, private readonly clock: () => number = Date.now) {
    super();
    this.trustDomain = state.trustDomain;
    this.failMode = state.failMode;
    this.install(state);
  }

  /** Replaces the held set with the primary's; emits 'updated' for every identity whose
   *  certificate changed and 'trustBundle' when the bundle did. */
  install(state: IdentityState): void {
    const changed: string[] = [];
    const wanted = new Set(state.identities.map((i) => i.spiffeId));
    for (const id of this.held.keys()) if (!wanted.has(id)) this.held.delete(id);
    for (const { spiffeId, entry } of state.identities) {
      const prev = this.held.get(spiffeId);
      if (entry && prev?.material.cert === entry.material.cert && prev.material.key === entry.material.key) {
        // Same certificate; the bundle may still have moved (handled below).
        prev.material = entry.material;
        continue;
      }
      this.held.set(spiffeId, entry ? { ...entry } : null);
      if (entry) changed.push(spiffeId);
    }
    const bundleChanged = state.trustBundle.length !== this.bundleHeld.length || state.trustBundle.some((p, i) => p !== this.bundleHeld[i]);
    if (bundleChanged) {
      this.bundleHeld = state.trustBundle;
      for (const h of this.held.values()) if (h) h.context = undefined;
    }
    for (const id of changed) this.emit('updated', id);
    if (bundleChanged) this.emit('trustBundle', state.trustBundle);
  }

  trustBundle(): string[] {
    return this.bundleHeld;
  }

  certificate(spiffeId: string): CertificateInfo | undefined {
    return this.held.get(spiffeId)?.info;
  }

  tlsMaterial(spiffeId: string): TlsMaterial | null {
    return this.usableEntry(spiffeId)?.material ?? null;
  }

  secureContextFor(spiffeId: string): SecureContext | null {
    const h = this.usableEntry(spiffeId);
    if (!h) return null;
    h.context ??= createSecureContext({ ...h.material, ...TLS13 });
    return h.context;
  }

  close(): void {
    this.held.clear();
    this.removeAllListeners();
  }

  /** The manager's contract: a valid certificate, or null (fail-open) / WEFT_ERR_IDENTITY. */
  private usableEntry(spiffeId: string): Held | null {
    const h = this.held.get(spiffeId);
    if (h && h.info.expiresAt.getTime() > this.clock()) return h;
    const why = h === undefined ? `identity ${spiffeId} is not managed on this node`
      : h ? `certificate for ${spiffeId} expired at ${h.info.expiresAt.toISOString()} (renewal pending in the primary)`
        : `no certificate for ${spiffeId} yet (signing pending in the primary)`;
    if (this.failMode === 'open') {
      this.log.warn({ spiffeId, reason: why }, 'no valid certificate; failing open');
      return null;
    }
    throw new WeftError('WEFT_ERR_IDENTITY', why, { details: { spiffeId } });
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
