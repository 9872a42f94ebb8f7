// A small typed client for the fake API server's unix socket (plain HTTP, no token):
// what tests use to play kubelet, scheduler and controllers, and to drive the server's
// test controls. Errors come back as ApiError with the server's Status.
//
//   const api = apiClient('/tmp/x/apiserver.sock');
//   await api.create('pods', pod);
//   const { items } = await api.list('pods', { fieldSelector: 'spec.nodeName=node-1' });
import { request } from 'node:http';
import { resourcePath, resourceType } from './k8s-resources';
import { ApiError, type KObject, type StatusObject } from './k8s-store';
import type { RequestRecord } from './fake-apiserver';

export interface ListOptions { namespace?: string; labelSelector?: string; fieldSelector?: string }
export interface ObjectList { kind: string; apiVersion: string; metadata: { resourceVersion: string }; items: KObject[] }

export interface ApiClient {
  create(resource: string, obj: KObject): Promise<KObject>;
  /** PUT of the whole object (its metadata.resourceVersion, if set, is a precondition). */
  replace(resource: string, obj: KObject): Promise<KObject>;
  /** PUT .../status. */
  updateStatus(resource: string, obj: KObject): Promise<KObject>;
  /** JSON merge patch (RFC 7386) of the object or its status. */
  patch(resource: string, namespace: string | undefined, name: string, patch: unknown, subresource?: 'status'): Promise<KObject>;
  delete(resource: string, namespace: string | undefined, name: string, preconditions?: { uid?: string; resourceVersion?: string }): Promise<KObject>;
  get(resource: string, namespace: string | undefined, name: string): Promise<KObject>;
  /** Like get, but undefined for 404. */
  find(resource: string, namespace: string | undefined, name: string): Promise<KObject | undefined>;
  list(resource: string, opts?: ListOptions): Promise<ObjectList>;
  /** TokenRequest (what kubelet does for a projected serviceAccountToken volume): a token
   *  of NAMESPACE/ACCOUNT bound to the Pod, for these audiences. */
  requestToken(namespace: string, account: string, spec: { audiences: string[]; expirationSeconds?: number; pod?: { name: string; uid: string } }): Promise<string>;
  /** Test controls. */
  compact(resourceVersion?: number): Promise<{ resourceVersion: string; oldestResourceVersion: string }>;
  closeWatches(opts?: { reset?: boolean }): Promise<number>;
  requests(): Promise<{ requests: RequestRecord[]; counters: Record<string, number> }>;
  clearRequests(): Promise<void>;
  state(): Promise<{ resourceVersion: string; oldestResourceVersion: string; openWatches: number; url: string | null }>;
}

export function apiClient(socketPath: string): ApiClient {
  const call = (method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<unknown> =>
    new Promise((resolve, reject) => {
      const data = body === undefined ? undefined : JSON.stringify(body);
      const req = request({
        socketPath, method, path,
        headers: { accept: 'application/json', 'user-agent': 'weft-test-harness', ...(data !== undefined ? { 'content-type': contentType, 'content-length': Buffer.byteLength(data) } : {}) },
      }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => { text += d; });
        res.on('end', () => {
          let parsed: unknown;
          try { parsed = text ? JSON.parse(text) : undefined; } catch { parsed = text; }
          if ((res.statusCode ?? 500) >= 400) {
            const st = parsed as Partial<StatusObject> | undefined;
            reject(new ApiError(res.statusCode ?? 500, st?.reason ?? 'Unknown', `${method} ${path}: ${st?.message ?? text}`, st?.details));
          } else {
            resolve(parsed);
          }
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(data);
    });
  const objPath = (resource: string, obj: KObject, sub?: string): string => {
    const name = obj.metadata?.name;
    if (!name) throw new Error(`${resource}: object has no metadata.name`);
    return resourcePath(resourceType(resource), obj.metadata?.namespace, name, sub);
  };
  const query = (o: ListOptions): string => {
    const q = new URLSearchParams();
    if (o.labelSelector) q.set('labelSelector', o.labelSelector);
    if (o.fieldSelector) q.set('fieldSelector', o.fieldSelector);
    const s = q.toString();
    return s ? `?${s}` : '';
  };
  const api: ApiClient = {
    create: async (resource, obj) => call('POST', resourcePath(resourceType(resource), obj.metadata?.namespace ?? (resourceType(resource).namespaced ? 'default' : undefined)), obj) as Promise<KObject>,
    replace: async (resource, obj) => call('PUT', objPath(resource, obj), obj) as Promise<KObject>,
    updateStatus: async (resource, obj) => call('PUT', objPath(resource, obj, 'status'), obj) as Promise<KObject>,
    patch: async (resource, namespace, name, patch, sub) => call('PATCH', resourcePath(resourceType(resource), namespace, name, sub), patch, 'application/merge-patch+json') as Promise<KObject>,
    delete: async (resource, namespace, name, preconditions) =>
      call('DELETE', resourcePath(resourceType(resource), namespace, name), preconditions ? { kind: 'DeleteOptions', apiVersion: 'v1', preconditions } : undefined) as Promise<KObject>,
    get: async (resource, namespace, name) => call('GET', resourcePath(resourceType(resource), namespace, name)) as Promise<KObject>,
    find: async (resource, namespace, name) => {
      try { return await api.get(resource, namespace, name); } catch (e) {
        if (e instanceof ApiError && e.code === 404) return undefined;
        throw e;
      }
    },
    requestToken: async (namespace, account, spec) => {
      const body = {
        apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest',
        spec: { audiences: spec.audiences, expirationSeconds: spec.expirationSeconds ?? 3600, ...(spec.pod ? { boundObjectRef: { kind: 'Pod', apiVersion: 'v1', ...spec.pod } } : {}) },
      };
      const tr = await call('POST', `/api/v1/namespaces/${encodeURIComponent(namespace)}/serviceaccounts/${encodeURIComponent(account)}/token`, body) as { status: { token: string } };
      return tr.status.token;
    },
    list: async (resource, o = {}) => call('GET', resourcePath(resourceType(resource), o.namespace) + query(o)) as Promise<ObjectList>,
    compact: async (rv) => call('POST', `/_fake/compact${rv !== undefined ? `?resourceVersion=${rv}` : ''}`) as Promise<{ resourceVersion: string; oldestResourceVersion: string }>,
    closeWatches: async (o = {}) => ((await call('POST', `/_fake/close-watches${o.reset ? '?reset=true' : ''}`)) as { closed: number }).closed,
    requests: async () => call('GET', '/_fake/requests') as Promise<{ requests: RequestRecord[]; counters: Record<string, number> }>,
    clearRequests: async () => { await call('DELETE', '/_fake/requests'); },
    state: async () => call('GET', '/_fake/state') as Promise<{ resourceVersion: string; oldestResourceVersion: string; openWatches: number; url: string | null }>,
  };
  return api;
}
