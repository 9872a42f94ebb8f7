// The policy package's public face: the control API and `weft validate` use only these.
//
//   loadPolicyDir(paths) / loadPolicyTexts(files)   YAML → schema-checked objects +
//        │                                          every diagnostic (schema + semantic)
//        ▼  (only when diagnostics is empty)
//   compile(set, registeredWorkloads, {version, previous})  → Snapshot (versioned, JSON)
//        ▼
//   forNode(snapshot, node)  → NodeView: one agent's datapath table (l4 | redirect),
//                              routes, traffic policies, authorization, local workloads
//
// kinds.ts defines every kind once (schema + TS type); model.ts and routes.ts hold the
// semantic checks, shared by validation and compilation so they cannot disagree.
import { loadFiles, loadTexts, type LoadResult, type LoadedObject } from './load';
import type { ParsedFileCache } from './load-cache';
import { analyzeSet, type SetAnalysis } from './compile';
import { sortDiagnostics, type Diagnostic } from './diagnostic';

export { compile, type CompileOptions, type PolicySet } from './compile';
export { forNode, decidePath } from './node-view';
export { nodeAddress, endpointsForNode, endpointsForPort } from './topology';
export { ParsedFileCache } from './load-cache';
export { formatDiagnostic, sortDiagnostics, type Diagnostic } from './diagnostic';
export type { LoadedObject } from './load';
export * from './snapshot';

export interface PolicyLoadResult {
  /** Schema-valid objects; only safe to compile when `diagnostics` is empty. */
  objects: LoadedObject[];
  /** Every problem, schema and semantic, sorted by file/line/col, de-duplicated. */
  diagnostics: Diagnostic[];
  /** The policy files read. */
  files: string[];
  /** The semantic analysis behind the diagnostics, which compile() reuses. */
  analysis: SetAnalysis;
}

/** Semantic checks over a schema-valid set (references, duplicates, conflicts). */
export function checkPolicySet(objects: readonly LoadedObject[], invalid?: ReadonlySet<string>): Diagnostic[] {
  return analyzeSet(objects, invalid).diagnostics;
}

/** Reads files and directories (recursively, *.yaml/*.yml) and runs every check;
 *  `extra` documents (a discovery source) are checked as part of the same set. A
 *  long-running caller passes a ParsedFileCache so unchanged files are not re-parsed. */
export function loadPolicyDir(paths: readonly string[], extra: readonly { file: string; text: string }[] = [], cache?: ParsedFileCache): PolicyLoadResult {
  return finish(loadFiles(paths, extra, cache));
}

/** The same over in-memory files (tests, or a source that is not a directory). */
export function loadPolicyTexts(files: readonly { file: string; text: string }[]): PolicyLoadResult {
  return finish(loadTexts(files));
}

/** Diagnostics one load reports at most: the control API logs each and returns them in
 *  Status (one gRPC message), so a file cannot be made to produce millions. */
export const MAX_DIAGNOSTICS = 1000;

/** The semantic checks over a schema stage's result (a full analysis). */
export function finish({ objects, diagnostics, files, invalid }: LoadResult): PolicyLoadResult {
  const analysis = analyzeSet(objects, invalid);
  diagnostics.push(...analysis.diagnostics);
  let sorted = sortDiagnostics(diagnostics);
  if (sorted.length > MAX_DIAGNOSTICS) {
    const next = sorted[MAX_DIAGNOSTICS - 1]!;
    sorted = [...sorted.slice(0, MAX_DIAGNOSTICS - 1), { ...next, message: `${sorted.length - MAX_DIAGNOSTICS + 1} more problems from here on, not listed` }];
  }
  return { objects, diagnostics: sorted, files, analysis };
}
