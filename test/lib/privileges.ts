// Guards for root-only tests (BPF, network namespaces, cgroups). Locally a test that
// lacks what it needs skips with a reason; under CI=true the same situation fails, so a
// green CI run always means the kernel paths were exercised for real.
import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import type { TestContext } from 'node:test';

export const inCI = process.env.CI === 'true' || process.env.CI === '1';

export interface Needs {
  root?: boolean;
  bpffs?: boolean;
  cgroup2?: boolean;
  netns?: boolean;
  /** Commands that must be on PATH (e.g. 'ip', 'curl', 'nginx'). */
  commands?: string[];
}

function missing(needs: Needs): string | undefined {
  if ((needs.root || needs.bpffs || needs.netns || needs.cgroup2) && process.getuid?.() !== 0) return 'needs root';
  if (needs.bpffs && !existsSync('/sys/fs/bpf')) return 'needs bpffs at /sys/fs/bpf';
  if (needs.cgroup2 && !existsSync('/proc/self/mounts')) return 'needs /proc';
  for (const c of [...(needs.netns ? ['ip'] : []), ...(needs.commands ?? [])]) {
    try { execFileSync('sh', ['-c', `command -v ${c}`], { stdio: 'ignore' }); } catch { return `needs '${c}' on PATH`; }
  }
  return undefined;
}

/**
 * Returns true when the test may go on. Call first in a test:
 *   if (!requires(t, { bpffs: true })) return;
 */
export function requires(t: TestContext, needs: Needs): boolean {
  const why = missing(needs);
  if (!why) return true;
  if (inCI) throw new Error(`CI=true and this test cannot run: ${why}`);
  t.skip(why);
  return false;
}
