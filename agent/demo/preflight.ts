// What `weft demo` needs before it touches anything, each missing piece named with what
// to do about it: root, bpffs, cgroup v2, `ip` and `nsenter`, and no leftovers of an
// earlier run (their node names and addresses would collide).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { WeftError } from '../lib/errors';
import { BPFFS, cgroup2Root } from '../datapath/layout';
import { describeLeftovers, findLeftovers } from './leftovers';

function onPath(cmd: string): boolean {
  try { execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }); return true; } catch { return false; }
}

export function checkPrerequisites(): void {
  const problems: string[] = [];
  if (process.getuid?.() !== 0) problems.push('it must run as root (network namespaces, eBPF, cgroups): try sudo');
  const mounts = readFileSync('/proc/self/mounts', 'utf8').split('\n').map((l) => l.split(' '));
  if (!mounts.some((m) => m[1] === BPFFS && m[2] === 'bpf')) problems.push(`bpffs is not mounted at ${BPFFS}: mount -t bpf bpf ${BPFFS}`);
  try { cgroup2Root(); } catch { problems.push('no cgroup v2 filesystem is mounted (weft attaches its programs to cgroups)'); }
  for (const cmd of ['ip', 'nsenter']) if (!onPath(cmd)) problems.push(`'${cmd}' is not on PATH (Debian: apt-get install ${cmd === 'ip' ? 'iproute2' : 'util-linux'})`);
  if (problems.length) throw new WeftError('WEFT_ERR_UNAVAILABLE', `cannot run the demo:\n  - ${problems.join('\n  - ')}`);

  const left = findLeftovers();
  if (left.running.length) throw new WeftError('WEFT_ERR_UNAVAILABLE', `another weft demo is running (pid ${left.running.join(', ')}); stop it first (Ctrl-C in its terminal, or kill -TERM ${left.running[0]})`);
  if (left.namespaces.length || left.nodes.length) {
    throw new WeftError('WEFT_ERR_UNAVAILABLE', `a previous demo left things behind: ${describeLeftovers(left)}.\n` +
      `Remove them with 'weft demo --cleanup' (if you run a real weft agent named node-N on this host, it removes its pins too).`);
  }
}
