// The two kernel filesystems an agent needs, mounted when the host has not (as Cilium
// does): a cgroup v2 hierarchy to attach programs to and put workloads in, and bpffs for
// the pins. `ip netns exec NS weft agent …` is the common reason they are missing: it
// gives the command a private mount namespace with a fresh sysfs on /sys, which hides
// /sys/fs/cgroup and /sys/fs/bpf.
//
// - cgroup2 is one hierarchy per machine: mounting it again (under the agent's run
//   directory) shows the same tree, so the cgroups and attachments are the host's.
// - bpffs is an instance per mount: pins stay at /sys/fs/bpf, where every agent process,
//   `weft agent --cleanup` and bpftool look. In a private mount namespace that mount is the
//   agent's own, and its pins go with the namespace when the agent's last process exits
//   (the kernel then detaches the links); the log says so.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { WeftError, describeError } from '../lib/errors';
import { BPFFS } from '../datapath/layout';
import type { Logger } from '../telemetry/logger';

/** The agent's run directory: mount points, per-node locks (agent-lock.ts). /run is the
 *  host's even under `ip netns exec` (which only replaces /sys). */
export const RUN_DIR = process.env.WEFT_RUN_DIR ?? '/run/weft';
export const CGROUP2_MOUNT = join(RUN_DIR, 'cgroupv2');

function mountsOfType(type: string): string[] {
  return readFileSync('/proc/self/mounts', 'utf8').split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[2] === type)
    .map((f) => f[1]!.replace(/\\040/g, ' '));
}

/** True when this process has a mount namespace of its own (not init's), false when it
 *  shares init's, undefined when that cannot be told (no access to /proc/1). */
function privateMountNamespace(): boolean | undefined {
  try { return readlinkSync('/proc/self/ns/mnt') !== readlinkSync('/proc/1/ns/mnt'); } catch { return undefined; }
}

export interface MountReport { cgroup2: string; bpffs: string; mounted: string[] }

/** Mounts cgroup2 under RUN_DIR and bpffs at /sys/fs/bpf when they are missing; throws a
 *  WEFT_ERR_UNAVAILABLE naming what could not be mounted (a fatal start error). */
export function ensureHostMounts(log: Logger, run: (cmd: string, args: string[]) => void = defaultRun): MountReport {
  const mounted: string[] = [];
  let cgroup2 = mountsOfType('cgroup2');
  if (!cgroup2.length) {
    try {
      mkdirSync(CGROUP2_MOUNT, { recursive: true, mode: 0o755 });
      run('mount', ['-t', 'cgroup2', 'none', CGROUP2_MOUNT]);
    } catch (e) {
      throw new WeftError('WEFT_ERR_UNAVAILABLE', `no cgroup v2 filesystem is mounted, and mounting one at ${CGROUP2_MOUNT} failed: ${describeError(e)}`, { cause: e });
    }
    cgroup2 = mountsOfType('cgroup2');
    if (!cgroup2.length) throw new WeftError('WEFT_ERR_UNAVAILABLE', `no cgroup v2 filesystem is mounted, and ${CGROUP2_MOUNT} did not become one`);
    mounted.push(CGROUP2_MOUNT);
    log.warn({ mountpoint: CGROUP2_MOUNT }, 'no cgroup v2 filesystem was mounted (e.g. ip netns exec replaced /sys): mounted it under the run directory');
  }
  if (!mountsOfType('bpf').includes(BPFFS)) {
    try {
      mkdirSync(BPFFS, { recursive: true });
      run('mount', ['-t', 'bpf', 'bpf', BPFFS]);
    } catch (e) {
      throw new WeftError('WEFT_ERR_UNAVAILABLE', `bpffs is not mounted at ${BPFFS}, and mounting it failed: ${describeError(e)}`, { cause: e });
    }
    if (!mountsOfType('bpf').includes(BPFFS)) throw new WeftError('WEFT_ERR_UNAVAILABLE', `bpffs is not mounted at ${BPFFS}, and the mount did not take`);
    mounted.push(BPFFS);
    const own = privateMountNamespace();
    log.warn({ mountpoint: BPFFS, privateMountNamespace: own ?? 'unknown' }, own
      ? 'bpffs was not mounted: mounted it in this agent\'s private mount namespace (ip netns exec), so its pins last only as long as the agent\'s processes; mount bpffs at /sys/fs/bpf on the host to keep the datapath across restarts'
      : 'bpffs was not mounted: mounted it');
  }
  const cg = cgroup2.includes('/sys/fs/cgroup') ? '/sys/fs/cgroup' : cgroup2[0]!;
  return { cgroup2: cg, bpffs: BPFFS, mounted };
}

function defaultRun(cmd: string, args: string[]): void {
  execFileSync(cmd, args, { stdio: 'pipe' });
}
