// Reads policy files (files or directories, recursively, *.yaml / *.yml), parses every
// YAML document, checks each against its kind's schema and returns the objects that
// passed together with every problem found. Used by `weft validate` and by the control
// API; semantic checks (references, conflicts) run afterwards over the whole set.
import { lstatSync, readFileSync, readdirSync, statSync } from 'node:fs';
import jsyaml from 'js-yaml';
import { visit } from 'yaml';
import { FileSource, SourceDoc, isEmptyDoc } from './source';
import { checkEnvelope, checkSchema } from './schema-check';
import type { PolicyObject } from './kinds';
import { boundMessage, type Diagnostic } from './diagnostic';
import type { ParsedFileCache } from './load-cache';
import type { LoadResult } from './load-types';

export type { LoadedObject, LoadResult } from './load-types';

export const DEFAULT_NAMESPACE = 'default';

/**
 * What one load reads at most. Policies come from a git repository anyone with push
 * access can write to, and the control API loads every commit: a file must not be able
 * to exhaust its memory or its event loop. The largest tree measured here (1000
 * services, 10 000 workloads, 11 000 objects) is 2.6 MB in 51 files, the biggest 270 KB.
 */
export const POLICY_LIMITS = {
  /** Bytes per file. */
  fileBytes: 1024 * 1024,
  /** Bytes of all files of one load together. */
  treeBytes: 32 * 1024 * 1024,
  /** YAML documents per file. */
  documentsPerFile: 5000,
  /** YAML documents of one load together: the control API is sized for 5000 services
   *  and 50 000 endpoints (Workload objects, written or discovered), plus routes and
   *  policies. */
  documents: 100_000,
  /** Values (mappings, sequences, scalars) per document, counting every use of a YAML
   *  alias as a copy: what the document means once aliases are expanded. */
  valuesPerDocument: 100_000,
  /** Nesting depth of a document. */
  depth: 64,
};

const MiB = (n: number) => `${Math.round((n / 1024 / 1024) * 10) / 10} MiB`;

function isPolicyFile(name: string): boolean {
  return name.endsWith('.yaml') || name.endsWith('.yml');
}

function statSafe(p: string) {
  try { return statSync(p); } catch { return undefined; }
}

/** A policy file found in a tree, with what lstat said of it; `text` once read. */
export interface PolicyFile {
  file: string;
  size: number;
  mtimeMs: number;
  text?: string;
}

/** What a walk of a policy tree finds: the policy files in load order, the symbolic
 *  links it refuses to follow (reported), and the directories it walked. */
export interface TreeWalk {
  files: PolicyFile[];
  links: Diagnostic[];
  dirs: string[];
}

/** One entry `name` of a walked directory, at path `p`: skipped (dot names: .git and
 *  editor droppings), a link reported, a directory walked in name order, or a policy
 *  file. A path that vanished meanwhile is nothing. */
export function visitTreeEntry(p: string, name: string, out: TreeWalk): void {
  if (name.startsWith('.')) return;
  const st = lstatSync(p, { throwIfNoEntry: false });
  if (!st) return;
  // Links inside a tree are not followed: one in a pushed commit could point the
  // control API at / (a walk of the whole filesystem) or at files outside the repo.
  if (st.isSymbolicLink()) { if (isPolicyFile(name) || statSafe(p)?.isDirectory()) out.links.push({ file: p, line: 1, col: 1, message: 'symbolic link inside a policy tree; not followed' }); }
  else if (st.isDirectory()) walkTreeDir(p, out);
  else if (st.isFile() && isPolicyFile(name)) out.files.push({ file: p, size: st.size, mtimeMs: st.mtimeMs });
}

/** Every entry of `dir`, in name order (so files come in the same order on every load). */
export function walkTreeDir(dir: string, out: TreeWalk): void {
  out.dirs.push(dir);
  for (const name of readdirSync(dir).sort()) visitTreeEntry(dir.endsWith('/') ? dir + name : `${dir}/${name}`, name, out);
}

/** Files under each path, sorted, named relative to the path as the caller gave it. */
export function collectFiles(paths: readonly string[], diagnostics: Diagnostic[]): PolicyFile[] {
  const out: TreeWalk = { files: [], links: diagnostics, dirs: [] };
  for (const p of paths) {
    try {
      const st = statSync(p);
      if (st.isDirectory()) walkTreeDir(p, out);
      else out.files.push({ file: p, size: st.size, mtimeMs: st.mtimeMs });
    } catch (e) {
      diagnostics.push({ file: p, line: 1, col: 1, message: `cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}` });
    }
  }
  return out.files;
}

/** The texts of `files` in order, within POLICY_LIMITS (a file over the size limit is
 *  reported and not read; the tree's bytes stop the read). A file's text is read once
 *  and kept on its entry (a caller holding entries across loads re-reads only the
 *  entries it replaced). */
export function readPolicyFiles(files: readonly PolicyFile[], diagnostics: Diagnostic[]): { file: string; text: string }[] {
  const texts: { file: string; text: string }[] = [];
  let bytes = 0;
  for (const f of files) {
    const { file, size } = f;
    if (size > POLICY_LIMITS.fileBytes) {
      diagnostics.push({ file, line: 1, col: 1, message: `file is ${MiB(size)}, over the ${MiB(POLICY_LIMITS.fileBytes)} limit for one policy file; not read (split it)` });
      continue;
    }
    bytes += size;
    if (bytes > POLICY_LIMITS.treeBytes) {
      diagnostics.push({ file, line: 1, col: 1, message: `policy tree over ${MiB(POLICY_LIMITS.treeBytes)} from this file on; this and later files not read` });
      break;
    }
    try {
      f.text ??= readFileSync(file, 'utf8');
      texts.push({ file, text: f.text });
    } catch (e) {
      diagnostics.push({ file, line: 1, col: 1, message: `cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}` });
    }
  }
  return texts;
}

/** Parses and schema-checks one file's text. Never throws: every problem, including a
 *  file over POLICY_LIMITS, is a diagnostic at file:line:col. */
export function loadText(file: string, text: string): Omit<LoadResult, 'files'> {
  try {
    return loadTextUnguarded(file, text);
  } catch (e) {
    // Both YAML parsers and the position lookups recurse per nesting level; a file nested
    // deeper than the stack allows is reported, never thrown at the caller.
    if (!(e instanceof RangeError)) throw e;
    return { objects: [], diagnostics: [{ file, line: 1, col: 1, message: `YAML nesting too deep to parse (at most ${POLICY_LIMITS.depth} levels)` }], invalid: new Set() };
  }
}

function loadTextUnguarded(file: string, text: string): Omit<LoadResult, 'files'> {
  const out: Omit<LoadResult, 'files'> = { objects: [], diagnostics: [], invalid: new Set() };
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > POLICY_LIMITS.fileBytes) {
    out.diagnostics.push({ file, line: 1, col: 1, message: `file is ${MiB(bytes)}, over the ${MiB(POLICY_LIMITS.fileBytes)} limit for one policy file; not read (split it)` });
    return out;
  }
  const source = new FileSource(file, text);
  const deep = flowNestingOver(text, FLOW_DEPTH_SCAN);
  if (deep >= 0) {
    const { line, col } = lineCol(text, deep);
    out.diagnostics.push({ file, line, col, message: `more than ${FLOW_DEPTH_SCAN} unclosed [ or { (YAML nested too deep, at most ${POLICY_LIMITS.depth} levels); not parsed` });
    return out;
  }
  let values: unknown[] | undefined;
  let documents = 0;
  try {
    values = [];
    jsyaml.loadAll(text, (v) => {
      if (++documents > POLICY_LIMITS.documentsPerFile) throw new TooManyDocuments();
      if (v !== null && v !== undefined) values!.push(v);
    }, { schema: jsyaml.CORE_SCHEMA, filename: file });
  } catch (e) {
    values = undefined;
    if (e instanceof TooManyDocuments) {
      out.diagnostics.push(tooManyDocuments(source));
      return out;
    }
    if (e instanceof RangeError) throw e; // the parser's recursion ran out of stack: see loadText
    try {
      syntaxErrors(source, e, out);
    } catch (e2) {
      // `yaml` recurses per entry in some broken shapes (an implicit key running into a
      // long flow mapping) where js-yaml had found the error: report js-yaml's.
      if (!(e2 instanceof RangeError)) throw e2;
      const mark = (e as { mark?: { position?: number } }).mark;
      const { line, col } = lineCol(text, Math.min(mark?.position ?? 0, text.length));
      out.diagnostics.push({ file, line, col, message: boundMessage(`YAML syntax error: ${(e as { reason?: string }).reason ?? String(e)}`) });
    }
  }
  if (values) values.forEach((v, i) => checkBoundedDocument(v, new SourceDoc(source, i), i, out));
  return out;
}

class TooManyDocuments extends Error {}

/** Unclosed brackets the pre-scan tolerates: twice the depth limit, so what the scan
 *  over-counts (brackets inside strings, which are rarely unbalanced at all) does not
 *  refuse a document the depth limit would take; measure() applies the exact limit. */
const FLOW_DEPTH_SCAN = 2 * POLICY_LIMITS.depth;

/**
 * Offset where "[" / "{" outnumber their closing brackets by more than `max`, or -1.
 * js-yaml stops at 100 levels, but `yaml` (which locates syntax errors) recurses per
 * level and builds an error per level: 500 000 "[" took a 160 MB heap down. Brackets are
 * counted everywhere, quoted or not: a scan that tried to skip quoted scalars could be
 * led to skip real flow collections, and so bypassed.
 */
function flowNestingOver(text: string, max: number): number {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5b || c === 0x7b) { if (++depth > max) return i; }
    else if ((c === 0x5d || c === 0x7d) && depth > 0) depth--;
  }
  return -1;
}

function lineCol(text: string, offset: number): { line: number; col: number } {
  let line = 1, start = 0;
  for (let i = text.indexOf('\n'); i >= 0 && i < offset; i = text.indexOf('\n', i + 1)) { line++; start = i + 1; }
  return { line, col: offset - start + 1 };
}

function tooManyDocuments(source: FileSource): Diagnostic {
  const doc = source.yaml().docs[POLICY_LIMITS.documentsPerFile];
  const { line, col } = source.position(doc?.range?.[0] ?? 0);
  return { file: source.file, line, col, message: `more than ${POLICY_LIMITS.documentsPerFile} YAML documents in one file; not read (split it)` };
}

/**
 * How big a parsed document really is. js-yaml shares one object for every use of an
 * anchor, so ten lines of aliases (the "billion laughs") parse into a few objects that
 * mean 10^9 values to anything that walks them (the schema check, the compiler, a
 * message quoting them), and an alias inside its own anchor makes a cycle. Walks at most
 * POLICY_LIMITS.valuesPerDocument values, and stops at a cycle or at the depth limit.
 */
function measure(value: unknown): 'ok' | 'cycle' | 'values' | 'depth' {
  let count = 0;
  const path = new Set<object>();
  const walk = (v: unknown, depth: number): 'ok' | 'cycle' | 'values' | 'depth' => {
    if (++count > POLICY_LIMITS.valuesPerDocument) return 'values';
    if (v === null || typeof v !== 'object') return 'ok';
    if (depth >= POLICY_LIMITS.depth) return 'depth';
    if (path.has(v)) return 'cycle';
    path.add(v);
    const items = Array.isArray(v) ? v : Object.values(v as object);
    for (const x of items) {
      const r = walk(x, depth + 1);
      if (r !== 'ok') return r;
    }
    path.delete(v);
    return 'ok';
  };
  return walk(value, 0);
}

function checkBoundedDocument(value: unknown, src: SourceDoc, index: number, out: Omit<LoadResult, 'files'>): void {
  const m = measure(value);
  if (m === 'ok') { checkDocument(value, src, out); return; }
  // Point at the first alias when there is one (what made it big), else at the document.
  const doc = src.source.nonEmptyDocs()[index];
  let at = doc?.contents?.range?.[0] ?? doc?.range?.[0] ?? 0;
  let alias = false;
  if (doc) visit(doc, { Alias(_, node) { at = node.range?.[0] ?? at; alias = true; return visit.BREAK; } });
  const { line, col } = src.source.position(at);
  const message = m === 'cycle' ? 'YAML alias refers to a collection that contains it; recursive aliases are not allowed'
    : m === 'depth' ? `document nested more than ${POLICY_LIMITS.depth} levels deep`
    : alias ? `document expands to more than ${POLICY_LIMITS.valuesPerDocument} values through YAML aliases (every use of an alias counts as a copy); not checked`
    : `document has more than ${POLICY_LIMITS.valuesPerDocument} values; not checked`;
  out.diagnostics.push({ file: src.file, line, col, message });
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
      diagnostics.push({ file: source.file, line, col, message: boundMessage(`YAML syntax error: ${err.message.split('\n')[0]}`) });
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
        diagnostics.push({ file: source.file, line, col, message: boundMessage(`YAML error: ${(err as Error).message}`) });
        reported = true;
      }
      if (value !== undefined) checkBoundedDocument(value, new SourceDoc(source, index), index, out);
    }
    index++;
  }
  if (!reported) {
    // The two parsers disagree (rare): fall back to js-yaml's own position.
    // Located by offset through `yaml`'s line counter, like every other diagnostic:
    // js-yaml also counts a lone CR as a line break, `yaml` and editors do not.
    const mark = (e as { mark?: { position?: number } }).mark;
    const reason = (e as { reason?: string }).reason ?? String(e);
    const { line, col } = source.position(Math.min(mark?.position ?? 0, source.text.length));
    diagnostics.push({ file: source.file, line, col, message: boundMessage(`YAML syntax error: ${reason}`) });
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
 *  files whose text it has seen are not parsed again. Stops reading at POLICY_LIMITS's
 *  tree size and document count (the rest of the files are reported, not parsed). */
export function loadTexts(files: readonly { file: string; text: string }[], diagnostics: Diagnostic[] = [], cache?: ParsedFileCache): LoadResult {
  const all: LoadResult = { objects: [], diagnostics, files: [], invalid: new Set(), parts: [] };
  let bytes = 0;
  let documents = 0;
  for (const f of files) {
    bytes += Math.min(Buffer.byteLength(f.text, 'utf8'), POLICY_LIMITS.fileBytes + 1);
    if (bytes > POLICY_LIMITS.treeBytes) {
      all.diagnostics.push({ file: f.file, line: 1, col: 1, message: `policy tree over ${MiB(POLICY_LIMITS.treeBytes)} from this file on; this and later files not read` });
      break;
    }
    const r = cache ? cache.get(f.file, f.text, loadText) : loadText(f.file, f.text);
    documents += r.objects.length + r.diagnostics.length;
    if (documents > POLICY_LIMITS.documents) {
      all.diagnostics.push({ file: f.file, line: 1, col: 1, message: `policy tree over ${POLICY_LIMITS.documents} documents from this file on; this and later files not read` });
      break;
    }
    all.objects.push(...r.objects);
    all.diagnostics.push(...r.diagnostics);
    all.files.push(f.file);
    all.parts!.push({ file: f.file, load: r });
    for (const k of r.invalid) all.invalid.add(k);
  }
  cache?.sweep();
  return all;
}

/** Schema stage over files and directories. `extra`: in-memory documents checked
 *  together with the files (e.g. objects from a discovery source), so references
 *  between both sides are resolved. Files over the size limits are not read at all. */
export function loadFiles(paths: readonly string[], extra: readonly { file: string; text: string }[] = [], cache?: ParsedFileCache): LoadResult {
  const diagnostics: Diagnostic[] = [];
  const texts = readPolicyFiles(collectFiles(paths, diagnostics), diagnostics);
  return loadTexts([...texts, ...extra], diagnostics, cache);
}
