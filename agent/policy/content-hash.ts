// A snapshot's content version: sha256 over, for each field of the content in order, the
// field name and the digests of its list's chunks (a non-list value is one chunk). A
// chunk is a run of consecutive elements ending after an element whose identity (key,
// name or service) hashes to 0 mod CHUNK_SPREAD, so the boundaries depend on the content
// alone and an inserted or removed element moves only its own chunk's. A chunk's digest
// is sha256 of its elements' JSON, remembered by its first element together with the
// elements it covered (snapshot objects are never mutated): an incremental compile keeps
// the objects of everything it did not change, so it re-serialises only the chunks with
// a rebuilt object; a full compile builds every object anew and serialises them all once,
// as a single streamed hash did. Either way the version is a function of the content:
// the same on every replica and for both compile paths. No multi-megabyte JSON string
// is built (V8 allocates it outside the young generation, so it lingers).
import { createHash } from 'node:crypto';
import type { Snapshot } from './snapshot';

/** About one element in this many ends a chunk. */
const CHUNK_SPREAD = 32;

const chunks = new WeakMap<object, { items: readonly unknown[]; digest: string }>();

/** FNV-1a of an element's identity: where chunks end. */
function endsChunk(v: unknown): boolean {
  if (v === null || typeof v !== 'object') return true;
  const o = v as { key?: unknown; name?: unknown; service?: unknown; port?: unknown };
  const id = typeof o.key === 'string' ? o.key : typeof o.name === 'string' ? o.name : typeof o.service === 'string' ? `${o.service}:${String(o.port)}` : undefined;
  if (id === undefined) return true;
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) { h ^= id.charCodeAt(i); h = Math.imul(h, 0x01000193); }
  return (h >>> 0) % CHUNK_SPREAD === 0;
}

function chunkDigest(list: readonly unknown[], from: number, to: number): string {
  const first = list[from];
  const memo = typeof first === 'object' && first !== null ? chunks.get(first) : undefined;
  if (memo && memo.items.length === to - from && memo.items.every((x, i) => x === list[from + i])) return memo.digest;
  const h = createHash('sha256');
  for (let i = from; i < to; i++) h.update(`${JSON.stringify(list[i]) ?? 'undefined'}\n`);
  const digest = h.digest('base64');
  if (typeof first === 'object' && first !== null) chunks.set(first, { items: list.slice(from, to), digest });
  return digest;
}

export function contentHash(content: Omit<Snapshot, 'version' | 'createdAt'>): string {
  const h = createHash('sha256');
  for (const [key, value] of Object.entries(content)) {
    const list: readonly unknown[] = Array.isArray(value) ? value : [value];
    h.update(`${key}${Array.isArray(value) ? `[${list.length}]` : ''}\n`);
    let from = 0;
    for (let i = 0; i < list.length; i++) {
      if (i + 1 === list.length || endsChunk(list[i])) { h.update(`${chunkDigest(list, from, i + 1)}\n`); from = i + 1; }
    }
  }
  return h.digest('hex').slice(0, 16);
}
