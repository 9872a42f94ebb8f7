// One simulated node with pods in their own network namespaces, for e2e tests that run
// the real agent: a node namespace with a bridge on the node's address, one namespace
// per pod on that bridge (the node as gateway), and weft processes spawned inside them.
// Everything is removed after the test: processes killed, namespaces deleted, the
// node's weft objects cleaned up (`weft agent --cleanup`), the temp dir removed.
import type { TestContext } from 'node:test';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bridge, createNetns, podOnBridge, type Netns } from './netns';
import { ROOT, watchWeft, weftArgv, type WeftProcess } from './weft';

export interface PodNode {
  /** The weft node name (unique per test process). */
  nodeName: string;
  /** A temp dir for state, policies and logs. */
  dir: string;
  node: Netns;
  /** The pods' namespaces, in the order asked for. */
  pods: Netns[];
  /** Every namespace made (node first), for tests that check they are gone. */
  namespaces: Netns[];
  /** Every process spawnIn started. */
  procs: WeftProcess[];
  /** Spawns a weft command inside a namespace; killed after the test. */
  spawnIn(ns: Netns, argv: string[]): WeftProcess;
  /** The control API on the node namespace's loopback (127.0.0.1:15010, admin 15011),
   *  serving `meshYaml` from `dir/policies`, with a bootstrap token in `dir/token`; once
   *  it listens. */
  startControl(meshYaml: string): Promise<{ control: WeftProcess; policiesDir: string; tokenFile: string; caBundle: string }>;
}

/** `prefix` names the node, the temp dir and the namespaces; `pods` are [name, address]. */
export function podNode(t: TestContext, prefix: string, nodeIp: string, pods: readonly [string, string][]): PodNode {
  const nodeName = `${prefix}${process.pid}`;
  const dir = mkdtempSync(join(tmpdir(), `wt-${prefix}-`));
  const procs: WeftProcess[] = [];
  const nss: Netns[] = [];
  t.after(() => {
    for (const p of procs) p.proc.kill('SIGKILL');
    for (const n of nss) n.destroy();
    try { const [cmd, ...rest] = weftArgv('agent', '--cleanup', '--node', nodeName); execFileSync(cmd!, rest, { cwd: ROOT, stdio: 'ignore' }); } catch { /* the test asserts what is left */ }
    rmSync(dir, { recursive: true, force: true });
  });
  const netns = (name: string) => { const n = createNetns(`wt-${prefix}-${name}`); nss.push(n); return n; };
  const node = netns('node');
  const br = bridge(node, `${nodeIp}/24`);
  const podNs = pods.map(([name, ip]) => { const ns = netns(name); podOnBridge(node, br, ns, `${ip}/24`, nodeIp); return ns; });
  const spawnIn = (ns: Netns, argv: string[]): WeftProcess => { const p = watchWeft(ns.spawn(argv, { cwd: ROOT })); procs.push(p); return p; };
  const startControl = async (meshYaml: string) => {
    const policiesDir = join(dir, 'policies');
    mkdirSync(policiesDir);
    writeFileSync(join(policiesDir, 'mesh.yaml'), meshYaml);
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, `${randomBytes(16).toString('hex')}\n`, { mode: 0o600 });
    const caBundle = join(dir, 'control-ca.pem');
    const control = spawnIn(node, weftArgv('control', '--policies', policiesDir, '--listen', '127.0.0.1:15010', '--admin', '127.0.0.1:15011',
      '--state-dir', join(dir, 'control'), '--token-file', tokenFile, '--ca-bundle-out', caBundle));
    await control.waitForLog(/listening on/);
    return { control, policiesDir, tokenFile, caBundle };
  };
  return { nodeName, dir, node, pods: podNs, namespaces: nss, procs, spawnIn, startControl };
}
