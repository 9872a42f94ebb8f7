// The agent's on-disk copy of the last view it applied successfully, so an agent that
// restarts while the control API is down still serves the last good policy. Only views
// whose apply() succeeded are written; files are replaced atomically and are readable
// by root only (they list every service and identity of the mesh).
//
// The view is stored as the merged set of named resources it was assembled from (see
// agent/policy/view-resources.ts), with their versions: after a restart the agent
// reassembles the same view and tells the control API which resource versions it holds,
// so a reconnect is sent only what changed.
//
// Layout, so that a one-resource change writes kilobytes, not the whole multi-megabyte
// view: resource bodies live in append-only "pack" files under snapshot-cache.d/, each
// written once; the manifest (snapshot-cache.json) names, for every resource, its
// version and where its body is (pack, offset, length). A save writes one pack with the
// resources that changed, then the manifest (atomically, after the pack is on disk),
// then deletes packs nothing references any more. When packs pile up or mostly hold
// replaced bodies, a save writes every resource into one fresh pack instead.
import { readFile, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
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
export const PACK_DIR = 'snapshot-cache.d';

/** Compact when there are more packs than this, or when less than half of the pack
 *  bytes are still referenced. */
const MAX_PACKS = 16;

interface Location {
  version: string;
  pack: string;
  offset: number;
  length: number;
}

interface Manifest {
  version: string;
  typeUrl: string;
  trustBundle: string[];
  savedAt: number;
  resources: Record<string, Location>;
}

function corrupt(path: string, why: string, cause?: unknown): WeftError {
  return new WeftError('WEFT_ERR_PROTOCOL', `snapshot cache ${path}: ${why}`, cause ? { cause } : undefined);
}

export class SnapshotCache {
  readonly path: string;
  readonly packDir: string;
  /** What the manifest on disk says (after load() or the last save()). */
  private written = new Map<string, Location>();
  /** Bytes per pack file the manifest references. */
  private packSizes = new Map<string, number>();

  constructor(stateDir: string) {
    this.path = join(stateDir, CACHE_FILE);
    this.packDir = join(stateDir, PACK_DIR);
  }

  async save(entry: CachedSnapshot): Promise<void> {
    let changed = [...entry.resources].filter(([name, r]) => this.written.get(name)?.version !== r.version);
    const liveBytes = [...entry.resources.keys()].reduce((n, name) => n + (this.written.get(name)?.length ?? 0), 0);
    const packBytes = [...this.packSizes.values()].reduce((a, b) => a + b, 0);
    const compact = this.packSizes.size >= MAX_PACKS || liveBytes * 2 < packBytes;
    if (compact) changed = [...entry.resources];

    const resources: Record<string, Location> = {};
    const packs = new Map<string, number>();
    if (!compact) {
      for (const name of entry.resources.keys()) {
        const at = this.written.get(name);
        if (at && at.version === entry.resources.get(name)!.version) {
          resources[name] = at;
          packs.set(at.pack, this.packSizes.get(at.pack) ?? 0);
        }
      }
    }
    if (changed.length) {
      const pack = `${entry.savedAt}-${randomBytes(4).toString('hex')}.pack`;
      const bodies: Buffer[] = [];
      let offset = 0;
      for (const [name, r] of changed) {
        const body = Buffer.from(r.json);
        resources[name] = { version: r.version, pack, offset, length: body.length };
        bodies.push(body);
        offset += body.length;
      }
      await writeFileAtomic(join(this.packDir, pack), Buffer.concat(bodies), 0o600);
      packs.set(pack, offset);
    }
    const manifest: Manifest = { version: entry.version, typeUrl: entry.typeUrl, trustBundle: entry.trustBundle, savedAt: entry.savedAt, resources };
    await writeFileAtomic(this.path, JSON.stringify(manifest), 0o600);
    this.written = new Map(Object.entries(resources));
    this.packSizes = packs;
    await this.removeUnreferencedPacks();
  }

  /** Packs the manifest does not name: replaced ones, and leftovers of a crash between
   *  writing a pack and writing the manifest. */
  private async removeUnreferencedPacks(): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.packDir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    await Promise.all(names.filter((n) => n.endsWith('.pack') && !this.packSizes.has(n)).map((n) => unlink(join(this.packDir, n)).catch(() => undefined)));
  }

  /** The cached view's resources, undefined when there is none; a corrupt cache is an
   *  error. Bodies come back parsed and as JSON text; the caller checks and assembles
   *  them. */
  async load(): Promise<(Omit<CachedSnapshot, 'resources'> & { resources: Map<string, LoadedResource> }) | undefined> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    let m: Manifest;
    try { m = JSON.parse(text) as Manifest; } catch (e) {
      throw corrupt(this.path, 'not valid JSON', e);
    }
    if (typeof m?.version !== 'string' || typeof m.typeUrl !== 'string' || !Array.isArray(m.trustBundle) || typeof m.resources !== 'object' || m.resources === null) {
      throw corrupt(this.path, 'unexpected shape (written by an older agent?)');
    }
    const packs = new Map<string, Buffer>();
    const resources = new Map<string, LoadedResource>();
    for (const [name, at] of Object.entries(m.resources)) {
      if (typeof at?.version !== 'string' || typeof at.pack !== 'string' || at.pack.includes('/') || !Number.isInteger(at.offset) || !Number.isInteger(at.length)) {
        throw corrupt(this.path, `resource ${name} has no valid location`);
      }
      let pack = packs.get(at.pack);
      if (!pack) {
        try { pack = await readFile(join(this.packDir, at.pack)); } catch (e) {
          throw corrupt(this.path, `pack ${at.pack} of resource ${name} cannot be read`, e);
        }
        packs.set(at.pack, pack);
      }
      if (at.offset < 0 || at.offset + at.length > pack.length) throw corrupt(this.path, `resource ${name} lies outside pack ${at.pack}`);
      const json = pack.subarray(at.offset, at.offset + at.length).toString('utf8');
      let value: unknown;
      try { value = JSON.parse(json); } catch (e) {
        throw corrupt(this.path, `resource ${name} is not valid JSON`, e);
      }
      resources.set(name, { version: at.version, json, value });
    }
    this.written = new Map(Object.entries(m.resources));
    this.packSizes = new Map([...packs].map(([n, b]) => [n, b.length]));
    return { version: m.version, typeUrl: m.typeUrl, trustBundle: m.trustBundle, savedAt: Number(m.savedAt), resources };
  }
}
