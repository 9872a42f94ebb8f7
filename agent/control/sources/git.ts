// A git remote pinned to one branch (GitOps). The repository is cloned once into the
// state dir and then fetched at an interval with the git CLI (the user's git config,
// credentials helpers and SSH keys apply as they would in a shell). The working tree is
// checked out detached at the fetched commit, and the served version is that commit.
// A fetch that fails (network, auth) keeps the current tree and is retried next tick.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { WeftError } from '../../lib/errors';
import type { Logger } from '../../telemetry/logger';
import type { PolicyTree } from '../snapshot-store';
import type { PolicySource } from './source';

export interface GitSourceOptions {
  branch?: string;
  pollMs?: number;
  /** Where progress lines go (stderr in the CLI). */
  progress?: (line: string) => void;
}

const GIT_TIMEOUT_MS = 120_000;

function git(args: string[], cwd?: string): Promise<string> {
  return new Promise((resolveP, reject) => {
    execFile('git', args, { cwd, timeout: GIT_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024, env: { ...process.env, GIT_TERMINAL_PROMPT: '0' } }, (err, stdout, stderr) => {
      if (err) reject(new WeftError('WEFT_ERR_UNAVAILABLE', `git ${args[0]} failed: ${(stderr || err.message).trim().split('\n').slice(-3).join('; ')}`, { cause: err }));
      else resolveP(stdout.trim());
    });
  });
}

export class GitSource implements PolicySource {
  readonly description: string;
  readonly checkout: string;
  private readonly branch: string;
  private readonly pollMs: number;
  private readonly progress: (line: string) => void;
  private timer: NodeJS.Timeout | undefined;
  private commit: string | undefined;
  private onTree: ((tree: PolicyTree) => Promise<unknown>) | undefined;
  private running: Promise<void> = Promise.resolve();

  constructor(private readonly url: string, stateDir: string, private readonly log: Logger, opts: GitSourceOptions = {}) {
    this.branch = opts.branch ?? 'main';
    if (!/^[\w./-]+$/.test(this.branch) || this.branch.startsWith('-')) throw new WeftError('WEFT_ERR_INVALID_ARG', `--branch: '${this.branch}' is not a branch name`);
    this.pollMs = opts.pollMs ?? 5000;
    this.progress = opts.progress ?? (() => undefined);
    this.description = `${url} (branch ${this.branch})`;
    // One checkout per (url, branch), so switching either never reuses a stale clone.
    const id = createHash('sha256').update(`${url}\0${this.branch}`).digest('hex').slice(0, 16);
    this.checkout = join(stateDir, 'git', id);
  }

  async start(onTree: (tree: PolicyTree) => Promise<unknown>): Promise<void> {
    this.onTree = onTree;
    if (existsSync(join(this.checkout, '.git'))) {
      this.progress(`using existing clone of ${this.description} at ${this.checkout}`);
    } else {
      await rm(this.checkout, { recursive: true, force: true });
      await mkdir(join(this.checkout, '..'), { recursive: true, mode: 0o700 });
      this.progress(`cloning ${this.description} into ${this.checkout} ...`);
      const t0 = Date.now();
      await git(['clone', '--quiet', '--no-checkout', '--single-branch', '--branch', this.branch, '--', this.url, this.checkout]);
      this.progress(`cloned in ${Date.now() - t0} ms`);
    }
    await this.poll();
    if (!this.commit) throw new WeftError('WEFT_ERR_UNAVAILABLE', `cannot fetch ${this.description}`);
    this.timer = setInterval(() => { void this.poll(); }, this.pollMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.onTree = undefined;
    await this.running;
  }

  /** Fetch the branch; if it moved, check the new commit out and report it. */
  private poll(): Promise<void> {
    this.running = this.running.then(async () => {
      if (!this.onTree) return;
      let head: string;
      try {
        // One cheap round trip (ls-remote) per tick; the fetch only when the branch moved.
        const remote = (await git(['ls-remote', '--heads', 'origin', `refs/heads/${this.branch}`], this.checkout)).split(/\s/)[0];
        if (remote && remote === this.commit) return;
        await git(['fetch', '--quiet', '--force', 'origin', `+refs/heads/${this.branch}:refs/remotes/origin/${this.branch}`], this.checkout);
        head = await git(['rev-parse', '--verify', `refs/remotes/origin/${this.branch}^{commit}`], this.checkout);
      } catch (e) {
        this.log.warn({ err: (e as Error).message, source: this.description }, 'git fetch failed; keeping the current commit');
        return;
      }
      if (head === this.commit) return;
      try {
        await git(['checkout', '--quiet', '--force', '--detach', head], this.checkout);
        await git(['clean', '--quiet', '-fdx'], this.checkout);
      } catch (e) {
        this.log.error({ err: (e as Error).message, commit: head }, 'git checkout failed; keeping the current commit');
        return;
      }
      this.log.info({ commit: head, previous: this.commit }, 'policy repository moved');
      this.commit = head;
      await this.onTree({ root: this.checkout, revision: head }).catch((e: Error) => this.log.error({ err: e.message }, 'policy reload failed'));
    });
    return this.running;
  }
}
