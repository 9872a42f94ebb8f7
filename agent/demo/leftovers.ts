// What a crashed or killed demo leaves behind, and its removal (`weft demo --cleanup`):
// namespaces named weft-demo-<pid>-* whose demo process is gone (with whatever still
// runs in them), the simulated nodes' BPF pins and cgroups (the same removal as
// `weft agent --cleanup --node node-N`), and the run's temp directory.
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BPFFS, cgroup2Root } from '../datapath/layout';
import { destroyNetns } from './netns';
import { sweepNodeRunDir } from '../node/agent-lock';
import { demoNamespaces } from './topology';

const NODE = /^node-\d+$/;
export const TEMP_PREFIX = 'weft-demo-';

export interface Leftovers {
  /** Namespaces of demo processes that no longer run. */
  namespaces: string[];
  /** node-N names with pins or cgroups on this host. */
  nodes: string[];
  tempDirs: string[];
  /** Pids of demos that are still running (not leftovers: refuse to start beside them). */
  running: number[];
}

/** True if `pid` is a live `weft demo` (a recycled pid running something else is not). */
export function isDemoProcess(pid: number): boolean {
  try { return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes('demo'); } catch { return false; }
}

export function findLeftovers(): Leftovers {
  const out: Leftovers = { namespaces: [], nodes: [], tempDirs: [], running: [] };
  for (const [pid, names] of demoNamespaces()) {
    if (pid !== process.pid && isDemoProcess(pid)) out.running.push(pid); else if (pid !== process.pid) out.namespaces.push(...names);
  }
  const nodes = new Set<string>();
  let cg: string | null = null;
  try { cg = cgroup2Root(); } catch { /* reported by the prerequisites check */ }
  for (const dir of [join(BPFFS, 'weft'), ...(cg ? [join(cg, 'weft')] : [])]) {
    if (!existsSync(dir)) continue;
    for (const n of readdirSync(dir)) if (NODE.test(n)) nodes.add(n);
  }
  out.nodes = [...nodes].sort();
  for (const d of readdirSync(tmpdir())) {
    const m = new RegExp(`^${TEMP_PREFIX}(\\d+)-`).exec(d);
    if (m && Number(m[1]) !== process.pid && !isDemoProcess(Number(m[1]))) out.tempDirs.push(join(tmpdir(), d));
  }
  return out;
}

export function describeLeftovers(l: Leftovers): string {
  const parts: string[] = [];
  if (l.namespaces.length) parts.push(`network namespaces ${l.namespaces.join(', ')}`);
  if (l.nodes.length) parts.push(`BPF pins/cgroups of ${l.nodes.join(', ')}`);
  if (l.tempDirs.length) parts.push(`temp dirs ${l.tempDirs.join(', ')}`);
  return parts.join('; ');
}

/** Removes every leftover; returns one line per thing removed or that failed. */
export function removeLeftovers(l: Leftovers): string[] {
  const lines: string[] = [];
  // Processes first (they die with their namespaces), so the cgroups can be removed.
  for (const ns of l.namespaces) {
    try { destroyNetns(ns); lines.push(`removed namespace ${ns}`); } catch (e) { lines.push(`cannot remove namespace ${ns}: ${(e as Error).message}`); }
  }
  if (l.nodes.length) {
    const { Datapath } = require('../datapath/datapath') as typeof import('../datapath/datapath');
    for (const node of l.nodes) {
      try {
        const r = Datapath.cleanup(node);
        sweepNodeRunDir(node);
        lines.push(`removed ${node}: ${r.links.length} links, ${r.maps.length} map pins, ${r.cgroups.length} cgroups${r.movedPids.length ? ` (moved out pids ${r.movedPids.join(' ')})` : ''}`);
      } catch (e) { lines.push(`cannot clean up ${node}: ${(e as Error).message}`); }
    }
  }
  for (const d of l.tempDirs) { rmSync(d, { recursive: true, force: true }); lines.push(`removed ${d}`); }
  return lines;
}
