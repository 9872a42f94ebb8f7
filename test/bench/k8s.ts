// `npm run bench:k8s`: a Kubernetes node under pod churn. The real `weft agent
// --kubernetes` (datapath loaded, one worker) and `weft control --kubernetes` run against
// the fake API server (test/lib/fake-apiserver.ts, real list/watch semantics) on
// loopback. The bench plays kubelet: it creates each pod's cgroup the way kubelet names
// it (systemd driver, Burstable, a container scope below the pod) and then the Pod object
// with its status, and deletes pods again.
//   - 110 pods (kubelet's default maxPods), then churn: 50 creations and 50 deletions per
//     second for CHURN_S seconds, so the node stays at ~110 pods.
//   - watch event → identity usable: from the API server's write of the pod's Running
//     status (kubelet reports it once the pod's cgroup and container exist and it has an
//     IP) to the moment the agent has the pod meshed with its cgroup resolved: the kernel's
//     cgroup id of the pod's sockets names its identity (the agent records that time per
//     pod, GET /debug/pods → recentReady). p50/p99, target p99 < 1 s.
//   - the agent's memory (RSS of the supervisor and its worker) at 110 pods, against the
//     same agent with no pods in the same run.
// Everything shares this machine's cores (API server, control, agent, this process), so
// latencies are pessimistic for a real node.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, rmdirSync, writeFileSync, readdirSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:http';
import { FakeApiServer } from '../lib/fake-apiserver';
import { spawnControl } from '../lib/control-procs';
import { spawnWeft, type WeftProcess } from '../lib/weft';
import { cgroup2Root } from '../../agent/datapath/layout';
import { packageRoot } from '../../agent/lib/paths';
import { printTable } from './table';
import { until } from '../lib/wait';
import { percentile } from './stats';

const NODE = 'bench-k8s.node-1';
const PODS = Number(process.env.K8S_BENCH_PODS ?? 110);
const RATE = Number(process.env.K8S_BENCH_RATE ?? 50);
const CHURN_S = Number(process.env.K8S_BENCH_SECONDS ?? 10);
const TARGET_P99_MS = 1000;
const TOKEN = 'bench-k8s-bootstrap-token-0123456789abcdef';

// The agent as it ships (bin/weft → dist/, built by the npm script), not through tsx,
// whose compiler hooks would be counted in its memory.
process.env.WEFT_TEST_BIN ??= 'dist';

const cleanups: (() => void | Promise<void>)[] = [];
const step = (s: string) => process.stderr.write(`[bench:k8s] ${s}\n`);


function rssMb(pid: number): number {
  try {
    const st = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+) kB/.exec(st)?.[1] ?? 0) / 1024;
  } catch { return 0; }
}

/** The agent's processes: the supervisor and its children (the worker). */
function agentRssMb(supervisor: number): number {
  let total = rssMb(supervisor);
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === supervisor) total += rssMb(Number(pid));
    } catch { /* exited */ }
  }
  return total;
}

function getJson<T>(port: number, path: string): Promise<T> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => { body += d; });
      res.on('end', () => { try { resolve(JSON.parse(body) as T); } catch (e) { reject(e); } });
    }).on('error', reject).end();
  });
}

interface DebugPods { pods: { uid: string; meshed: boolean; cgroup: unknown }[]; recentReady: { uid: string; at: number }[] }

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench:k8s loads the datapath: run it as root');
  const dir = mkdtempSync(join(tmpdir(), 'wt-bench-k8s-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const cgBase = join(cgroup2Root(), `weft-bench-k8s-${process.pid}`);
  const qos = join(cgBase, 'kubepods.slice', 'kubepods-burstable.slice');
  mkdirSync(qos, { recursive: true });
  cleanups.push(() => removeTree(cgBase));

  step('fake API server, weft control, weft agent ...');
  const api = await FakeApiServer.start({ listen: '127.0.0.1:0', dir: join(dir, 'api') });
  cleanups.push(() => api.close());
  api.store.create('nodes', undefined, { metadata: { name: NODE, labels: { 'kubernetes.io/hostname': NODE } }, status: { addresses: [{ type: 'InternalIP', address: '127.0.0.1' }] } });
  const policies = join(dir, 'policies');
  mkdirSync(policies);
  writeFileSync(join(policies, 'mesh.yaml'), 'apiVersion: weft.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec: {trustDomain: bench.local}\n');
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
  const control = await spawnControl((fn) => cleanups.push(fn), ['--policies', policies, '--state-dir', join(dir, 'control'), '--token-file', tokenFile, '--kubernetes', '--kubeconfig', api.kubeconfigPath!]);
  const caFile = join(dir, 'ca.pem');
  writeFileSync(caFile, control.caBundle);
  const adminPort = 25020 + (process.pid % 1000);
  const agent: WeftProcess = spawnWeft(['agent', '--kubernetes', '--kubeconfig', api.kubeconfigPath!, '--cgroup-root', join(cgBase, 'kubepods.slice'),
    '--node', NODE, '--control', `127.0.0.1:${control.port}`, '--control-ca', caFile, '--token-file', tokenFile, '--state-dir', join(dir, 'agent'),
    '--admin', `127.0.0.1:${adminPort}`, '--outbound', `127.0.0.1:${adminPort + 1}`, '--inbound', `127.0.0.1:${adminPort + 2}`, '--workers', '1', '--log-level', 'warn']);
  cleanups.push(async () => {
    await agent.kill('SIGTERM');
    spawnWeft(['agent', '--cleanup', '--node', NODE]);
    await new Promise((r) => setTimeout(r, 1000));
  });
  await until('the agent to list pods', async () => {
    const s = await getJson<{ pods?: { listed: boolean } }>(adminPort, '/v1/status');
    return s.pods?.listed ? true : undefined;
  }, { timeoutMs: 60_000, everyMs: 50, retryErrors: true });
  await new Promise((r) => setTimeout(r, 2000));
  const rssIdle = agentRssMb(agent.proc.pid!);

  let seq = 0;
  const created = new Map<string, { t0: number; name: string; cgroup: string }>();
  const live: string[] = [];
  const createPod = (): void => {
    const i = seq++;
    const name = `churn-${i}`;
    const ip = `10.244.${(i >> 8) & 255}.${i & 255}`;
    // The scheduler binds the pod (the API server assigns its UID) ...
    const pod = api.store.create('pods', 'bench', {
      metadata: { name, namespace: 'bench', labels: { app: `app-${i % 10}` } },
      spec: { nodeName: NODE, serviceAccountName: `sa-${i % 10}`, containers: [{ name: 'app', image: 'app' }] },
      status: { phase: 'Pending', qosClass: 'Burstable' },
    }) as { metadata: { uid: string }; status: Record<string, unknown> };
    const uid = pod.metadata.uid;
    // ... kubelet makes the pod's cgroup and a container scope below it, starts the
    // container and reports it Running with its IP: that event is the one measured.
    const podCg = join(qos, `kubepods-burstable-pod${uid.replace(/-/g, '_')}.slice`);
    mkdirSync(join(podCg, `cri-containerd-${uid.replace(/-/g, '')}${'0'.repeat(32)}.scope`), { recursive: true });
    const t0 = Date.now();
    api.store.replace('pods', 'bench', name, { ...pod, status: { phase: 'Running', qosClass: 'Burstable', podIP: ip, podIPs: [{ ip }], hostIP: '127.0.0.1', conditions: [{ type: 'Ready', status: 'True' }] } } as never, 'status');
    created.set(uid, { t0, name, cgroup: podCg });
    live.push(uid);
  };
  const deletePod = (): void => {
    const uid = live.shift();
    if (!uid) return;
    const c = created.get(uid)!;
    api.store.delete('pods', 'bench', c.name);
    removeTree(c.cgroup);
  };
  api.store.create('namespaces', undefined, { metadata: { name: 'bench' } });

  step(`${PODS} pods ...`);
  for (let i = 0; i < PODS; i++) createPod();
  await until(`${PODS} pods usable`, async () => {
    const d = await getJson<DebugPods>(adminPort, '/debug/pods');
    return d.pods.filter((p) => p.meshed && p.cgroup).length >= PODS ? true : undefined;
  }, { timeoutMs: 60_000, everyMs: 50, retryErrors: true });
  await new Promise((r) => setTimeout(r, 2000));
  const rssFull = agentRssMb(agent.proc.pid!);
  const firstChurn = seq;

  step(`churn: ${RATE} creations + ${RATE} deletions per second for ${CHURN_S} s ...`);
  const interval = 1000 / RATE;
  const start = Date.now();
  for (let n = 0; n < RATE * CHURN_S; n++) {
    const due = start + n * interval;
    const wait = due - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    createPod();
    deletePod();
  }
  const churnSeconds = (Date.now() - start) / 1000;
  await new Promise((r) => setTimeout(r, 3000));
  const rssAfter = agentRssMb(agent.proc.pid!);
  const debug = await getJson<DebugPods>(adminPort, '/debug/pods');
  const readyAt = new Map(debug.recentReady.map((r) => [r.uid, r.at]));
  const latencies: number[] = [];
  let missing = 0;
  for (const [uid, c] of created) {
    if (Number(c.name.slice('churn-'.length)) < firstChurn) continue;
    const at = readyAt.get(uid);
    if (at === undefined) missing++; else latencies.push(at - c.t0);
  }
  const p50 = percentile(latencies, 50), p99 = percentile(latencies, 99);
  const f = (x: number, d = 0) => x.toFixed(d);
  const rows: string[][] = [
    ['metric', 'value', 'baseline / target', 'ratio'],
    ['pods created during churn', `${RATE * CHURN_S} in ${f(churnSeconds, 1)} s`, `${RATE}/s asked`, f(RATE * CHURN_S / churnSeconds / RATE, 2) + 'x of the asked rate'],
    ['watch event → identity usable, p50', `${f(p50)} ms`, `${TARGET_P99_MS} ms (p99 target)`, f(p50 / TARGET_P99_MS, 3)],
    ['watch event → identity usable, p99', `${f(p99)} ms`, `${TARGET_P99_MS} ms`, f(p99 / TARGET_P99_MS, 3)],
    ['watch event → identity usable, max', `${f(Math.max(...latencies))} ms`, '', ''],
    ['churned pods never seen usable', String(missing), '0', ''],
    ['agent RSS at 110 pods (supervisor + worker)', `${f(rssFull)} MB`, `${f(rssIdle)} MB with no pods`, f(rssFull / rssIdle, 2) + 'x'],
    ['agent RSS after the churn', `${f(rssAfter)} MB`, `${f(rssIdle)} MB with no pods`, f(rssAfter / rssIdle, 2) + 'x'],
  ];
  printTable(rows);
  const out = join(packageRoot(), 'test', 'bench', 'results');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'k8s.json'), JSON.stringify({
    when: new Date().toISOString(), cpus: cpus().length, loadavg: loadavg(),
    pods: PODS, rate: RATE, churnSeconds, targets: { p99Ms: TARGET_P99_MS },
    identityUsableMs: { p50, p99, max: Math.max(...latencies), samples: latencies.length, missing },
    agentRssMb: { noPods: rssIdle, atPods: rssFull, afterChurn: rssAfter, ratio: rssFull / rssIdle },
  }, null, 1));
  process.stdout.write('\nwrote test/bench/results/k8s.json\n');
}

/** rmdir a cgroup subtree bottom-up (cgroup directories are removed with rmdir). */
function removeTree(dir: string): void {
  let entries: string[] = [];
  try { entries = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name); } catch { return; }
  for (const e of entries) removeTree(join(dir, e));
  try { rmdirSync(dir); } catch { /* busy or gone */ }
}

async function runCleanups(): Promise<void> {
  for (const c of cleanups.reverse()) { try { await c(); } catch { /* best effort */ } }
}

main().then(runCleanups, async (e: unknown) => {
  await runCleanups();
  process.stderr.write(`bench:k8s failed: ${(e as Error).stack ?? e}\n`);
  process.exitCode = 1;
});
