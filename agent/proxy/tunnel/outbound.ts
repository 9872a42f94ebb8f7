// Where an outbound connection that must go through the mesh is sent, once the caller (the
// outbound listener / L7 proxy) knows the source identity and the chosen backend:
//   - backend on another node: a CONNECT stream in a pooled mTLS session to that node's
//     15008 (TunnelPool), presenting the source workload's certificate;
//   - backend on this node: straight to the local workload through the same
//     authorization and metrics as inbound traffic (LocalForwarder), no encryption since
//     nothing goes on a wire.
// When the source has no valid certificate the identity manager's fail mode decides:
// fail-closed refuses (WEFT_ERR_IDENTITY), fail-open connects in plaintext to the backend,
// which a STRICT destination refuses and a PERMISSIVE one accepts.
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WeftError, describeError } from '../../lib/errors';
import { componentLogger } from '../../telemetry/logger';
import { failWithoutIdentity } from '../../identity/fail-mode';
import type { LocalForwarder, Target } from './forward';
import type { NodeAddress, TunnelPool } from './pool';

export interface OutboundRequest {
  sourceIdentity: string;
  sourceWorkload?: string;
  /** The source workload's own address (for the destination's ipBlocks rules). */
  sourceIp?: string;
  target: Target;
  /** The 15008 address of the node running the backend; null when it runs on this node. */
  nodeAddress: NodeAddress | null;
}

export interface OutboundOptions {
  pool: TunnelPool;
  local: LocalForwarder;
  /** The manager's fail mode ('open' allows the plaintext fallback). */
  failMode: 'open' | 'closed';
  /** Whether `contextFor` has a certificate (IdentityManager.secureContextFor !== null). */
  hasCertificate: (spiffeId: string) => boolean;
}

export class Outbound {
  private readonly log = componentLogger('outbound-tunnel');

  constructor(private readonly opts: OutboundOptions) {}

  /** A connected byte stream to the backend; the caller pipes the application socket
   *  into it. Rejects with a WeftError (PERMISSION, IDENTITY, UNAVAILABLE). */
  async open(req: OutboundRequest): Promise<Duplex> {
    if (!req.nodeAddress) {
      return this.opts.local.open({ sourcePrincipal: req.sourceIdentity, sourceWorkload: req.sourceWorkload, target: req.target, ...(req.sourceIp ? { sourceIp: req.sourceIp } : {}) });
    }
    if (!this.opts.hasCertificate(req.sourceIdentity)) {
      // Fail-closed rejects here (WEFT_ERR_IDENTITY); fail-open goes on in plaintext.
      failWithoutIdentity(this.opts.failMode, this.log, `no certificate for ${req.sourceIdentity}`, { source: req.sourceIdentity, target: `${req.target.ip}:${req.target.port}` });
      return plaintext(req.target);
    }
    return this.opts.pool.openTunnel({ ...req, nodeAddress: req.nodeAddress });
  }
}

function plaintext(t: Target): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: t.ip, port: t.port, allowHalfOpen: true, noDelay: true });
    s.once('connect', () => { s.removeAllListeners('error'); resolve(s); });
    s.once('error', (e) => reject(new WeftError('WEFT_ERR_UNAVAILABLE', `cannot connect to ${t.ip}:${t.port}: ${describeError(e)}`, { cause: e })));
  });
}
