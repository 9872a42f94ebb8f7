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

/** Order by file, line, column, then message, so output is stable across runs. */
export function sortDiagnostics(ds: Diagnostic[]): Diagnostic[] {
  const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  return ds.sort((a, b) => cmp(a.file, b.file) || a.line - b.line || a.col - b.col || cmp(a.message, b.message));
}
