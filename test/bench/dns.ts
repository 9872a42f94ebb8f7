// DNS benchmark (npm run bench:dns): how long a workload waits for the answer to a mesh
// name through the agent's DNS proxy, captured in the kernel (issue #17 part 3: p99 under
// 1 ms). In a network namespace it creates: the node's BPF datapath with DNS capture on,
// the agent's DNS server (agent/dns/, run as its own process outside the workloads cgroup
// like the agent, with 1001 mesh names), and dnsmasq as the node's upstream resolver.
// A client in a workload cgroup sends sequential queries (one in flight, each timed from
// send to answer) to a resolver address nothing listens on — the kernel sends them to the
// agent — and the same to the listener directly (what capture adds), over UDP and TCP,
// plus an outside name (forwarded to dnsmasq) and dnsmasq answering directly (a C
// resolver's local answer, for scale). Variants alternate per round (rotating order);
// each figure is the median over rounds. Writes test/bench/results/dns.json.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';

import { Datapath } from '../../agent/datapath/datapath';
import { packageRoot } from '../../agent/lib/paths';
import { inCgroup } from '../lib/cgroup';
import { createNetns } from '../lib/netns';
import { printTable } from './table';

const ROUNDS = Number(process.env.DNS_BENCH_ROUNDS ?? 5);
const QUERIES = Number(process.env.DNS_BENCH_QUERIES ?? 5000);
const WARMUP = 500;
const SERVICES = 1000;
const LISTENER = { ip: '127.0.0.1', port: 15053 };
/** The workload's configured resolver: nothing listens there; only capture answers. */
const RESOLVER = '10.0.9.53';
const UPSTREAM = '127.0.0.2';
const MESH_NAME = 'catalog.shop.svc.cluster.local';
const OUTSIDE_NAME = 'www.outside.test';
const TARGET_P99_US = 1000;

interface Sample { n: number; p50Us: number; p90Us: number; p99Us: number; maxUs: number; qps: number; answers: number }

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench:dns needs root (netns, BPF)');
  for (const c of ['dnsmasq', 'nsenter']) execFileSync('sh', ['-c', `command -v ${c}`], { stdio: 'ignore' });
  const node = `dnsb${process.pid}`;
  const ns = createNetns('wt-dnsb');
  let dp: Datapath | null = null;
  const cleanup = () => {
    try { ns.destroy(); } catch (e) { process.stderr.write(`cleanup netns: ${String(e)}\n`); }
    try { dp?.close(); Datapath.cleanup(node); } catch (e) { process.stderr.write(`cleanup datapath: ${String(e)}\n`); }
  };
  process.once('SIGINT', () => { cleanup(); process.exit(130); });
  try {
    dp = await Datapath.open({ node, logger: pino({ level: 'warn' }) });
    const mesh = dp.createWorkloadCgroup('bench', 'client').path;
    dp.setDnsCapture(LISTENER);

    ns.spawn(['dnsmasq', '--keep-in-foreground', '--conf-file=/dev/null', '--pid-file=', '--user=root', '--group=root',
      `--listen-address=${UPSTREAM}`, '--bind-interfaces', '--port=53', '--no-resolv', '--no-hosts', `--address=/${OUTSIDE_NAME}/192.0.2.80`], { stdio: 'ignore' });
    const server = ns.spawn([process.execPath, '--import', 'tsx', join(__dirname, 'dns', 'server.ts'), LISTENER.ip, String(LISTENER.port), UPSTREAM, String(SERVICES)],
      { cwd: packageRoot(), stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      server.stdout!.on('data', (d: Buffer) => { if (d.toString().startsWith('ready')) resolve(); });
      server.once('exit', (c) => reject(new Error(`DNS server exited (${c})`)));
    });
    const client = async (transport: 'udp' | 'tcp', host: string, port: number, name: string, inMesh: boolean): Promise<Sample> => {
      const argv = [process.execPath, join(__dirname, 'dns', 'client.js'), transport, host, String(port), name, String(QUERIES), String(WARMUP)];
      const r = await ns.exec(inMesh ? inCgroup(mesh, argv) : argv, { timeoutMs: 120_000 });
      if (r.code !== 0) throw new Error(`client ${transport} ${host}:${port} ${name}: ${r.stderr}`);
      const s = JSON.parse(r.stdout) as Sample;
      if (s.answers !== s.n) throw new Error(`${name} via ${host}:${port}: ${s.n - s.answers} queries got no answer record`);
      return s;
    };
    const variants: Record<string, () => Promise<Sample>> = {
      'mesh name, captured, UDP': () => client('udp', RESOLVER, 53, MESH_NAME, true),
      'mesh name, captured, TCP': () => client('tcp', RESOLVER, 53, MESH_NAME, true),
      'mesh name, to the listener, UDP': () => client('udp', LISTENER.ip, LISTENER.port, MESH_NAME, true),
      'outside name, captured → dnsmasq, UDP': () => client('udp', RESOLVER, 53, OUTSIDE_NAME, true),
      'dnsmasq directly (local answer), UDP': () => client('udp', UPSTREAM, 53, OUTSIDE_NAME, false),
    };
    const names = Object.keys(variants);
    const runs: Record<string, Sample[]> = Object.fromEntries(names.map((n) => [n, []]));
    process.stderr.write(`bench:dns ${ROUNDS} rounds x ${QUERIES} queries per variant `);
    for (let r = 0; r < ROUNDS; r++) {
      for (let i = 0; i < names.length; i++) {
        const name = names[(i + r) % names.length]!;
        runs[name]!.push(await variants[name]!());
        process.stderr.write('.');
      }
    }
    process.stderr.write('\n');
    const med = Object.fromEntries(names.map((n) => [n, Object.fromEntries((['p50Us', 'p90Us', 'p99Us', 'maxUs', 'qps'] as const).map((k) => [k, median(runs[n]!.map((s) => s[k]))]))])) as Record<string, Record<string, number>>;
    process.stdout.write(`bench:dns — ${ROUNDS} rounds x ${QUERIES} sequential queries per variant, medians over rounds; ${SERVICES + 1} mesh names; kernel ${release()}\n`);
    printTable([
      ['variant', 'p50 µs', 'p90 µs', 'p99 µs', 'max µs', 'queries/s'],
      ...names.map((n) => [n, med[n]!.p50Us!.toFixed(0), med[n]!.p90Us!.toFixed(0), med[n]!.p99Us!.toFixed(0), med[n]!.maxUs!.toFixed(0), med[n]!.qps!.toFixed(0)]),
    ]);
    const p99 = med['mesh name, captured, UDP']!.p99Us!;
    const verdict = p99 < TARGET_P99_US ? 'met' : 'MISSED';
    process.stdout.write(`mesh name p99 through kernel capture: ${p99.toFixed(0)} µs (target < ${TARGET_P99_US} µs: ${verdict}); capture adds ${(med['mesh name, captured, UDP']!.p50Us! - med['mesh name, to the listener, UDP']!.p50Us!).toFixed(0)} µs at p50\n`);
    const dir = join(packageRoot(), 'test', 'bench', 'results');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'dns.json'), JSON.stringify({
      bench: 'dns', date: new Date().toISOString(), kernel: release(), rounds: ROUNDS, queries: QUERIES, meshNames: SERVICES + 1,
      targetP99Us: TARGET_P99_US, meshNameP99Us: p99, target: verdict, medians: med, samples: runs,
    }, null, 2));
    process.stdout.write('wrote test/bench/results/dns.json\n');
  } finally {
    cleanup();
  }
}

main().catch((e) => { process.stderr.write(`bench:dns failed: ${e instanceof Error ? e.stack : String(e)}\n`); process.exit(1); });
