// A policies directory on local disk. Edits are picked up through a recursive fs.watch,
// debounced so an editor's write-rename-chmod burst (or `git checkout` of many files)
// becomes one recompile. inotify can miss events (overflowed queue, a directory replaced
// under the watch, network filesystems), so a periodic rescan compares a cheap
// fingerprint (paths, sizes, mtimes) and reports a change the watch did not.
import { watch, type FSWatcher } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { WeftError } from '../../lib/errors';
import type { Logger } from '../../telemetry/logger';
import type { PolicyTree } from '../snapshot-store';
import type { PolicySource } from './source';

export interface DirectorySourceOptions {
  debounceMs?: number;
  rescanMs?: number;
}

async function fingerprint(dir: string): Promise<string> {
  const parts: string[] = [];
  const walk = async (d: string): Promise<void> => {
    const entries = await readdir(d, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const e of entries) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) {
        const s = await stat(p).catch(() => undefined);
        if (s) parts.push(`${p}\0${s.size}\0${s.mtimeMs}`);
      }
    }
  };
  await walk(dir);
  return parts.join('\n');
}

export class DirectorySource implements PolicySource {
  readonly description: string;
  private readonly root: string;
  private readonly debounceMs: number;
  private readonly rescanMs: number;
  private watcher: FSWatcher | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private rescan: NodeJS.Timeout | undefined;
  private lastPrint = '';
  private onTree: ((tree: PolicyTree) => Promise<unknown>) | undefined;
  private running: Promise<void> = Promise.resolve();

  constructor(dir: string, private readonly log: Logger, opts: DirectorySourceOptions = {}) {
    this.root = resolve(dir);
    this.description = this.root;
    this.debounceMs = opts.debounceMs ?? 100;
    this.rescanMs = opts.rescanMs ?? 5000;
  }

  async start(onTree: (tree: PolicyTree) => Promise<unknown>): Promise<void> {
    const s = await stat(this.root).catch(() => undefined);
    if (!s?.isDirectory()) throw new WeftError('WEFT_ERR_INVALID_ARG', `--policies: ${this.root} is not a directory`);
    this.onTree = onTree;
    this.watcher = watch(this.root, { recursive: true }, () => this.schedule());
    this.watcher.on('error', (e) => this.log.warn({ err: e.message }, 'policy directory watch failed; relying on the periodic rescan'));
    this.rescan = setInterval(() => { void this.checkFingerprint(); }, this.rescanMs);
    this.rescan.unref();
    await this.report();
  }

  async stop(): Promise<void> {
    this.watcher?.close();
    clearTimeout(this.debounce);
    clearInterval(this.rescan);
    this.onTree = undefined;
    await this.running;
  }

  private schedule(): void {
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => { void this.report(); }, this.debounceMs);
  }

  private async checkFingerprint(): Promise<void> {
    const fp = await fingerprint(this.root).catch(() => '');
    if (fp !== this.lastPrint) {
      this.log.info('policy directory changed without a watch event; reloading');
      this.schedule();
    }
  }

  /** One report at a time; the fingerprint is taken before loading so an edit made
   *  during the compile is seen by the next rescan. */
  private report(): Promise<void> {
    this.running = this.running.then(async () => {
      if (!this.onTree) return;
      this.lastPrint = await fingerprint(this.root).catch(() => '');
      try {
        await this.onTree({ root: this.root });
      } catch (e) {
        this.log.error({ err: (e as Error).message }, 'policy reload failed');
      }
    });
    return this.running;
  }
}
