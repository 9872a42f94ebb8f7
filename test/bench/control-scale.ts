// bench:control's 1000-agent row: 5000 services, 50 000 endpoints, 1000 nodes, against
// two `weft control` replicas keeping their state in the (fake) Kubernetes API.
// 1000 simulated agents (control-sim-agents.ts: 100 per process, each its own TLS
// connection and delta Sync stream, ACKing every push) all prefer replica A.
//   - change → last ACK: a workload file is edited (one endpoint's weight); the time
//     until the last of the 1000 agents ACKed the new version (p50/p99), and what A
//     sent per change (weft_control_push_bytes_total)
//   - control RSS of each replica (end, peak)
//   - reconnect storm: A is killed (SIGKILL); the time until each of the 1000 agents
//     has resynced on B (first ACK on its new stream), p50/p99/max. Agents spread their
//     first reconnect over [0, 2 s] (the sync client's default).
// The agents start warm, holding the resource versions of the current snapshot, as an
// agent restarting from its on-disk snapshot cache does: a cold first sync of 1000 empty
// agents is ~16 MB per node (16 GB in all), a different measurement than this row's.
// The versions are computed in this process from the same files, with the control API's
// own code: that they match what the replicas serve (no resource sent at start) is
// itself the check that versions are content hashes, comparable across processes.
import { fork } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadPolicyDir, compile } from '../../agent/policy';
import { ViewResourceCache } from '../../agent/policy/view-cache';
import { FakeApiServer } from '../lib/fake-apiserver';
import { spawnControl as startControl, statusUntil, type Cleanup, type Control } from '../lib/control-procs';
import { waitFor as waitUntil } from '../lib/wait';
import { nodeToken, tokenLines } from '../lib/bootstrap-tokens';
import { writeMesh, nodeWorkloadsYaml, nodeName, type MeshShape } from './control-fixture';
import { packageRoot } from '../../agent/lib/paths';
import { writeFileAtomic } from '../../agent/sync/atomic-file';
import { percentile, procMemMb } from './stats';

export const SCALE: MeshShape = { services: 5000, endpoints: 50_000, nodes: 1000 };
const AGENTS_PER_PROCESS = 100;
const SPREAD_MS = 2000;
const CONTROL_NODE_ARGS = (process.env.WEFT_BENCH_CONTROL_SCALE_NODE_ARGS ?? '--max-old-space-size=700').split(' ').filter(Boolean);

interface SimEvent { t: 'ack' | 'down' | 'dial' | 'up'; node: string; version?: string; at: number; resync?: boolean; resources?: number }



async function metricValue(c: Control, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${c.adminPort}/metrics`)).text();
  return Number(text.split('\n').find((l) => l.startsWith(`${name} `))?.split(' ')[1] ?? NaN);
}

async function metricUntil(c: Control, name: string, pred: (v: number) => boolean, what: string): Promise<void> {
  const end = Date.now() + 120_000;
  for (;;) {
    const v = await metricValue(c, name);
    if (pred(v)) return;
    if (Date.now() > end) throw new Error(`${name} never showed ${what} (last ${v})`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** node → resource name → version, as the control API computes them. */
function currentVersions(dir: string, shape: MeshShape): { version: string; perNode: Record<string, Record<string, string>> } {
  const snap = compile(loadPolicyDir([dir]), []);
  const views = new ViewResourceCache();
  views.setSnapshot(snap);
  const perNode: Record<string, Record<string, string>> = {};
  for (let n = 0; n < shape.nodes; n++) {
    const out: Record<string, string> = {};
    for (const [name, r] of views.resources(nodeName(n))) out[name] = r.version;
    perNode[nodeName(n)] = out;
  }
  return { version: snap.version, perNode };
}

export async function runScale(cleanup: Cleanup, dir: string, changes: number, say: (s: string) => void) {
  const shape = SCALE;
  const policies = join(dir, 'policies');
  writeMesh(policies, shape);
  const tokenFile = join(dir, 'tokens');
  // One token per simulated node, as the docs tell operators (a bare token would bind to
  // the first node presenting it); Status is read as 'e2e-operator'.
  const SEED = 'bench-scale';
  const TOKEN = nodeToken('e2e-operator', SEED);
  writeFileSync(tokenFile, tokenLines(['e2e-operator', ...Array.from({ length: shape.nodes }, (_, i) => nodeName(i))], SEED), { mode: 0o600 });
  const api = await FakeApiServer.start({ listen: '127.0.0.1:0', dir: join(dir, 'api'), namespaces: ['default', 'weft-system'] });
  cleanup(() => { void api.close(); });

  say('[scale] computing the agents\' warm state in-process ...');
  let t = performance.now();
  const warm = currentVersions(policies, shape);
  const warmMs = performance.now() - t;

  const replica = (id: string, port = 0) => startControl(cleanup, [
    '--policies', policies, '--state-dir', join(dir, id), '--token-file', tokenFile, '--poll-interval', '30s',
    '--state-store', 'kubernetes', '--kubeconfig', api.kubeconfigPath!, '--state-namespace', 'weft-system', '--replica-id', id,
  ], port, CONTROL_NODE_ARGS);
  // Both replicas run from the start, but B is paused (SIGSTOP) while the agents connect:
  // they list both, A first, and the channel also tries the second address when the
  // first is slow to answer (it would split the fleet on a loaded machine). Once every
  // agent is on A, B resumes; the storm then moves all 1000.
  say('[scale] starting replica A, then B ...');
  t = performance.now();
  const a = await replica('bench-a');
  const startMs = performance.now() - t;
  const b = await replica('bench-b');
  b.proc.kill('SIGSTOP');
  cleanup(() => { b.proc.kill('SIGCONT'); });

  // 1000 agents in 10 processes, all preferring A.
  const events: SimEvent[] = [];
  const wakers = new Set<() => void>();
  const sub = (w: () => void) => { wakers.add(w); return () => wakers.delete(w); };
  const procs = [];
  for (let p = 0; p < shape.nodes / AGENTS_PER_PROCESS; p++) {
    const nodes = Array.from({ length: AGENTS_PER_PROCESS }, (_, i) => nodeName(p * AGENTS_PER_PROCESS + i));
    const file = join(dir, `warm-${p}.json`);
    writeFileSync(file, JSON.stringify(Object.fromEntries(nodes.map((n) => [n, warm.perNode[n]]))));
    const proc = fork(join(packageRoot(), 'test/bench/control-sim-agents.ts'), [JSON.stringify({
      address: `127.0.0.1:${a.port},127.0.0.1:${b.port}`, tokenSeed: SEED, controlCa: a.caBundle, nodes, shuffle: false, spreadMs: SPREAD_MS, warm: { version: warm.version, file },
    })], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    cleanup(() => { if (proc.exitCode === null) proc.kill('SIGKILL'); });
    proc.on('message', (batch: SimEvent[]) => { events.push(...batch); for (const w of wakers) w(); });
    procs.push(proc);
  }
  const acked = (since: number, version: string | undefined, pred: (e: SimEvent) => boolean = () => true) => {
    const last = new Map<string, number>();
    let seen = since;
    return waitUntil(() => {
      for (; seen < events.length; seen++) {
        const e = events[seen]!;
        if (e.t === 'ack' && (version === undefined || e.version === version) && pred(e) && !last.has(e.node)) last.set(e.node, e.at);
      }
      return last.size === shape.nodes ? last : undefined;
    }, (w) => {
      const unsub = sub(w);
      const progress = setInterval(() => say(`[scale]   ${last.size}/${shape.nodes} agents ACKed ${version ?? 'a push'}`), 15_000);
      return () => { clearInterval(progress); unsub(); };
    }, 1_200_000, `all ${shape.nodes} agents ACK ${version ?? 'a push'}`);
  };
  say(`[scale] ${shape.nodes} agents connecting to A ...`);
  t = Date.now();
  const first = await acked(0, warm.version);
  const connectMs = Math.max(...first.values()) - t;
  const warmResourcesSent = events.filter((e) => e.t === 'ack').reduce((n, e) => n + (e.resources ?? 0), 0);
  await metricUntil(a, 'weft_control_connected_agents', (v) => v === shape.nodes, `${shape.nodes} agents on A`);
  const memStart = procMemMb(a.proc.pid!);
  b.proc.kill('SIGCONT');

  // Changes.
  const pushBytesBefore = await metricValue(a, 'weft_control_push_bytes_total');
  const latencies: number[] = [];
  let current = warm.version;
  for (let i = 1; i <= changes; i++) {
    const node = (i * 37) % shape.nodes;
    const from = events.length;
    // Atomically (temp file + rename): a watcher reading a half-written file would serve
    // a snapshot with part of the node's workloads first, then the whole edit.
    await writeFileAtomic(join(policies, `workloads-${nodeName(node)}.yaml`), nodeWorkloadsYaml(shape, node, i), 0o644);
    const t0 = Date.now();
    // The version the edit produces: the first ACK of something other than `current`.
    const version = await waitUntil(() => events.slice(from).find((e) => e.t === 'ack' && e.version !== current)?.version, sub, 120_000, 'the change reaches an agent');
    const last = await acked(from, version);
    latencies.push(Math.max(...last.values()) - t0);
    current = version;
    say(`[scale] change ${i}/${changes}: last of ${shape.nodes} ACKs after ${latencies.at(-1)} ms`);
  }
  const pushBytesPerChange = (await metricValue(a, 'weft_control_push_bytes_total') - pushBytesBefore) / changes;
  const memA = procMemMb(a.proc.pid!);
  const memBBefore = procMemMb(b.proc.pid!);
  await statusUntil(b.port, TOKEN, (s) => s.currentVersion === current, `B serves ${current}`, 60_000);

  // Reconnect storm: A dies; every agent resyncs on B.
  say('[scale] killing replica A: reconnect storm ...');
  const stormFrom = events.length;
  const bBytesBefore = await metricValue(b, 'weft_control_push_bytes_total');
  const bResBefore = await metricValue(b, 'weft_control_delta_resources_total');
  // WEFT_BENCH_CONTROL_SCALE_STOP_A=SIGTERM stops A gracefully instead, so that a
  // --cpu-prof in WEFT_BENCH_CONTROL_SCALE_NODE_ARGS can write A's profile (SIGKILL
  // leaves none); the storm then measures a graceful shutdown, not a crash.
  a.proc.kill(process.env.WEFT_BENCH_CONTROL_SCALE_STOP_A === 'SIGTERM' ? 'SIGTERM' : 'SIGKILL');
  const killedAt = Date.now();
  const resynced = await acked(stormFrom, current, (e) => e.resync === true);
  const resync = [...resynced.values()].map((at) => at - killedAt);
  // Where the storm's time goes, per agent: kill → its stream ended (down), → its new
  // Sync call started (dial: the random spread and any failed attempts), → the survivor
  // answered the hello (up), → it ACKed the first push.
  const firstAfter = (t: SimEvent['t']) => {
    const out = new Map<string, number>();
    for (const e of events.slice(stormFrom)) if (e.t === t && !out.has(e.node)) out.set(e.node, e.at - killedAt);
    return [...out.values()];
  };
  const phases = Object.fromEntries((['down', 'dial', 'up'] as const).map((t) => { const v = firstAfter(t); return [t, { p50: percentile(v, 50), p99: percentile(v, 99) }]; }));
  const stormBytes = (await metricValue(b, 'weft_control_push_bytes_total')) - bBytesBefore;
  const stormResources = (await metricValue(b, 'weft_control_delta_resources_total')) - bResBefore;
  await metricUntil(b, 'weft_control_connected_agents', (v) => v === shape.nodes, `${shape.nodes} agents on B`);
  const memB = procMemMb(b.proc.pid!);
  for (const p of procs) p.kill('SIGTERM');
  b.proc.kill('SIGTERM');
  await b.exited;
  // The replicas' logs, for finding where time went (WEFT_BENCH_CONTROL_LOGS=DIR).
  const logDir = process.env.WEFT_BENCH_CONTROL_LOGS;
  if (logDir) {
    mkdirSync(logDir, { recursive: true });
    writeFileSync(join(logDir, 'control-a.log'), a.logs.join('\n') + '\n');
    writeFileSync(join(logDir, 'control-b.log'), b.logs.join('\n') + '\n');
  }
  return {
    shape, agents: shape.nodes, warmComputeMs: warmMs, replicaStartMs: startMs, connectMs, warmResourcesSent,
    changeToLastAckMs: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: Math.max(...latencies), samples: latencies },
    pushBytesPerChange,
    controlRssMb: { a: { afterConnect: memStart.rss, end: memA.rss, peak: memA.peak }, b: { beforeStorm: memBBefore.rss, end: memB.rss, peak: memB.peak } },
    storm: { p50: percentile(resync, 50), p99: percentile(resync, 99), max: Math.max(...resync), spreadMs: SPREAD_MS, bytesSent: stormBytes, resourcesSent: stormResources, phases },
  };
}

export function mkdirp(p: string): string { mkdirSync(p, { recursive: true }); return p; }
