// A problem found in a policy set, located in its source file. `weft validate` prints
// them as `file:line:col: message`; the control API logs them and reports them in
// `weft status` when it rejects a change.

export interface Diagnostic {
  /** The path as the caller named it (a CLI argument, or joined onto a directory argument). */
  file: string;
  /** 1-based. */
  line: number;
  /** 1-based. */
  col: number;
  message: string;
}

export function formatDiagnostic(d: Diagnostic): string {
  return `${d.file}:${d.line}:${d.col}: ${d.message}`;
}

/** Orders by file, line, column, then message, so output is stable across runs, and
 *  drops exact repeats (a route attached to several ports meets the same problem once
 *  per port). Returns a new array. */
export function sortDiagnostics(ds: readonly Diagnostic[]): Diagnostic[] {
  const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  const sorted = [...ds].sort((a, b) => cmp(a.file, b.file) || a.line - b.line || a.col - b.col || cmp(a.message, b.message));
  return sorted.filter((d, i) => {
    const p = sorted[i - 1];
    return !p || p.file !== d.file || p.line !== d.line || p.col !== d.col || p.message !== d.message;
  });
}

/** Longest rendering of a policy value inside a message. */
export const PREVIEW_CHARS = 80;
/** Longest message a diagnostic carries (a backstop: values are previewed already). */
export const MAX_MESSAGE_CHARS = 1000;

/**
 * A value as it reads in a message — JSON, cut at `max` characters with "…". Never walks
 * more of the value than it prints: a document can be huge or, through YAML aliases,
 * share or even contain itself, and JSON.stringify would expand all of it.
 */
export function preview(value: unknown, max = PREVIEW_CHARS): string {
  let out = '';
  const seen = new Set<object>();
  const emit = (s: string): boolean => { out += s; return out.length <= max; };
  const walk = (v: unknown): boolean => {
    if (v === null || typeof v !== 'object') {
      if (typeof v === 'string') return emit(JSON.stringify(v.length > max ? v.slice(0, max + 1) : v));
      if (v === undefined) return emit('undefined');
      if (typeof v === 'bigint') return emit(String(v));
      return emit(String(JSON.stringify(v) ?? String(v)));
    }
    if (seen.has(v)) return emit('[Circular]');
    seen.add(v);
    try {
      if (Array.isArray(v)) {
        if (!emit('[')) return false;
        for (let i = 0; i < v.length; i++) { if ((i && !emit(',')) || !walk(v[i])) return false; }
        return emit(']');
      }
      if (!emit('{')) return false;
      let first = true;
      for (const k in v) {
        if (!Object.prototype.hasOwnProperty.call(v, k)) continue;
        if ((!first && !emit(',')) || !emit(`${JSON.stringify(k.length > max ? k.slice(0, max + 1) : k)}:`) || !walk((v as Record<string, unknown>)[k])) return false;
        first = false;
      }
      return emit('}');
    } finally {
      seen.delete(v);
    }
  };
  walk(value);
  return out.length > max ? `${out.slice(0, max - 1)}…` : out;
}

/** Caps a message's length (the backstop for values not previewed). */
export function boundMessage(message: string): string {
  return message.length > MAX_MESSAGE_CHARS ? `${message.slice(0, MAX_MESSAGE_CHARS - 1)}…` : message;
}
