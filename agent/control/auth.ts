// Who is calling: the node bootstrap token (RPC metadata `authorization: Bearer T`) and
// the node name the caller claims (`x-weft-node`). Tokens come from a file an operator
// distributes to nodes, one per line:
//   NODE TOKEN     accepted only for that node (the documented default:
//                  `weft control token --node NODE` appends one)
//   TOKEN          bound to the first node that presents it, and accepted only for that
//                  node from then on (token-bindings.ts keeps the binding across restarts)
// The file is re-read when it changes, so tokens for new nodes need no restart.
// On Kubernetes an agent presents its Pod-bound ServiceAccount token instead, checked
// with a TokenReview against the node it claims (token-review.ts).
// Comparison is constant-time over SHA-256 digests (equal lengths whatever was sent) and
// always walks every entry, so timing says nothing about which prefix matched.
// Over TLS an agent that holds its node SVID presents it as client certificate instead:
// a certificate the handshake verified against the mesh CA and that names a node
// identity authenticates the call as that node, and no token is needed. A certificate
// that did not verify (foreign CA, expired) carries no weight at all: grpc-js reports
// only verified peers, so such a call must authenticate by token like any other.
import { X509Certificate, createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { status, type Metadata } from '@grpc/grpc-js';
import { WeftError } from '../lib/errors';
import { peerSpiffeId } from '../identity/verify';
import { NODE_NAMESPACE, parseSpiffeId } from '../identity/spiffe';
import { isDnsSubdomain } from '../lib/names';
import { AUTH_METADATA_KEY, NODE_METADATA_KEY } from './proto';
import { rpcError } from './rpc-error';
import { MemoryTokenBindings, type TokenBindings } from './token-bindings';
import { looksLikeJwt, type ServiceAccountTokenReviewer } from './token-review';

interface TokenEntry { node: string | undefined; digest: Buffer }

/** How a caller proved who it is (shown per agent in Status). */
export type AuthMethod = 'token' | 'certificate' | 'service-account';

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

export interface AuthenticatorOptions {
  /** Where bare tokens' first-use bindings live (default: this process's memory). */
  bindings?: TokenBindings;
  /** Checks Kubernetes ServiceAccount tokens (weft control --kubernetes). */
  reviewer?: ServiceAccountTokenReviewer;
  /** A re-read token file that no longer parses (the previous tokens stay in force). */
  onReloadError?: (err: Error) => void;
}

function parseTokens(text: string, source: string): TokenEntry[] {
  const entries: TokenEntry[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) return;
    const fields = line.split(/\s+/);
    const [node, token] = fields.length === 1 ? [undefined, fields[0] as string] : [fields[0], fields[1] as string];
    if (fields.length > 2 || token.length < MIN_TOKEN_LENGTH || (node !== undefined && !isValidNodeName(node)) || looksLikeJwt(token)) {
      throw new WeftError('WEFT_ERR_INVALID_ARG', `${source}:${i + 1}: expected 'NODE TOKEN' or 'TOKEN' with a token of at least ${MIN_TOKEN_LENGTH} characters (not shaped like a JWT)`);
    }
    entries.push({ node, digest: digest(token) });
  });
  return entries;
}

function readTokens(path: string): string {
  try { return readFileSync(path, 'utf8'); } catch (e) {
    throw new WeftError('WEFT_ERR_INVALID_ARG', `--token-file: cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
}

const RELOAD_CHECK_MS = 1000;

export class TokenAuthenticator {
  private entries: TokenEntry[];
  private readonly bindings: TokenBindings;
  private file: { path: string; stamp: string; checkedAt: number } | undefined;
  private index: { entries: TokenEntry[]; map: Map<string, TokenEntry> } | undefined;

  /** `text`: the token file's content (undefined: no bootstrap tokens at all, only
   *  certificates and, with a reviewer, ServiceAccount tokens). */
  constructor(text: string | undefined, source = 'token file', private readonly opts: AuthenticatorOptions = {}) {
    this.entries = text === undefined ? [] : parseTokens(text, source);
    if (text !== undefined && this.entries.length === 0) throw new WeftError('WEFT_ERR_INVALID_ARG', `${source}: no tokens`);
    if (text === undefined && !opts.reviewer) throw new WeftError('WEFT_ERR_INVALID_ARG', 'no bootstrap tokens and no ServiceAccount token review: no node could ever join');
    this.bindings = opts.bindings ?? new MemoryTokenBindings();
  }

  /** The entries by hex digest; the first entry of a digest wins, as the scan did. */
  private byDigest(): Map<string, TokenEntry> {
    if (this.index?.entries !== this.entries) {
      const map = new Map<string, TokenEntry>();
      for (const e of this.entries) { const k = e.digest.toString('hex'); if (!map.has(k)) map.set(k, e); }
      this.index = { entries: this.entries, map };
    }
    return this.index.map;
  }

  static fromFile(path: string, opts: AuthenticatorOptions = {}): TokenAuthenticator {
    const a = new TokenAuthenticator(readTokens(path), path, opts);
    a.file = { path, stamp: stampOf(path), checkedAt: Date.now() };
    return a;
  }

  /** Picks up an edited token file (at most one stat per second). A file that no longer
   *  parses keeps the previous tokens in force and is reported once per change. */
  private reload(): void {
    const f = this.file;
    if (!f || Date.now() - f.checkedAt < RELOAD_CHECK_MS) return;
    f.checkedAt = Date.now();
    const stamp = stampOf(f.path);
    if (stamp === f.stamp) return;
    f.stamp = stamp;
    try {
      const entries = parseTokens(readTokens(f.path), f.path);
      if (entries.length === 0) throw new WeftError('WEFT_ERR_INVALID_ARG', `${f.path}: no tokens`);
      this.entries = entries;
    } catch (e) {
      this.opts.onReloadError?.(e as Error);
    }
  }

  /**
   * The authenticated caller, or a gRPC error: UNAUTHENTICATED without a valid token,
   * INVALID_ARGUMENT for a malformed node name, PERMISSION_DENIED when a token bound to
   * one node (by its line or by first use) is presented for another.
   */
  async authenticate(md: Metadata, peer: PeerCredentials = {}): Promise<Caller> {
    if (peer.certificate) return certificateCaller(md, peer.certificate, peer.trustDomain);
    const auth = md.get(AUTH_METADATA_KEY)[0];
    const m = typeof auth === 'string' ? /^Bearer (\S+)$/.exec(auth) : null;
    if (!m) throw rpcError(status.UNAUTHENTICATED, 'missing bearer token');
    const token = m[1] as string;
    const node = md.get(NODE_METADATA_KEY)[0];
    if (typeof node !== 'string' || !node) throw rpcError(status.UNAUTHENTICATED, `missing ${NODE_METADATA_KEY} metadata`);
    if (!isValidNodeName(node)) throw rpcError(status.INVALID_ARGUMENT, `malformed node name in ${NODE_METADATA_KEY}`);
    if (looksLikeJwt(token)) {
      if (!this.opts.reviewer) throw rpcError(status.UNAUTHENTICATED, 'a ServiceAccount token, but this control API runs without --kubernetes');
      await this.opts.reviewer.review(token, node);
      return { node, via: 'service-account' };
    }
    this.reload();
    const presented = digest(token);
    // Looked up by the token's SHA-256, not compared with every entry: a thousand nodes
    // reconnecting at once made that a million comparisons. What the lookup's timing can
    // reveal is about the digest, which says nothing usable about a token (finding a
    // token from its digest is a preimage attack); the entry found is still compared in
    // constant time.
    const found = this.byDigest().get(presented.toString('hex'));
    const match = found && timingSafeEqual(found.digest, presented) ? found : undefined;
    if (!match) throw rpcError(status.UNAUTHENTICATED, 'invalid token');
    if (match.node !== undefined && match.node !== node) throw rpcError(status.PERMISSION_DENIED, `this token is not valid for node '${node}'`);
    if (match.node === undefined) {
      let bound: string;
      try { bound = await this.bindings.bind(match.digest.toString('hex'), node); } catch (e) {
        throw rpcError(status.UNAVAILABLE, `cannot record the bootstrap token's node binding: ${(e as Error).message}`);
      }
      if (bound !== node) throw rpcError(status.PERMISSION_DENIED, `this bootstrap token is bound to another node (first used by it); give node '${node}' its own token`);
    }
    return { node, via: 'token' };
  }
}

function stampOf(path: string): string {
  try { const st = statSync(path); return `${st.ino}:${st.size}:${st.mtimeMs}`; } catch { return 'missing'; }
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
