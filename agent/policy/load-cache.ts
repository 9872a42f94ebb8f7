// Parsed policy files kept between loads of the same tree, so `weft control` re-parses
// only the files that changed: with 11 000 objects in 50 files, a one-file edit parses
// one file instead of all of them. A file's entry is reused when its text is exactly the
// text it was parsed from (the file is read anyway; comparing is far cheaper than
// parsing, and unlike mtime + size it cannot miss an edit). The objects handed out are
// the same ones every time, which is safe because nothing downstream mutates them.
// Only the per-file stage (YAML + schema) is cached; the semantic checks across files
// always run on the whole set, so diagnostics are exactly those of a cold load.
import type { LoadResult } from './load-types';

export type FileLoad = Omit<LoadResult, 'files' | 'parts'>;

export class ParsedFileCache {
  private entries = new Map<string, { text: string; result: FileLoad }>();
  private seen = new Map<string, { text: string; result: FileLoad }>();

  /** The file's parse, from the cache when `text` is unchanged. */
  get(file: string, text: string, parse: (file: string, text: string) => FileLoad): FileLoad {
    let e = this.entries.get(file);
    if (e?.text !== text) e = { text, result: parse(file, text) };
    this.seen.set(file, e);
    return e.result;
  }

  /** End of one load: entries of files that were not read in it are dropped. */
  sweep(): void {
    this.entries = this.seen;
    this.seen = new Map();
  }
}
