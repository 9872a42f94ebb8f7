// Network namespaces for root tests and benchmarks: create one (loopback up), give it
// addresses, connect namespaces with veth pairs, run commands inside, destroy it with
// every process still in it. Names carry the caller's prefix and pid, so parallel runs
// and leftovers from a crashed run are easy to tell apart.
//
//   const ns = createNetns('wt-lb');            // wt-lb-<pid>-<n>
//   ns.addAddress('10.0.0.1/32');                // on lo by default
//   const out = await ns.exec(['curl', '-s', 'http://10.0.0.1/']);
//   const child = ns.spawn(['nginx', '-g', 'daemon off;']);
//   vethPair(nsA, nsB, { a: '10.1.0.1/24', b: '10.1.0.2/24' });
//   ns.destroy();                                // in t.after
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

let counter = 0;

export interface ExecResult { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

export interface Netns {
  readonly name: string;
  /** Runs argv inside the namespace and waits; never throws on a non-zero exit. */
  exec(argv: string[], opts?: { input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv }): Promise<ExecResult>;
  /** Runs argv inside the namespace synchronously; throws (with stderr) on failure. */
  run(argv: string[]): string;
  /** Starts argv inside the namespace (the child is killed by destroy()). */
  spawn(argv: string[], opts?: SpawnOptions): ChildProcess;
  addAddress(cidr: string, dev?: string): void;
  /** Kills what still runs inside, then deletes the namespace. Idempotent. */
  destroy(): void;
}

function ip(args: string[]): string {
  try {
    return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`ip ${args.join(' ')}: ${err.stderr?.trim() || err.message}`);
  }
}

export function createNetns(prefix: string): Netns {
  const name = `${prefix}-${process.pid}-${counter++}`;
  ip(['netns', 'add', name]);
  ip(['-n', name, 'link', 'set', 'lo', 'up']);
  const children = new Set<ChildProcess>();
  let destroyed = false;
  // nsenter rather than `ip netns exec`: the latter remounts /sys, which hides the
  // cgroup v2 mount below it, and tests need both the namespace and their cgroups.
  const wrap = (argv: string[]) => [`--net=/run/netns/${name}`, '--', ...argv];

  return {
    name,
    exec(argv, opts = {}) {
      return new Promise((resolve, reject) => {
        const child = spawn('nsenter', wrap(argv), { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? process.env });
        let stdout = '', stderr = '';
        child.stdout!.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
        child.stderr!.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
        const timer = opts.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs) : undefined;
        child.on('error', reject);
        child.on('close', (code, signal) => { if (timer) clearTimeout(timer); resolve({ code, signal, stdout, stderr }); });
        // A command that exits without reading its stdin (curl) makes this write fail
        // with EPIPE; that is not the test's business.
        child.stdin!.on('error', () => {});
        child.stdin!.end(opts.input ?? '');
      });
    },
    run(argv) {
      try {
        return execFileSync('nsenter', wrap(argv), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      } catch (e) {
        const err = e as { stderr?: string; message: string };
        throw new Error(`${argv.join(' ')} in ${name}: ${err.stderr?.trim() || err.message}`);
      }
    },
    spawn(argv, opts = {}) {
      const child = spawn('nsenter', wrap(argv), { stdio: 'pipe', ...opts });
      children.add(child);
      child.on('exit', () => children.delete(child));
      return child;
    },
    addAddress(cidr, dev = 'lo') { ip(['-n', name, 'addr', 'add', cidr, 'dev', dev]); },
    destroy() {
      if (destroyed) return;
      destroyed = true;
      for (const c of children) c.kill('SIGKILL');
      // Anything else started inside (daemons that forked) goes too.
      for (const pid of ip(['netns', 'pids', name]).split('\n').filter(Boolean)) {
        try { process.kill(Number(pid), 'SIGKILL'); } catch { /* already gone */ }
      }
      ip(['netns', 'del', name]);
    },
  };
}

/** Connects two namespaces with a veth pair (interfaces up, addresses assigned). */
export function vethPair(a: Netns, b: Netns, addrs: { a: string; b: string }): { a: string; b: string } {
  const id = `${process.pid % 100000}x${counter++}`;
  const devA = `wta${id}`.slice(0, 15), devB = `wtb${id}`.slice(0, 15);
  ip(['link', 'add', devA, 'netns', a.name, 'type', 'veth', 'peer', 'name', devB, 'netns', b.name]);
  for (const [ns, dev, cidr] of [[a, devA, addrs.a], [b, devB, addrs.b]] as const) {
    ns.addAddress(cidr, dev);
    ip(['-n', ns.name, 'link', 'set', dev, 'up']);
  }
  return { a: devA, b: devB };
}

/** A Linux bridge inside `ns` with `cidr` on it (the node side of a pod network); no
 *  address when `cidr` is empty (a plain switch). `name` defaults to wtbr<n>. */
export function bridge(ns: Netns, cidr: string, name?: string): string {
  const dev = name ?? `wtbr${counter++}`;
  ip(['-n', ns.name, 'link', 'add', dev, 'type', 'bridge']);
  if (cidr) ns.addAddress(cidr, dev);
  ip(['-n', ns.name, 'link', 'set', dev, 'up']);
  return dev;
}

/**
 * Plugs `pod` into the bridge `br` of `node` the way a CNI plugs a pod: a veth pair, the
 * pod end named eth0 with `cidr`, the node end enslaved to the bridge, and a default
 * route via `gateway` (the node's address on the bridge; no default route without one).
 * Returns the node-side device name.
 */
export function podOnBridge(node: Netns, br: string, pod: Netns, cidr: string, gateway?: string): string {
  const id = `${process.pid % 100000}x${counter++}`;
  const hostDev = `wtp${id}`.slice(0, 15), tmp = `wtq${id}`.slice(0, 15);
  ip(['link', 'add', hostDev, 'netns', node.name, 'type', 'veth', 'peer', 'name', tmp, 'netns', pod.name]);
  ip(['-n', pod.name, 'link', 'set', tmp, 'name', 'eth0']);
  ip(['-n', node.name, 'link', 'set', hostDev, 'master', br]);
  ip(['-n', node.name, 'link', 'set', hostDev, 'up']);
  pod.addAddress(cidr, 'eth0');
  ip(['-n', pod.name, 'link', 'set', 'eth0', 'up']);
  if (gateway) ip(['-n', pod.name, 'route', 'add', 'default', 'via', gateway]);
  return hostDev;
}

/** The namespace's bind-mount path, for tools that take one (runc, nsenter --net=). */
export function netnsPath(ns: Netns): string {
  return `/run/netns/${ns.name}`;
}
