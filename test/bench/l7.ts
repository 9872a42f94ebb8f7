// L7 benchmark (npm run bench:l7): HTTP/1.1 keep-alive small responses and gRPC unary,
// side by side in one run, through: direct; weft's outbound L7 path; nginx reverse proxy
// (upstream keepalive); HAProxy http mode (http-reuse always); npm http-proxy.
// Reports rps, p50/p99 added latency, proxy CPU per request (from /proc/<pid>/stat of
// the proxy processes), agent memory; ratios are against HAProxy in the same run.
// "node path" rows run the same processes inside a weft node's workload cgroup with
// weft's datapath loaded, the way they sit on a node: load generator, weft and the
// origin share the node, and the kernel splices the same-node hops (sockops + sk_msg)
// that the agent marks eager (its listener and the local endpoints it pools to; see
// eagerHops() in agent/node/eager-hops.ts). HAProxy on the same node path is shown too, so
// the gain from the kernel is not mistaken for the proxy's own. Needs root + cgroup v2.
//
// This file is also the child processes it starts: `--serve weft|http-proxy|grpc-origin`.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, mkdirSync, rmSync, readdirSync, renameSync, appendFileSync } from 'node:fs';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { createServer, connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import cluster from 'node:cluster';
import http from 'node:http';
import httpProxy from 'http-proxy';
import * as grpc from '@grpc/grpc-js';
import { L7Directory } from '../../agent/proxy/routing/directory';
import { OutboundProxy } from '../../agent/proxy/outbound';
import { createRootLogger } from '../../agent/telemetry/logger';
import { Datapath } from '../../agent/datapath/datapath';
import { inCgroup } from '../lib/cgroup';
import { RequestMetrics } from '../../agent/proxy/routing/metrics';
import { createRegistry } from '../../agent/telemetry/registry';
import { RequestTap } from '../../agent/node/tap';

const BODY = 'x'.repeat(100);
const DURATION_S = Number(process.env.L7_BENCH_SECONDS ?? 8);
const CONNS = 50;

// --------------------------------------------------------------- child: weft proxy
async function serveWeft(httpPort: number, grpcPort: number, originPort: number, grpcOrigin: number, workers: number): Promise<void> {
  if (workers > 1 && cluster.isPrimary) {
    // Let the kernel spread accepts over the workers instead of the primary passing handles.
    cluster.schedulingPolicy = cluster.SCHED_NONE;
    for (let i = 0; i < workers; i++) cluster.fork();
    await new Promise<void>((r) => { let n = 0; cluster.on('message', () => { if (++n === workers) r(); }); });
    process.stdout.write('ready\n');
    return;
  }
  createRootLogger({ level: 'warn' });
  const svc = (name: string, vip: string, port: number, protocol: 'HTTP' | 'GRPC', target: number) => ({
    key: `bench/${name}`, name, namespace: 'bench', vip, vipAllocated: false, selector: {},
    ports: [{ name: 'p', port, targetPort: target, protocol }],
    endpoints: [{ workload: `bench/${name}-0`, node: 'n', address: '127.0.0.1', ports: { p: target }, namespace: 'bench', serviceAccount: name, identity: '', labels: {}, weight: 1 }],
  });
  const dir = new L7Directory();
  dir.apply({
    version: 'bench', node: 'n', mesh: { trustDomain: 't', mtls: 'PERMISSIVE', certTtlMs: 1, failMode: 'open', vipRange: '10.96.0.0/16' }, nodes: {},
    datapath: [], services: [svc('web', '10.96.0.1', 80, 'HTTP', originPort), svc('grpc', '10.96.0.2', 50051, 'GRPC', grpcOrigin)],
    routes: [], trafficPolicies: [], authorizationPolicies: [], localWorkloads: [],
  });
  // Per-request telemetry as the agent has it (agent/node/proxy-plane.ts): request
  // metrics on a registry, and the tap as the access sink (no access log configured,
  // nobody tapping), so the proxy measured does the bookkeeping the agent does.
  const metrics = new RequestMetrics(createRegistry());
  const tap = new RequestTap(null);
  const mk = (ip: string, port: number) => new OutboundProxy({
    directory: dir, resolveOrigin: () => ({ dstIp: ip, dstPort: port, cgroupId: 0 }),
    connect: (ep, _origin, read) => connect({ host: ep.ip, port: ep.port, noDelay: true, ...(read ? { onread: read } : {}) }),
    sourceOf: () => ({ workload: 'bench-client', namespace: 'bench', principal: 'spiffe://t/ns/bench/sa/client' }),
    metrics, accessLog: tap,
  });
  // L7_BENCH_PROBE=dir: the child writes, for each second, its event-loop delay (µs),
  // garbage collections (count, total and longest pause, ms), CPU time (ms) and context
  // switches (involuntary: preempted) to dir/probe-<pid>.log, to see what the proxy's
  // process went through during a phase.
  const probe = process.env.L7_BENCH_PROBE;
  if (probe) {
    const h = monitorEventLoopDelay({ resolution: 1 });
    h.enable();
    let gcN = 0, gcMs = 0, gcMax = 0;
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) { gcN++; gcMs += e.duration; gcMax = Math.max(gcMax, e.duration); }
    }).observe({ entryTypes: ['gc'] });
    const f = join(probe, `probe-${workers}w-${httpPort}-${process.pid}.log`);
    let last = process.resourceUsage();
    setInterval(() => {
      const u = process.resourceUsage();
      appendFileSync(f, `${Date.now()} eld p50 ${(h.percentile(50) / 1e3).toFixed(0)} p99 ${(h.percentile(99) / 1e3).toFixed(0)} max ${(h.max / 1e3).toFixed(0)}`
        + ` gc ${gcN} ${gcMs.toFixed(2)} ${gcMax.toFixed(2)} cpu ${((u.userCPUTime + u.systemCPUTime - last.userCPUTime - last.systemCPUTime) / 1e3).toFixed(0)}`
        + ` csw ${u.voluntaryContextSwitches - last.voluntaryContextSwitches} icsw ${u.involuntaryContextSwitches - last.involuntaryContextSwitches}\n`);
      h.reset();
      gcN = 0; gcMs = 0; gcMax = 0;
      last = u;
    }, 1000).unref();
  }
  await mk('10.96.0.1', 80).listen(httpPort, '127.0.0.1');
  await mk('10.96.0.2', 50051).listen(grpcPort, '127.0.0.1');
  if (cluster.isWorker) process.send!('up'); else process.stdout.write('ready\n');
}

async function serveHttpProxy(port: number, originPort: number): Promise<void> {
  const proxy = httpProxy.createProxyServer({ target: `http://127.0.0.1:${originPort}`, agent: new http.Agent({ keepAlive: true, maxSockets: 256 }) });
  proxy.on('error', (_e, _req, res) => { if (res instanceof http.ServerResponse) res.writeHead(502); res.end(); });
  http.createServer((req, res) => proxy.web(req, res)).listen(port, '127.0.0.1', () => process.stdout.write('ready\n'));
}

async function serveGrpcOrigin(port: number): Promise<void> {
  const id = (b: Buffer): Buffer => b;
  const server = new grpc.Server();
  server.addService({
    Echo: { path: '/bench.Echo/Echo', requestStream: false, responseStream: false, requestSerialize: id, requestDeserialize: id, responseSerialize: id, responseDeserialize: id, originalName: 'Echo' },
  } as never, { Echo: (call: { request: Buffer }, cb: (e: null, r: Buffer) => void) => cb(null, call.request) } as never);
  server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (e) => {
    if (e) throw e;
    process.stdout.write('ready\n');
  });
}

// --------------------------------------------------------------- parent: orchestration
function freePort(): Promise<number> {
  return new Promise((res) => { const s = createServer(); s.listen(0, '127.0.0.1', () => { const p = (s.address() as AddressInfo).port; s.close(() => res(p)); }); });
}

const children: ChildProcess[] = [];
/** Spawns `cmd`, inside `cgroup` when one is given (the node-path rows). */
function spawnIn(cmd: string, args: string[], cgroup?: string): ChildProcess {
  const argv = cgroup ? inCgroup(cgroup, [cmd, ...args]) : [cmd, ...args];
  return spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
}

function start(cmd: string, args: string[], readyWhen: 'stdout' | number, cgroup?: string): Promise<ChildProcess> {
  const c = spawnIn(cmd, args, cgroup);
  children.push(c);
  return new Promise((resolve, reject) => {
    let err = '';
    c.stderr!.on('data', (d) => { err += d; });
    c.on('exit', (code) => reject(new Error(`${cmd} exited ${code}: ${err.slice(-500)}`)));
    if (readyWhen === 'stdout') c.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('ready')) resolve(c); });
    else waitPort(readyWhen).then(() => resolve(c), reject);
  });
}

async function waitPort(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((r) => { const s = connect(port, '127.0.0.1'); s.on('connect', () => { s.destroy(); r(true); }); s.on('error', () => r(false)); });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`port ${port} never opened`);
}

/** All pids in the process tree of `pid` (nginx workers, cluster workers). */
function tree(pid: number): number[] {
  const out = [pid];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const st = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(...tree(Number(d)));
    } catch { /* gone */ }
  }
  return out;
}

const TICK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());
function cpuSeconds(pids: number[]): number {
  let t = 0;
  for (const p of pids) {
    try {
      const st = readFileSync(`/proc/${p}/stat`, 'utf8');
      const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
      t += (Number(f[11]) + Number(f[12])) / TICK;
    } catch { /* gone */ }
  }
  return t;
}
function rssMiB(pids: number[]): number {
  let kb = 0;
  for (const p of pids) { try { kb += Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))![1]); } catch { /* gone */ } }
  return kb / 1024;
}

function run(cmd: string, args: string[], cgroup?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = spawnIn(cmd, args, cgroup);
    let out = '';
    c.stdout!.on('data', (d) => { out += d; });
    c.stderr!.on('data', (d) => { out += d; });
    c.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')} → ${code}: ${out.slice(-400)}`))));
  });
}

function ms(v: string): number {
  const m = /([\d.]+)(us|ms|s)/.exec(v)!;
  const n = Number(m[1]);
  return m[2] === 'us' ? n / 1000 : m[2] === 's' ? n * 1000 : n;
}

interface Result { rps: number; p50: number; p99: number; cpuUsPerReq: number; rssMiB: number; errors: number }

async function measure(load: () => Promise<{ rps: number; p50: number; p99: number; requests: number; errors: number }>, pids: number[]): Promise<Result> {
  const c0 = cpuSeconds(pids);
  const r = await load();
  const cpu = cpuSeconds(pids) - c0;
  return { rps: r.rps, p50: r.p50, p99: r.p99, cpuUsPerReq: pids.length && r.requests ? (cpu * 1e6) / r.requests : 0, rssMiB: rssMiB(pids), errors: r.errors };
}

async function wrk(port: number, seconds = DURATION_S, cgroup?: string) {
  const out = await run('wrk', ['-t2', `-c${CONNS}`, `-d${seconds}s`, '--latency', `http://127.0.0.1:${port}/`], cgroup);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)![1]);
  const requests = Number(/(\d+) requests in/.exec(out)![1]);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const sockErr = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = non2xx + (sockErr ? sockErr.slice(1).reduce((a, b) => a + Number(b), 0) : 0);
  return { rps, requests, errors, p50: ms(/\s50%\s+(\S+)/.exec(out)![1]!), p99: ms(/\s99%\s+(\S+)/.exec(out)![1]!) };
}

/** h2load with a per-request log, for percentiles (it prints none itself). */
async function h2load(args: string[], url: string, dir: string, cgroup?: string, logTag = 'h2load') {
  const log = join(dir, `h2load-${Date.now()}.log`);
  const out = await run('h2load', [...args, '--log-file', log, url], cgroup);
  const rps = Number(/finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(out)![1]);
  const m = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(out)!;
  const lat = readFileSync(log, 'utf8').trim().split('\n').map((l) => Number(l.split('\t')[2]) / 1000).sort((a, b) => a - b);
  // L7_BENCH_KEEP_LOGS=dir keeps every per-request log (start time, status, latency) there.
  if (process.env.L7_BENCH_KEEP_LOGS) renameSync(log, join(process.env.L7_BENCH_KEEP_LOGS, `${logTag}-${Date.now()}.log`));
  else rmSync(log);
  const pct = (p: number) => lat[Math.min(lat.length - 1, Math.floor(lat.length * p))] ?? NaN;
  return { rps, requests: Number(m[4]), errors: Number(m[5]) + Number(m[6]), p50: pct(0.5), p99: pct(0.99) };
}

/**
 * h2load arguments for an open-loop HTTP/1.1 load of about `total` rps from `clients`
 * connections whose requests are evenly spread in time. Plain `--rps` starts every
 * client's timer at the same moment, so all clients fire together: bursts of `clients`
 * requests that a proxy must serve one after the other (direct nginx: p50 0.16 ms that
 * way vs 0.03 ms spread, at the same rate). Spread: clients are created 1 ms apart
 * (`-r1 --rate-period=1ms`) and each sends every T ms with 1 ms = T·(q + j/clients),
 * gcd(j, clients) = 1, so client k is shifted by (k·j mod clients)·T/clients: every
 * phase used once. The per-client rate is the nearest such value to the target.
 */
function spreadLoad(total: number, seconds: number, clients = 20): string[] {
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
  const target = total / clients;
  let best = 1000 / clients;
  for (let q = 0; q <= Math.ceil(target / 1000); q++) {
    for (let j = 1; j < clients; j++) {
      const r = 1000 * (q + j / clients);
      if (gcd(j, clients) === 1 && Math.abs(r - target) < Math.abs(best - target)) best = r;
    }
  }
  return ['--h1', `-c${clients}`, `--rps=${best}`, '-r1', '--rate-period=1ms', '-n', String(Math.round(best * clients * seconds))];
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-bench-l7-'));
  const P = async () => freePort();
  const [origin, grpcOrigin, weftH, weftG, weft1H, weft1G, nginxH, nginxG, haH, haG, hp, mOrigin, mGrpcOrigin, mWeftH, mWeftG, mHaH, mHaG] = await Promise.all(Array.from({ length: 17 }, P));
  const node = `wt-bench-l7-${process.pid}`;
  let dp: Datapath | null = null;
  const self = ['--import', 'tsx', __filename, '--serve'];
  // L7_BENCH_WEFT_NODE_ARGS: extra Node flags for the weft children only (--trace-gc, --cpu-prof...).
  const weftSelf = [...(process.env.L7_BENCH_WEFT_NODE_ARGS?.split(' ').filter((x) => x !== '') ?? []), ...self];
  const results: Record<string, Record<string, Result | null>> = { http: {}, grpc: {}, httpHalfLoad: {}, httpHalfLoadBursts: {} };
  const spreadRounds: Record<string, number>[] = [];
  try {
    // Origins
    mkdirSync(join(dir, 'tmp'));
    const ngx = (name: string, workers: number, body: string) => {
      const f = join(dir, `${name}.conf`);
      writeFileSync(f, `worker_processes ${workers}; daemon off; pid ${dir}/${name}.pid; error_log ${dir}/${name}.err warn;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 10000000; keepalive_timeout 300s;
  client_body_temp_path ${dir}/tmp; proxy_temp_path ${dir}/tmp; fastcgi_temp_path ${dir}/tmp; uwsgi_temp_path ${dir}/tmp; scgi_temp_path ${dir}/tmp;
  ${body} }\n`);
      return f;
    };
    await start('nginx', ['-c', ngx('origin', 1, `server { listen 127.0.0.1:${origin}; location / { default_type text/plain; return 200 "${BODY}"; } }`), '-p', dir], origin);
    await start(process.execPath, [...self, 'grpc-origin', String(grpcOrigin)], 'stdout');
    // Proxies
    const weft = await start(process.execPath, [...weftSelf, 'weft', String(weftH), String(weftG), String(origin), String(grpcOrigin), '2'], 'stdout');
    const weft1 = await start(process.execPath, [...weftSelf, 'weft', String(weft1H), String(weft1G), String(origin), String(grpcOrigin), '1'], 'stdout');
    const nginx = await start('nginx', ['-c', ngx('proxy', 2, `
      upstream o { server 127.0.0.1:${origin}; keepalive 128; }
      upstream g { server 127.0.0.1:${grpcOrigin}; keepalive 128; }
      server { listen 127.0.0.1:${nginxH}; location / { proxy_pass http://o; proxy_http_version 1.1; proxy_set_header Connection ""; } }
      server { listen 127.0.0.1:${nginxG} http2; location / { grpc_pass grpc://g; } }`), '-p', dir], nginxH);
    const haCfg = join(dir, 'haproxy.cfg');
    writeFileSync(haCfg, `global
  nbthread 2
  maxconn 8000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
frontend fh
  bind 127.0.0.1:${haH}
  default_backend bh
backend bh
  server o 127.0.0.1:${origin}
frontend fg
  bind 127.0.0.1:${haG} proto h2
  default_backend bg
backend bg
  server g 127.0.0.1:${grpcOrigin} proto h2
`);
    const haproxy = await start('haproxy', ['-f', haCfg, '-db'], haH);
    // The node path: the same origin, weft and HAProxy inside a weft node's workload
    // cgroup, with weft's datapath loaded.
    let mesh: string | undefined;
    let mWeft: ChildProcess | null = null, mHa: ChildProcess | null = null;
    if (process.env.L7_BENCH_NODE_PATH !== '0') {
      try {
        dp = await Datapath.open({ node, logger: createRootLogger({ level: 'warn' }) });
        mesh = dp.createWorkloadCgroup('bench', 'l7').path;
      } catch (e) {
        process.stderr.write(`node-path rows skipped: weft's datapath did not load (${(e as Error).message}); they need root, bpffs and cgroup v2\n`);
      }
    }
    if (dp && mesh) {
      await start('nginx', ['-c', ngx('morigin', 1, `server { listen 127.0.0.1:${mOrigin}; location / { default_type text/plain; return 200 "${BODY}"; } }`), '-p', dir], mOrigin, mesh);
      await start(process.execPath, [...self, 'grpc-origin', String(mGrpcOrigin)], 'stdout', mesh);
      mWeft = await start(process.execPath, [...weftSelf, 'weft', String(mWeftH), String(mWeftG), String(mOrigin), String(mGrpcOrigin), '1'], 'stdout', mesh);
      const mHaCfg = join(dir, 'haproxy-node.cfg');
      writeFileSync(mHaCfg, readFileSync(haCfg, 'utf8').replaceAll(`:${haH}`, `:${mHaH}`).replaceAll(`:${haG}`, `:${mHaG}`)
        .replaceAll(`:${origin}`, `:${mOrigin}`).replaceAll(`:${grpcOrigin}`, `:${mGrpcOrigin}`));
      mHa = await start('haproxy', ['-f', mHaCfg, '-db'], mHaH, mesh);
      // What the agent marks eager (eagerHops): its listeners and the local endpoints it
      // pools to. HAProxy's listeners get the same treatment.
      dp.setEagerEndpoints([mWeftH, mWeftG, mHaH, mHaG, mOrigin, mGrpcOrigin].map((port) => ({ ip: '127.0.0.1', port })));
    }
    const httpProxy = await start(process.execPath, [...self, 'http-proxy', String(hp), String(origin)], 'stdout');

    type Target = [string, number, ChildProcess | null, string?];
    const nodePath = (rows: Target[]): Target[] => (mesh ? rows : []);
    const httpTargets: Target[] = [
      ['direct', origin, null], ['weft (2 workers)', weftH, weft], ['weft (1 process)', weft1H, weft1], ['nginx', nginxH, nginx], ['haproxy', haH, haproxy], ['http-proxy', hp, httpProxy],
      ...nodePath([['node path: direct', mOrigin, null, mesh], ['node path: weft (1 process)', mWeftH, mWeft, mesh], ['node path: haproxy', mHaH, mHa, mesh]]),
    ];
    const grpcFrame = join(dir, 'grpc.bin');
    const msg = Buffer.from('hello weft bench');
    const frame = Buffer.alloc(5 + msg.length);
    frame.writeUInt32BE(msg.length, 1);
    msg.copy(frame, 5);
    writeFileSync(grpcFrame, frame);
    const grpcTargets: Target[] = [
      ['direct', grpcOrigin, null], ['weft (2 workers)', weftG, weft], ['weft (1 process)', weft1G, weft1], ['nginx', nginxG, nginx], ['haproxy', haG, haproxy],
      ...nodePath([['node path: direct', mGrpcOrigin, null, mesh], ['node path: weft (1 process)', mWeftG, mWeft, mesh], ['node path: haproxy', mHaG, mHa, mesh]]),
    ];
    const pidsOf = (c: ChildProcess | null) => (c === null ? [] : tree(c.pid!));

    const only = process.env.L7_BENCH_ONLY;
    // Partial runs for investigation (the default runs everything once):
    // L7_BENCH_PATHS=name,... keeps those HTTP paths ("direct" and "haproxy" are always
    // kept: latency is added over direct, ratios are HAProxy's); L7_BENCH_BURSTS=0 skips
    // the burst phase;
    // L7_BENCH_SPREAD_REPEAT=n runs the spread half-load phase n times, the paths in turn
    // within each round, and reports each path's p99 added of every round.
    const keep = process.env.L7_BENCH_PATHS?.split(',').map((x) => x.trim());
    const httpRun = keep ? httpTargets.filter(([name]) => name === 'direct' || name === 'haproxy' || keep.includes(name)) : httpTargets;
    const rounds = Math.max(1, Number(process.env.L7_BENCH_SPREAD_REPEAT ?? 1));
    const bursts = process.env.L7_BENCH_BURSTS !== '0';
    // Warm up every path once so pools and JITs are hot.
    if (only !== 'grpc') for (const [, port, , cg] of httpRun) await wrk(port, 1, cg);
    if (only !== 'grpc') for (const [name, port, c, cg] of httpRun) {
      results.http![name] = await measure(() => wrk(port, DURATION_S, cg), pidsOf(c));
      process.stderr.write(`http ${name}: ${results.http![name]!.rps.toFixed(0)} rps\n`);
    }
    // Half load: each path at half its own measured rps, latency from h2load's log;
    // arrivals evenly spread (the bar), and as h2load's synchronized bursts of 20.
    const halfS = Math.max(3, DURATION_S / 2);
    if (only !== 'grpc') for (let round = 0; round < rounds; round++) {
      for (const [name, port, c, cg] of httpRun) {
        const half = results.http![name]!.rps / 2;
        results.httpHalfLoad![name] = await measure(() => h2load(spreadLoad(half, halfS), `http://127.0.0.1:${port}/`, dir, cg, `spread-${name.replace(/\W+/g, '_')}`), pidsOf(c));
        if (bursts) results.httpHalfLoadBursts![name] = await measure(() => h2load(['--h1', '-c20', `--rps=${Math.max(1, Math.floor(half / 20))}`, '-D', String(halfS)], `http://127.0.0.1:${port}/`, dir, cg), pidsOf(c));
      }
      if (rounds > 1) {
        const r = results.httpHalfLoad!;
        spreadRounds.push(Object.fromEntries(Object.entries(r).map(([name, x]) => [name, name === 'direct' ? x!.p99 : x!.p99 - r.direct!.p99])));
        process.stderr.write(`spread round ${round + 1}: ${Object.entries(spreadRounds.at(-1)!).map(([n, v]) => `${n} ${v.toFixed(3)}`).join(', ')} ms (direct: abs p99, others: p99 added)\n`);
      }
    }
    const grpcArgs = ['-c10', '-m10', '-D', String(DURATION_S), '-d', grpcFrame, '-H', 'content-type: application/grpc', '-H', 'te: trailers'];
    if (only !== 'http') for (const [, port, , cg] of grpcTargets) await h2load(['-c4', '-m4', '-D', '1', '-d', grpcFrame, '-H', 'content-type: application/grpc', '-H', 'te: trailers'], `http://127.0.0.1:${port}/bench.Echo/Echo`, dir, cg);
    if (only !== 'http') for (const [name, port, c, cg] of grpcTargets) {
      results.grpc![name] = await measure(() => h2load(grpcArgs, `http://127.0.0.1:${port}/bench.Echo/Echo`, dir, cg), pidsOf(c));
      process.stderr.write(`grpc ${name}: ${results.grpc![name]!.rps.toFixed(0)} rps\n`);
    }
  } finally {
    // Whole process trees: an nginx master killed alone leaves its workers running.
    const roots = children.map((c) => c.pid!);
    for (const f of ['origin', 'proxy', 'morigin']) { try { roots.push(Number(readFileSync(join(dir, `${f}.pid`), 'utf8'))); } catch { /* not started */ } }
    for (const pid of roots.flatMap(tree)) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
    await new Promise((r) => setTimeout(r, 200));
    if (dp) { try { dp.close(); Datapath.cleanup(node); } catch (e) { process.stderr.write(`cleanup of node ${node}: ${String(e)}\n`); } }
    rmSync(dir, { recursive: true, force: true });
  }
  report(results, spreadRounds);
}

function report(results: Record<string, Record<string, Result | null>>, spreadRounds: Record<string, number>[]): void {
  const lines: string[] = [];
  const f = (n: number, d = 2) => (Number.isFinite(n) ? n.toFixed(d) : 'n/a');
  for (const [kind, label] of [['http', 'HTTP/1.1 keep-alive, 100 B body (wrk -t2 -c50)'], ['httpHalfLoad', 'HTTP/1.1 at half of each path\'s max rps, arrivals evenly spread (h2load --h1 -c20, staggered)'], ['httpHalfLoadBursts', 'HTTP/1.1 at half of each path\'s max rps, 20 requests at once (h2load --h1 -c20 --rps)'], ['grpc', 'gRPC unary (h2load -c10 -m10, grpc-js origin)']] as const) {
    const r = results[kind]!;
    if (r.direct === undefined) continue;
    const ha = r.haproxy!;
    lines.push('', `## ${label}`, '| path | rps | rps vs direct | rps vs HAProxy | p50 added ms | p99 added ms | proxy CPU µs/req | CPU vs HAProxy | proxy RSS MiB | errors |', '|---|---|---|---|---|---|---|---|---|---|');
    for (const [name, x] of Object.entries(r)) {
      if (x === null) continue;
      // Node-path rows add latency over the node path's own direct connection.
      const direct = (name.startsWith('node path:') ? r['node path: direct'] : undefined) ?? r.direct!;
      const proxied = !name.endsWith('direct');
      lines.push(`| ${name} | ${f(x.rps, 0)} | ${f(x.rps / direct.rps)} | ${f(x.rps / ha.rps)} | ${proxied ? f(x.p50 - direct.p50, 3) : f(x.p50, 3) + ' (abs)'} | ${proxied ? f(x.p99 - direct.p99, 3) : f(x.p99, 3) + ' (abs)'} | ${proxied ? f(x.cpuUsPerReq, 1) : '-'} | ${proxied ? f(x.cpuUsPerReq / ha.cpuUsPerReq) : '-'} | ${proxied ? f(x.rssMiB, 0) : '-'} | ${x.errors} |`);
    }
  }
  const text = lines.join('\n');
  process.stdout.write(`${text}\n`);
  mkdirSync(join(__dirname, 'results'), { recursive: true });
  writeFileSync(join(__dirname, 'results', 'l7.json'), JSON.stringify({ date: new Date().toISOString(), durationS: DURATION_S, results, ...(spreadRounds.length > 0 ? { spreadRounds } : {}) }, null, 2));
}

const argv = process.argv.slice(2);
if (argv[0] === '--serve') {
  const [, what, ...a] = argv;
  const n = a.map(Number);
  (what === 'weft' ? serveWeft(n[0]!, n[1]!, n[2]!, n[3]!, n[4]!) : what === 'http-proxy' ? serveHttpProxy(n[0]!, n[1]!) : serveGrpcOrigin(n[0]!))
    .catch((e) => { process.stderr.write(`${e}\n`); process.exit(1); });
} else {
  main().catch((e) => { process.stderr.write(`${e instanceof Error ? e.stack : e}\n`); for (const c of children) c.kill('SIGKILL'); process.exit(1); });
}
