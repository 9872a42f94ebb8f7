// The node's certificates as the agent runs them: one IdentityManager per trust domain
// (a new domain re-issues everything), holding the node's own identity and its local
// workloads'; every new certificate and bundle is shared with the proxy workers, the
// node SVID replaces the bootstrap token toward the control API, and the mTLS tunnel
// follows the manager.
import type { Registry } from 'prom-client';
import { IdentityManager, type CertificateInfo, type SignFn } from '../identity/manager';
import { nodeSpiffeId } from '../identity/spiffe';
import { describeError } from '../lib/errors';
import type { NodeView } from '../policy/snapshot';
import type { Logger } from '../telemetry/logger';
import { identityState } from './identity-replica';
import type { IdentityState } from './ipc';
import type { ProxyPlane } from './proxy-plane';

export interface NodeIdentityOptions {
  node: string;
  registry: Registry;
  log: Logger;
  /** Sends a CSR to the CA (the control API). */
  sign: SignFn;
  /** Hands the certificates to the proxy workers. */
  share: (state: IdentityState) => void;
  /** The node's own certificate, for the control API connection. */
  useNodeCertificate: (cert: { key: string; cert: string }) => void;
  plane: Pick<ProxyPlane, 'closeTunnel' | 'ensureTunnel'>;
}

export class NodeIdentity {
  private manager: IdentityManager | null = null;

  constructor(private readonly o: NodeIdentityOptions) {}

  /** The manager now (null before the first snapshot). */
  get current(): IdentityManager | null {
    return this.manager;
  }

  /** What the proxy workers install (IdentityReplica), when there is a manager. */
  state(): IdentityState | undefined {
    return this.manager ? identityState(this.manager) : undefined;
  }

  /** The managed identities' certificates, or `pending` for those without one yet. */
  certificates(): (CertificateInfo | { spiffeId: string; pending: true })[] {
    return (this.manager?.identities() ?? []).map((id) => this.manager?.certificate(id) ?? { spiffeId: id, pending: true as const });
  }

  /** Follows a snapshot: the trust domain, the node's identity and its workloads'. */
  async update(view: NodeView): Promise<void> {
    if (this.manager && this.manager.trustDomain !== view.mesh.trustDomain) {
      this.o.log.warn({ from: this.manager.trustDomain, to: view.mesh.trustDomain }, 'trust domain changed: re-issuing every identity');
      await this.o.plane.closeTunnel();
      this.manager.close();
      this.manager = null;
    }
    if (!this.manager) {
      const identity = this.manager = new IdentityManager({
        trustDomain: view.mesh.trustDomain, failMode: view.mesh.failMode, ttlSeconds: Math.round(view.mesh.certTtlMs / 1000), registry: this.o.registry,
        sign: this.o.sign,
      });
      // Proxy workers get every new certificate and bundle (they never sign).
      const share = () => { if (this.manager === identity) this.o.share(identityState(identity)); };
      identity.on('updated', share);
      identity.on('trustBundle', share);
      // The node SVID replaces the bootstrap token toward the control API, renewals too.
      identity.on('updated', (id) => {
        if (this.manager !== identity || id !== this.nodeIdentity(identity.trustDomain)) return;
        const m = identity.tlsMaterial(id);
        if (m) this.o.useNodeCertificate({ key: m.key, cert: m.cert });
      });
    }
    const wanted = new Set([this.nodeIdentity(view.mesh.trustDomain), ...view.localWorkloads.map((w) => w.identity)]);
    for (const id of this.manager.identities()) if (!wanted.has(id)) this.manager.remove(id);
    // Certificates are obtained in the background: a slow CA must not hold up the ACK.
    for (const id of wanted) void this.manager.add(id).catch((e) => this.o.log.warn({ identity: id, err: describeError(e) }, 'identity not added'));
    this.o.plane.ensureTunnel(this.manager, view.mesh.trustDomain);
  }

  close(): void {
    this.manager?.close();
  }

  private nodeIdentity(trustDomain: string): string {
    return nodeSpiffeId(trustDomain, this.o.node);
  }
}
