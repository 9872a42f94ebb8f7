// Where policies come from. A source hands the store a checked-out tree whenever it may
// have changed; deciding whether anything really changed is the compiler's job (content
// hash), so sources may over-report (a periodic rescan) but must never under-report.
import type { PolicyTree } from '../snapshot-store';

export interface PolicySource {
  /** For logs and Status: the directory or "URL (branch B)". */
  readonly description: string;
  /** Prepares the tree (clone for git) and calls onTree for the first time before resolving. */
  start(onTree: (tree: PolicyTree) => Promise<unknown>): Promise<void>;
  stop(): Promise<void>;
}

/** Git URLs as `git clone` takes them; anything else is a local policies directory. */
export function isGitUrl(spec: string): boolean {
  return /^(https?|ssh|git|file):\/\//.test(spec) || /^[\w.-]+@[\w.-]+:/.test(spec) || spec.endsWith('.git');
}
