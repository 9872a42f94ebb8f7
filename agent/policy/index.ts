// The policy package's public face: the control API and `weft validate` use only these.
import { loadFiles, type LoadedObject } from './load';
import { analyze } from './model';
import { buildRouteTables } from './routes';
import { sortDiagnostics, type Diagnostic } from './diagnostic';

export { compile, type CompileOptions } from './compile';
export { forNode, decidePath } from './node-view';
export { formatDiagnostic, sortDiagnostics, type Diagnostic } from './diagnostic';
export { loadText, type LoadedObject } from './load';
export * from './snapshot';

export interface PolicyLoadResult {
  /** Schema-valid objects; only safe to compile when `diagnostics` is empty. */
  objects: LoadedObject[];
  /** Every problem, schema and semantic, sorted by file/line/col, de-duplicated. */
  diagnostics: Diagnostic[];
  /** The policy files read. */
  files: string[];
}

/** Semantic checks over a schema-valid set (references, duplicates, conflicts). */
export function checkPolicySet(objects: readonly LoadedObject[]): Diagnostic[] {
  const { model, diagnostics } = analyze(objects);
  buildRouteTables(model, diagnostics);
  return diagnostics;
}

/** Reads files and directories (recursively, *.yaml/*.yml) and runs every check. */
export function loadPolicyDir(paths: readonly string[]): PolicyLoadResult {
  const { objects, diagnostics, files } = loadFiles(paths);
  diagnostics.push(...checkPolicySet(objects));
  return { objects, diagnostics: dedupe(sortDiagnostics(diagnostics)), files };
}

function dedupe(ds: Diagnostic[]): Diagnostic[] {
  return ds.filter((d, i) => {
    const p = ds[i - 1];
    return !p || p.file !== d.file || p.line !== d.line || p.col !== d.col || p.message !== d.message;
  });
}
