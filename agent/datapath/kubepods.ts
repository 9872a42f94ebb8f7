// Where kubelet keeps its pods on this node: the cgroup a Kubernetes-mode datapath
// captures (Datapath.open({ captureRoot })). Kubelet's tree is `kubepods.slice`
// (systemd cgroup driver) or `kubepods` (cgroupfs) at the cgroup v2 root on a plain
// node; kind and some k3s setups run kubelet in a nested cgroup and put it deeper, e.g.
// `kubelet.slice/kubelet-kubepods.slice` or `.../kubepods`. The pod-level lookups are
// in agent/discovery/pod-cgroup.ts.
import { readdirSync, type Dirent } from 'node:fs';
import { join } from 'node:path';

/** How deep below the cgroup root the nested search looks (kind nests ~3 levels). */
const SEARCH_DEPTH = 4;
/** Directories read at most: a busy node has thousands of cgroups. */
const SEARCH_BUDGET = 1024;

/** A kubelet pod tree's own name: `kubepods`, `kubepods.slice`, or a nested kubelet's
 *  `<prefix>-kubepods.slice` (not the QoS slices below it, `kubepods-burstable.slice`). */
export function isKubepodsDir(name: string): boolean {
  return name === 'kubepods' || name === 'kubepods.slice' || /^[A-Za-z0-9_.@-]+-kubepods\.slice$/.test(name);
}

function subdirs(dir: string): Dirent[] {
  try {
    return readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).sort((a, b) => (a.name < b.name ? -1 : 1));
  } catch {
    return [];
  }
}

/**
 * The absolute path of kubelet's pod tree under `cgroup2Root`, or undefined when there
 * is none. The root's own `kubepods.slice` / `kubepods` wins; otherwise a breadth-first
 * search, bounded in depth and in directories read, finds the shallowest nested one. It
 * does not descend into a kubepods tree (pods and containers are not searched) nor
 * into weft's own tree.
 */
export function findKubepodsRoot(cgroup2Root: string): string | undefined {
  const top = subdirs(cgroup2Root);
  for (const name of ['kubepods.slice', 'kubepods']) {
    if (top.some((e) => e.name === name)) return join(cgroup2Root, name);
  }
  let level = top.filter((e) => e.name !== 'weft').map((e) => join(cgroup2Root, e.name));
  let budget = SEARCH_BUDGET;
  for (let depth = 2; depth <= SEARCH_DEPTH && level.length; depth++) {
    const next: string[] = [];
    for (const dir of level) {
      if (budget-- <= 0) return undefined;
      const children = subdirs(dir);
      const hit = children.find((e) => isKubepodsDir(e.name));
      if (hit) return join(dir, hit.name);
      for (const e of children) next.push(join(dir, e.name));
    }
    level = next;
  }
  return undefined;
}
