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
}
