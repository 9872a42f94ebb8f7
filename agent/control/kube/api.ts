// The few Kubernetes API calls the replicated control API makes for its durable state
// (Lease, Secret, ConfigMap): get, create and replace of one namespaced object, JSON in
// and out. Optimistic concurrency is the API server's: a replace carries the
// resourceVersion that was read and fails with 409 Conflict when someone wrote in
// between; a create fails with 409 AlreadyExists when the object appeared meanwhile.
// Both come back as ConflictError so callers re-read and decide again.
//
// Bodies are never logged or put into error messages: a Secret read here holds the CA
// key. Errors carry the method, path and the API server's Status reason only.
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { request as httpRequest } from 'node:http';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { WeftError } from '../../lib/errors';
import { loadKubeConfig } from '../../discovery/informer';

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string; annotations?: Record<string, string>; labels?: Record<string, string>; [k: string]: unknown };
  [k: string]: unknown;
}

/** The resources the control API keeps its state in. */
export type StateResource = 'leases' | 'secrets' | 'configmaps';

const PREFIX: Record<StateResource, string> = { leases: '/apis/coordination.k8s.io/v1', secrets: '/api/v1', configmaps: '/api/v1' };
const KIND: Record<StateResource, { apiVersion: string; kind: string }> = {
  leases: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease' },
  secrets: { apiVersion: 'v1', kind: 'Secret' },
  configmaps: { apiVersion: 'v1', kind: 'ConfigMap' },
};

/** 409 from the API server: the object changed (or appeared) since it was read. */
export class ConflictError extends WeftError {
  constructor(what: string) {
    super('WEFT_ERR_CONFLICT', `${what}: changed concurrently (409 Conflict)`);
  }
}

export function isConflict(e: unknown): e is ConflictError {
  return e instanceof ConflictError;
}

/** One HTTP exchange; `body` undefined for GET. Resolves with status and parsed JSON. */
export type Transport = (method: string, path: string, body?: unknown) => Promise<{ status: number; json: unknown }>;

const SA_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

/** The namespace the control API keeps its state in: the flag, the pod's own namespace
 *  (POD_NAMESPACE from the downward API, or the service account's), else weft-system. */
export function defaultStateNamespace(): string {
  if (process.env.POD_NAMESPACE) return process.env.POD_NAMESPACE;
  try { return readFileSync(SA_NAMESPACE_FILE, 'utf8').trim() || 'weft-system'; } catch { return 'weft-system'; }
}

/** HTTP(S) to the API server of a kubeconfig (file, $KUBECONFIG, ~/.kube/config or the
 *  in-cluster service account). */
export async function httpTransport(kubeconfig?: string): Promise<Transport> {
  const { kc } = await loadKubeConfig(kubeconfig);
  const server = kc.getCurrentCluster()?.server as string;
  const base = new URL(server);
  const transport: Transport = async (method, path, body) => {
    const opts: RequestOptions = {
      method, protocol: base.protocol, hostname: base.hostname.replace(/^\[|\]$/g, ''), port: base.port || (base.protocol === 'https:' ? 443 : 80),
      path: `${base.pathname.replace(/\/$/, '')}${path}`, headers: { accept: 'application/json' },
    };
    // Credentials (token, client certificate, CA) are applied per request: in-cluster
    // tokens are rotated on disk and the client re-reads them.
    await kc.applyToHTTPSOptions(opts);
    // SNI carries names only (RFC 6066); an API server addressed by IP is verified by IP.
    if (typeof opts.servername === 'string' && isIP(opts.servername)) delete opts.servername;
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    if (data) Object.assign(opts.headers as Record<string, string>, { 'content-type': 'application/json', 'content-length': String(data.length) });
    return new Promise((resolve, reject) => {
      const req = (base.protocol === 'https:' ? httpsRequest : httpRequest)(opts, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          let json: unknown;
          try { json = JSON.parse(Buffer.concat(chunks).toString('utf8')); } catch { json = undefined; }
          resolve({ status: res.statusCode ?? 0, json });
        });
        res.on('error', reject);
      });
      req.setTimeout(10_000, () => req.destroy(new Error('request timed out')));
      req.on('error', reject);
      req.end(data);
    });
  };
  return transport;
}

export class KubeStateApi {
  constructor(readonly namespace: string, private readonly transport: Transport, private readonly timeoutMs = 10_000) {}

  /** Connects the way discovery does: a kubeconfig file, $KUBECONFIG, ~/.kube/config or
   *  the in-cluster service account. */
  static async connect(namespace: string, kubeconfig?: string): Promise<KubeStateApi> {
    return new KubeStateApi(namespace, await httpTransport(kubeconfig));
  }

  private path(resource: StateResource, name?: string): string {
    return `${PREFIX[resource]}/namespaces/${encodeURIComponent(this.namespace)}/${resource}${name === undefined ? '' : `/${encodeURIComponent(name)}`}`;
  }

  private async call(method: string, resource: StateResource, name: string | undefined, body?: unknown): Promise<{ status: number; json: unknown }> {
    const where = `${method} ${resource}/${name ?? ''} in ${this.namespace}`;
    let res: { status: number; json: unknown };
    try {
      res = await Promise.race([
        this.transport(method, this.path(resource, name), body),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs).unref()),
      ]);
    } catch (e) {
      throw new WeftError('WEFT_ERR_UNAVAILABLE', `Kubernetes API: ${where}: ${(e as Error).message}`, { cause: e });
    }
    if (res.status === 409) throw new ConflictError(`${resource}/${name ?? (body as KubeObject | undefined)?.metadata?.name ?? ''}`);
    if (res.status >= 300 && res.status !== 404) {
      const st = res.json as { reason?: string; message?: string } | undefined;
      // A Status message names the object, never its data.
      const code = res.status === 401 ? 'WEFT_ERR_UNAUTHENTICATED' : res.status === 403 ? 'WEFT_ERR_PERMISSION' : 'WEFT_ERR_UNAVAILABLE';
      throw new WeftError(code, `Kubernetes API: ${where}: ${res.status} ${st?.reason ?? ''} ${(st?.message ?? '').slice(0, 300)}`.trim(), { details: { httpStatus: res.status } });
    }
    return res;
  }

  /** The object, or undefined when it does not exist. */
  async get<T extends KubeObject>(resource: StateResource, name: string): Promise<T | undefined> {
    const res = await this.call('GET', resource, name);
    return res.status === 404 ? undefined : res.json as T;
  }

  /** Creates the object; ConflictError when it exists already. */
  async create<T extends KubeObject>(resource: StateResource, obj: T): Promise<T> {
    const res = await this.call('POST', resource, undefined, { ...KIND[resource], ...obj, metadata: { ...obj.metadata, namespace: this.namespace } });
    if (res.status === 404) throw new WeftError('WEFT_ERR_NOT_FOUND', `Kubernetes API: namespace ${this.namespace} does not exist`);
    return res.json as T;
  }

  /** Replaces the object, if it is still at obj.metadata.resourceVersion (ConflictError
   *  otherwise; NOT_FOUND when it was deleted). */
  async replace<T extends KubeObject>(resource: StateResource, obj: T): Promise<T> {
    if (!obj.metadata.resourceVersion) throw new WeftError('WEFT_ERR_INTERNAL', `replace of ${resource}/${obj.metadata.name} without a resourceVersion`);
    const res = await this.call('PUT', resource, obj.metadata.name, { ...KIND[resource], ...obj, metadata: { ...obj.metadata, namespace: this.namespace } });
    if (res.status === 404) throw new WeftError('WEFT_ERR_NOT_FOUND', `Kubernetes API: ${resource}/${obj.metadata.name} was deleted`);
    return res.json as T;
  }
}
