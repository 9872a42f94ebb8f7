// Maps a path inside a parsed YAML document ("spec", "rules", 0, "backendRefs", 1) back to
// the line and column of the node, so every diagnostic — from the schema or from the
// semantic checks — can point at the exact offending field.
import { isMap, isSeq, isScalar, type Document, type LineCounter, type Node } from 'yaml';
import type { Diagnostic } from './diagnostic';

export type PathSegment = string | number;

export class SourceDoc {
  constructor(
    readonly file: string,
    private readonly doc: Document,
    private readonly lines: LineCounter,
  ) {}

  /** Diagnostic at the value (or, with `key`, the key) at `path`; when the path does not
   *  exist (a missing field) it points at the deepest ancestor that does. */
  at(path: readonly PathSegment[], message: string, opts: { key?: boolean } = {}): Diagnostic {
    return { file: this.file, ...this.position(path, opts.key === true), message };
  }

  private position(path: readonly PathSegment[], wantKey: boolean): { line: number; col: number } {
    let node: Node | null = (this.doc.contents as Node | null) ?? null;
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
    const offset = target?.range?.[0] ?? 0;
    return this.lines.linePos(offset);
  }
}

/** "spec.rules[0].backendRefs[1].name" — how paths read in messages. */
export function formatPath(path: readonly PathSegment[]): string {
  let s = '';
  for (const seg of path) s += typeof seg === 'number' ? `[${seg}]` : s ? `.${seg}` : seg;
  return s;
}
