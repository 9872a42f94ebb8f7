// inspect(): what a node's datapath has on the host (for `weft status` and tests), and
// cleanup(): remove all of it (`weft agent --cleanup`).
//
// Both work from the pins, so they cover a node attached to a capture root (kubelet's
// tree) as well: every pinned link is detached wherever it is attached, and the only
// cgroups removed are weft's own (<cg2>/weft/<node>), never the capture root's.
//
// Cleanup decision: processes still in the node's cgroups are moved to the cgroup v2
// root (outside weft) and reported, so the tree can always be removed: the operator
// asked for weft to be gone, and leaving a workload stranded inside a half-deleted
// tree would be worse than letting it run un-meshed. Their pids are in the report.
import { existsSync, readdirSync, readFileSync, rmdirSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as native from 'weft-native';

import { WeftError, describeError } from '../lib/errors';
import { cgroup2Root, type NodeLayout } from './layout';
import { CGROUP_PROGRAMS } from './programs';

/** A pinned link; cgroupId is the cgroup it is attached to (0n once detached). */
export interface LinkInfo { name: string; id: number; progId: number; cgroupId: bigint }
export interface NodeInspection {
  node: string;
  pinRoot: string;
  /** Map pins under the pin root. */
  maps: string[];
  links: LinkInfo[];
  /** Existing cgroup directories of the node, parents first. */
  cgroups: string[];
  /** Program ids attached per cgroup and attach type (only non-empty ones). */
  attached: Record<string, Record<string, number[]>>;
}

export interface CleanupReport {
  links: string[];
  maps: string[];
  cgroups: string[];
  /** Processes that were still in the node's cgroups, moved to the cgroup v2 root. */
  movedPids: number[];
}

const listDir = (dir: string) => (existsSync(dir) ? readdirSync(dir).sort() : []);

/** Cgroup directories under `root` (root included), parents before children. */
function cgroupTree(root: string): string[] {
  if (!existsSync(root)) return [];
  const out = [root];
  for (const name of readdirSync(root).sort()) {
    const p = join(root, name);
    if (statSync(p).isDirectory()) out.push(...cgroupTree(p));
  }
  return out;
}

function pinnedFiles(l: NodeLayout): string[] {
  return listDir(l.pinRoot).filter((n) => n !== 'links' && !statSync(join(l.pinRoot, n)).isDirectory());
}

export function inspectNode(l: NodeLayout): NodeInspection {
  const links = listDir(l.linksDir).map((name) => {
    const link = native.BpfLink.openPinned(join(l.linksDir, name));
    try { return { name, id: link.id, progId: link.progId, cgroupId: link.cgroupId }; } finally { link.close(); }
  });
  const attached: Record<string, Record<string, number[]>> = {};
  const cgroups = cgroupTree(l.cgroupRoot);
  for (const cg of cgroups) {
    for (const type of new Set(CGROUP_PROGRAMS.map((p) => p.attachType))) {
      const ids = native.queryCgroup(cg, type).progIds;
      if (ids.length) (attached[cg] ??= {})[type] = ids;
    }
  }
  return { node: l.node, pinRoot: l.pinRoot, maps: pinnedFiles(l), links, cgroups, attached };
}

export function cleanupNode(l: NodeLayout): CleanupReport {
  const report: CleanupReport = { links: [], maps: [], cgroups: [], movedPids: [] };
  try {
    // Detach first (even if another process still holds a link fd), then unpin.
    for (const name of listDir(l.linksDir)) {
      const path = join(l.linksDir, name);
      const link = native.BpfLink.openPinned(path);
      try { link.detach(); } finally { link.close(); }
      unlinkSync(path);
      report.links.push(name);
    }
    // Map pins: once unpinned and unreferenced the kernel frees them, and with the
    // SOCKHASH goes its sk_msg attachment.
    for (const name of pinnedFiles(l)) { unlinkSync(join(l.pinRoot, name)); report.maps.push(name); }
    for (const dir of [l.linksDir, l.pinRoot]) if (existsSync(dir)) rmdirSync(dir);
    removeIfEmpty(dirname(l.pinRoot));

    const root = cgroup2Root();
    for (const cg of cgroupTree(l.cgroupRoot).reverse()) {
      for (const pid of readFileSync(join(cg, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
        writeFileSync(join(root, 'cgroup.procs'), pid);
        report.movedPids.push(Number(pid));
      }
      waitUnpopulated(cg);
      rmdirSync(cg);
      report.cgroups.push(cg);
    }
    removeIfEmpty(dirname(l.cgroupRoot));
  } catch (e) {
    throw new WeftError('WEFT_ERR_BPF', `cleaning up node ${l.node}: ${describeError(e)}`, { cause: e, details: { ...report } });
  }
  return report;
}

/** A task killed just before cleanup (SIGKILL to a test's or an operator's process) has
 *  left cgroup.procs but still counts until it has exited: rmdir would say EBUSY. Waits
 *  for cgroup.events to say "populated 0", at most 2 s (rmdir reports what remains). */
function waitUnpopulated(cg: string): void {
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  for (let i = 0; i < 100; i++) {
    let events: string;
    try { events = readFileSync(join(cg, 'cgroup.events'), 'utf8'); } catch { return; }
    if (!/^populated 1$/m.test(events)) return;
    Atomics.wait(sleeper, 0, 0, 20);
  }
}

/** The shared `weft` parent directories go once the last node is gone. A cgroup
 *  directory is full of interface files; only child directories make it non-empty. */
function removeIfEmpty(dir: string): void {
  if (!existsSync(dir)) return;
  const children = readdirSync(dir).filter((n) => statSync(join(dir, n)).isDirectory());
  if (children.length) return;
  try { rmdirSync(dir); } catch { /* a file pinned there, or another node appeared */ }
}
