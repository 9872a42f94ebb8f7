// A snapshot's content version. sha256 over, for each field of the content in order,
// the field name and then one digest per list element (or of the value): each element's
// digest is sha256 of its JSON. Digests are remembered by object (snapshot objects are
// never mutated), so an incremental compile, which keeps the objects of everything that
// did not change, hashes only the workloads and services it rebuilt; a full compile
// builds every object anew and hashes them all. Either way the version is a function of
// the content alone: the same on every replica and for both compile paths. Building one
// multi-megabyte JSON string per compile is avoided too (V8 allocates it outside the
// young generation, so it lingers until a full GC).
import { createHash } from 'node:crypto';
import type { Snapshot } from './snapshot';

const digests = new WeakMap<object, string>();

function digest(v: unknown): string {
  if (v === null || typeof v !== 'object') return createHash('sha256').update(JSON.stringify(v) ?? 'undefined').digest('base64');
  let d = digests.get(v);
  if (d === undefined) {
    d = createHash('sha256').update(JSON.stringify(v)).digest('base64');
    digests.set(v, d);
  }
  return d;
}

export function contentHash(content: Omit<Snapshot, 'version' | 'createdAt'>): string {
  const h = createHash('sha256');
  for (const [key, value] of Object.entries(content)) {
    if (Array.isArray(value)) {
      h.update(`${key}[${value.length}]\n`);
      for (const v of value) h.update(`${digest(v)}\n`);
    } else h.update(`${key}\n${digest(value)}\n`);
  }
  return h.digest('hex').slice(0, 16);
}
