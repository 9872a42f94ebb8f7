// A policies directory on local disk. Edits are picked up through a watch on every
// directory of the tree (fs.watch per directory: inotify names the entry that changed),
// debounced so an editor's write-rename-chmod burst (or `git checkout` of many files)
// becomes one recompile. The tree's files are kept between loads (PolicyTreeFiles):
// a report re-reads only the paths the watch named, not the thousand files of a large
// tree. inotify can miss events (overflowed queue, a directory replaced under the
// watch, network filesystems), so a periodic rescan compares the tree on disk (paths,
// sizes, mtimes) with what is held and, on any difference, reads the whole tree again.
import { watch, type FSWatcher } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { WeftError } from '../../lib/errors';
import { PolicyTreeFiles } from '../../policy/tree-files';
import type { Logger } from '../../telemetry/logger';
import type { PolicyTree } from '../snapshot-store';
import type { PolicySource } from './source';

export interface DirectorySourceOptions {
  debounceMs?: number;
  rescanMs?: number;
}

export class DirectorySource implements PolicySource {
  readonly description: string;
  private readonly root: string;
  private readonly debounceMs: number;
  private readonly rescanMs: number;
  private readonly files: PolicyTreeFiles;
  private readonly watchers = new Map<string, FSWatcher>();
  /** Paths the watch named since the last report; `full`: read the whole tree. */
  private changed = new Set<string>();
  private full = true;
  private debounce: NodeJS.Timeout | undefined;
  private rescan: NodeJS.Timeout | undefined;
  private onTree: ((tree: PolicyTree) => Promise<unknown>) | undefined;
  private running: Promise<void> = Promise.resolve();

  constructor(dir: string, private readonly log: Logger, opts: DirectorySourceOptions = {}) {
    this.root = resolve(dir);
    this.description = this.root;
    this.debounceMs = opts.debounceMs ?? 100;
    this.rescanMs = opts.rescanMs ?? 5000;
    this.files = new PolicyTreeFiles(this.root);
  }

  async start(onTree: (tree: PolicyTree) => Promise<unknown>): Promise<void> {
    const s = await stat(this.root).catch(() => undefined);
    if (!s?.isDirectory()) throw new WeftError('WEFT_ERR_INVALID_ARG', `--policies: ${this.root} is not a directory`);
    this.onTree = onTree;
    this.rescan = setInterval(() => this.checkDisk(), this.rescanMs);
    this.rescan.unref();
    await this.report();
  }

  async stop(): Promise<void> {
    this.closeWatchers();
    clearTimeout(this.debounce);
    clearInterval(this.rescan);
    this.onTree = undefined;
    await this.running;
  }

  private closeWatchers(): void {
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
  }

  /** One watch per directory the tree has (new ones watched, gone ones closed). */
  private syncWatchers(): void {
    const dirs = this.files.directories();
    for (const [dir, w] of this.watchers) if (!dirs.has(dir)) { w.close(); this.watchers.delete(dir); }
    for (const dir of dirs) {
      if (this.watchers.has(dir)) continue;
      try {
        const w = watch(dir, (_event, name) => {
          // No name (some platforms, an overflowed queue): the whole tree is read again.
          if (name) this.changed.add(join(dir, name.toString())); else this.full = true;
          this.schedule();
        });
        w.on('error', (e) => {
          this.log.warn({ dir, err: e.message }, 'policy directory watch failed; reading the whole tree on the next change or rescan');
          w.close();
          this.watchers.delete(dir);
          this.full = true;
          this.schedule();
        });
        this.watchers.set(dir, w);
      } catch (e) {
        // Gone between the walk and the watch: the parent's watch reports it.
        this.log.debug({ dir, err: (e as Error).message }, 'cannot watch a policy directory');
      }
    }
  }

  private schedule(): void {
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => { void this.report(); }, this.debounceMs);
  }

  /** The safety net: a tree on disk that differs from the one held is read whole. */
  private checkDisk(): void {
    this.running = this.running.then(() => {
      if (!this.onTree || !this.files.changedOnDisk()) return;
      this.log.info('policy directory changed without a watch event; reloading');
      this.full = true;
      this.schedule();
    });
  }

  /** One report at a time. The changed paths are taken (and looked at) before loading,
   *  so an edit made during the compile is seen by the next report. */
  private report(): Promise<void> {
    this.running = this.running.then(async () => {
      if (!this.onTree) return;
      const changed = this.changed;
      this.changed = new Set();
      try {
        if (this.full) {
          // Watched anew too: a directory replaced under its path keeps the old watch.
          this.full = false;
          this.closeWatchers();
          this.files.rescan();
        } else this.files.update(changed);
        this.syncWatchers();
        await this.onTree({ root: this.root, files: this.files });
      } catch (e) {
        this.log.error({ err: (e as Error).message }, 'policy reload failed');
      }
    });
    return this.running;
  }
}
