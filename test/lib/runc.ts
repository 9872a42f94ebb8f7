// Containers started the way a CRI runtime starts a pod's container: an OCI bundle per
// container, run by the system's runc (Debian's) with its cgroupfs driver in a
// kubelet-shaped cgroup (kube-cgroups.ts), in a given network namespace.
//
// No image pull: the rootfs is a directory of read-only bind mounts of the host's /usr,
// /etc (and /bin, /lib... as the host has them: symlinks stay symlinks), plus the weft
// checkout at its own path and at /opt/weft. When a volume's mount point does not exist
// in such a host directory (a secret at /etc/weft/token), that directory is an overlay
// instead (host directory as the read-only lower layer, upper in the bundle), like the
// writable layer of an image; the host's files are never written. /proc, /dev, /sys and a tmpfs /tmp as a
// container runtime mounts them; extra mounts (hostPath volumes) with their propagation.
//
// The process must be in the cgroup v2 directory <cg2>/<cgroupParent>/cri-containerd-<id>.scope
// before it runs any code (weft's eBPF programs key on bpf_get_current_cgroup_id()).
// runc 1.1 with the cgroupfs driver does put it there on this hybrid host (it joins the
// unified hierarchy too), and a createRuntime hook (runs after the cgroups are set up,
// before the user process is exec'd) writes the init pid into that v2 directory as
// well, so a runc that handled only the v1 hierarchies would still get it right. After
// start, /proc/<pid>/cgroup's 0:: line is checked; a mismatch is an error.
//
// runc runs in the foreground (`runc run`, no terminal): it is our child, forwards
// signals, and exits with the container's status, which wait() reports. Its state lives
// under `runcRoot` (runc --root), never in /run/runc.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, openSync, closeSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { constants } from 'node:os';
import { cgroup2Root } from '../../agent/datapath/layout';
import { cgroupV2Of, containerScope, newContainerId, removeCgroupTree } from './kube-cgroups';
import type { ExecResult } from './netns';

export { podCgroupDir, containerScope, newContainerId, removeCgroupTree, cgroupV2Of, type QosClass } from './kube-cgroups';

/** The weft checkout (this file is test/lib/runc.ts). */
export const REPO_ROOT = resolve(__dirname, '..', '..');

export type Propagation = 'rprivate' | 'private' | 'rslave' | 'slave' | 'rshared' | 'shared';

export interface ContainerMount {
  source: string;
  destination: string;
  readonly?: boolean;
  /** Kubernetes mountPropagation: None → rprivate, HostToContainer → rslave, Bidirectional → rshared. */
  propagation?: Propagation;
}

export interface ContainerOptions {
  /** runc --root (state). */
  runcRoot: string;
  /** Where the bundle and the log files go (created; removed by delete()). */
  workDir: string;
  /** The pod's cgroup, relative to the cgroup roots (podCgroupDir()). */
  cgroupParent: string;
  args: string[];
  /** Default: a new random 64-hex id. */
  id?: string;
  env?: Record<string, string>;
  cwd?: string;
  /** A network namespace path (/var/run/netns/<name>) or 'host' (runc's own, i.e. the caller's). */
  netns: string;
  /** A cgroup namespace to join (/proc/<pid>/ns/cgroup): the node's, so the container
   *  sees cgroup paths from the node's root (0::/kubepods.slice/...), as on a real node. */
  cgroupns?: string;
  /** Share the caller's PID namespace (Kubernetes hostPID) instead of a new one. */
  hostPID?: boolean;
  /** All capabilities, no masked or read-only paths, /sys and cgroups writable, all devices. */
  privileged?: boolean;
  mounts?: ContainerMount[];
  /** Bind-mounted at /etc/hosts (kubelet manages it). */
  hostsFile?: string;
  hostname?: string;
  /** Mount the weft checkout (at its own path and /opt/weft); default true. */
  mountRepo?: boolean;
}

export interface Container {
  readonly id: string;
  /** The container's init process, in the host's PID namespace. */
  readonly pid: number;
  /** Absolute cgroup v2 directory of the container. */
  readonly cgroupPath: string;
  readonly stdoutPath: string;
  readonly stderrPath: string;
  logs(): { stdout: string; stderr: string };
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Resolves when the container's init exits: its exit code, or 128+signal. */
  wait(): Promise<number>;
  exited(): boolean;
  /** Runs argv in the container (its namespaces and cgroup), like kubectl exec. */
  exec(argv: string[], env?: Record<string, string>, opts?: { timeoutMs?: number; input?: string }): Promise<ExecResult>;
  /** Kills, removes the runc state, the scope cgroup and the bundle. Idempotent. */
  delete(): Promise<void>;
}

const HOST_DIRS = ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32', '/etc'];
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

// containerd's default capability set, and everything for privileged containers.
const DEFAULT_CAPS = ['CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID', 'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE'];
const ALL_CAPS = ['CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL', 'CAP_SETGID', 'CAP_SETUID', 'CAP_SETPCAP', 'CAP_LINUX_IMMUTABLE', 'CAP_NET_BIND_SERVICE', 'CAP_NET_BROADCAST', 'CAP_NET_ADMIN', 'CAP_NET_RAW', 'CAP_IPC_LOCK', 'CAP_IPC_OWNER', 'CAP_SYS_MODULE', 'CAP_SYS_RAWIO', 'CAP_SYS_CHROOT', 'CAP_SYS_PTRACE', 'CAP_SYS_PACCT', 'CAP_SYS_ADMIN', 'CAP_SYS_BOOT', 'CAP_SYS_NICE', 'CAP_SYS_RESOURCE', 'CAP_SYS_TIME', 'CAP_SYS_TTY_CONFIG', 'CAP_MKNOD', 'CAP_LEASE', 'CAP_AUDIT_WRITE', 'CAP_AUDIT_CONTROL', 'CAP_SETFCAP', 'CAP_MAC_OVERRIDE', 'CAP_MAC_ADMIN', 'CAP_SYSLOG', 'CAP_WAKE_ALARM', 'CAP_BLOCK_SUSPEND', 'CAP_AUDIT_READ', 'CAP_PERFMON', 'CAP_BPF', 'CAP_CHECKPOINT_RESTORE'];
// containerd's defaults for unprivileged containers.
const MASKED_PATHS = ['/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware'];
const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

/** The capabilities in our own bounding set: a privileged container gets all of them
 *  (a nested host may withhold some, e.g. CAP_SYS_RESOURCE, and runc cannot grant more). */
function hostCapabilities(): string[] {
  const bnd = /^CapBnd:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
  if (!bnd) return ALL_CAPS;
  const mask = BigInt(`0x${bnd}`);
  return ALL_CAPS.filter((_, bit) => (mask >> BigInt(bit)) & 1n);
}

function runc(runcRoot: string, args: string[], timeoutMs = 15_000): Promise<ExecResult> {
  return new Promise((resolvePromise) => {
    execFile('runc', ['--root', runcRoot, ...args], { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: number | string; signal?: NodeJS.Signals }) | null;
      resolvePromise({ code: e ? (typeof e.code === 'number' ? e.code : 1) : 0, signal: e?.signal ?? null, stdout, stderr });
    });
  });
}

/** How the host's top-level system directories appear in the rootfs: a symlink stays a
 *  symlink (merged-/usr hosts: /bin -> usr/bin), a directory becomes a read-only bind. */
export function hostRootfsLayout(): { symlinks: { path: string; target: string }[]; binds: string[] } {
  const symlinks: { path: string; target: string }[] = [], binds: string[] = [];
  for (const d of HOST_DIRS) {
    let st;
    try { st = lstatSync(d); } catch { continue; }
    if (st.isSymbolicLink()) symlinks.push({ path: d, target: readlinkSync(d) });
    else if (st.isDirectory()) binds.push(d);
  }
  return { symlinks, binds };
}

function bindOptions(readonly: boolean | undefined, propagation: Propagation | undefined): string[] {
  return ['rbind', readonly ? 'ro' : 'rw', 'nosuid', 'nodev', ...(propagation ? [propagation] : ['rprivate'])];
}

/** The OCI runtime spec (config.json); no side effects. */
export function ociConfig(o: ContainerOptions & { id: string }, rootfs: string, hook: { script: string; v2Dir: string }): object {
  const priv = !!o.privileged;
  const mounts: object[] = [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', priv ? 'rw' : 'ro'] },
    { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', priv ? 'rw' : 'ro'] },
    { destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777'] },
  ];
  for (const d of hostRootfsLayout().binds) {
    // A volume whose mount point does not exist in the host's directory (say
    // /etc/weft/token) needs a writable layer there, as an image's rootfs has: an overlay
    // with the host directory as its read-only lower layer, the upper in the bundle.
    const needsLayer = [...(o.mounts ?? []).map((m) => m.destination)].some((dest) => dest.startsWith(`${d}/`) && !existsSync(dest));
    if (needsLayer) {
      const layer = join(rootfs, '..', 'layers', d.replace(/\//g, '_'));
      mounts.push({ destination: d, type: 'overlay', source: 'overlay', options: [`lowerdir=${d}`, `upperdir=${layer}/upper`, `workdir=${layer}/work`] });
    } else {
      mounts.push({ destination: d, type: 'bind', source: d, options: bindOptions(true, 'rprivate') });
    }
  }
  if (o.mountRepo !== false) {
    for (const dest of [REPO_ROOT, '/opt/weft']) mounts.push({ destination: dest, type: 'bind', source: REPO_ROOT, options: bindOptions(true, 'rprivate') });
  }
  if (o.hostsFile) mounts.push({ destination: '/etc/hosts', type: 'bind', source: o.hostsFile, options: bindOptions(true, 'rprivate') });
  for (const m of o.mounts ?? []) mounts.push({ destination: m.destination, type: 'bind', source: m.source, options: bindOptions(m.readonly, m.propagation) });
  const propagations = (o.mounts ?? []).map((m) => m.propagation ?? 'rprivate');
  // A shared or slave volume needs a rootfs that propagates (containerd does the same).
  const rootfsPropagation = propagations.some((p) => p.endsWith('shared')) ? 'rshared' : propagations.some((p) => p.endsWith('slave')) ? 'rslave' : 'rprivate';

  const namespaces: { type: string; path?: string }[] = [{ type: 'ipc' }, { type: 'uts' }, { type: 'mount' }];
  if (!o.hostPID) namespaces.push({ type: 'pid' });
  if (o.netns !== 'host') namespaces.push({ type: 'network', path: o.netns });
  if (o.cgroupns) namespaces.push({ type: 'cgroup', path: o.cgroupns });
  const caps = priv ? hostCapabilities() : DEFAULT_CAPS;
  const env = { PATH: DEFAULT_PATH, HOSTNAME: o.hostname ?? o.id.slice(0, 12), ...(o.env ?? {}) };
  return {
    ociVersion: '1.0.2-dev',
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: o.args,
      env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
      cwd: o.cwd ?? '/',
      capabilities: { bounding: caps, effective: caps, permitted: caps, ...(priv ? { inheritable: caps } : {}) },
      noNewPrivileges: false,
    },
    root: { path: rootfs, readonly: false },
    hostname: o.hostname ?? o.id.slice(0, 12),
    mounts,
    hooks: {
      // After runc set up the cgroups and namespaces, before the user process runs.
      createRuntime: [{ path: '/bin/sh', args: ['sh', hook.script, hook.v2Dir] }],
    },
    linux: {
      cgroupsPath: `/${o.cgroupParent}/${containerScope(o.id)}`,
      resources: { devices: priv ? [{ allow: true, access: 'rwm' }] : [{ allow: false, access: 'rwm' }, ...DEFAULT_DEVICES] },
      namespaces,
      rootfsPropagation,
      ...(priv ? {} : { maskedPaths: MASKED_PATHS, readonlyPaths: READONLY_PATHS }),
    },
  };
}

const DEFAULT_DEVICES = [
  { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' }, // null
  { allow: true, type: 'c', major: 1, minor: 5, access: 'rwm' }, // zero
  { allow: true, type: 'c', major: 1, minor: 7, access: 'rwm' }, // full
  { allow: true, type: 'c', major: 1, minor: 8, access: 'rwm' }, // random
  { allow: true, type: 'c', major: 1, minor: 9, access: 'rwm' }, // urandom
  { allow: true, type: 'c', major: 5, minor: 0, access: 'rwm' }, // tty
  { allow: true, type: 'c', major: 5, minor: 2, access: 'rwm' }, // ptmx
  { allow: true, type: 'c', major: 136, access: 'rwm' }, // pts
];

// The createRuntime hook: the container state (JSON, with "pid") arrives on stdin; the
// pid goes into the v2 scope directory (made if missing). Idempotent when runc already
// put it there.
const HOOK = `set -e
state=$(cat)
pid=$(printf '%s' "$state" | sed -n 's/.*"pid":\\([0-9][0-9]*\\).*/\\1/p')
[ -n "$pid" ] || { echo "createRuntime hook: no pid in state" >&2; exit 1; }
mkdir -p "$1"
echo "$pid" > "$1/cgroup.procs"
`;

function waitForFile(path: string, child: ChildProcess, timeoutMs: number, stderrPath: string): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const deadline = Date.now() + timeoutMs;
    const tick = (): void => {
      if (existsSync(path)) {
        const text = readFileSync(path, 'utf8').trim();
        if (text) { resolvePromise(text); return; }
      }
      if (child.exitCode !== null || child.signalCode !== null) {
        let err = '';
        try { err = readFileSync(stderrPath, 'utf8').trim(); } catch { /* none */ }
        reject(new Error(`runc run exited (${child.exitCode ?? child.signalCode}) before the container started: ${err.split('\n').slice(-5).join(' | ')}`));
        return;
      }
      if (Date.now() > deadline) { reject(new Error(`container did not start within ${timeoutMs} ms`)); return; }
      setTimeout(tick, 10);
    };
    tick();
  });
}

/** Starts a container and resolves once its process runs in the right cgroup. */
export async function startContainer(o: ContainerOptions): Promise<Container> {
  const id = o.id ?? newContainerId();
  const bundle = join(o.workDir, id.slice(0, 12));
  const rootfs = join(bundle, 'rootfs');
  mkdirSync(rootfs, { recursive: true });
  for (const l of hostRootfsLayout().symlinks) symlinkSync(l.target, join(rootfs, l.path));
  for (const d of hostRootfsLayout().binds) for (const sub of ['upper', 'work']) mkdirSync(join(bundle, 'layers', d.replace(/\//g, '_'), sub), { recursive: true });
  mkdirSync(o.runcRoot, { recursive: true });
  const hookScript = join(bundle, 'cgroup-v2-hook.sh');
  writeFileSync(hookScript, HOOK);
  const v2Rel = join(o.cgroupParent, containerScope(id));
  const cgroupPath = join(cgroup2Root(), v2Rel);
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(ociConfig({ ...o, id }, rootfs, { script: hookScript, v2Dir: cgroupPath }), null, 1));
  const stdoutPath = join(bundle, 'stdout.log'), stderrPath = join(bundle, 'stderr.log'), pidFile = join(bundle, 'pid');
  const out = openSync(stdoutPath, 'a'), err = openSync(stderrPath, 'a');
  let child: ChildProcess;
  try {
    child = spawn('runc', ['--root', o.runcRoot, 'run', '--bundle', bundle, '--pid-file', pidFile, id], { stdio: ['ignore', out, err], cwd: bundle });
  } finally {
    closeSync(out);
    closeSync(err);
  }
  const exit = new Promise<number>((res) => child.once('exit', (code, signal) => res(code ?? 128 + (signal ? constants.signals[signal] : 0))));
  let deleted = false;
  const container: Container = {
    id, pid: 0, cgroupPath, stdoutPath, stderrPath,
    logs: () => ({ stdout: readOr(stdoutPath), stderr: readOr(stderrPath) }),
    async kill(signal = 'SIGTERM') {
      if (container.exited()) return;
      await runc(o.runcRoot, ['kill', id, signal.replace(/^SIG/, '')]);
    },
    wait: () => exit,
    exited: () => child.exitCode !== null || child.signalCode !== null,
    exec(argv, env = {}, eo = {}) {
      return new Promise((res, rej) => {
        const p = spawn('runc', ['--root', o.runcRoot, 'exec', ...Object.entries(env).flatMap(([k, v]) => ['--env', `${k}=${v}`]), id, ...argv], { stdio: ['pipe', 'pipe', 'pipe'] });
        let stdout = '', stderr = '';
        p.stdout!.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
        p.stderr!.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
        const timer = eo.timeoutMs ? setTimeout(() => p.kill('SIGKILL'), eo.timeoutMs) : undefined;
        p.on('error', rej);
        p.on('close', (code, signal) => { if (timer) clearTimeout(timer); res({ code, signal, stdout, stderr }); });
        p.stdin!.on('error', () => { /* exited without reading */ });
        p.stdin!.end(eo.input ?? '');
      });
    },
    async delete() {
      if (deleted) return;
      deleted = true;
      if (!container.exited()) {
        await runc(o.runcRoot, ['kill', id, 'KILL']);
        const gone = await Promise.race([exit.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 5000))]);
        if (!gone) child.kill('SIGKILL');
      }
      await runc(o.runcRoot, ['delete', '--force', id]);
      const left = await removeCgroupTree(v2Rel);
      rmSync(bundle, { recursive: true, force: true });
      if (left.length) throw new Error(`container ${id.slice(0, 12)}: cgroups left behind: ${left.join('; ')}`);
    },
  };
  try {
    const pid = Number(await waitForFile(pidFile, child, 15_000, stderrPath));
    (container as { pid: number }).pid = pid;
    const actual = cgroupV2Of(pid);
    if (actual !== `/${v2Rel}`) throw new Error(`container ${id.slice(0, 12)} (pid ${pid}) is in cgroup v2 ${JSON.stringify(actual)}, want /${v2Rel}`);
  } catch (e) {
    await container.delete().catch(() => undefined);
    throw e;
  }
  return container;
}

function readOr(path: string): string {
  try { return readFileSync(path, 'utf8'); } catch { return ''; }
}

/** Containers runc still knows under `runcRoot` (leftover check). */
export async function runcList(runcRoot: string): Promise<{ id: string; pid: number; status: string }[]> {
  if (!existsSync(runcRoot)) return [];
  const r = await runc(runcRoot, ['list', '--format', 'json']);
  if (r.code !== 0) throw new Error(`runc list: ${r.stderr.trim()}`);
  return (JSON.parse(r.stdout || 'null') as { id: string; pid: number; status: string }[] | null) ?? [];
}

/** Force-deletes every container under `runcRoot` (cleanup after a crash). */
export async function runcDeleteAll(runcRoot: string): Promise<void> {
  for (const c of await runcList(runcRoot)) await runc(runcRoot, ['delete', '--force', c.id]);
}
