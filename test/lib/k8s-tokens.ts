// ServiceAccount tokens for the fake API server: the TokenRequest subresource
// (POST /api/v1/namespaces/NS/serviceaccounts/NAME/token, what kubelet calls for a
// projected serviceAccountToken volume) and TokenReview
// (POST /apis/authentication.k8s.io/v1/tokenreviews). Tokens are JWTs with the real
// API's claims (iss, sub, aud, exp, kubernetes.io.{namespace, serviceaccount, pod,
// node}) and the review's user.extra keys (pod-name, pod-uid, node-name, node-uid,
// credential-id). They are signed with HS256 under a key only this process holds (the
// real API uses RS256 keys; nobody but the API server verifies them here either).
// As the real API: a token bound to a Pod stops being valid when that Pod is gone or
// was replaced (uid), audiences must intersect, and expired tokens are refused.
// Not modelled: ServiceAccount objects (any account name is accepted) and secret-based
// legacy tokens.
import { createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { ApiError, type KObject, type Store } from './k8s-store';

export const API_AUDIENCE = 'https://kubernetes.default.svc.cluster.local';
const ISSUER = API_AUDIENCE;

interface Claims {
  aud: string[]; exp: number; iat: number; nbf: number; iss: string; jti: string; sub: string;
  'kubernetes.io': {
    namespace: string;
    serviceaccount: { name: string; uid: string };
    pod?: { name: string; uid: string };
    node?: { name: string; uid: string };
  };
}

const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');

export class ServiceAccountTokens {
  private readonly key = randomBytes(32);
  private readonly kid = randomBytes(8).toString('hex');
  private readonly saUids = new Map<string, string>();

  constructor(private readonly store: Store, private readonly now: () => number = Date.now) {}

  /** Handles the two endpoints; false for any other path. */
  handles(segments: string[], method: string): boolean {
    return method === 'POST' && (isTokenRequest(segments) || isTokenReview(segments));
  }

  /** Status code and body for a request `handles` accepted. */
  serve(segments: string[], body: unknown): { code: number; body: unknown } {
    if (isTokenRequest(segments)) return { code: 201, body: this.request(segments[3]!, segments[5]!, body as KObject) };
    return { code: 201, body: this.review(body as KObject) };
  }

  private request(namespace: string, account: string, tr: KObject): KObject {
    const spec = (tr.spec ?? {}) as { audiences?: string[]; expirationSeconds?: number; boundObjectRef?: { kind?: string; apiVersion?: string; name?: string; uid?: string } };
    const exp = spec.expirationSeconds ?? 3600;
    if (!Number.isInteger(exp) || exp < 600) throw new ApiError(422, 'Invalid', `TokenRequest.authentication.k8s.io "${account}" is invalid: spec.expirationSeconds: Invalid value: ${exp}: may not specify a duration less than 10 minutes`);
    const aud = spec.audiences?.length ? spec.audiences : [API_AUDIENCE];
    const k8s: Claims['kubernetes.io'] = { namespace, serviceaccount: { name: account, uid: this.saUid(namespace, account) } };
    const ref = spec.boundObjectRef;
    if (ref) {
      if (ref.kind !== 'Pod') throw new ApiError(422, 'Invalid', `TokenRequest.authentication.k8s.io "${account}" is invalid: spec.boundObjectRef.kind: Unsupported value: "${ref.kind}"`);
      const pod = this.store.get('pods', namespace, ref.name ?? '');
      if (ref.uid && pod.metadata?.uid !== ref.uid) throw new ApiError(409, 'Conflict', `the UID in the bound object reference (${ref.uid}) does not match the UID in record. The object might have been deleted and then recreated`);
      const podSa = (pod.spec as { serviceAccountName?: string } | undefined)?.serviceAccountName ?? 'default';
      if (podSa !== account) throw new ApiError(400, 'BadRequest', `cannot request a token for service account ${account} bound to pod ${ref.name}: pod's service account is ${podSa}`);
      k8s.pod = { name: String(pod.metadata?.name), uid: String(pod.metadata?.uid) };
      const nodeName = (pod.spec as { nodeName?: string } | undefined)?.nodeName;
      if (nodeName) {
        let nodeUid = '';
        try { nodeUid = String(this.store.get('nodes', undefined, nodeName).metadata?.uid ?? ''); } catch { /* node object not made by the test */ }
        k8s.node = { name: nodeName, uid: nodeUid };
      }
    }
    const iat = Math.floor(this.now() / 1000);
    const claims: Claims = { aud, exp: iat + exp, iat, nbf: iat, iss: ISSUER, jti: randomUUID(), sub: `system:serviceaccount:${namespace}:${account}`, 'kubernetes.io': k8s };
    const signing = `${b64({ alg: 'HS256', kid: this.kid })}.${b64(claims)}`;
    const token = `${signing}.${createHmac('sha256', this.key).update(signing).digest('base64url')}`;
    return {
      kind: 'TokenRequest', apiVersion: 'authentication.k8s.io/v1',
      metadata: { name: account, namespace, creationTimestamp: new Date(iat * 1000).toISOString() },
      spec: { audiences: aud, expirationSeconds: exp, boundObjectRef: ref ?? null },
      status: { token, expirationTimestamp: new Date(claims.exp * 1000).toISOString() },
    };
  }

  private review(tr: KObject): KObject {
    const spec = (tr.spec ?? {}) as { token?: string; audiences?: string[] };
    const out = (status: Record<string, unknown>): KObject => ({ kind: 'TokenReview', apiVersion: 'authentication.k8s.io/v1', metadata: { creationTimestamp: null }, spec, status });
    const want = spec.audiences?.length ? spec.audiences : [API_AUDIENCE];
    const claims = this.verify(spec.token ?? '');
    if (typeof claims === 'string') return out({ authenticated: false, user: {}, error: claims });
    const audiences = claims.aud.filter((a) => want.includes(a));
    if (!audiences.length) return out({ authenticated: false, user: {}, error: `[invalid bearer token, token audiences ${JSON.stringify(claims.aud)} is invalid for the target audiences ${JSON.stringify(want)}]` });
    const k8s = claims['kubernetes.io'];
    const extra: Record<string, string[]> = { 'authentication.kubernetes.io/credential-id': [`JTI=${claims.jti}`] };
    if (k8s.pod) {
      let pod: KObject | undefined;
      try { pod = this.store.get('pods', k8s.namespace, k8s.pod.name); } catch { /* gone */ }
      if (!pod || pod.metadata?.uid !== k8s.pod.uid || pod.metadata?.deletionTimestamp) {
        return out({ authenticated: false, user: {}, error: `[invalid bearer token, pod "${k8s.pod.name}" not found or replaced]` });
      }
      extra['authentication.kubernetes.io/pod-name'] = [k8s.pod.name];
      extra['authentication.kubernetes.io/pod-uid'] = [k8s.pod.uid];
    }
    if (k8s.node) {
      extra['authentication.kubernetes.io/node-name'] = [k8s.node.name];
      if (k8s.node.uid) extra['authentication.kubernetes.io/node-uid'] = [k8s.node.uid];
    }
    return out({
      authenticated: true, audiences,
      user: { username: claims.sub, uid: k8s.serviceaccount.uid, groups: ['system:serviceaccounts', `system:serviceaccounts:${k8s.namespace}`, 'system:authenticated'], extra },
    });
  }

  /** The claims of a valid token, or why it is not one. */
  private verify(token: string): Claims | string {
    const parts = token.split('.');
    if (parts.length !== 3) return 'invalid bearer token';
    const mac = createHmac('sha256', this.key).update(`${parts[0]}.${parts[1]}`).digest();
    const sig = Buffer.from(parts[2]!, 'base64url');
    if (sig.length !== mac.length || !timingSafeEqual(sig, mac)) return '[invalid bearer token, square/go-jose: error in cryptographic primitive]';
    let claims: Claims;
    try { claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as Claims; } catch { return 'invalid bearer token'; }
    if (claims.exp * 1000 <= this.now()) return '[invalid bearer token, service account token has expired]';
    return claims;
  }

  private saUid(namespace: string, name: string): string {
    const key = `${namespace}/${name}`;
    let uid = this.saUids.get(key);
    if (!uid) { uid = randomUUID(); this.saUids.set(key, uid); }
    return uid;
  }
}

function isTokenRequest(s: string[]): boolean {
  return s.length === 7 && s[0] === 'api' && s[1] === 'v1' && s[2] === 'namespaces' && s[4] === 'serviceaccounts' && s[6] === 'token';
}

function isTokenReview(s: string[]): boolean {
  return s.length === 4 && s[0] === 'apis' && s[1] === 'authentication.k8s.io' && s[2] === 'v1' && s[3] === 'tokenreviews';
}
