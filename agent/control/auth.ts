// Who is calling: the node bootstrap token (RPC metadata `authorization: Bearer T`) and
// the node name the caller claims (`x-weft-node`). Tokens come from a file an operator
// distributes to nodes, one per line:
//   TOKEN          accepted for any node name (a cluster-wide bootstrap token)
//   NODE TOKEN     accepted only for that node
// Comparison is constant-time over SHA-256 digests (equal lengths whatever was sent) and
// always walks every entry, so timing says nothing about which prefix matched.
// Over TLS an agent that holds its node SVID presents it as client certificate instead:
// a certificate the handshake verified against the mesh CA and that names a node
// identity authenticates the call as that node, and no token is needed. A certificate
// that did not verify (foreign CA, expired) carries no weight at all: grpc-js reports
// only verified peers, so such a call must authenticate by token like any other.
import { X509Certificate, createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { status, type Metadata } from '@grpc/grpc-js';
import { WeftError } from '../lib/errors';
import { peerSpiffeId } from '../identity/verify';
import { NODE_NAMESPACE, parseSpiffeId } from '../identity/spiffe';
import { isDnsSubdomain } from '../lib/names';
import { AUTH_METADATA_KEY, NODE_METADATA_KEY } from './proto';
import { rpcError } from './rpc-error';

interface TokenEntry { node: string | undefined; digest: Buffer }

/** How a caller proved who it is (shown per agent in Status). */
export type AuthMethod = 'token' | 'certificate';

export interface Caller { node: string; via: AuthMethod }

/** What the transport knows about the peer: the DER certificate TLS verified against
 *  the mesh CA (absent over plaintext or without one) and the CA's trust domain. */
export interface PeerCredentials {
  certificate?: Buffer | undefined;
  trustDomain?: string | undefined;
}

const MIN_TOKEN_LENGTH = 16;

/** Node names are Kubernetes node names: DNS-1123 subdomains (dots allowed, each part
 *  starting and ending with a letter or digit, at most 253 characters). */
export function isValidNodeName(s: string): boolean {
  return isDnsSubdomain(s);
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

export class TokenAuthenticator {
  private readonly entries: TokenEntry[];

  constructor(text: string, source = 'token file') {
    this.entries = [];
    text.split('\n').forEach((raw, i) => {
      const line = raw.replace(/#.*/, '').trim();
      if (!line) return;
      const fields = line.split(/\s+/);
      const [node, token] = fields.length === 1 ? [undefined, fields[0] as string] : [fields[0], fields[1] as string];
      if (fields.length > 2 || token.length < MIN_TOKEN_LENGTH || (node !== undefined && !isValidNodeName(node))) {
        throw new WeftError('WEFT_ERR_INVALID_ARG', `${source}:${i + 1}: expected 'TOKEN' or 'NODE TOKEN' with a token of at least ${MIN_TOKEN_LENGTH} characters`);
      }
      this.entries.push({ node, digest: digest(token) });
    });
    if (this.entries.length === 0) throw new WeftError('WEFT_ERR_INVALID_ARG', `${source}: no tokens`);
  }

  static fromFile(path: string): TokenAuthenticator {
    let text: string;
    try { text = readFileSync(path, 'utf8'); } catch (e) {
      throw new WeftError('WEFT_ERR_INVALID_ARG', `--token-file: cannot read ${path}: ${(e as Error).message}`, { cause: e });
    }
    return new TokenAuthenticator(text, path);
  }

  /**
   * The authenticated caller, or a gRPC error: UNAUTHENTICATED without a valid token,
   * INVALID_ARGUMENT for a malformed node name, PERMISSION_DENIED when a node-bound
   * token is used for another node.
   */
  authenticate(md: Metadata, peer: PeerCredentials = {}): Caller {
    if (peer.certificate) return certificateCaller(md, peer.certificate, peer.trustDomain);
    const auth = md.get(AUTH_METADATA_KEY)[0];
    const m = typeof auth === 'string' ? /^Bearer (\S+)$/.exec(auth) : null;
    if (!m) throw rpcError(status.UNAUTHENTICATED, 'missing bearer token');
    const presented = digest(m[1] as string);
    let match: TokenEntry | undefined;
    for (const e of this.entries) {
      if (timingSafeEqual(e.digest, presented) && !match) match = e;
    }
    if (!match) throw rpcError(status.UNAUTHENTICATED, 'invalid token');
    const node = md.get(NODE_METADATA_KEY)[0];
    if (typeof node !== 'string' || !node) throw rpcError(status.UNAUTHENTICATED, `missing ${NODE_METADATA_KEY} metadata`);
    if (!isValidNodeName(node)) throw rpcError(status.INVALID_ARGUMENT, `malformed node name in ${NODE_METADATA_KEY}`);
    if (match.node !== undefined && match.node !== node) throw rpcError(status.PERMISSION_DENIED, `this token is not valid for node '${node}'`);
    return { node, via: 'token' };
  }
}

const NODE_SA_PREFIX = 'node-';

/** The node a verified peer certificate speaks for. Workload SVIDs, the control API's
 *  own SVID and other trust domains are not node credentials. */
function certificateCaller(md: Metadata, der: Buffer, trustDomain: string | undefined): Caller {
  if (!trustDomain) throw rpcError(status.UNAUTHENTICATED, 'client certificate presented but this control API runs without a CA');
  const id = peerSpiffeId(new X509Certificate(der), trustDomain);
  const { namespace, serviceAccount } = parseSpiffeId(id);
  const node = serviceAccount.slice(NODE_SA_PREFIX.length);
  if (namespace !== NODE_NAMESPACE || !serviceAccount.startsWith(NODE_SA_PREFIX) || !isValidNodeName(node)) {
    throw rpcError(status.UNAUTHENTICATED, `client certificate ${id} is not a node identity`);
  }
  const claimed = md.get(NODE_METADATA_KEY)[0];
  if (claimed !== undefined && claimed !== node) throw rpcError(status.PERMISSION_DENIED, `${NODE_METADATA_KEY} '${String(claimed).slice(0, 200)}' is not the certificate's node '${node}'`);
  return { node, via: 'certificate' };
}

/** The node asserted in a request body must be the caller itself. */
export function requireSelf(caller: Caller, claimed: string, field: string): void {
  if (claimed !== caller.node) throw rpcError(status.PERMISSION_DENIED, `${field} '${claimed}' is not the authenticated node '${caller.node}'`);
}
