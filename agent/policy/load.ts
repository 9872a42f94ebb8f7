// Reads policy files (files or directories, recursively, *.yaml / *.yml), parses every
// YAML document, checks each against its kind's schema and returns the objects that
// passed together with every problem found. Used by `weft validate` and by the control
// API; semantic checks (references, conflicts) run afterwards over the whole set.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { LineCounter, parseAllDocuments } from 'yaml';
import { SourceDoc } from './source';
import { checkEnvelope, checkSchema } from './schema-check';
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

export const DEFAULT_NAMESPACE = 'default';

function isPolicyFile(name: string): boolean {
  return name.endsWith('.yaml') || name.endsWith('.yml');
}

/** Files under each path, sorted, named relative to the path as the caller gave it. */
export function collectFiles(paths: readonly string[], diagnostics: Diagnostic[]): string[] {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      if (name.startsWith('.')) continue; // .git and editor droppings
      const p = dir.endsWith('/') ? dir + name : `${dir}/${name}`;
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else if (isPolicyFile(name)) files.push(p);
    }
  };
  for (const p of paths) {
    try {
      if (statSync(p).isDirectory()) walk(p);
      else files.push(p);
    } catch (e) {
      diagnostics.push({ file: p, line: 1, col: 1, message: `cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}` });
    }
  }
  return files;
}

/** Parses and schema-checks one file's text. */
export function loadText(file: string, text: string): Omit<LoadResult, 'files'> {
  const objects: LoadedObject[] = [];
  const diagnostics: Diagnostic[] = [];
  const invalid = new Set<string>();
  const lines = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const list = Array.isArray(docs) ? docs : [];
  for (const doc of list) {
    if (doc.errors.length) {
      for (const err of doc.errors) {
        const { line, col } = lines.linePos(err.pos[0]);
        diagnostics.push({ file, line, col, message: `YAML syntax error: ${err.message.split('\n')[0]}` });
      }
      continue;
    }
    if (doc.contents === null) continue; // an empty document (e.g. a trailing ---)
    const src = new SourceDoc(file, doc, lines);
    const value: unknown = doc.toJS({ maxAliasCount: 100 });
    const env = checkEnvelope(value, src);
    diagnostics.push(...env.diagnostics);
    if (!env.kind) continue;
    const errs = checkSchema(env.kind, value, src);
    if (errs.length) {
      diagnostics.push(...errs);
      const md = (value as { metadata?: { name?: unknown; namespace?: unknown } }).metadata;
      if (typeof md?.name === 'string') invalid.add(`${env.kind}/${typeof md.namespace === 'string' ? md.namespace : DEFAULT_NAMESPACE}/${md.name}`);
      continue;
    }
    const object = value as PolicyObject;
    object.metadata.namespace ??= DEFAULT_NAMESPACE;
    objects.push({ kind: env.kind, key: `${object.metadata.namespace}/${object.metadata.name}`, object, source: src });
  }
  return { objects, diagnostics, invalid };
}

/** Schema stage only; see validatePolicySet() for the full check. */
export function loadFiles(paths: readonly string[]): LoadResult {
  const diagnostics: Diagnostic[] = [];
  const files = collectFiles(paths, diagnostics);
  const objects: LoadedObject[] = [];
  const invalid = new Set<string>();
  for (const file of files) {
    let text: string;
    try { text = readFileSync(file, 'utf8'); } catch (e) {
      diagnostics.push({ file, line: 1, col: 1, message: `cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}` });
      continue;
    }
    const r = loadText(file, text);
    objects.push(...r.objects);
    diagnostics.push(...r.diagnostics);
    for (const k of r.invalid) invalid.add(k);
  }
  return { objects, diagnostics, files, invalid };
}
