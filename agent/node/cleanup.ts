// `weft agent --cleanup [--force] --node N`: remove the node's datapath, never under a
// live agent. It claims the node (agent-lock.ts) so no agent can start meanwhile, and
// refuses while one runs (naming its pid); with --force it stops that agent first —
// SIGTERM to its supervisor, SIGKILL after the timeout, then whatever is left in the
// node's agent cgroup — and cleans up only once no agent process remains.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { WeftError } from '../lib/errors';
import { nodeLayout } from '../datapath/layout';
import { claimCleanup, processStartTime } from './agent-lock';
import type { CleanupReport } from '../datapath/teardown';

export interface CleanupOptions {
  force: boolean;
  stopTimeoutMs: number;
  cleanup: (node: string) => CleanupReport;
  say: (line: string) => void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Processes of the node's agent cgroup (the workers; none in Kubernetes mode). */
function agentCgroupPids(node: string): number[] {
  try {
    return readFileSync(join(nodeLayout(node).agentCgroup, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

async function waitGone(pids: number[], starts: Map<number, string | null>, ms: number): Promise<number[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const left = pids.filter((p) => { const s = processStartTime(p); return s !== null && s === starts.get(p); });
    if (!left.length || Date.now() >= deadline) return left;
    await sleep(100);
  }
}

function signal(pids: number[], sig: NodeJS.Signals): void {
  for (const p of pids) { try { process.kill(p, sig); } catch { /* gone */ } }
}

async function stopProcesses(pids: number[], timeoutMs: number, say: (l: string) => void, what: string): Promise<void> {
  if (!pids.length) return;
  const starts = new Map(pids.map((p) => [p, processStartTime(p)]));
  say(`stopping ${what} (pid ${pids.join(', ')})…`);
  signal(pids, 'SIGTERM');
  let left = await waitGone(pids, starts, timeoutMs);
  if (left.length) {
    say(`${what} still running after ${timeoutMs / 1000}s: SIGKILL ${left.join(', ')}`);
    signal(left, 'SIGKILL');
    left = await waitGone(left, starts, 5_000);
    if (left.length) throw new WeftError('WEFT_ERR_TIMEOUT', `cannot stop ${what} (pid ${left.join(', ')}): nothing was removed`);
  }
}

export async function cleanupNode(node: string, o: CleanupOptions): Promise<CleanupReport & { stoppedAgents: number[] }> {
  const claim = claimCleanup(node, { allowAgents: o.force });
  try {
    await stopProcesses(claim.agents, o.stopTimeoutMs, o.say, `the agent of node ${node}`);
    // Workers exit with their supervisor; any still in the agent cgroup (an orphan of an
    // older agent, a primary started by hand) would re-create what we remove.
    if (o.force) await stopProcesses(agentCgroupPids(node).filter((p) => p !== process.pid), 5_000, o.say, `processes left in ${node}'s agent cgroup`);
    return { ...o.cleanup(node), stoppedAgents: claim.agents };
  } finally {
    claim.release();
  }
}
