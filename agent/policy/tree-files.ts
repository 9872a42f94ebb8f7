// The policy files of one directory tree, kept between loads: what loadFiles() would
// read from the tree (the same walk, order, limits and diagnostics, load.ts), except that
// a caller who knows which paths changed (a directory watch: agent/control/sources/
// directory.ts) has only those looked at again. A one-file edit of a tree of a thousand
// files then lstats and reads one file instead of all of them.
//
// The caller must name every path that changed: a created, modified, deleted or renamed
// file (both names of a rename), or a directory (it is walked again, everything under it
// replaced). Whatever it misses is found by rescan(), which a caller runs when
// changedOnDisk() says the tree on disk is not what it holds (sizes, mtimes, names).
import { statSync } from 'node:fs';
import { basename, resolve, sep } from 'node:path';
import type { Diagnostic } from './diagnostic';
import { readPolicyFiles, visitTreeEntry, walkTreeDir, type PolicyFile, type TreeWalk } from './load';

/** Path order of a walk: name by name, each directory's entries sorted (so "a/b" comes
 *  before "a-c", as the walk visits them, not as the whole strings compare). */
function walkOrder(a: string, b: string): number {
  const x = a.split('/'), y = b.split('/');
  for (let i = 0; i < x.length && i < y.length; i++) {
    if (x[i] !== y[i]) return (x[i] as string) < (y[i] as string) ? -1 : 1;
  }
  return x.length - y.length;
}

export class PolicyTreeFiles {
  readonly root: string;
  private files = new Map<string, PolicyFile>();
  private links = new Map<string, Diagnostic>();
  private dirs = new Set<string>();
  /** The root could not be walked (missing, not readable): a load reports this. */
  private problem: Diagnostic | undefined;
  /** The files' paths in walk order; recomputed only when the set of paths changes. */
  private ordered: string[] | undefined;

  constructor(root: string) {
    this.root = resolve(root);
  }

  /** The directories walked (a watcher watches each). */
  directories(): ReadonlySet<string> { return this.dirs; }

  /** Walks the whole tree again; every file is read again on the next read(). */
  rescan(): void {
    const out = this.walk();
    this.files = new Map(out.walk.files.map((f) => [f.file, f]));
    this.links = new Map(out.walk.links.map((d) => [d.file, d]));
    this.dirs = new Set(out.walk.dirs);
    this.problem = out.problem;
    this.ordered = undefined;
  }

  /** Looks at these paths again (absolute, or relative to the root); paths outside the
   *  tree or under a dot name are not part of it and are ignored. */
  update(paths: Iterable<string>): void {
    for (const given of paths) {
      const p = resolve(this.root, given);
      if (!p.startsWith(this.root + sep)) continue;
      if (p.slice(this.root.length + 1).split(sep).some((name) => name.startsWith('.'))) continue;
      // Whatever the tree had at p (and under it, when it was a directory) goes ...
      const had = this.files.has(p);
      this.drop(p);
      // ... and what is there now comes in, as a walk would find it.
      const out: TreeWalk = { files: [], links: [], dirs: [] };
      visitTreeEntry(p, basename(p), out);
      for (const f of out.files) this.files.set(f.file, f);
      if (out.files.length !== 1 || out.files[0]?.file !== p || !had) this.ordered = undefined;
      for (const d of out.links) this.links.set(d.file, d);
      for (const d of out.dirs) this.dirs.add(d);
    }
  }

  private drop(p: string): void {
    this.files.delete(p);
    this.links.delete(p);
    if (!this.dirs.has(p)) return;
    const under = p + sep;
    for (const d of [...this.dirs]) if (d === p || d.startsWith(under)) this.dirs.delete(d);
    for (const f of [...this.files.keys()]) if (f.startsWith(under)) this.files.delete(f);
    for (const f of [...this.links.keys()]) if (f.startsWith(under)) this.links.delete(f);
    this.ordered = undefined;
  }

  /** What loadFiles([root]) reads: the texts in walk order, and the diagnostics of the
   *  walk and of the read. Only files not read since they were (re)found are read. */
  read(): { texts: { file: string; text: string }[]; diagnostics: Diagnostic[] } {
    const diagnostics: Diagnostic[] = this.problem ? [this.problem] : [...this.links.values()];
    return { texts: readPolicyFiles(this.inOrder(), diagnostics), diagnostics };
  }

  /** Whether the tree on disk differs from what this holds: another set of policy files
   *  or links, or a file of another size or mtime (an edit no watch event reported). */
  changedOnDisk(): boolean {
    const { walk, problem } = this.walk();
    if (problem || this.problem) return problem?.message !== this.problem?.message;
    if (walk.links.length !== this.links.size || walk.links.some((d) => !this.links.has(d.file))) return true;
    if (walk.files.length !== this.files.size) return true;
    return walk.files.some((f) => {
      const held = this.files.get(f.file);
      return !held || held.size !== f.size || held.mtimeMs !== f.mtimeMs;
    });
  }

  private inOrder(): PolicyFile[] {
    this.ordered ??= [...this.files.keys()].sort(walkOrder);
    return this.ordered.map((p) => this.files.get(p) as PolicyFile);
  }

  private walk(): { walk: TreeWalk; problem?: Diagnostic } {
    const walk: TreeWalk = { files: [], links: [], dirs: [] };
    try {
      if (!statSync(this.root).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
      walkTreeDir(this.root, walk);
      return { walk };
    } catch (e) {
      return { walk: { files: [], links: [], dirs: [] }, problem: { file: this.root, line: 1, col: 1, message: `cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}` } };
    }
  }
}
