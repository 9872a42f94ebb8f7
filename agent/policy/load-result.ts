// What loading a policy tree gives: the schema-valid objects with their sources, the
// diagnostics, the files read (load.ts produces it, load-cache.ts keeps per-file parts).
import type { Diagnostic } from './diagnostic';
import type { Kind, PolicyObject } from './kinds';
import type { SourceDoc } from './source';

/** A schema-valid object with where it came from. metadata.namespace is defaulted. */
export interface LoadedObject<T extends PolicyObject = PolicyObject> {
  kind: Kind;
  /** "namespace/name" */
  key: string;
  object: T;
  source: SourceDoc;
}

export interface LoadResult {
  objects: LoadedObject[];
  diagnostics: Diagnostic[];
  files: string[];
  /** "Kind/namespace/name" of documents that name themselves but failed the schema:
   *  references to them are not reported again as unknown. */
  invalid: Set<string>;
}
