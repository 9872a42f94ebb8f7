// SignCertificate: the control API is the mesh CA. Which identities a node may obtain is
// decided here, from the served snapshot: the SPIFFE IDs of workloads on that node
// (registered by its agent or declared by Workload objects with spec.node = it) plus the
// node's own identity. The CA (agent/identity) checks the CSR itself and refuses any
// identity outside that set.
import { status } from '@grpc/grpc-js';
import type { Snapshot } from '../policy/snapshot';
import type { SignCertificateRequest__Output } from './generated/weft/control/v1/SignCertificateRequest';
import type { SignCertificateResponse } from './generated/weft/control/v1/SignCertificateResponse';
import { rpcError } from './rpc-error';
import type { Caller } from './auth';
import { NODE_NAMESPACE } from '../identity/spiffe';

/** What the control API needs from agent/identity's CertificateAuthority. */
export interface CertificateSigner {
  readonly trustDomain?: string;
  trustBundle(): string[];
  signCsr(csrPem: string, opts: { allowedSpiffeIds: ReadonlySet<string>; ttlSeconds: number }):
    Promise<{ certChainPem: string[]; expiresAt: Date | number }> | { certChainPem: string[]; expiresAt: Date | number };
}

const MAX_CSR_BYTES = 16 * 1024;
const MAX_TTL_SECONDS = 7 * 24 * 3600;

/** The node's own identity: the agent authenticates to peers and to the control API as it. */
export function nodeSpiffeId(trustDomain: string, node: string): string {
  return `spiffe://${trustDomain}/ns/weft-system/sa/node-${node}`;
}

/** Identities in the node namespace (other nodes', the control API's) authenticate to
 *  the control API itself, so a workload declared with such an identity never gets one. */
function isInfrastructureIdentity(trustDomain: string, id: string): boolean {
  return id.startsWith(`spiffe://${trustDomain}/ns/${NODE_NAMESPACE}/`);
}

export function allowedIdentities(snapshot: Snapshot, node: string): Set<string> {
  const td = snapshot.mesh.trustDomain;
  const ids = new Set<string>([nodeSpiffeId(td, node)]);
  // hostNetwork workloads have no identity ("") and get no certificate.
  for (const w of snapshot.workloads) if (w.node === node && w.identity && !isInfrastructureIdentity(td, w.identity)) ids.add(w.identity);
  return ids;
}

export async function signCertificate(
  req: SignCertificateRequest__Output, caller: Caller, snapshot: Snapshot | undefined, signer: CertificateSigner | undefined,
): Promise<SignCertificateResponse> {
  if (!signer) throw rpcError(status.UNIMPLEMENTED, 'this control API runs without a CA');
  if (!req.csrPem.includes('-----BEGIN CERTIFICATE REQUEST-----')) throw rpcError(status.INVALID_ARGUMENT, 'csr_pem: expected a PEM certificate request');
  if (Buffer.byteLength(req.csrPem) > MAX_CSR_BYTES) throw rpcError(status.INVALID_ARGUMENT, `csr_pem: larger than ${MAX_CSR_BYTES} bytes`);
  if (req.ttlSeconds > MAX_TTL_SECONDS) throw rpcError(status.INVALID_ARGUMENT, `ttl_seconds: at most ${MAX_TTL_SECONDS}`);
  if (!snapshot) throw rpcError(status.UNAVAILABLE, 'no policy snapshot yet: identities are unknown');
  const ttlSeconds = req.ttlSeconds || Math.round(snapshot.mesh.certTtlMs / 1000);
  const out = await signer.signCsr(req.csrPem, { allowedSpiffeIds: allowedIdentities(snapshot, caller.node), ttlSeconds });
  const expires = out.expiresAt instanceof Date ? out.expiresAt.getTime() / 1000 : out.expiresAt;
  return { certChainPem: out.certChainPem, trustBundle: signer.trustBundle(), expiresAt: String(Math.floor(expires)) };
}
