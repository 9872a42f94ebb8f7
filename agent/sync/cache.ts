// The agent's on-disk copy of the last view it applied successfully, so an agent that
// restarts while the control API is down still serves the last good policy. Only views
// whose apply() succeeded are written; the file is replaced atomically and is readable
// by root only (it lists every service and identity of the mesh).
//
// The view is stored as the merged set of named resources it was assembled from (see
// agent/policy/view-resources.ts), with their versions: after a restart the agent
// reassembles the same view, and tells the control API which resource versions it holds
// so a reconnect is sent only what changed.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { WeftError } from '../lib/errors';
import { writeFileAtomic } from './atomic-file';

/** One resource as received: its version and its JSON body, verbatim. */
export interface CachedResource {
  version: string;
  json: string;
}

export interface CachedSnapshot {
  version: string;
  typeUrl: string;
  trustBundle: string[];
  /** Unix ms when it was cached. */
  savedAt: number;
  resources: ReadonlyMap<string, CachedResource>;
}

/** A cached resource as loaded: also its parsed body. */
export interface LoadedResource extends CachedResource {
  value: unknown;
}

export const CACHE_FILE = 'snapshot-cache.json';

export class SnapshotCache {
  readonly path: string;

  constructor(stateDir: string) {
    this.path = join(stateDir, CACHE_FILE);
  }

  /** Resource bodies are spliced in as received rather than re-serialised: for a
   *  multi-megabyte view that is most of the cost of caching. */
  async save(entry: CachedSnapshot): Promise<void> {
    const head = { version: entry.version, typeUrl: entry.typeUrl, trustBundle: entry.trustBundle, savedAt: entry.savedAt };
    const parts = [...entry.resources].map(([name, r]) => `${JSON.stringify(name)}:{"version":${JSON.stringify(r.version)},"body":${r.json}}`);
    await writeFileAtomic(this.path, `${JSON.stringify(head).slice(0, -1)},"resources":{${parts.join(',')}}}`, 0o600);
  }

  /** The cached view's resources, undefined when there is none; a corrupt file is an
   *  error. Bodies come back parsed and as JSON text; the caller checks and assembles
   *  them. */
  async load(): Promise<(CachedSnapshot & { resources: Map<string, LoadedResource> }) | undefined> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    let v: unknown;
    try { v = JSON.parse(text); } catch (e) {
      throw new WeftError('WEFT_ERR_PROTOCOL', `snapshot cache ${this.path} is not valid JSON`, { cause: e });
    }
    const c = v as { version?: unknown; typeUrl?: unknown; trustBundle?: unknown; savedAt?: unknown; resources?: Record<string, { version?: unknown; body?: unknown }> };
    if (typeof c?.version !== 'string' || typeof c.typeUrl !== 'string' || !Array.isArray(c.trustBundle) || typeof c.resources !== 'object' || c.resources === null) {
      throw new WeftError('WEFT_ERR_PROTOCOL', `snapshot cache ${this.path} has an unexpected shape (written by an older agent?)`);
    }
    const resources = new Map<string, LoadedResource>();
    for (const [name, r] of Object.entries(c.resources)) {
      if (typeof r?.version !== 'string' || r.body === undefined) throw new WeftError('WEFT_ERR_PROTOCOL', `snapshot cache ${this.path}: resource ${name} has no version or body`);
      resources.set(name, { version: r.version, json: JSON.stringify(r.body), value: r.body });
    }
    return { version: c.version, typeUrl: c.typeUrl, trustBundle: c.trustBundle as string[], savedAt: Number(c.savedAt), resources };
  }
}
