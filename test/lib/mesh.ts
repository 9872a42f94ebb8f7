// A one-node mesh for end-to-end tests: a network namespace running `weft control`
// (serving a policies directory the test writes) and one `weft agent`, both through the
// real CLIs. Everything is removed in `close()` (call it from t.after), including the
// node's pins, links and cgroups via `weft agent --cleanup`. A run that was killed
// (SIGKILL, a CI timeout) cannot close: the next mesh of the same prefix sweeps what such
// runs left (their pid is gone).
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNetns, type Netns } from './netns';
import { ROOT, watchWeft, weftArgv, type WeftProcess } from './weft';
import { sleep } from './wait';

export interface OneNodeMesh {
  ns: Netns;
  node: string;
  dir: string;
  policiesDir: string;
  /** The control API's CA bundle (PEM file), as agents get it with --control-ca. */
  caBundle: string;
  control: WeftProcess;
  agent: WeftProcess;
  agentArgs: string[];
  /** Starts a (new) agent process with the same flags and waits until it is ready. */
  startAgent(): Promise<WeftProcess>;
  /** Starts any process inside the namespace and tracks it for cleanup. */
  spawn(argv: string[]): WeftProcess;
  /** `weft ARGS...` inside the namespace, synchronously (throws on failure). */
  weft(...args: string[]): string;
  close(): void;
}

export async function waitAgentReady(ns: Netns, admin = '127.0.0.1:15020', timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await ns.exec(['curl', '-sf', `http://${admin}/readyz`]);
    if (r.code === 0) return;
    if (Date.now() > deadline) throw new Error(`agent not ready: ${r.stdout}${r.stderr}`);
    await sleep(100);
  }
}

const alive = (pid: number): boolean => { try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; } };

/** Removes the namespaces, pins, links and cgroups of earlier meshes of this prefix whose
 *  test process is gone (node `<prefix><pid>`, namespaces `wt-<prefix>-<pid>-<n>`). */
export function sweepStaleMeshes(prefix: string): void {
  const nsRe = new RegExp(`^wt-${prefix}-(\\d+)-\\d+$`);
  let names: string[] = [];
  try { names = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0]!).filter(Boolean); } catch { /* no iproute2 */ }
  for (const n of names) {
    const m = nsRe.exec(n);
    if (!m || alive(Number(m[1]))) continue;
    try { for (const pid of execFileSync('ip', ['netns', 'pids', n], { encoding: 'utf8' }).split('\n').filter(Boolean)) process.kill(Number(pid), 'SIGKILL'); } catch { /* gone */ }
    try { execFileSync('ip', ['netns', 'del', n], { stdio: 'ignore' }); } catch { /* gone */ }
  }
  const nodeRe = new RegExp(`^${prefix}(\\d+)$`);
  const pinned = existsSync('/sys/fs/bpf/weft') ? readdirSync('/sys/fs/bpf/weft') : [];
  for (const node of pinned) {
    const m = nodeRe.exec(node);
    if (!m || alive(Number(m[1]))) continue;
    try { const [cmd, ...rest] = weftArgv('agent', '--cleanup', '--node', node); execFileSync(cmd!, rest, { cwd: ROOT, stdio: 'ignore' }); } catch { /* best effort */ }
  }
}

/** `policies(node)` returns the YAML of the policy set, given the node name. */
export async function startOneNodeMesh(prefix: string, policies: (node: string) => string): Promise<OneNodeMesh> {
  sweepStaleMeshes(prefix);
  const node = `${prefix}${process.pid}`;
  const dir = mkdtempSync(join(tmpdir(), `wt-${prefix}-`));
  const ns = createNetns(`wt-${prefix}`);
  const procs: WeftProcess[] = [];
  const spawnIn = (argv: string[]) => { const p = watchWeft(ns.spawn(argv, { cwd: ROOT })); procs.push(p); return p; };
  const policiesDir = join(dir, 'policies');
  mkdirSync(policiesDir);
  writeFileSync(join(policiesDir, 'mesh.yaml'), policies(node));
  writeFileSync(join(dir, 'token'), `${randomBytes(16).toString('hex')}\n`, { mode: 0o600 });
  // The control API serves TLS; agents trust the CA bundle it writes on startup.
  const caBundle = join(dir, 'control-ca.pem');
  const agentArgs = ['agent', '--control', '127.0.0.1:15010', '--control-ca', caBundle, '--node', node, '--token-file', join(dir, 'token'), '--state-dir', join(dir, 'agent')];
  const mesh: OneNodeMesh = {
    ns, node, dir, policiesDir, caBundle, agentArgs,
    control: undefined as unknown as WeftProcess,
    agent: undefined as unknown as WeftProcess,
    async startAgent() {
      const a = spawnIn(weftArgv(...agentArgs));
      await a.waitForLog(/"msg":"agent started"/);
      await waitAgentReady(ns);
      mesh.agent = a;
      return a;
    },
    spawn: spawnIn,
    weft(...args) { return ns.run(weftArgv(...args)); },
    close() {
      for (const p of procs) p.proc.kill('SIGKILL');
      ns.destroy();
      try { const [cmd, ...rest] = weftArgv('agent', '--cleanup', '--node', node); execFileSync(cmd!, rest, { cwd: ROOT, stdio: 'ignore' }); } catch { /* tests assert cleanup themselves */ }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    mesh.control = spawnIn(weftArgv('control', '--policies', policiesDir, '--listen', '127.0.0.1:15010', '--admin', '127.0.0.1:15011',
      '--state-dir', join(dir, 'control'), '--token-file', join(dir, 'token'), '--ca-bundle-out', caBundle));
    await mesh.control.waitForLog(/listening on/);
    await mesh.startAgent();
  } catch (e) {
    mesh.close();
    throw e;
  }
  return mesh;
}
