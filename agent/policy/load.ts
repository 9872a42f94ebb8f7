// Reads policy files (files or directories, recursively, *.yaml / *.yml), parses every
// YAML document, checks each against its kind's schema and returns the objects that
// passed together with every problem found. Used by `weft validate` and by the control
// API; semantic checks (references, conflicts) run afterwards over the whole set.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import jsyaml from 'js-yaml';
import { visit } from 'yaml';
import { FileSource, SourceDoc, isEmptyDoc } from './source';
import { checkEnvelope, checkSchema } from './schema-check';
import type { Kind, PolicyObject } from './kinds';
import type { Diagnostic } from './diagnostic';
import type { ParsedFileCache } from './load-cache';

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
  const out: Omit<LoadResult, 'files'> = { objects: [], diagnostics: [], invalid: new Set() };
  const source = new FileSource(file, text);
  let values: unknown[] | undefined;
  try {
    values = [];
    jsyaml.loadAll(text, (v) => { if (v !== null && v !== undefined) values!.push(v); }, { schema: jsyaml.CORE_SCHEMA, filename: file });
  } catch (e) {
    values = undefined;
    syntaxErrors(source, e, out);
  }
  if (values) values.forEach((v, i) => checkDocument(v, new SourceDoc(source, i), out));
  return out;
}

/** A file js-yaml rejects: report what `yaml` finds (every error, located), and still
 *  check the documents that parse, so one typo does not hide the rest of the file. */
function syntaxErrors(source: FileSource, e: unknown, out: Omit<LoadResult, 'files'>): void {
  const { diagnostics } = out;
  const { docs, lines } = source.yaml();
  let reported = false;
  let index = 0;
  for (const doc of docs) {
    // Only the first error of a document: the parser's later ones are nearly always
    // the same mistake seen again from further along.
    const err = doc.errors[0];
    if (err) {
      const { line, col } = lines.linePos(err.pos[0]);
      diagnostics.push({ file: source.file, line, col, message: `YAML syntax error: ${err.message.split('\n')[0]}` });
      reported = true;
    }
    if (isEmptyDoc(doc)) continue;
    if (!doc.errors.length) {
      let value: unknown;
      try {
        value = doc.toJS({ maxAliasCount: 100 });
      } catch (err) { // e.g. an alias to an anchor in another document
        let at = doc.range?.[0] ?? 0;
        visit(doc, { Alias(_, node) { if (!node.resolve(doc)) { at = node.range?.[0] ?? at; return visit.BREAK; } return undefined; } });
        const { line, col } = lines.linePos(at);
        diagnostics.push({ file: source.file, line, col, message: `YAML error: ${(err as Error).message}` });
        reported = true;
      }
      if (value !== undefined) checkDocument(value, new SourceDoc(source, index), out);
    }
    index++;
  }
  if (!reported) {
    // The two parsers disagree (rare): fall back to js-yaml's own position.
    const mark = (e as { mark?: { line: number; column: number } }).mark;
    const reason = (e as { reason?: string }).reason ?? String(e);
    diagnostics.push({ file: source.file, line: (mark?.line ?? 0) + 1, col: (mark?.column ?? 0) + 1, message: `YAML syntax error: ${reason}` });
  }
}

function checkDocument(value: unknown, src: SourceDoc, out: Omit<LoadResult, 'files'>): void {
  const env = checkEnvelope(value, src);
  out.diagnostics.push(...env.diagnostics);
  if (!env.kind) return;
  const errs = checkSchema(env.kind, value, src);
  if (errs.length) {
    out.diagnostics.push(...errs);
    const md = (value as { metadata?: { name?: unknown; namespace?: unknown } }).metadata;
    if (typeof md?.name === 'string') out.invalid.add(`${env.kind}/${typeof md.namespace === 'string' ? md.namespace : DEFAULT_NAMESPACE}/${md.name}`);
    return;
  }
  const object = value as PolicyObject;
  object.metadata.namespace ??= DEFAULT_NAMESPACE;
  out.objects.push({ kind: env.kind, key: `${object.metadata.namespace}/${object.metadata.name}`, object, source: src });
}

/** Schema stage over in-memory files; index.ts adds the semantic checks. With a cache,
 *  files whose text it has seen are not parsed again. */
export function loadTexts(files: readonly { file: string; text: string }[], diagnostics: Diagnostic[] = [], cache?: ParsedFileCache): LoadResult {
  const all: LoadResult = { objects: [], diagnostics, files: [], invalid: new Set() };
  for (const f of files) {
    const r = cache ? cache.get(f.file, f.text, loadText) : loadText(f.file, f.text);
    all.objects.push(...r.objects);
    all.diagnostics.push(...r.diagnostics);
    all.files.push(f.file);
    for (const k of r.invalid) all.invalid.add(k);
  }
  cache?.sweep();
  return all;
}

/** Schema stage over files and directories. `extra`: in-memory documents checked
 *  together with the files (e.g. objects from a discovery source), so references
 *  between both sides are resolved. */
export function loadFiles(paths: readonly string[], extra: readonly { file: string; text: string }[] = [], cache?: ParsedFileCache): LoadResult {
  const diagnostics: Diagnostic[] = [];
  const texts: { file: string; text: string }[] = [];
  for (const file of collectFiles(paths, diagnostics)) {
    try {
      texts.push({ file, text: readFileSync(file, 'utf8') });
    } catch (e) {
      diagnostics.push({ file, line: 1, col: 1, message: `cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}` });
    }
  }
  return loadTexts([...texts, ...extra], diagnostics, cache);
}
