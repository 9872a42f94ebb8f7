// How many cores this process may really use: os.availableParallelism() sees the CPU
// affinity mask but not a cgroup CPU quota (a container limited to 1.5 CPUs on a 32-core
// node reports 32), so the quota of our own cgroup v2 (cpu.max) caps it, rounded up.
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { cgroup2Root } from '../datapath/layout';

export function usableCores(): number {
  const cores = availableParallelism();
  const quota = cpuQuota();
  return quota === null ? cores : Math.max(1, Math.min(cores, Math.ceil(quota)));
}

/** CPUs allowed by cpu.max of this process's cgroup (v2), or null when unlimited or
 *  unknown (no cgroup v2, no cpu controller). */
function cpuQuota(): number | null {
  try {
    const line = readFileSync('/proc/self/cgroup', 'utf8').split('\n').find((l) => l.startsWith('0::'));
    if (!line) return null;
    const [max, period] = readFileSync(join(cgroup2Root(), line.slice(3), 'cpu.max'), 'utf8').trim().split(' ');
    if (max === 'max' || !max || !period) return null;
    const q = Number(max) / Number(period);
    return Number.isFinite(q) && q > 0 ? q : null;
  } catch {
    return null;
  }
}
