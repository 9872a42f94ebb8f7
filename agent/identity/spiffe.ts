// SPIFFE IDs as weft uses them: spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>.
// The character rules are the SPIFFE ID specification's (lower-case trust domain, path
// segments of [A-Za-z0-9._-], no empty/dot segments, no query, fragment, port or
// userinfo); on top of that weft requires exactly the ns/sa shape, because authorization
// (principals, namespaces) and metrics labels are derived from those two segments.
import { WeftError } from '../lib/errors';

export interface SpiffeId {
  trustDomain: string;
  namespace: string;
  serviceAccount: string;
}

const TRUST_DOMAIN = /^[a-z0-9._-]+$/;
const SEGMENT = /^[A-Za-z0-9._-]+$/;
const MAX_ID_BYTES = 2048;
const MAX_TRUST_DOMAIN_BYTES = 255;

/** The namespace the agents' own (node) identities live in. */
export const NODE_NAMESPACE = 'weft-system';

function bad(message: string, id: string): WeftError {
  return new WeftError('WEFT_ERR_IDENTITY', message, { details: { id } });
}

export function validateTrustDomain(td: string): void {
  if (!td || td.length > MAX_TRUST_DOMAIN_BYTES || !TRUST_DOMAIN.test(td)) {
    throw bad(`invalid trust domain "${td}": lower-case letters, digits, '.', '-', '_' only, 1-255 characters`, td);
  }
}

function validateSegment(seg: string, what: string, id: string): void {
  if (!seg || seg === '.' || seg === '..' || !SEGMENT.test(seg)) {
    throw bad(`invalid ${what} "${seg}" in SPIFFE ID ${id}: letters, digits, '.', '-', '_' only, not '.' or '..'`, id);
  }
}

export function formatSpiffeId(id: SpiffeId): string {
  validateTrustDomain(id.trustDomain);
  const s = `spiffe://${id.trustDomain}/ns/${id.namespace}/sa/${id.serviceAccount}`;
  validateSegment(id.namespace, 'namespace', s);
  validateSegment(id.serviceAccount, 'service account', s);
  return s;
}

/** Parses and validates; throws WEFT_ERR_IDENTITY on anything that is not a weft ID. */
export function parseSpiffeId(s: string): SpiffeId {
  if (typeof s !== 'string' || Buffer.byteLength(s) > MAX_ID_BYTES) throw bad('SPIFFE ID missing or longer than 2048 bytes', String(s).slice(0, 64));
  if (!s.startsWith('spiffe://')) throw bad(`not a SPIFFE ID (scheme must be spiffe://): ${s}`, s);
  const rest = s.slice('spiffe://'.length);
  if (/[?#]/.test(rest)) throw bad(`SPIFFE ID must not have a query or fragment: ${s}`, s);
  const slash = rest.indexOf('/');
  const trustDomain = slash < 0 ? rest : rest.slice(0, slash);
  validateTrustDomain(trustDomain);
  const segs = slash < 0 ? [] : rest.slice(slash + 1).split('/');
  if (segs.length !== 4 || segs[0] !== 'ns' || segs[2] !== 'sa') {
    throw bad(`SPIFFE ID path must be /ns/<namespace>/sa/<service-account>: ${s}`, s);
  }
  validateSegment(segs[1]!, 'namespace', s);
  validateSegment(segs[3]!, 'service account', s);
  return { trustDomain, namespace: segs[1]!, serviceAccount: segs[3]! };
}

export function isValidSpiffeId(s: string): boolean {
  try { parseSpiffeId(s); return true; } catch { return false; }
}

/** The identity an agent itself uses (e.g. the certificate its 15008 listener presents). */
export function nodeSpiffeId(trustDomain: string, node: string): string {
  return formatSpiffeId({ trustDomain, namespace: NODE_NAMESPACE, serviceAccount: `node-${node}` });
}
