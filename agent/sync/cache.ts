// The agent's on-disk copy of the last snapshot it applied successfully, so an agent that
// restarts while the control API is down still serves the last good policy. Only
// snapshots whose apply() succeeded are written; the file is replaced atomically and is
// readable by root only (it lists every service and identity of the mesh).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { NodeView } from '../policy/snapshot';
import { WeftError } from '../lib/errors';
import { writeFileAtomic } from './atomic-file';

export interface CachedSnapshot {
  version: string;
  typeUrl: string;
  trustBundle: string[];
  /** Unix ms when it was cached. */
  savedAt: number;
  view: NodeView;
}

export const CACHE_FILE = 'snapshot-cache.json';

export class SnapshotCache {
  readonly path: string;

  constructor(stateDir: string) {
    this.path = join(stateDir, CACHE_FILE);
  }

  /** `viewJson` is the view exactly as received (already JSON): it is spliced in rather
   *  than re-serialised, which for a multi-megabyte view is most of the cost of caching. */
  async save(entry: Omit<CachedSnapshot, 'view'>, viewJson: Buffer): Promise<void> {
    const head: Omit<CachedSnapshot, 'view'> = { version: entry.version, typeUrl: entry.typeUrl, trustBundle: entry.trustBundle, savedAt: entry.savedAt };
    const prefix = JSON.stringify(head).slice(0, -1);
    await writeFileAtomic(this.path, Buffer.concat([Buffer.from(`${prefix},"view":`), viewJson, Buffer.from('}')]), 0o600);
  }

  /** The cached snapshot, undefined when there is none; a corrupt file is an error. */
  async load(): Promise<CachedSnapshot | undefined> {
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
    const c = v as Partial<CachedSnapshot>;
    if (typeof c?.version !== 'string' || typeof c.typeUrl !== 'string' || !Array.isArray(c.trustBundle) || typeof c.view !== 'object' || c.view === null) {
      throw new WeftError('WEFT_ERR_PROTOCOL', `snapshot cache ${this.path} has an unexpected shape`);
    }
    return c as CachedSnapshot;
  }
}
