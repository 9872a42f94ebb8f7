// The fake API server's storage: objects by kind, one global resourceVersion that every
// write increments (like etcd's revision), a bounded history of changes for watches, and
// the write semantics of the real API server that clients depend on:
// - create: 409 AlreadyExists; uid, resourceVersion, creationTimestamp, generation set;
//   the kind's create strategy (a Pod starts Pending with its QoS class computed from
//   its containers' resources; a Service gets a ClusterIP; a Namespace is Active)
// - update: 409 Conflict on a stale metadata.resourceVersion; the main resource ignores
//   status, /status changes only status; an update that changes nothing is a no-op
//   (no new resourceVersion, no event); generation moves when spec changes
// - delete: the object leaves with a new resourceVersion (no graceful deletion)
// - watch from resourceVersion N: the events after N, each filtered by the watch's
//   selectors the way the real watch cache does it (an object that stops matching is
//   DELETED, one that starts matching is ADDED); N older than the retained history is
//   410 Expired; no N (or "0") starts with ADDED events for the current objects.
import { randomUUID, randomInt } from 'node:crypto';
import { RESOURCES, apiVersionOf, type ResourceType } from './k8s-resources';
import { parseFieldSelector, parseLabelSelector, SelectorError, type KObject, type Selector } from './k8s-selectors';

export type { KObject } from './k8s-selectors';

export interface StatusObject {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure' | 'Success';
  message: string;
  reason: string;
  details?: { name?: string; group?: string; kind?: string; causes?: { reason: string; message: string; field: string }[] };
  code: number;
}

/** An API error, carrying the Status object the server answers with. */
export class ApiError extends Error {
  constructor(readonly code: number, readonly reason: string, message: string, readonly details?: StatusObject['details']) {
    super(message);
  }
  status(): StatusObject {
    return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: this.message, reason: this.reason, ...(this.details ? { details: this.details } : {}), code: this.code };
  }
}

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
export interface WatchEvent { type: EventType; object: KObject }

interface Change { rv: number; resource: string; type: 'ADDED' | 'MODIFIED' | 'DELETED'; object: KObject; prev?: KObject }

export interface Query { namespace?: string; labelSelector?: string | null; fieldSelector?: string | null }

interface Watcher { resource: string; namespace?: string; match: Selector; send: (e: WatchEvent) => void }

export interface StoreOptions {
  /** Changes kept for watches to resume from (default 1000); older versions get 410. */
  historyLimit?: number;
  /** ClusterIPs are allocated from 10.96.0.0/16 starting here (default 10.96.0.10). */
  serviceIpBase?: string;
}

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

const clone = <T>(o: T): T => structuredClone(o);
const meta = (o: KObject): Record<string, unknown> & { name?: string; namespace?: string; resourceVersion?: string; uid?: string } =>
  (o.metadata ??= {}) as never;

/** JSON with sorted keys: equality of two objects regardless of key order. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v).sort().filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/** RFC 7386 JSON merge patch. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return clone(patch);
  const out: Record<string, unknown> = target && typeof target === 'object' && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

function timestamp(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}

type ResourceList = Record<string, string | undefined>;
interface ContainerLike { resources?: { requests?: ResourceList; limits?: ResourceList } }

/** The pod's QoS class from its containers' requests and limits (cpu, memory). */
export function podQosClass(spec: { containers?: ContainerLike[]; initContainers?: ContainerLike[] } | undefined): 'Guaranteed' | 'Burstable' | 'BestEffort' {
  const containers = [...(spec?.containers ?? []), ...(spec?.initContainers ?? [])];
  let any = false, guaranteed = true;
  for (const c of containers) {
    const req = c.resources?.requests ?? {}, lim = c.resources?.limits ?? {};
    for (const r of ['cpu', 'memory']) {
      if (req[r] !== undefined || lim[r] !== undefined) any = true;
      // Requests default to limits; Guaranteed needs both limits set and equal requests.
      if (lim[r] === undefined || (req[r] !== undefined && req[r] !== lim[r])) guaranteed = false;
    }
  }
  if (!any) return 'BestEffort';
  return guaranteed ? 'Guaranteed' : 'Burstable';
}

export class Store {
  private rv = 0;
  /** Watches from a version below this get 410 (its changes are gone from history). */
  private compactedRv = 0;
  private history: Change[] = [];
  private readonly objects = new Map<string, Map<string, KObject>>();
  private readonly watchers = new Set<Watcher>();
  private readonly historyLimit: number;
  private readonly allocatedIps = new Set<string>();
  private nextIp: number;

  constructor(opts: StoreOptions = {}) {
    this.historyLimit = opts.historyLimit ?? 1000;
    const base = (opts.serviceIpBase ?? '10.96.0.10').split('.').map(Number);
    this.nextIp = ((base[0]! << 24) >>> 0) + (base[1]! << 16) + (base[2]! << 8) + base[3]!;
    for (const r of RESOURCES) this.objects.set(r.resource, new Map());
  }

  resourceVersion(): string {
    return String(this.rv);
  }

  /** The oldest version a watch may still start from. */
  oldestResourceVersion(): string {
    return String(this.compactedRv);
  }

  type(resource: string): ResourceType {
    const t = RESOURCES.find((r) => r.resource === resource);
    if (!t) throw new ApiError(404, 'NotFound', `the server could not find the requested resource (${resource})`);
    return t;
  }

  get(resource: string, namespace: string | undefined, name: string): KObject {
    const t = this.type(resource);
    const o = this.objects.get(resource)!.get(this.key(t, namespace, name));
    if (!o) throw this.notFound(t, name);
    return clone(o);
  }

  list(resource: string, q: Query = {}): { resourceVersion: string; items: KObject[] } {
    const t = this.type(resource);
    const match = this.selector(t, q);
    const items = [...this.objects.get(resource)!.values()]
      .filter((o) => (!t.namespaced || !q.namespace || o.metadata?.namespace === q.namespace) && match(o))
      .sort((a, b) => `${a.metadata?.namespace}/${a.metadata?.name}`.localeCompare(`${b.metadata?.namespace}/${b.metadata?.name}`))
      .map(clone);
    return { resourceVersion: this.resourceVersion(), items };
  }

  create(resource: string, namespace: string | undefined, body: KObject): KObject {
    const t = this.type(resource);
    const obj = this.checkBody(t, body, namespace);
    const m = meta(obj);
    if (!m.name && typeof m.generateName === 'string' && m.generateName) {
      const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
      m.name = m.generateName + Array.from({ length: 5 }, () => alphabet[randomInt(alphabet.length)]).join('');
    }
    this.validateName(t, m.name);
    if (t.namespaced) {
      m.namespace = namespace ?? m.namespace ?? 'default';
      if (!this.objects.get('namespaces')!.has(m.namespace)) {
        throw new ApiError(404, 'NotFound', `namespaces "${m.namespace}" not found`, { name: m.namespace, kind: 'namespaces' });
      }
    } else {
      delete m.namespace;
    }
    const key = this.key(t, m.namespace, m.name!);
    if (this.objects.get(resource)!.has(key)) {
      throw new ApiError(409, 'AlreadyExists', `${t.resource}${t.group ? `.${t.group}` : ''} "${m.name}" already exists`, { name: m.name, group: t.group || undefined, kind: t.resource });
    }
    for (const f of ['resourceVersion', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'selfLink']) delete m[f];
    m.uid = randomUUID();
    m.creationTimestamp = timestamp();
    m.generation = 1;
    this.prepareForCreate(t, obj);
    this.validateData(t, obj);
    return this.commit(t, 'ADDED', key, obj);
  }

  /** PUT: the whole object, or (subresource 'status') only its status. */
  replace(resource: string, namespace: string | undefined, name: string, body: KObject, subresource?: 'status'): KObject {
    const t = this.type(resource);
    if (subresource === 'status' && !t.hasStatus) throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
    const obj = this.checkBody(t, body, namespace);
    const m = meta(obj);
    if (m.name !== undefined && m.name !== name) {
      throw new ApiError(400, 'BadRequest', `the name of the object (${m.name}) does not match the name on the URL (${name})`);
    }
    const key = this.key(t, namespace, name);
    const old = this.objects.get(resource)!.get(key);
    if (!old) throw this.notFound(t, name);
    if (m.resourceVersion !== undefined && m.resourceVersion !== '' && m.resourceVersion !== old.metadata!.resourceVersion) {
      throw new ApiError(409, 'Conflict', `Operation cannot be fulfilled on ${t.resource}${t.group ? `.${t.group}` : ''} "${name}": the object has been modified; please apply your changes to the latest version and try again`, { name, group: t.group || undefined, kind: t.resource });
    }
    let next: KObject;
    if (subresource === 'status') {
      next = { ...clone(old), status: clone(obj.status) };
    } else {
      next = obj;
      // What the client may not change: identity, creation time, and (through the main
      // resource) status, which has its own endpoint.
      const om = old.metadata!;
      Object.assign(meta(next), { name, uid: om.uid, creationTimestamp: om.creationTimestamp, generation: om.generation });
      if (t.namespaced) meta(next).namespace = om.namespace; else delete meta(next).namespace;
      if (t.hasStatus) next.status = clone(old.status);
      if (t.resource === 'services') this.keepClusterIp(old, next);
      if (canonical(next.spec) !== canonical(old.spec)) meta(next).generation = Number(om.generation ?? 1) + 1;
    }
    meta(next).resourceVersion = old.metadata!.resourceVersion as string;
    this.validateData(t, next);
    if (canonical(next) === canonical(old)) return clone(old);
    return this.commit(t, 'MODIFIED', key, next, old);
  }

  /** PATCH with an RFC 7386 merge patch (main resource or status). */
  patch(resource: string, namespace: string | undefined, name: string, patch: unknown, subresource?: 'status'): KObject {
    const t = this.type(resource);
    const old = this.objects.get(resource)!.get(this.key(t, namespace, name));
    if (!old) throw this.notFound(t, name);
    if (!patch || typeof patch !== 'object' || Array.isArray(patch)) throw new ApiError(400, 'BadRequest', 'a merge patch must be a JSON object');
    const merged = mergePatch(old, patch) as KObject;
    // A patch carries a precondition only when it names a resourceVersion itself.
    const patchRv = (patch as KObject).metadata?.resourceVersion;
    meta(merged).resourceVersion = typeof patchRv === 'string' ? patchRv : old.metadata!.resourceVersion as string;
    return this.replace(resource, namespace, name, merged, subresource);
  }

  delete(resource: string, namespace: string | undefined, name: string, preconditions?: { uid?: string; resourceVersion?: string }): KObject {
    const t = this.type(resource);
    const key = this.key(t, namespace, name);
    const old = this.objects.get(resource)!.get(key);
    if (!old) throw this.notFound(t, name);
    const om = old.metadata!;
    if (preconditions?.uid && preconditions.uid !== om.uid) {
      throw new ApiError(409, 'Conflict', `Precondition failed: UID in precondition: ${preconditions.uid}, UID in object meta: ${om.uid}`, { name, kind: t.resource });
    }
    if (preconditions?.resourceVersion && preconditions.resourceVersion !== om.resourceVersion) {
      throw new ApiError(409, 'Conflict', `Precondition failed: ResourceVersion in precondition: ${preconditions.resourceVersion}, ResourceVersion in object meta: ${om.resourceVersion}`, { name, kind: t.resource });
    }
    if (t.resource === 'namespaces') {
      // The namespace controller's job, done at once: everything in it goes first.
      for (const r of RESOURCES.filter((x) => x.namespaced)) {
        for (const o of [...this.objects.get(r.resource)!.values()].filter((o) => o.metadata?.namespace === name)) {
          this.delete(r.resource, name, o.metadata!.name!);
        }
      }
    }
    if (t.resource === 'services') for (const ip of this.clusterIps(old)) this.allocatedIps.delete(ip);
    return this.commit(t, 'DELETED', key, clone(old), old);
  }

  /**
   * Starts a watch: sends what happened after `resourceVersion` (or, without one, ADDED
   * for every current object), then every matching change until stop(). Throws ApiError
   * 410 Expired when that version is older than the retained history.
   */
  watch(resource: string, q: Query & { resourceVersion?: string | null }, send: (e: WatchEvent) => void): { stop(): void } {
    const t = this.type(resource);
    const w: Watcher = { resource, namespace: t.namespaced ? q.namespace : undefined, match: this.selector(t, q), send };
    const from = q.resourceVersion;
    if (!from || from === '0') {
      for (const o of this.list(resource, q).items) send({ type: 'ADDED', object: o });
    } else {
      const n = Number(from);
      if (!/^\d+$/.test(from)) throw new ApiError(400, 'BadRequest', `resourceVersion: Invalid value: "${from}": strconv.ParseUint: parsing "${from}": invalid syntax`);
      if (n < this.compactedRv) throw this.expired(n);
      for (const c of this.history) if (c.rv > n && c.resource === resource) this.deliver(w, c);
    }
    this.watchers.add(w);
    return { stop: () => { this.watchers.delete(w); } };
  }

  /** The Status of a watch that asked for a version older than the history. */
  expired(rv: number): ApiError {
    return new ApiError(410, 'Expired', `too old resource version: ${rv} (${this.compactedRv + 1})`);
  }

  /** Drops history up to `rv` (default: all of it): watches from older versions get 410. */
  compact(rv: number = this.rv): void {
    this.compactedRv = Math.max(this.compactedRv, Math.min(rv, this.rv));
    this.history = this.history.filter((c) => c.rv > this.compactedRv);
  }

  private commit(t: ResourceType, type: Change['type'], key: string, obj: KObject, prev?: KObject): KObject {
    this.rv++;
    meta(obj).resourceVersion = String(this.rv);
    const stored = Object.freeze(obj);
    const objects = this.objects.get(t.resource)!;
    if (type === 'DELETED') objects.delete(key); else objects.set(key, stored);
    const change: Change = { rv: this.rv, resource: t.resource, type, object: stored, prev };
    this.history.push(change);
    if (this.history.length > this.historyLimit) {
      const dropped = this.history.splice(0, this.history.length - this.historyLimit);
      this.compactedRv = Math.max(this.compactedRv, dropped.at(-1)!.rv);
    }
    for (const w of this.watchers) if (w.resource === t.resource) this.deliver(w, change);
    return clone(stored);
  }

  /** What one change looks like to one watch (selectors decide ADDED vs DELETED). */
  private deliver(w: Watcher, c: Change): void {
    const inScope = (o: KObject | undefined): boolean => !!o && (!w.namespace || o.metadata?.namespace === w.namespace) && w.match(o);
    const now = c.type !== 'DELETED' && inScope(c.object);
    const before = c.type === 'ADDED' ? false : inScope(c.prev);
    if (now && before) w.send({ type: 'MODIFIED', object: clone(c.object) });
    else if (now) w.send({ type: 'ADDED', object: clone(c.object) });
    else if (before) {
      // The previous state (it is what matched), at the version of this change.
      const o = clone(c.type === 'DELETED' ? c.object : c.prev!);
      meta(o).resourceVersion = String(c.rv);
      w.send({ type: 'DELETED', object: o });
    }
  }

  private selector(t: ResourceType, q: Query): Selector {
    try {
      const labels = parseLabelSelector(q.labelSelector);
      const fields = parseFieldSelector(q.fieldSelector, t.fields);
      return (o) => labels(o) && fields(o);
    } catch (e) {
      if (e instanceof SelectorError) throw new ApiError(400, 'BadRequest', e.message);
      throw e;
    }
  }

  private key(t: ResourceType, namespace: string | undefined, name: string): string {
    return t.namespaced ? `${namespace ?? ''}/${name}` : name;
  }

  private notFound(t: ResourceType, name: string): ApiError {
    return new ApiError(404, 'NotFound', `${t.resource}${t.group ? `.${t.group}` : ''} "${name}" not found`, { name, group: t.group || undefined, kind: t.resource });
  }

  private checkBody(t: ResourceType, body: KObject, namespace: string | undefined): KObject {
    if (!body || typeof body !== 'object' || Array.isArray(body)) throw new ApiError(400, 'BadRequest', 'the body of the request was not a JSON object');
    if (body.kind !== undefined && body.kind !== t.kind) throw new ApiError(400, 'BadRequest', `the object kind ${String(body.kind)} does not match ${t.kind}`);
    if (body.apiVersion !== undefined && body.apiVersion !== apiVersionOf(t)) throw new ApiError(400, 'BadRequest', `the API version in the data (${String(body.apiVersion)}) does not match the expected API version (${apiVersionOf(t)})`);
    const obj: KObject = { kind: t.kind, apiVersion: apiVersionOf(t), ...clone(body) };
    const m = meta(obj);
    if (t.namespaced && namespace && m.namespace && m.namespace !== namespace) {
      throw new ApiError(400, 'BadRequest', 'the namespace of the provided object does not match the namespace sent on the request');
    }
    return obj;
  }

  private validateName(t: ResourceType, name: unknown): void {
    const invalid = (msg: string): ApiError => new ApiError(422, 'Invalid', `${t.kind} "${String(name ?? '')}" is invalid: metadata.name: ${msg}`,
      { name: String(name ?? ''), group: t.group || undefined, kind: t.kind, causes: [{ reason: 'FieldValueInvalid', message: msg, field: 'metadata.name' }] });
    if (typeof name !== 'string' || !name) throw invalid('Required value: name or generateName is required');
    const [re, max, what] = t.resource === 'namespaces' ? [DNS1123_LABEL, 63, 'RFC 1123 label']
      : t.resource === 'services' ? [DNS1035_LABEL, 63, 'RFC 1035 label']
        : [DNS1123_SUBDOMAIN, 253, 'RFC 1123 subdomain'];
    if (name.length > max || !re.test(name)) throw invalid(`Invalid value: "${name}": a lowercase ${what} must consist of lower case alphanumeric characters or '-'${what.includes('subdomain') ? " or '.'" : ''}`);
  }

  private prepareForCreate(t: ResourceType, obj: KObject): void {
    const spec = (obj.spec ??= {}) as Record<string, unknown>;
    switch (t.resource) {
      case 'namespaces':
        meta(obj).labels = { ...(obj.metadata!.labels ?? {}), 'kubernetes.io/metadata.name': obj.metadata!.name! };
        spec.finalizers ??= ['kubernetes'];
        obj.status = { phase: 'Active' };
        break;
      case 'pods':
        spec.restartPolicy ??= 'Always';
        spec.dnsPolicy ??= 'ClusterFirst';
        spec.schedulerName ??= 'default-scheduler';
        spec.terminationGracePeriodSeconds ??= 30;
        if (spec.serviceAccountName === undefined) spec.serviceAccountName = 'default';
        spec.serviceAccount = spec.serviceAccountName;
        // The kubelet reports the rest through /status.
        obj.status = { phase: 'Pending', qosClass: podQosClass(spec as never) };
        break;
      case 'services': {
        spec.type ??= 'ClusterIP';
        spec.sessionAffinity ??= 'None';
        for (const p of (spec.ports ?? []) as Record<string, unknown>[]) {
          p.protocol ??= 'TCP';
          p.targetPort ??= p.port;
        }
        if (spec.clusterIP !== 'None' && spec.type !== 'ExternalName') {
          const ip = typeof spec.clusterIP === 'string' && spec.clusterIP ? spec.clusterIP : this.allocateIp();
          if (this.allocatedIps.has(ip)) {
            throw new ApiError(422, 'Invalid', `Service "${obj.metadata!.name}" is invalid: spec.clusterIPs: Invalid value: ["${ip}"]: failed to allocate IP ${ip}: provided IP is already allocated`);
          }
          this.allocatedIps.add(ip);
          spec.clusterIP = ip;
          spec.clusterIPs = [ip];
          spec.ipFamilies ??= ['IPv4'];
          spec.ipFamilyPolicy ??= 'SingleStack';
        }
        obj.status = { loadBalancer: {} };
        break;
      }
      case 'endpointslices':
        if (Object.keys(spec).length === 0) delete obj.spec;
        if (!['IPv4', 'IPv6', 'FQDN'].includes(obj.addressType as string)) {
          throw new ApiError(422, 'Invalid', `EndpointSlice "${obj.metadata!.name}" is invalid: addressType: Required value`);
        }
        obj.endpoints ??= [];
        break;
      case 'nodes':
        // Nodes may set everything, status included, on create (the kubelet registers so).
        break;
      case 'secrets':
      case 'configmaps':
      case 'leases':
        if (Object.keys(spec).length === 0 && t.resource !== 'leases') delete obj.spec;
        break;
    }
  }

  /** What the real API server validates on every write of these kinds, so a client
   *  that sends what it would refuse fails here too. */
  private validateData(t: ResourceType, obj: KObject): void {
    const invalid = (field: string, msg: string) => new ApiError(422, 'Invalid', `${t.kind} "${obj.metadata?.name ?? ''}" is invalid: ${field}: ${msg}`,
      { name: String(obj.metadata?.name ?? ''), kind: t.kind, causes: [{ reason: 'FieldValueInvalid', message: msg, field }] });
    if (t.resource === 'secrets') {
      obj.type ??= 'Opaque';
      for (const [k, v] of Object.entries((obj.data ?? {}) as Record<string, unknown>)) {
        if (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v) || v.length % 4 !== 0) throw invalid(`data[${k}]`, 'Invalid value: illegal base64 data');
      }
    }
    if (t.resource === 'secrets' || t.resource === 'configmaps') {
      const size = Buffer.byteLength(JSON.stringify(obj.data ?? {})) + Buffer.byteLength(JSON.stringify((obj as { stringData?: unknown }).stringData ?? {}));
      if (size > 1024 * 1024) throw invalid('data', 'Too long: must have at most 1048576 bytes');
    }
    if (t.resource === 'leases') {
      const spec = (obj.spec ?? {}) as Record<string, unknown>;
      const d = spec.leaseDurationSeconds;
      if (d !== undefined && !(Number.isInteger(d) && (d as number) > 0)) throw invalid('spec.leaseDurationSeconds', 'Invalid value: must be greater than 0');
      for (const f of ['acquireTime', 'renewTime']) {
        const v = spec[f];
        if (v !== undefined && v !== null && (typeof v !== 'string' || Number.isNaN(Date.parse(v)))) throw invalid(`spec.${f}`, 'Invalid value: expected a MicroTime');
      }
    }
  }

  private allocateIp(): string {
    for (;;) {
      const n = this.nextIp++;
      const ip = [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
      if (!this.allocatedIps.has(ip) && (n & 255) !== 0 && (n & 255) !== 255) return ip;
    }
  }

  private clusterIps(o: KObject): string[] {
    const s = (o.spec ?? {}) as { clusterIP?: string; clusterIPs?: string[] };
    return [...new Set([...(s.clusterIPs ?? []), ...(s.clusterIP ? [s.clusterIP] : [])])].filter((ip) => ip !== 'None');
  }

  /** A Service's ClusterIP is immutable; an update that leaves it out keeps it. */
  private keepClusterIp(old: KObject, next: KObject): void {
    const os = (old.spec ?? {}) as Record<string, unknown>, ns = (next.spec ??= {}) as Record<string, unknown>;
    if (ns.clusterIP === undefined || ns.clusterIP === '') { ns.clusterIP = os.clusterIP; ns.clusterIPs = os.clusterIPs; }
    if (ns.clusterIP !== os.clusterIP) {
      throw new ApiError(422, 'Invalid', `Service "${old.metadata!.name}" is invalid: spec.clusterIPs[0]: Invalid value: ["${String(ns.clusterIP)}"]: may not change once set`);
    }
  }
}
