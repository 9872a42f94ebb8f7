// `weft agent --cleanup [--force] --node N`: remove the node's datapath, never under a
// live agent. It claims the node (agent-lock.ts) so no agent can start meanwhile, and
// refuses while one runs (naming its pid). With --force it first freezes the running
// agent — SIGSTOP to its supervisor and every descendant (workers, their helpers), so
// none of them can pin or attach anything again — then removes the datapath, then
// SIGKILLs the frozen processes. Freezing rather than SIGTERM: a Kubernetes preStop hook
// (the uninstall) runs in the agent's own container, which ends with the agent; the
// removal must be complete before the agent is gone. For the same reason, when this
// process runs in the agent's own pod (the preStop hook), the kill is left to a detached
// helper that fires just after this command exited: the runtime tears the container
// down once the agent dies, and the hook would otherwise be killed before reporting
// its success.
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { WeftError } from '../lib/errors';
import { nodeLayout } from '../datapath/layout';
import { claimCleanup, processStartTime } from './agent-lock';
import type { CleanupReport } from '../datapath/teardown';

export interface CleanupOptions {
  force: boolean;
  cleanup: (node: string) => CleanupReport;
  say: (line: string) => void;
}

/** Processes of the node's agent cgroup (the workers; none in Kubernetes mode). */
function agentCgroupPids(node: string): number[] {
  try {
    return readFileSync(join(nodeLayout(node).agentCgroup, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** `roots` and all their descendants (from /proc/PID/stat parent pids). */
export function processTree(roots: number[]): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(name)]);
    } catch { /* gone */ }
  }
  const out = new Set<number>();
  const walk = (p: number) => { if (out.has(p)) return; out.add(p); for (const c of children.get(p) ?? []) walk(c); };
  for (const r of roots) walk(r);
  return [...out];
}

/** This process runs in the agent's own pod (the DaemonSet's preStop hook): the
 *  container's downward-API POD_UID is set and it shares `pid`'s cgroup. */
function inAgentPod(pid: number): boolean {
  if (!process.env.POD_UID) return false;
  try { return readFileSync('/proc/self/cgroup', 'utf8') === readFileSync(`/proc/${pid}/cgroup`, 'utf8'); } catch { return false; }
}

/** SIGKILLs `pids` from a detached process shortly after this one exited. */
function killAfterExit(pids: number[], delayMs: number): void {
  const script = 'setTimeout(() => { for (const p of JSON.parse(process.argv[1])) { try { process.kill(p, "SIGKILL"); } catch {} } }, Number(process.argv[2]));';
  spawn(process.execPath, ['-e', script, JSON.stringify(pids), String(delayMs)], { detached: true, stdio: 'ignore' }).unref();
}

function signal(pids: number[], sig: NodeJS.Signals): void {
  for (const p of pids) { try { process.kill(p, sig); } catch { /* gone */ } }
}

/** Waits until each pid is stopped (state T) or gone. */
function waitStopped(pids: number[], ms: number): number[] {
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  const deadline = Date.now() + ms;
  for (;;) {
    const running = pids.filter((p) => {
      try { const s = readFileSync(`/proc/${p}/stat`, 'utf8'); return !/^[TtZX]$/.test(s.slice(s.lastIndexOf(')') + 2, s.lastIndexOf(')') + 3)); } catch { return false; }
    });
    if (!running.length || Date.now() >= deadline) return running;
    Atomics.wait(sleeper, 0, 0, 10);
  }
}

/** The report is the datapath's (what was removed); stopped agents are said, not in it. */
export async function cleanupNode(node: string, o: CleanupOptions): Promise<CleanupReport> {
  const claim = claimCleanup(node, { allowAgents: o.force });
  let frozen: number[] = [];
  try {
    if (o.force) {
      // Every agent process: the live supervisors' trees, and anything left in the
      // node's agent cgroup (an orphaned worker, a primary started by hand).
      frozen = processTree([...claim.agents, ...agentCgroupPids(node)]).filter((p) => p !== process.pid && p !== process.ppid);
      if (frozen.length) {
        o.say(`stopping the agent of node ${node} (pid ${claim.agents.join(', ') || '-'}; ${frozen.length} processes frozen, removed after the cleanup)…`);
        // Freezing can race a fork: repeat until the tree stops growing.
        for (let i = 0; i < 5; i++) {
          signal(frozen, 'SIGSTOP');
          const more = processTree(frozen).filter((p) => !frozen.includes(p) && p !== process.pid);
          if (!more.length) break;
          frozen.push(...more);
        }
        const running = waitStopped(frozen, 2_000);
        if (running.length) throw new WeftError('WEFT_ERR_TIMEOUT', `cannot stop the agent processes ${running.join(', ')}: nothing was removed`);
      }
    }
    return o.cleanup(node);
  } finally {
    if (frozen.length && claim.agents.some(inAgentPod)) {
      killAfterExit(frozen, 300);
      o.say(`the agent of node ${node} (pid ${frozen.join(', ')}) stays frozen and is killed as this command exits (it runs in the agent's own container)`);
    } else if (frozen.length) {
      // Removed or not, the frozen agent goes: a half-cleaned node must not be served by
      // an agent that missed what happened under it (the next agent starts clean).
      const starts = new Map(frozen.map((p) => [p, processStartTime(p)]));
      signal(frozen, 'SIGKILL');
      const sleeper = new Int32Array(new SharedArrayBuffer(4));
      for (let i = 0; i < 200 && frozen.some((p) => { const s = processStartTime(p); return s !== null && s === starts.get(p); }); i++) Atomics.wait(sleeper, 0, 0, 10);
      o.say(`stopped the agent of node ${node}: killed pid ${frozen.join(', ')}`);
    }
    claim.release();
  }
}
