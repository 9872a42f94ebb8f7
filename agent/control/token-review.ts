// Agents on Kubernetes authenticate with their own ServiceAccount token instead of a
// shared bootstrap secret: kubelet mounts a projected token (audience weft-control) that
// is bound to the agent's Pod, the control API asks the Kubernetes API whether it is
// valid (TokenReview, as kube-rbac-proxy and istiod do) and then checks that the Pod it
// is bound to still exists, is the agent's DaemonSet account, and runs on the node the
// caller claims. A token stolen from node A therefore cannot bootstrap node B, and
// stops working when its Pod is gone.
import { createHash } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { rpcError } from './rpc-error';
import { describeError } from '../lib/errors';
import { loadKubeConfig } from '../discovery/informer';

/** What the control API needs from the Kubernetes API (narrow, so tests can fake it). */
export interface ReviewApi {
  tokenReview(token: string, audiences: string[]): Promise<{
    authenticated: boolean; username?: string; audiences?: string[]; extra?: Record<string, string[]>; error?: string;
  }>;
  /** The Pod's uid and node, or undefined when it does not exist. */
  pod(namespace: string, name: string): Promise<{ uid?: string; nodeName?: string } | undefined>;
}

export interface ServiceAccountReviewOptions {
  api: ReviewApi;
  /** The agents' account, "NAMESPACE/NAME" (default weft-system/weft-agent). */
  serviceAccount: { namespace: string; name: string };
  /** The audience the projected token was minted for (default weft-control). */
  audience: string;
  /** How long a successful review is reused (default 30 s; tokens are re-reviewed after). */
  cacheMs?: number;
  now?: () => number;
}

export const DEFAULT_TOKEN_AUDIENCE = 'weft-control';
export const DEFAULT_AGENT_SERVICE_ACCOUNT = 'weft-system/weft-agent';
const CACHE_LIMIT = 4096;
const POD_NAME = 'authentication.kubernetes.io/pod-name';
const POD_UID = 'authentication.kubernetes.io/pod-uid';
const NODE_NAME = 'authentication.kubernetes.io/node-name';

/** A compact JWS (three base64url parts): what a ServiceAccount token looks like, and
 *  what no bootstrap token of ours does (they carry no dots). */
export function looksLikeJwt(token: string): boolean {
  return /^[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]+$/.test(token);
}

export function parseServiceAccount(s: string): { namespace: string; name: string } | undefined {
  const m = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)\/([a-z0-9]([-a-z0-9.]*[a-z0-9])?)$/.exec(s);
  return m && m[1]!.length <= 63 && m[3]!.length <= 253 ? { namespace: m[1]!, name: m[3]! } : undefined;
}

export class ServiceAccountTokenReviewer {
  private readonly cache = new Map<string, number>();
  private readonly now: () => number;

  constructor(private readonly opts: ServiceAccountReviewOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** Resolves when `token` is a live token of the agents' account bound to a Pod on
   *  `node`; rejects with a gRPC error otherwise (UNAVAILABLE when the API cannot say). */
  async review(token: string, node: string): Promise<void> {
    const key = createHash('sha256').update(token).update('\0').update(node).digest('hex');
    const until = this.cache.get(key);
    if (until !== undefined && until > this.now()) return;
    this.cache.delete(key);

    const { api, serviceAccount: sa, audience } = this.opts;
    let r: Awaited<ReturnType<ReviewApi['tokenReview']>>;
    try { r = await api.tokenReview(token, [audience]); } catch (e) {
      throw rpcError(status.UNAVAILABLE, `cannot review the service account token with the Kubernetes API: ${describeError(e).slice(0, 300)}`);
    }
    if (!r.authenticated) throw rpcError(status.UNAUTHENTICATED, `service account token rejected by the Kubernetes API${r.error ? `: ${r.error.slice(0, 200)}` : ''}`);
    if (r.audiences && !r.audiences.includes(audience)) throw rpcError(status.UNAUTHENTICATED, `service account token is not for audience ${audience}`);
    const want = `system:serviceaccount:${sa.namespace}:${sa.name}`;
    if (r.username !== want) throw rpcError(status.PERMISSION_DENIED, `service account ${String(r.username).slice(0, 300)} is not the agents' account ${want}`);
    const one = (k: string): string | undefined => (r.extra?.[k]?.length === 1 ? r.extra[k]![0] : undefined);
    const podName = one(POD_NAME);
    const podUid = one(POD_UID);
    if (!podName || !podUid) throw rpcError(status.PERMISSION_DENIED, 'service account token is not bound to a Pod: mount a projected serviceAccountToken volume (deploy/agent-daemonset.yaml)');
    const tokenNode = one(NODE_NAME);
    if (tokenNode !== undefined && tokenNode !== node) throw rpcError(status.PERMISSION_DENIED, `service account token was issued on node '${tokenNode}', not '${node}'`);
    let pod: Awaited<ReturnType<ReviewApi['pod']>>;
    try { pod = await api.pod(sa.namespace, podName); } catch (e) {
      throw rpcError(status.UNAVAILABLE, `cannot read Pod ${sa.namespace}/${podName}: ${describeError(e).slice(0, 300)}`);
    }
    if (!pod || pod.uid !== podUid) throw rpcError(status.UNAUTHENTICATED, `the Pod ${sa.namespace}/${podName} this token is bound to no longer exists`);
    if (pod.nodeName !== node) throw rpcError(status.PERMISSION_DENIED, `the Pod ${sa.namespace}/${podName} runs on node '${pod.nodeName ?? '(unscheduled)'}', not '${node}'`);

    if (this.cache.size >= CACHE_LIMIT) this.cache.delete(this.cache.keys().next().value as string);
    this.cache.set(key, this.now() + (this.opts.cacheMs ?? 30_000));
  }
}

/** ReviewApi over @kubernetes/client-node (in-cluster account, $KUBECONFIG or a file). */
export async function kubernetesReviewApi(kubeconfig?: string): Promise<ReviewApi> {
  const { k8s, kc } = await loadKubeConfig(kubeconfig);
  const authn = kc.makeApiClient(k8s.AuthenticationV1Api);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  return {
    async tokenReview(token, audiences) {
      const res = await authn.createTokenReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences } } });
      const st = res.status ?? {};
      return {
        authenticated: st.authenticated === true,
        ...(st.user?.username !== undefined ? { username: st.user.username } : {}),
        ...(st.audiences ? { audiences: st.audiences } : {}),
        ...(st.user?.extra ? { extra: st.user.extra } : {}),
        ...(st.error ? { error: st.error } : {}),
      };
    },
    async pod(namespace, name) {
      try {
        const p = await core.readNamespacedPod({ namespace, name });
        return { ...(p.metadata?.uid ? { uid: p.metadata.uid } : {}), ...(p.spec?.nodeName ? { nodeName: p.spec.nodeName } : {}) };
      } catch (e) {
        if ((e as { code?: number }).code === 404) return undefined;
        throw e;
      }
    },
  };
}
