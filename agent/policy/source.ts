// Maps a path inside a policy document ("spec", "rules", 0, "backendRefs", 1) back to the
// line and column of the node, so every diagnostic — from the schema or from the
// semantic checks — points at the exact offending field.
//
// Files are first parsed with js-yaml (fast: ~5x quicker than `yaml` on a cold start,
// which is what a pre-commit hook pays). Positions are only needed for files that have
// a problem, so only then is the file parsed again with `yaml`, whose nodes carry source
// ranges. Both parse YAML 1.2 with the core schema, so they agree on values.
import { isMap, isScalar, isSeq, LineCounter, parseAllDocuments, visit, YAMLParseError, type Document, type Node } from 'yaml';
import { boundMessage, type Diagnostic } from './diagnostic';

export type PathSegment = string | number;

/** `yaml`'s view of one file, built on first use. */
export class FileSource {
  private parsed?: { docs: Document[]; lines: LineCounter };

  constructor(readonly file: string, readonly text: string) {}

  /** The parsed file; documents that are empty (no content or a bare null) are left
   *  out, which is also how the loader counts them, so indexes line up. */
  yaml(): { docs: Document[]; lines: LineCounter } {
    if (!this.parsed) {
      const lines = new LineCounter();
      // uniqueKeys off: `yaml` checks each new key against every earlier one of its map,
      // quadratic (a minute for a 1 MB map of 70 000 keys); duplicateKeys() does it in a
      // linear pass and reports the same error at the same place.
      // A broken file can make `yaml` raise an error per token (tens of thousands):
      // without stack traces they cost a tenth (only messages and offsets are used).
      const limit = Error.stackTraceLimit;
      Error.stackTraceLimit = 0;
      let docs;
      try {
        docs = parseAllDocuments(this.text, { lineCounter: lines, prettyErrors: false, uniqueKeys: false });
      } finally {
        Error.stackTraceLimit = limit;
      }
      this.parsed = { docs: Array.isArray(docs) ? docs : [], lines };
      for (const d of this.parsed.docs) duplicateKeys(d);
    }
    return this.parsed;
  }

  private nonEmpty?: Document[];

  nonEmptyDocs(): Document[] {
    return (this.nonEmpty ??= this.yaml().docs.filter((d) => !isEmptyDoc(d)));
  }

  position(offset: number): { line: number; col: number } {
    return this.yaml().lines.linePos(offset);
  }
}

/** Adds a DUPLICATE_KEY error at every repeated scalar key of a mapping (what `yaml`'s
 *  uniqueKeys reports), in document order among the parser's own errors. */
function duplicateKeys(doc: Document): void {
  let found = false;
  visit(doc, {
    Map(_, map) {
      const seen = new Set<unknown>();
      for (const pair of map.items) {
        const k = pair.key;
        if (!isScalar(k)) continue;
        if (seen.has(k.value)) {
          const at = k.range?.[0] ?? 0;
          doc.errors.push(new YAMLParseError([at, at + 1], 'DUPLICATE_KEY', 'Map keys must be unique'));
          found = true;
        } else seen.add(k.value);
      }
    },
  });
  if (found) doc.errors.sort((a, b) => a.pos[0] - b.pos[0]);
}

export function isEmptyDoc(d: Document): boolean {
  return d.contents === null || (isScalar(d.contents) && d.contents.value === null);
}

/** One non-empty document of a file (its index among the non-empty ones). */
export class SourceDoc {
  constructor(readonly source: FileSource, private readonly index: number) {}

  get file(): string {
    return this.source.file;
  }

  /** Diagnostic at the value (or, with `key`, the key) at `path`; when the path does not
   *  exist (a missing field) it points at the deepest ancestor that does. */
  at(path: readonly PathSegment[], message: string, opts: { key?: boolean } = {}): Diagnostic {
    return { file: this.file, ...this.position(path, opts.key === true), message: boundMessage(message) };
  }

  private position(path: readonly PathSegment[], wantKey: boolean): { line: number; col: number } {
    const doc = this.source.nonEmptyDocs()[this.index];
    let node: Node | null = (doc?.contents as Node | null | undefined) ?? null;
    let keyNode: Node | null = null;
    for (const seg of path) {
      if (!node) break;
      let next: Node | null = null;
      let nextKey: Node | null = null;
      if (isMap(node)) {
        const pair = node.items.find((p) => (isScalar(p.key) ? p.key.value : p.key) === seg);
        if (pair) { nextKey = pair.key as Node; next = (pair.value as Node | null) ?? nextKey; }
      } else if (isSeq(node) && typeof seg === 'number') {
        next = (node.items[seg] as Node | undefined) ?? null;
      }
      if (!next) break;
      node = next;
      keyNode = nextKey;
    }
    const target = wantKey && keyNode ? keyNode : node;
    return this.source.position(target?.range?.[0] ?? doc?.range?.[0] ?? 0);
  }
}

/** "spec.rules[0].backendRefs[1].name" — how paths read in messages. */
export function formatPath(path: readonly PathSegment[]): string {
  let s = '';
  for (let seg of path) {
    if (typeof seg === 'string' && seg.length > 64) seg = `${seg.slice(0, 63)}…`;
    s += typeof seg === 'number' ? `[${seg}]` : s ? `.${seg}` : seg;
  }
  return s;
}
