// Cgroups on the datapath's side: how deep a cgroup sits in the v2 hierarchy (what the
// kernel's ancestor helpers count in), the capture root check, where each program
// attaches, and weft's own tree under <cg2>/weft/<node> (workload cgroups, the agent's
// cgroup), which a datapath capturing kubelet's tree does not touch.
import { existsSync, mkdirSync, readFileSync, realpathSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, relative, sep } from 'node:path';
import * as native from 'weft-native';
import { WeftError, describeError } from '../lib/errors';
import { cgroup2Root, workloadCgroupPath, type NodeLayout } from './layout';
import type { CgroupProgram } from './programs';

/** The depth of a cgroup directory below the cgroup v2 hierarchy's root (the root is
 *  level 0): what the kernel's ancestor helpers count in. The mount need not be the whole
 *  hierarchy: a node that sees only its own subtree at /sys/fs/cgroup (a kind node, or a
 *  hostPath of one) has that subtree's path as the mount's root in mountinfo, and its
 *  depth counts too. */
export function cgroupLevel(path: string, root: string = cgroup2Root()): number {
  const rel = relative(root, path);
  if (rel.startsWith('..') || isAbsolute(rel)) {
    throw new WeftError('WEFT_ERR_INVALID_ARG', `${path} is not below the cgroup v2 root ${root}`);
  }
  return cgroup2MountDepth(root) + (rel === '' ? 0 : rel.split(sep).length);
}

/** How deep in the hierarchy the cgroup2 mount at `mountPoint` starts: 0 for a mount
 *  of the whole tree. mountinfo prints the mount's root relative to this process's
 *  cgroup namespace ('..' climbs above it); with the host's PID namespace (the DaemonSet
 *  has hostPID), /proc/1/cgroup — the host's init, at the top — tells how deep that
 *  namespace's root is (one '..' per level). Without hostPID /proc/1 shares our
 *  namespace and the namespace is taken for the root. */
export function cgroup2MountDepth(mountPoint: string): number {
  let info: string;
  try { info = readFileSync('/proc/self/mountinfo', 'utf8'); } catch { return 0; }
  let mroot: string | undefined;
  for (const line of info.split('\n')) {
    const f = line.split(' ');
    const sepAt = f.indexOf('-');
    if (sepAt < 0 || f[sepAt + 1] !== 'cgroup2' || f[4]?.replace(/\\040/g, ' ') !== mountPoint) continue;
    mroot = f[3] ?? '/';
  }
  if (mroot === undefined) return 0;
  let depth = 0;
  try {
    const init = /^0::(.*)$/m.exec(readFileSync('/proc/1/cgroup', 'utf8'))?.[1] ?? '/';
    for (const seg of init.split('/')) { if (seg === '..') depth++; else if (seg) break; }
  } catch { /* no /proc/1: the namespace is the root */ }
  for (const seg of mroot.split('/').filter(Boolean)) depth += seg === '..' ? -1 : 1;
  return Math.max(0, depth);
}

/** The real path of a capture root, or WEFT_ERR_INVALID_ARG when it is not a cgroup v2
 *  directory below the hierarchy's root. */
export function checkCaptureRoot(path: string): string {
  if (typeof path !== 'string' || !isAbsolute(path)) {
    throw new WeftError('WEFT_ERR_INVALID_ARG', `captureRoot ${JSON.stringify(path)} is not an absolute path`);
  }
  let real: string;
  try {
    real = realpathSync(path);
    if (!statSync(real).isDirectory()) throw new Error('not a directory');
    native.cgroupId(real);
  } catch (e) {
    throw new WeftError('WEFT_ERR_INVALID_ARG', `captureRoot ${path} is not a cgroup v2 directory: ${describeError(e)}`, { cause: e });
  }
  cgroupLevel(real);
  return real;
}

/** Where a cgroup program attaches in weft's own tree. */
export function cgroupOf(layout: NodeLayout, p: CgroupProgram): string {
  return p.where === 'root' ? layout.cgroupRoot : layout.workloadsCgroup;
}

/** weft's own cgroups of a node: one per workload, and the agent's. */
export class NodeCgroups {
  constructor(private readonly layout: NodeLayout, private readonly captureRoot: string | undefined) {}

  createWorkload(namespace: string, name: string): { path: string; id: bigint } {
    this.assertOwn('create workload cgroups');
    const path = workloadCgroupPath(this.layout, namespace, name);
    mkdirSync(path, { recursive: true });
    return { path, id: native.cgroupId(path) };
  }

  /** Removes a workload's cgroup; refuses (WEFT_ERR_INVALID_ARG, pids listed) while
   *  processes are still in it rather than moving them out of the mesh silently. */
  removeWorkload(namespace: string, name: string): void {
    const path = workloadCgroupPath(this.layout, namespace, name);
    if (!existsSync(path)) return;
    const pids = readFileSync(join(path, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean);
    if (pids.length) {
      throw new WeftError('WEFT_ERR_INVALID_ARG', `workload cgroup ${namespace}.${name} still has processes: ${pids.join(', ')}`,
        { details: { pids: pids.map(Number) } });
    }
    rmdirSync(path);
  }

  /** Moves a process into the agent cgroup: its sockets are never rewritten by the
   *  connect-family hooks, which is what prevents redirect loops. */
  joinAgent(pid: number): void {
    this.assertOwn('move processes into the agent cgroup');
    writeFileSync(join(this.layout.agentCgroup, 'cgroup.procs'), String(pid));
  }

  /** With a capture root, processes stay where kubelet put them. */
  private assertOwn(what: string): void {
    if (this.captureRoot) {
      throw new WeftError('WEFT_ERR_INVALID_ARG', `the datapath captures ${this.captureRoot}: it does not ${what} (skip the agent's pod instead)`);
    }
  }
}
