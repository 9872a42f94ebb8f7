// Where a node's datapath lives on the host. Fixed layout (the integrator, `weft
// status` and the tests rely on it):
//   <cg2>/weft/<node>/                     sockops (agent + workloads)
//   <cg2>/weft/<node>/agent/               agent processes: no connect-time rewriting
//   <cg2>/weft/<node>/workloads/<ns>.<n>/  sock_addr hooks apply to everything below
//   /sys/fs/bpf/weft/<node>/               maps (libbpf pin root; "." in a node name is "_" here: bpffs refuses dots)
//   /sys/fs/bpf/weft/<node>/links/<prog>   pinned links
// With a capture root (Datapath.open({ captureRoot }), Kubernetes) every cgroup program
// attaches there instead and the <cg2>/weft/<node> cgroups are not used; pins stay.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { WeftError } from '../lib/errors';
import { dnsSubdomainError } from '../lib/names';

export const BPFFS = '/sys/fs/bpf';
// Kubernetes DNS labels: what namespaces and workload names are made of.
const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** Node names are Kubernetes node names: DNS-1123 subdomains of up to 253 characters
 *  (dots included, e.g. `ip-10-0-1-2.ec2.internal`). Each is used as one path component
 *  (pins, cgroups), which Linux allows up to 255 bytes, and never contains '/'. */
export function validateNodeName(node: string): void {
  const err = dnsSubdomainError(node);
  if (err !== null) {
    const shown = typeof node === 'string' && node.length > 80 ? `${JSON.stringify(node.slice(0, 80))}…` : JSON.stringify(node);
    throw new WeftError('WEFT_ERR_INVALID_ARG', `invalid node name ${shown}: ${err}`);
  }
}

export function validateWorkloadName(what: string, value: string): void {
  if (typeof value !== 'string' || !DNS_LABEL.test(value)) {
    throw new WeftError('WEFT_ERR_INVALID_ARG', `invalid workload ${what} ${JSON.stringify(value)}: want a DNS label`);
  }
}

function mountsOfType(type: string): string[] {
  return readFileSync('/proc/self/mounts', 'utf8').split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[2] === type)
    .map((f) => f[1]!.replace(/\\040/g, ' '));
}

/** The cgroup v2 mount (/sys/fs/cgroup/unified on hybrid hosts, /sys/fs/cgroup on v2-only). */
export function cgroup2Root(): string {
  const m = mountsOfType('cgroup2');
  if (!m.length) throw new WeftError('WEFT_ERR_UNAVAILABLE', 'no cgroup v2 filesystem is mounted');
  return m.includes('/sys/fs/cgroup') ? '/sys/fs/cgroup' : m[0]!;
}

/** Mounts bpffs at /sys/fs/bpf unless it already is: pins must outlive the agent. */
export function ensureBpffs(): void {
  if (mountsOfType('bpf').includes(BPFFS)) return;
  mkdirSync(BPFFS, { recursive: true });
  execFileSync('mount', ['-t', 'bpf', 'bpf', BPFFS], { stdio: 'pipe' });
}

export interface NodeLayout {
  node: string;
  cgroupRoot: string;    // <cg2>/weft/<node>
  agentCgroup: string;
  workloadsCgroup: string;
  pinRoot: string;       // /sys/fs/bpf/weft/<node>
  linksDir: string;
}

/** bpffs refuses names with a dot (EPERM), and Kubernetes node names have them
 *  (ip-10-0-1-2.ec2.internal): in pin paths each '.' is written '_', which no DNS-1123
 *  name contains, so two node names never share a pin directory. */
export function pinDirName(node: string): string {
  return node.replace(/\./g, '_');
}

export function nodeLayout(node: string): NodeLayout {
  validateNodeName(node);
  const cgroupRoot = join(cgroup2Root(), 'weft', node);
  const pinRoot = join(BPFFS, 'weft', pinDirName(node));
  return {
    node,
    cgroupRoot,
    agentCgroup: join(cgroupRoot, 'agent'),
    workloadsCgroup: join(cgroupRoot, 'workloads'),
    pinRoot,
    linksDir: join(pinRoot, 'links'),
  };
}

export function workloadCgroupPath(l: NodeLayout, namespace: string, name: string): string {
  validateWorkloadName('namespace', namespace);
  validateWorkloadName('name', name);
  return join(l.workloadsCgroup, `${namespace}.${name}`);
}
