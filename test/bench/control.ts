// `npm run bench:control`: the control API at scale. 1000 services, 10 000 endpoints
// (Workload objects), 50 agents (sync clients in 5 child processes, 10 each) against the
// real `weft control` process:
//   - compile: load + validate + compile in this process, and per-node view build time
//   - reload: a cold load, and a reload after one file changed (parsed-file cache)
//   - snapshot size: the whole snapshot, each node's whole view (what a new agent with
//     no cache is sent) and the delta a one-endpoint change sends (computed in-process,
//     and the payload bytes the control API counted while the changes ran)
//   - change → last ACK: a workload file is edited (one endpoint's weight), and the time
//     until the last of the 50 agents has applied and ACKed the new version (p50/p99)
//   - control API memory: RSS and peak RSS of the control process
// The same-run baseline is the identical setup with a 10-service / 100-endpoint mesh, so
// the ratios show what the mesh size costs. All agents share this machine's cores with
// the control API (in production each has its own node), so latencies are pessimistic.
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadPolicyDir, compile, forNode, ParsedFileCache } from '../../agent/policy';
import { ViewResourceCache } from '../../agent/policy/view-cache';
import { spawnControl, startAgents, statusUntil, type Agents } from '../lib/control-procs';
import { nodeToken, tokenLines } from '../lib/bootstrap-tokens';
import { writeMesh, nodeWorkloadsYaml, nodeName, type MeshShape } from './control-fixture';
import { packageRoot } from '../../agent/lib/paths';
import { printTable } from './table';
import { runScale } from './control-scale';
import { percentile, procMemMb } from './stats';

// Status is read as 'e2e-operator'; every agent has its own token (tokenLines).
const TOKEN = nodeToken('e2e-operator', 'bench-control');
const AGENTS_PER_PROCESS = 10;
const FULL: MeshShape = { services: 1000, endpoints: 10_000, nodes: 50 };
const SMALL: MeshShape = { services: 10, endpoints: 100, nodes: 50 };
const TARGET_P99_MS = 1000;
const TARGET_RSS_MB = 300;
// The control API's live heap at this scale is ~70 MB (the snapshot, the parsed policy
// files, per-node resource versions), and a change no longer builds or sends whole views;
// it still allocates tens of MB of short-lived objects (the analysis and the new
// snapshot), and without a cap V8 lets the heap grow far past the live set before a
// full collection. The cap is the deployment setting we recommend (NODE_OPTIONS in the
// unit file), so the benchmark measures with it. WEFT_BENCH_CONTROL_NODE_ARGS='' measures
// without.
const CONTROL_NODE_ARGS = (process.env.WEFT_BENCH_CONTROL_NODE_ARGS ?? '--max-old-space-size=160').split(' ').filter(Boolean);

const cleanups: (() => void)[] = [];
const cleanup = (fn: () => void) => { cleanups.push(fn); };



/** In-process: how long the policy engine takes for this mesh, and how big it is. */
function compileStats(dir: string, shape: MeshShape) {
  let t = performance.now();
  const loaded = loadPolicyDir([dir]);
  const loadMs = performance.now() - t;
  if (loaded.diagnostics.length) throw new Error(`bench policies do not validate: ${JSON.stringify(loaded.diagnostics.slice(0, 3))}`);
  t = performance.now();
  const snap = compile(loaded, []);
  const compileMs = performance.now() - t;
  const sizes: number[] = [];
  t = performance.now();
  for (let n = 0; n < shape.nodes; n++) sizes.push(Buffer.byteLength(JSON.stringify(forNode(snap, nodeName(n)))));
  const viewsMs = performance.now() - t;

  // What weft control does on an edit: reload with its parsed-file cache (one file
  // changed), recompile, and bring every node's resources up to date; then what each
  // node's delta weighs.
  const parsed = new ParsedFileCache();
  loadPolicyDir([dir], [], parsed);
  const views = new ViewResourceCache();
  views.setSnapshot(snap);
  const before = Array.from({ length: shape.nodes }, (_, n) => new Map([...views.resources(nodeName(n))].map(([k, r]) => [k, r.version])));
  const file = join(dir, `workloads-${nodeName(1)}.yaml`);
  const original = readFileSync(file, 'utf8');
  writeFileSync(file, nodeWorkloadsYaml(shape, 1, 1));
  t = performance.now();
  const reloaded = loadPolicyDir([dir], [], parsed);
  const reloadMs = performance.now() - t;
  t = performance.now();
  const next = compile(reloaded, [], { previous: snap });
  views.setSnapshot(next);
  const deltas = before.map((held, n) => {
    let bytes = 0;
    for (const [k, r] of views.resources(nodeName(n))) if (held.get(k) !== r.version) bytes += r.body().length;
    return bytes;
  });
  const recompileAndViewsMs = performance.now() - t;
  writeFileSync(file, original);
  return {
    objects: loaded.objects.length, loadMs, compileMs, viewsMsPerNode: viewsMs / shape.nodes,
    reloadOneFileMs: reloadMs, recompileAndViewsMs,
    deltaBytes: { median: percentile(deltas, 50), max: Math.max(...deltas), total: deltas.reduce((a, b) => a + b, 0) },
    snapshotBytes: Buffer.byteLength(JSON.stringify(snap)),
    viewBytes: { min: Math.min(...sizes), median: percentile(sizes, 50), max: Math.max(...sizes), total: sizes.reduce((a, b) => a + b, 0) },
  };
}

async function metricValue(adminPort: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  return Number(text.split('\n').find((l) => l.startsWith(`${name} `))?.split(' ')[1] ?? NaN);
}

/** Waits until every agent has applied a version other than `not` at or after `since`;
 *  returns that version and when the last agent applied (and ACKed) it. */
async function allApplied(groups: Agents[], nodes: number, since: number, not: string): Promise<{ version: string; last: number }> {
  const latest = new Map<string, { version: string; at: number }>();
  await Promise.all(groups.map((g) => {
    const mine = new Set<string>();
    return g.wait((e) => {
      if (e.type === 'applied' && e.version !== not && (e.at ?? 0) >= since) {
        latest.set(e.node, { version: e.version!, at: e.at! });
        mine.add(e.node);
      }
      return mine.size === AGENTS_PER_PROCESS;
    }, 120_000, 'every agent to apply the change');
  }));
  const versions = new Set([...latest.values()].map((v) => v.version));
  if (latest.size !== nodes || versions.size !== 1) throw new Error(`agents disagree: ${latest.size} nodes, versions ${[...versions].join(',')}`);
  return { version: [...versions][0]!, last: Math.max(...[...latest.values()].map((v) => v.at)) };
}

async function run(shape: MeshShape, changes: number, label: string) {
  const dir = mkdtempSync(join(tmpdir(), `wt-bench-ctl-${label}-`));
  cleanup(() => rmSync(dir, { recursive: true, force: true }));
  const policies = join(dir, 'policies');
  writeMesh(policies, shape);
  process.stderr.write(`[${label}] compiling in-process ...\n`);
  const stats = compileStats(policies, shape);
  const tokenFile = join(dir, 'tokens');
  writeFileSync(tokenFile, tokenLines(['e2e-operator', ...Array.from({ length: shape.nodes }, (_, i) => nodeName(i))], 'bench-control'), { mode: 0o600 });

  process.stderr.write(`[${label}] starting weft control ...\n`);
  const control = await spawnControl(cleanup, ['--policies', policies, '--state-dir', join(dir, 'control'), '--token-file', tokenFile, '--poll-interval', '30s'], 0, CONTROL_NODE_ARGS);
  const address = `127.0.0.1:${control.port}`;
  const groups: Agents[] = [];
  for (let p = 0; p < shape.nodes / AGENTS_PER_PROCESS; p++) {
    const nodes = Array.from({ length: AGENTS_PER_PROCESS }, (_, i) => {
      const node = nodeName(p * AGENTS_PER_PROCESS + i);
      mkdirSync(join(dir, node), { recursive: true });
      return { node, stateDir: join(dir, node), writeApplied: false };
    });
    groups.push(startAgents(cleanup, address, (n) => nodeToken(n, 'bench-control'), nodes));
  }
  process.stderr.write(`[${label}] waiting for ${shape.nodes} agents ...\n`);
  let current = (await allApplied(groups, shape.nodes, 0, '')).version;
  const memAfterStart = procMemMb(control.proc.pid!);

  const pushBytesBefore = await metricValue(control.adminPort, 'weft_control_push_bytes_total');
  const latencies: number[] = [];
  const toAdopted: number[] = [];
  const toSent: number[] = [];
  for (let i = 1; i <= changes; i++) {
    const node = i % shape.nodes;
    writeFileSync(join(policies, `workloads-${nodeName(node)}.yaml`), nodeWorkloadsYaml(shape, node, i));
    const t0 = Date.now();
    const r = await allApplied(groups, shape.nodes, t0, current);
    latencies.push(r.last - t0);
    current = r.version;
    // Where the time went, from the control API's own log (pino lines carry ms epochs).
    const logged = (msg: string) => control.waitLog((l) => l.includes(`"msg":"${msg}"`) && l.includes(`"version":"${current}"`), msg)
      .then((l) => (JSON.parse(l) as { time: number }).time);
    const [adopted, sent] = await Promise.all([logged('serving new snapshot'), logged('new version sent to every agent')]);
    toAdopted.push(adopted - t0);
    toSent.push(sent - t0);
    // The control API's own record must agree: every agent ACKed this version.
    await statusUntil(control.port, TOKEN, (s) => s.agents.length === shape.nodes && s.agents.every((a) => a.ackedVersion === current), `all ${shape.nodes} ACKs of ${current}`, 30_000);
    process.stderr.write(`[${label}] change ${i}/${changes}: last ACK after ${latencies.at(-1)} ms\n`);
  }
  const pushBytesPerChange = (await metricValue(control.adminPort, 'weft_control_push_bytes_total') - pushBytesBefore) / changes;
  const mem = procMemMb(control.proc.pid!);
  const heapMb = (await metricValue(control.adminPort, 'nodejs_heap_size_used_bytes')) / 1048576;
  const externalMb = (await metricValue(control.adminPort, 'nodejs_external_memory_bytes')) / 1048576;
  const compileSum = await metricValue(control.adminPort, 'weft_control_compile_duration_seconds_sum');
  const compileCount = await metricValue(control.adminPort, 'weft_control_compile_duration_seconds_count');
  control.proc.kill('SIGTERM');
  await control.exited;
  await Promise.all(groups.map((g) => g.stop()));
  return {
    shape, ...stats,
    controlCompileMsAvg: (compileSum / compileCount) * 1000,
    pushBytesPerChange,
    changeToSnapshotMs: { p50: percentile(toAdopted, 50), p99: percentile(toAdopted, 99) },
    changeToLastSendMs: { p50: percentile(toSent, 50), p99: percentile(toSent, 99) },
    changeToLastAckMs: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: Math.max(...latencies), samples: latencies },
    controlRssMb: { afterStart: memAfterStart.rss, end: mem.rss, peak: mem.peak, heapUsedEnd: heapMb, externalEnd: externalMb },
  };
}

/** `--only base` (the 50-agent rows), `--only scale` (the 1000-agent row); default both. */
const only = (() => { const i = process.argv.indexOf('--only'); return i >= 0 ? process.argv[i + 1] : undefined; })();

async function scaleRow(full: Awaited<ReturnType<typeof run>> | undefined) {
  const dir = mkdtempSync(join(tmpdir(), 'wt-bench-ctl-scale-'));
  cleanup(() => rmSync(dir, { recursive: true, force: true }));
  const r = await runScale(cleanup, dir, 10, (l) => process.stderr.write(`${l}\n`));
  const f = (n: number, d = 0) => n.toFixed(d);
  const mb = (b: number) => (b / 1e6).toFixed(2) + ' MB';
  const rows: [string, string, string, string][] = [
    ['metric', `50 agents, 1 replica (${FULL.services} svc / ${FULL.endpoints} ep)`, `${r.agents} agents, 2 replicas (${r.shape.services} svc / ${r.shape.endpoints} ep)`, 'target'],
    ['change → last ACK p50', full ? f(full.changeToLastAckMs.p50) + ' ms' : '-', f(r.changeToLastAckMs.p50) + ' ms', ''],
    ['change → last ACK p99', full ? f(full.changeToLastAckMs.p99) + ' ms' : '-', f(r.changeToLastAckMs.p99) + ' ms', `< ${TARGET_P99_MS} ms`],
    ['bytes sent per change (all agents)', full ? mb(full.pushBytesPerChange) : '-', mb(r.pushBytesPerChange), ''],
    ['control RSS end; peak (per replica)', full ? `${f(full.controlRssMb.end)}; ${f(full.controlRssMb.peak)} MB` : '-', `A ${f(r.controlRssMb.a.end)}; ${f(r.controlRssMb.a.peak)} MB · B after storm ${f(r.controlRssMb.b.end)}; ${f(r.controlRssMb.b.peak)} MB`, '< 1000 MB'],
    ['reconnect storm: all agents resynced on the other replica p50 / p99 / max', '-', `${f(r.storm.p50)} / ${f(r.storm.p99)} / ${f(r.storm.max)} ms (spread ${r.storm.spreadMs} ms)`, ''],
    ['reconnect storm phases p50 / p99: stream ended; new call; hello answered', '-', (['down', 'dial', 'up'] as const).map((k) => `${f(r.storm.phases[k]!.p50)} / ${f(r.storm.phases[k]!.p99)}`).join('; ') + ' ms', ''],
    ['reconnect storm: sent by the survivor', '-', `${mb(r.storm.bytesSent)} (${r.storm.resourcesSent} resources)`, 'resume, no full resend'],
  ];
  printTable(rows);
  return r;
}

async function main(): Promise<void> {
  if (only === 'scale') {
    const scale = await scaleRow(undefined);
    const out = join(packageRoot(), 'test', 'bench', 'results');
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'control-scale.json'), JSON.stringify({ when: new Date().toISOString(), cpus: (await import('node:os')).cpus().length, loadavg: (await import('node:os')).loadavg(), scale }, null, 1));
    process.stdout.write(`\nwrote test/bench/results/control-scale.json\n`);
    return;
  }
  const small = await run(SMALL, 10, 'baseline');
  const full = await run(FULL, 20, 'full');
  const f = (n: number, d = 0) => n.toFixed(d);
  const mb = (b: number) => (b / 1e6).toFixed(2) + ' MB';
  const rows: [string, string, string, string][] = [
    ['metric', `baseline (${SMALL.services} svc / ${SMALL.endpoints} ep)`, `full (${FULL.services} svc / ${FULL.endpoints} ep)`, 'ratio / target'],
    ['policy objects', f(small.objects), f(full.objects), f(full.objects / small.objects, 1) + 'x'],
    ['load + validate (in-process)', f(small.loadMs) + ' ms', f(full.loadMs) + ' ms', f(full.loadMs / small.loadMs, 1) + 'x'],
    ['compile (in-process)', f(small.compileMs) + ' ms', f(full.compileMs) + ' ms', f(full.compileMs / small.compileMs, 1) + 'x'],
    ['reload in weft control (load+compile, avg)', f(small.controlCompileMsAvg) + ' ms', f(full.controlCompileMsAvg) + ' ms', f(full.controlCompileMsAvg / small.controlCompileMsAvg, 1) + 'x'],
    ['reload after a one-file edit (parse cache)', f(small.reloadOneFileMs) + ' ms', f(full.reloadOneFileMs) + ' ms', f(full.reloadOneFileMs / small.reloadOneFileMs, 1) + 'x'],
    ['recompile + update 50 nodes\' resources', f(small.recompileAndViewsMs) + ' ms', f(full.recompileAndViewsMs) + ' ms', f(full.recompileAndViewsMs / small.recompileAndViewsMs, 1) + 'x'],
    ['whole node view build + JSON, per node', f(small.viewsMsPerNode, 1) + ' ms', f(full.viewsMsPerNode, 1) + ' ms', f(full.viewsMsPerNode / small.viewsMsPerNode, 1) + 'x'],
    ['snapshot size', mb(small.snapshotBytes), mb(full.snapshotBytes), f(full.snapshotBytes / small.snapshotBytes, 1) + 'x'],
    ['whole node view size (median; max)', `${mb(small.viewBytes.median)}; ${mb(small.viewBytes.max)}`, `${mb(full.viewBytes.median)}; ${mb(full.viewBytes.max)}`, f(full.viewBytes.median / small.viewBytes.median, 1) + 'x'],
    ['whole views for 50 nodes (state of the world)', mb(small.viewBytes.total), mb(full.viewBytes.total), f(full.viewBytes.total / small.viewBytes.total, 1) + 'x'],
    ['delta per node, one-endpoint change (median; max)', `${mb(small.deltaBytes.median)}; ${mb(small.deltaBytes.max)}`, `${mb(full.deltaBytes.median)}; ${mb(full.deltaBytes.max)}`, f(full.deltaBytes.median / small.deltaBytes.median, 1) + 'x'],
    ['bytes sent per change (50 nodes, control metric)', mb(small.pushBytesPerChange), mb(full.pushBytesPerChange), f(full.pushBytesPerChange / small.pushBytesPerChange, 1) + 'x'],
    ['change → new snapshot (debounce+reload) p50', f(small.changeToSnapshotMs.p50) + ' ms', f(full.changeToSnapshotMs.p50) + ' ms', f(full.changeToSnapshotMs.p50 / small.changeToSnapshotMs.p50, 1) + 'x'],
    ['change → sent to all 50 agents p50', f(small.changeToLastSendMs.p50) + ' ms', f(full.changeToLastSendMs.p50) + ' ms', f(full.changeToLastSendMs.p50 / small.changeToLastSendMs.p50, 1) + 'x'],
    ['change → last ACK p50', f(small.changeToLastAckMs.p50) + ' ms', f(full.changeToLastAckMs.p50) + ' ms', f(full.changeToLastAckMs.p50 / small.changeToLastAckMs.p50, 1) + 'x'],
    ['change → last ACK p99', f(small.changeToLastAckMs.p99) + ' ms', f(full.changeToLastAckMs.p99) + ' ms', `${f(full.changeToLastAckMs.p99 / TARGET_P99_MS, 2)} of the ${TARGET_P99_MS} ms target`],
    ['control RSS (end; peak)', `${f(small.controlRssMb.end)}; ${f(small.controlRssMb.peak)} MB`, `${f(full.controlRssMb.end)}; ${f(full.controlRssMb.peak)} MB`, `${f(full.controlRssMb.peak / TARGET_RSS_MB, 2)} of the ${TARGET_RSS_MB} MB target (peak)`],
  ];
  printTable(rows);
  const scale = only === 'base' ? undefined : await scaleRow(full);
  const out = join(packageRoot(), 'test', 'bench', 'results');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'control.json'), JSON.stringify({
    when: new Date().toISOString(), cpus: (await import('node:os')).cpus().length, loadavg: (await import('node:os')).loadavg(),
    targets: { changeToLastAckP99Ms: TARGET_P99_MS, controlRssMb: TARGET_RSS_MB }, controlNodeArgs: CONTROL_NODE_ARGS,
    baseline: small, full, ...(scale ? { scale } : {}),
  }, null, 1));
  process.stdout.write(`\nwrote test/bench/results/control.json\n`);
}

main().then(() => { for (const c of cleanups.reverse()) c(); }, (e: unknown) => {
  for (const c of cleanups.reverse()) c();
  process.stderr.write(`bench:control failed: ${(e as Error).stack ?? e}\n`);
  process.exitCode = 1;
});
