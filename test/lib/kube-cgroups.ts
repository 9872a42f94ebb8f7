// Where kubelet (systemd cgroup driver) and containerd put pods and containers, and how
// to tear such a tree down on every hierarchy of this host:
//   <base>/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_>.slice/cri-containerd-<id>.scope
//   <base>/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid_>.slice/...
//   <base>/kubepods.slice/kubepods-pod<uid_>.slice/...                     (Guaranteed)
// Paths here are relative to a cgroup root; `<base>` is the node's own subtree (like
// kind nests each node's kubelet tree), so several simulated nodes share one machine.
// On a hybrid host (cgroup v1 controllers + cgroup2 at /sys/fs/cgroup/unified) runc's
// cgroupfs driver creates the same relative path in every hierarchy, so cleanup walks
// all of them.
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cgroup2Root } from '../../agent/datapath/layout';

export type QosClass = 'Guaranteed' | 'Burstable' | 'BestEffort';

const UID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The pod-level cgroup, relative to a cgroup root (systemd driver naming). */
export function podCgroupDir(base: string, uid: string, qos: QosClass): string {
  if (!UID_RE.test(uid)) throw new Error(`pod UID must be an RFC 4122 string, got ${JSON.stringify(uid)}`);
  const u = uid.replace(/-/g, '_');
  if (qos === 'Guaranteed') return join(base, 'kubepods.slice', `kubepods-pod${u}.slice`);
  const q = qos.toLowerCase();
  return join(base, 'kubepods.slice', `kubepods-${q}.slice`, `kubepods-${q}-pod${u}.slice`);
}

/** containerd's scope name for a container (systemd driver). */
export function containerScope(id: string): string {
  if (!/^[0-9a-f]{64}$/.test(id)) throw new Error(`container id must be 64 hex digits, got ${JSON.stringify(id)}`);
  return `cri-containerd-${id}.scope`;
}

/** A container id the way containerd makes them: 32 random bytes, hex. */
export function newContainerId(): string {
  return randomBytes(32).toString('hex');
}

/** Mount points of every cgroup hierarchy (v1 controllers and cgroup2). */
export function cgroupMounts(): { path: string; v2: boolean }[] {
  return readFileSync('/proc/self/mounts', 'utf8').split('\n').map((l) => l.split(' '))
    .filter((f) => f[2] === 'cgroup' || f[2] === 'cgroup2')
    .map((f) => ({ path: f[1]!.replace(/\\040/g, ' '), v2: f[2] === 'cgroup2' }));
}

/** The cgroup v2 path a process is in (its `0::` line), relative to the v2 root. */
export function cgroupV2Of(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').find((l) => l.startsWith('0::'))?.slice(3);
  } catch {
    return undefined;
  }
}

function pidsIn(dir: string): number[] {
  try { return readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number); } catch { return []; }
}

function subdirs(dir: string): string[] {
  try { return readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => join(dir, e.name)); } catch { return []; }
}

/** Every process in the v2 subtree `rel` (recursively). */
export function processesInTree(rel: string): number[] {
  const walk = (d: string): number[] => [...pidsIn(d), ...subdirs(d).flatMap(walk)];
  return walk(join(cgroup2Root(), rel));
}

/**
 * Kills whatever still runs in `rel` (cgroup v2 subtree), then removes `rel` and
 * everything below it from every hierarchy, bottom-up. Returns the directories that
 * could not be removed (empty when all went).
 */
export async function removeCgroupTree(rel: string, timeoutMs = 5000): Promise<string[]> {
  if (!rel || rel === '/' || rel.split('/').includes('..')) throw new Error(`refusing to remove cgroup tree ${JSON.stringify(rel)}`);
  const v2 = join(cgroup2Root(), rel);
  if (existsSync(v2)) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = processesInTree(rel);
      if (!left.length) break;
      // cgroup.kill (5.14+) kills the whole subtree at once; SIGKILL each pid otherwise.
      try { writeFileSync(join(v2, 'cgroup.kill'), '1'); } catch {
        for (const pid of left) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
      }
      if (Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  const failed: string[] = [];
  const rm = (d: string): void => {
    for (const s of subdirs(d)) rm(s);
    try { rmdirSync(d); } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') failed.push(`${d}: ${(e as Error).message}`);
    }
  };
  for (const m of cgroupMounts()) {
    const d = join(m.path, rel);
    if (existsSync(d)) rm(d);
  }
  return failed;
}
