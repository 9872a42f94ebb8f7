// Kernel cgroup id → the local workload it belongs to. The kernel records the cgroup of
// the process that opened a connection (bpf_get_current_cgroup_id): for `weft run` that
// is the workload's own cgroup, for a Kubernetes pod it is one of its CONTAINERS'
// cgroups (`cri-containerd-<id>.scope`, `crio-<id>.scope`, `docker-<id>.scope`, or a
// cgroupfs name), one level below the pod's cgroup. Containers come and go (a restart
// makes a new cgroup with a new id) while the pod and its identity stay, so containers
// are never listed ahead: an id that is not a workload's own is resolved on demand by
// looking at the children of the workloads' cgroups, and remembered.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { LocalWorkload } from './workloads';

/** A miss is looked up on disk at most this often per id (a socket of a process that is
 *  no workload's must not make every connection walk the tree). */
const NEGATIVE_TTL_MS = 1_000;

export class CgroupIdentities {
  private own = new Map<string, LocalWorkload>();
  /** Container (child) cgroup id → its workload's key. */
  private readonly children = new Map<string, string>();
  private readonly misses = new Map<string, number>();
  private byKey = new Map<string, LocalWorkload>();

  constructor(workloads: LocalWorkload[] = []) {
    this.replace(workloads);
  }

  /** Replaces the workload list (a registration, a pod event, a published state). */
  replace(workloads: LocalWorkload[]): void {
    this.own = new Map(workloads.map((w) => [w.cgroupId, w]));
    this.byKey = new Map(workloads.map((w) => [keyOf(w), w]));
    // A child of a workload that is gone, or whose cgroup changed, names nobody now.
    for (const [id, key] of this.children) if (!this.byKey.has(key)) this.children.delete(id);
    this.misses.clear();
  }

  list(): LocalWorkload[] { return [...this.byKey.values()]; }

  /** The workload whose cgroup, or a direct child of it, has this id. */
  lookup(id: bigint): LocalWorkload | undefined {
    const k = id.toString();
    const direct = this.own.get(k);
    if (direct) return direct;
    const child = this.children.get(k);
    if (child !== undefined) {
      const w = this.byKey.get(child);
      if (w) return w;
      this.children.delete(k);
    }
    const missedAt = this.misses.get(k);
    if (missedAt !== undefined && Date.now() - missedAt < NEGATIVE_TTL_MS) return undefined;
    this.scan();
    const key = this.children.get(k);
    if (key !== undefined) { this.misses.delete(k); return this.byKey.get(key); }
    if (this.misses.size > 4096) this.misses.clear();
    this.misses.set(k, Date.now());
    return undefined;
  }

  /** Learns the ids of every workload cgroup's children (one readdir + stat each). */
  private scan(): void {
    for (const w of this.byKey.values()) {
      let names: string[];
      try {
        names = readdirSync(w.cgroupPath, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
      } catch {
        continue;
      }
      for (const name of names) {
        try {
          this.children.set(statSync(join(w.cgroupPath, name), { bigint: true }).ino.toString(), keyOf(w));
        } catch { /* the container went away meanwhile */ }
      }
    }
  }
}

function keyOf(w: LocalWorkload): string {
  return `${w.namespace}/${w.name}`;
}
