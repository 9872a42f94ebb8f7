// Certificate-path checks for SPIFFE X.509 SVIDs, on node:crypto's native X509Certificate
// (no ASN.1 in JavaScript on the connection path). The TLS stack already verifies the
// chain against the trust bundle during the handshake; what it cannot check is the
// SPIFFE part: exactly one URI SAN, a well-formed weft ID, in our trust domain, and not a
// CA certificate. `peerSpiffeId` does that for a handshake-verified peer; `verifyChain`
// does the whole job for PEM that did not come through a handshake.
import { X509Certificate } from 'node:crypto';
import { WeftError } from '../lib/errors';
import { parseSpiffeId } from './spiffe';
import { splitPemCertificates } from './pki';

const MAX_DEPTH = 5;

function reject(message: string, details?: Record<string, unknown>): WeftError {
  return new WeftError('WEFT_ERR_UNAUTHENTICATED', message, details ? { details } : undefined);
}

/** The single SPIFFE ID (URI SAN) of a certificate, validated. Node renders the SAN as
 *  "URI:a, DNS:b" and quotes entries with special characters; a SPIFFE ID never has
 *  any, so a quoted URI entry is rejected rather than unescaped. */
export function spiffeIdOfCertificate(cert: X509Certificate): string {
  const entries = (cert.subjectAltName ?? '').split(', ').filter((e) => e.startsWith('URI:'));
  if (entries.length !== 1) throw reject(`certificate must carry exactly one URI SAN, found ${entries.length}`);
  const uri = entries[0]!.slice(4);
  try { parseSpiffeId(uri); } catch (e) {
    throw reject(`certificate URI SAN is not a weft SPIFFE ID: ${uri.slice(0, 200)}`, { cause: String(e) });
  }
  return uri;
}

/** For a peer whose chain the TLS handshake has already verified against the bundle. */
export function peerSpiffeId(cert: X509Certificate | undefined, trustDomain: string): string {
  if (!cert) throw reject('peer presented no certificate');
  if (cert.ca) throw reject('peer certificate is a CA certificate');
  const id = spiffeIdOfCertificate(cert);
  const td = parseSpiffeId(id).trustDomain;
  if (td !== trustDomain) throw reject(`peer trust domain ${td} is not ${trustDomain}`, { id });
  return id;
}

function checkValidity(c: X509Certificate, now: Date, what: string): void {
  if (now < new Date(c.validFrom)) throw reject(`${what} is not valid before ${c.validFrom}`);
  if (now > new Date(c.validTo)) throw reject(`${what} expired at ${c.validTo}`);
}

export interface VerifyChainOptions {
  /** Required trust domain of the leaf's SPIFFE ID. */
  trustDomain?: string;
  now?: Date;
}

/**
 * Verifies `chain` (leaf first, then any intermediates; PEM string or array) against the
 * PEM roots in `trustBundle` and returns the leaf's SPIFFE ID. Throws
 * WEFT_ERR_UNAUTHENTICATED with the reason otherwise.
 */
export function verifyChain(chain: string | string[], trustBundle: string[], opts: VerifyChainOptions = {}): string {
  const now = opts.now ?? new Date();
  const pems = (Array.isArray(chain) ? chain : [chain]).flatMap(splitPemCertificates);
  if (!pems.length) throw reject('no certificate in chain');
  let certs: X509Certificate[];
  let roots: X509Certificate[];
  try {
    certs = pems.map((p) => new X509Certificate(p));
    roots = trustBundle.flatMap(splitPemCertificates).map((p) => new X509Certificate(p));
  } catch (e) {
    throw reject('cannot parse certificate', { cause: String(e) });
  }
  const leaf = certs[0]!;
  if (leaf.ca) throw reject('leaf certificate is a CA certificate');
  const id = spiffeIdOfCertificate(leaf);
  if (opts.trustDomain !== undefined && parseSpiffeId(id).trustDomain !== opts.trustDomain) {
    throw reject(`trust domain ${parseSpiffeId(id).trustDomain} is not ${opts.trustDomain}`, { id });
  }
  let cur = leaf;
  checkValidity(cur, now, 'certificate');
  for (let depth = 0; depth < MAX_DEPTH; depth++) {
    const root = roots.find((r) => cur.checkIssued(r) && cur.verify(r.publicKey));
    if (root) { checkValidity(root, now, 'root certificate'); return id; }
    const next = certs.slice(1).find((c) => c !== cur && c.ca && cur.checkIssued(c) && cur.verify(c.publicKey));
    if (!next) throw reject('certificate does not chain to the trust bundle', { id });
    checkValidity(next, now, 'intermediate certificate');
    cur = next;
  }
  throw reject('certificate chain too long', { id });
}
