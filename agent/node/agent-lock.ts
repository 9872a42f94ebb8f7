// Who is running on a node: every `weft agent` supervisor of node N holds a file
// RUN_DIR/N/agent-<pid> while it runs (two at once during a rollout or a SIGHUP-free
// handover), and `weft agent --cleanup` holds RUN_DIR/N/cleanup while it removes the
// node. Each side writes its own file first and then looks for the other's, so an agent
// starting while a cleanup runs and a cleanup starting while an agent runs cannot both
// go ahead: at least one of them sees the other (and refuses, or with --force the
// cleanup stops the agent first). A file records the pid and the process's start time
// (/proc/PID/stat field 22), so a file left by a killed process (or a pid reused since)
// is stale and ignored.
import { mkdirSync, readFileSync, readdirSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WeftError } from '../lib/errors';
import { validateNodeName } from '../datapath/layout';
import { RUN_DIR } from './host-mounts';

const CLEANUP_FILE = 'cleanup';
const AGENT_PREFIX = 'agent-';

export function nodeRunDir(node: string, runDir = RUN_DIR): string {
  validateNodeName(node);
  return join(runDir, node);
}

/** The start time of `pid` in clock ticks since boot, or null when it does not exist. */
export function processStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm may contain spaces and parentheses: fields start after the last ')'. A
    // zombie (exited, not yet reaped by its parent) is not running.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return f[0] === 'Z' || f[0] === 'X' ? null : f[19] ?? null;
  } catch {
    return null;
  }
}

interface Holder { pid: number; file: string }

/** Live holders of files named by `match` in the node's run directory; stale files are
 *  removed. */
function liveHolders(dir: string, match: (name: string) => boolean): Holder[] {
  let names: string[] = [];
  try { names = readdirSync(dir); } catch { return []; }
  const out: Holder[] = [];
  for (const name of names.filter(match)) {
    const file = join(dir, name);
    let pid = NaN, start = '';
    try { [pid, start] = ((s) => [Number(s[0]), s[1] ?? ''] as [number, string])(readFileSync(file, 'utf8').trim().split(' ')); } catch { continue; }
    if (Number.isInteger(pid) && pid > 0 && processStartTime(pid) === start) out.push({ pid, file });
    else rmSync(file, { force: true });
  }
  return out;
}

function writeHolder(file: string): void {
  writeFileSync(file, `${process.pid} ${processStartTime(process.pid) ?? ''}\n`, { mode: 0o644 });
}

/** Live agent supervisors of `node` (other than this process). */
export function liveAgents(node: string, runDir = RUN_DIR): number[] {
  return liveHolders(nodeRunDir(node, runDir), (n) => n.startsWith(AGENT_PREFIX)).map((h) => h.pid).filter((p) => p !== process.pid);
}

/** An agent supervisor announces itself; refuses while a cleanup of the node runs.
 *  Returns the release function (called on exit). */
export function registerAgent(node: string, runDir = RUN_DIR): () => void {
  const dir = nodeRunDir(node, runDir);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const file = join(dir, `${AGENT_PREFIX}${process.pid}`);
  writeHolder(file);
  const release = () => { rmSync(file, { force: true }); try { rmdirSync(dir); } catch { /* another holder */ } };
  const cleaning = liveHolders(dir, (n) => n === CLEANUP_FILE);
  if (cleaning.length) {
    release();
    throw new WeftError('WEFT_ERR_CONFLICT', `'weft agent --cleanup --node ${node}' (pid ${cleaning[0]!.pid}) is removing this node: not starting until it is done`);
  }
  return release;
}

/** A cleanup claims the node; refuses when another cleanup holds it, or (unless
 *  `allowAgents`) when agents of the node are alive (their pids in the error's details).
 *  Returns the release function. */
export function claimCleanup(node: string, opts: { allowAgents?: boolean } = {}, runDir = RUN_DIR): { release: () => void; agents: number[] } {
  const dir = nodeRunDir(node, runDir);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const other = liveHolders(dir, (n) => n === CLEANUP_FILE).filter((h) => h.pid !== process.pid);
  if (other.length) throw new WeftError('WEFT_ERR_CONFLICT', `another cleanup of node ${node} is running (pid ${other[0]!.pid})`, { details: { pids: [other[0]!.pid] } });
  const file = join(dir, CLEANUP_FILE);
  writeHolder(file);
  const release = () => { rmSync(file, { force: true }); try { rmdirSync(dir); } catch { /* an agent registered meanwhile */ } };
  const agents = liveAgents(node, runDir);
  if (agents.length && !opts.allowAgents) {
    release();
    throw new WeftError('WEFT_ERR_CONFLICT', `an agent of node ${node} is running (pid ${agents.join(', ')}): stop it first, or use --force to stop it and clean up`, { details: { pids: agents } });
  }
  return { release, agents };
}
