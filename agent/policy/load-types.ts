// What a policy load produces (load.ts), in a module of its own so the parse cache
// (load-cache.ts) can name it without importing the loader.
import type { SourceDoc } from './source';
import type { Kind, PolicyObject } from './kinds';
import type { Diagnostic } from './diagnostic';

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
  /** Each file read, with its parse (the same object for a file a ParsedFileCache did
   *  not re-parse): what an incremental reload diffs against the previous load. */
  parts?: { file: string; load: Omit<LoadResult, 'files' | 'parts'> }[];
}
