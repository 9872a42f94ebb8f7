// Finds a Kubernetes pod's cgroup on this node and its cgroup id, so the agent can key
// identity on the same number the kernel reports for the pod's sockets
// (bpf_get_current_cgroup_id / bpf_skb_cgroup_id). On cgroup v2 that id is the inode
// number of the cgroup directory, which is why a stat() is all it takes.
//
// Where kubelet puts a pod depends on its cgroup driver and the pod's QoS class:
//   systemd:  kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_>.slice
//             (Guaranteed pods sit directly under kubepods.slice: kubepods-pod<uid_>.slice;
//             the systemd driver writes the UID with "_" because "-" is the slice separator)
//   cgroupfs: kubepods/burstable/pod<uid>, kubepods/besteffort/pod<uid>, kubepods/pod<uid>
// Nodes where kubelet itself runs in a nested cgroup (kind, some k3s setups) put that
// tree deeper, so when no well-known path exists a bounded search looks for the pod's
// directory by name.
import { readdirSync, statSync, type Dirent } from 'node:fs';
import { join } from 'node:path';

export type QosClass = 'Guaranteed' | 'Burstable' | 'BestEffort';

export interface PodCgroup {
  /** Absolute path of the pod-level cgroup directory. */
  path: string;
  /** cgroup v2 id (the directory's inode number). bigint: ids are u64 in the kernel. */
  id: bigint;
}

/** How deep the fallback search goes below the cgroup root (kind nests kubepods ~3 deep). */
const SEARCH_DEPTH = 5;

const QOS_CLASSES: QosClass[] = ['Burstable', 'BestEffort', 'Guaranteed'];

/** Kubernetes UIDs are RFC 4122 strings; anything else must not reach a path join. */
const UID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isKubernetesUid(uid: string): boolean {
  return UID_RE.test(uid);
}

function wellKnownPaths(uid: string, qos: QosClass): string[] {
  const u = uid.replace(/-/g, '_');
  if (qos === 'Guaranteed') return [`kubepods.slice/kubepods-pod${u}.slice`, `kubepods/pod${uid}`];
  const q = qos.toLowerCase();
  return [`kubepods.slice/kubepods-${q}.slice/kubepods-${q}-pod${u}.slice`, `kubepods/${q}/pod${uid}`];
}

/** The pod directory's last path element, either driver. */
function isPodDirName(name: string, uid: string): boolean {
  const u = uid.replace(/-/g, '_');
  return name === `pod${uid}` || (name.endsWith(`-pod${u}.slice`) && name.includes('kubepods'));
}

function statId(path: string): bigint | undefined {
  try {
    const st = statSync(path, { bigint: true });
    return st.isDirectory() ? st.ino : undefined;
  } catch {
    return undefined;
  }
}

function search(dir: string, uid: string, depth: number, inKubeTree: boolean): string | undefined {
  let entries: Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return undefined;
  }
  const subdirs = entries.filter((e) => e.isDirectory());
  const hit = subdirs.find((e) => isPodDirName(e.name, uid));
  if (hit) return join(dir, hit.name);
  if (depth <= 1) return undefined;
  // Only descend into kubelet's trees (and the slices that may contain them): a full
  // walk of a busy node's cgroup tree would cost thousands of readdir()s per lookup.
  for (const e of subdirs) {
    const kube = inKubeTree || e.name.includes('kube');
    if (!kube && !e.name.endsWith('.slice')) continue;
    const found = search(join(dir, e.name), uid, depth - 1, kube);
    if (found) return found;
  }
  return undefined;
}

/**
 * The pod's cgroup under `cgroupRoot` (the node's cgroup2 mount), or undefined when it
 * does not exist (yet: kubelet creates it when the sandbox starts, so callers retry on
 * the pod's next update). `qos` narrows the well-known paths; without it all are tried.
 */
export function resolvePodCgroup(uid: string, cgroupRoot: string, qos?: QosClass): PodCgroup | undefined {
  if (!UID_RE.test(uid)) return undefined;
  const lower = uid.toLowerCase();
  for (const q of qos ? [qos] : QOS_CLASSES) {
    for (const rel of wellKnownPaths(lower, q)) {
      const path = join(cgroupRoot, rel);
      const id = statId(path);
      if (id !== undefined) return { path, id };
    }
  }
  const path = search(cgroupRoot, lower, SEARCH_DEPTH, false);
  const id = path === undefined ? undefined : statId(path);
  return path !== undefined && id !== undefined ? { path, id } : undefined;
}
