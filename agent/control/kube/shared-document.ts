// One JSON document kept in a Kubernetes object (a data key of a Secret or ConfigMap),
// shared by every control API replica. Reads remember the resourceVersion; update()
// is compare-and-swap: the new value is computed from the current one and written with
// that resourceVersion, and on 409 Conflict it is re-read and recomputed (a bounded
// number of times). An updater may decline (return undefined): nothing is written.
// watch() polls and reports changes made by other replicas.
//
// This is the pattern for every small piece of state the replicas must agree on: the
// CA roots (a Secret), and e.g. a map of bootstrap-token hashes to the node that first
// used each (a Secret; "bound to the first node" is an update that declines when the
// hash is already bound to another node).
import { EventEmitter } from 'node:events';
import { WeftError, describeError } from '../../lib/errors';
import type { Logger } from '../../telemetry/logger';
import { isConflict, type KubeObject, type KubeStateApi } from './api';

export interface SharedDocumentOptions {
  /** 'secrets' for anything sensitive (key material, token hashes), else 'configmaps'. */
  resource: 'secrets' | 'configmaps';
  name: string;
  key: string;
  labels?: Record<string, string>;
}

export interface Versioned<T> {
  value: T;
  /** resourceVersion of the object it was read from ('' when it does not exist). */
  resourceVersion: string;
  annotations: Record<string, string>;
}

interface DataObject extends KubeObject { data?: Record<string, string>; type?: string }

/** Writers that keep colliding back off (jittered, exponential up to 500 ms). */
const MAX_ATTEMPTS = 32;

export declare interface SharedDocument<T> {
  on(event: 'change', listener: (doc: Versioned<T | undefined>) => void): this;
}

export class SharedDocument<T> extends EventEmitter {
  private last: Versioned<T | undefined> | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;

  constructor(private readonly api: KubeStateApi, readonly opts: SharedDocumentOptions, private readonly log: Logger) {
    super();
  }

  get description(): string {
    return `${this.opts.resource === 'secrets' ? 'Secret' : 'ConfigMap'} ${this.api.namespace}/${this.opts.name} (key ${this.opts.key})`;
  }

  private decode(obj: DataObject | undefined): Versioned<T | undefined> {
    if (!obj) return { value: undefined, resourceVersion: '', annotations: {} };
    const raw = obj.data?.[this.opts.key];
    let value: T | undefined;
    if (raw !== undefined) {
      const text = this.opts.resource === 'secrets' ? Buffer.from(raw, 'base64').toString('utf8') : raw;
      try { value = JSON.parse(text) as T; } catch {
        // The content is not repeated: it may be key material.
        throw new WeftError('WEFT_ERR_INTERNAL', `${this.description} does not hold JSON; refusing to overwrite it`);
      }
    }
    return { value, resourceVersion: obj.metadata.resourceVersion ?? '', annotations: obj.metadata.annotations ?? {} };
  }

  private encode(value: T): string {
    const text = JSON.stringify(value);
    return this.opts.resource === 'secrets' ? Buffer.from(text).toString('base64') : text;
  }

  /** The current document (value undefined when the object or the key is absent). */
  async read(): Promise<Versioned<T | undefined>> {
    const doc = this.decode(await this.api.get<DataObject>(this.opts.resource, this.opts.name));
    this.remember(doc);
    return doc;
  }

  private remember(doc: Versioned<T | undefined>): void {
    const changed = this.last?.resourceVersion !== doc.resourceVersion;
    this.last = doc;
    if (changed) this.emit('change', doc);
  }

  /**
   * Compare-and-swap: `fn` gets the current value (undefined if none) and its
   * annotations, and returns the next value (and annotations, replacing the old ones
   * when given), or undefined to leave the document as it is. Returns what is stored
   * afterwards. Retries on conflict; `fn` may run several times and must not have side
   * effects beyond its result. It may throw (e.g. ConflictError when the document is
   * not at the version the caller's state was derived from): nothing is written.
   */
  async update(fn: (current: T | undefined, annotations: Record<string, string>, resourceVersion: string) => { value: T; annotations?: Record<string, string> } | undefined): Promise<Versioned<T | undefined>> {
    for (let attempt = 1; ; attempt++) {
      const obj = await this.api.get<DataObject>(this.opts.resource, this.opts.name);
      const cur = this.decode(obj);
      const next = fn(cur.value, cur.annotations, cur.resourceVersion);
      if (!next) { this.remember(cur); return cur; }
      const annotations = next.annotations ?? cur.annotations;
      try {
        const written = obj
          ? await this.api.replace<DataObject>(this.opts.resource, { ...obj, metadata: { ...obj.metadata, annotations }, data: { ...(obj.data ?? {}), [this.opts.key]: this.encode(next.value) } })
          : await this.api.create<DataObject>(this.opts.resource, {
            metadata: { name: this.opts.name, ...(this.opts.labels ? { labels: this.opts.labels } : {}), annotations },
            ...(this.opts.resource === 'secrets' ? { type: 'Opaque' } : {}),
            data: { [this.opts.key]: this.encode(next.value) },
          });
        const doc = this.decode(written);
        this.remember(doc);
        return doc;
      } catch (e) {
        if (!isConflict(e) || attempt >= MAX_ATTEMPTS) throw e;
        await new Promise((r) => setTimeout(r, Math.random() * Math.min(500, 10 * 2 ** attempt)));
      }
    }
  }

  /** Re-reads every `pollMs` and emits 'change' when the resourceVersion moved. */
  watch(pollMs: number): void {
    if (this.pollTimer) return;
    const poll = () => {
      this.polling = this.read().then(() => undefined, (e: unknown) => {
        this.log.warn({ object: this.description, err: describeError(e) }, 'cannot read shared state; retrying');
      }).finally(() => { this.polling = undefined; if (this.pollTimer) this.pollTimer = setTimeout(poll, pollMs); });
    };
    this.pollTimer = setTimeout(poll, pollMs);
  }

  async stop(): Promise<void> {
    const t = this.pollTimer;
    this.pollTimer = undefined;
    clearTimeout(t);
    await this.polling;
  }
}

/** Compare-and-swap "the first writer wins" on one key of a map document (e.g. a
 *  bootstrap token's hash → the node that first used it): binds `key` to `value` unless
 *  it is bound already, and resolves with what it is bound to now, on every replica the
 *  same. */
export async function bindOnce(doc: SharedDocument<Record<string, string>>, key: string, value: string): Promise<string> {
  const stored = await doc.update((cur) => (cur?.[key] !== undefined ? undefined : { value: { ...cur, [key]: value } }));
  const bound = stored.value?.[key];
  if (bound === undefined) throw new WeftError('WEFT_ERR_INTERNAL', `${doc.description}: ${key} not bound after a successful write`);
  return bound;
}
