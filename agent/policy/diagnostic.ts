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
