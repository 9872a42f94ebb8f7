// Kubernetes mode: the datapath attached to a kubelet-shaped cgroup tree (a temp
// `kubepods.slice` with a Burstable QoS slice, pods and container scopes, and
// Guaranteed pods directly below it) instead of weft's own tree, and the skip map that
// leaves chosen pods alone — their containers included, also ones created later.
// Traffic stays inside the namespaces the tests create; the VIP exists only there.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import pino from 'pino';
import * as native from 'weft-native';

import { Datapath } from '../../agent/datapath/datapath';
import { endpointCodec } from '../../agent/datapath/codec';
import { CGROUP_PROGRAMS, MAPS } from '../../agent/datapath/programs';
import { createTestCgroup, inCgroup } from '../lib/cgroup';
import { createNetns, vethPair, type Netns } from '../lib/netns';
import { requires } from '../lib/privileges';
import { CLIENT, LineReader } from './fixtures/datapath/harness';

const SERVER = join(__dirname, 'fixtures', 'datapath', 'server.js');
const VIP = '10.96.0.90';
const BACKEND = '10.0.9.1';
const VIP_DIRECT = `${VIP}:80`;       // what answers when a connect to the VIP is not rewritten
const BACKEND_EP = `${BACKEND}:8080`;
const VIP6 = 'fd00:96::90';
const BACKEND6 = 'fd00:9::1';

const uid = (n: number) => `0000000${n}-aaaa-4bbb-8ccc-00000000000${n}`;
const slice = (n: number) => uid(n).replace(/-/g, '_');

interface Tree {
  kubepods: string;
  /** Pod cgroup and its first container, by name. */
  pods: Record<'a' | 'b' | 'c' | 'g', { pod: string; ctr: string }>;
  removeAll(): void;
}

/** <tmp>/kubepods.slice with Burstable pods a, b and Guaranteed pods c, g (one
 *  container each), as kubelet's systemd driver lays them out. */
function kubeTree(): Tree {
  const base = createTestCgroup('wt-kube');
  const kubepods = join(base.path, 'kubepods.slice');
  const burstable = join(kubepods, 'kubepods-burstable.slice');
  const pod = (n: number, guaranteed: boolean) => {
    const p = guaranteed ? join(kubepods, `kubepods-pod${slice(n)}.slice`) : join(burstable, `kubepods-burstable-pod${slice(n)}.slice`);
    const ctr = join(p, `cri-containerd-${'c'.repeat(8)}${n}.scope`);
    mkdirSync(ctr, { recursive: true });
    return { pod: p, ctr };
  };
  const pods = { a: pod(1, false), b: pod(2, false), c: pod(3, true), g: pod(4, true) };
  const tree: Tree = {
    kubepods, pods,
    removeAll() {
      if (existsSync(kubepods)) {
        // Kill whatever still runs below (servers the test started), wait until the
        // tree is unpopulated, then remove it children first.
        writeFileSync(join(kubepods, 'cgroup.kill'), '1');
        const populated = () => /^populated 1$/m.test(readFileSync(join(kubepods, 'cgroup.events'), 'utf8'));
        for (let i = 0; i < 250 && populated(); i++) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
        const walk = (dir: string): string[] => [dir, ...readdirSync(dir, { withFileTypes: true })
          .filter((e) => e.isDirectory()).flatMap((e) => walk(join(dir, e.name)))];
        for (const dir of walk(kubepods).reverse()) rmdirSync(dir);
      }
      base.remove();
    },
  };
  return tree;
}

/** One t.after that runs every step (the kubepods tree last: it needs the processes
 *  gone), even when an earlier one throws; the first error is rethrown. */
function teardown(t: TestContext, ...steps: (() => void)[]): void {
  t.after(() => {
    let first: unknown;
    for (const step of steps) { try { step(); } catch (e) { first ??= e; } }
    if (first) throw first;
  });
}

async function open(node: string, captureRoot?: string): Promise<Datapath> {
  return Datapath.open({ node, logger: pino({ level: 'silent' }), ...(captureRoot ? { captureRoot } : {}) });
}

async function server(ns: Netns, mode: string, endpoints: string[], cgroup?: string): Promise<LineReader> {
  const argv = ['node', SERVER, mode, ...endpoints];
  const r = new LineReader(ns.spawn(cgroup ? inCgroup(cgroup, argv) : argv));
  assert.equal(await r.next(), 'ready');
  return r;
}

interface Many { counts: Record<string, number>; errors: Record<string, number>; peer: [string, number] }
async function many(ns: Netns, cgroup: string, host: string, port: number, n = 4): Promise<Many> {
  const r = await ns.exec(inCgroup(cgroup, ['node', CLIENT, 'many', host, String(port), String(n), '2']), { timeoutMs: 30_000 });
  return JSON.parse(r.stdout.trim().split('\n').pop() || JSON.stringify({ fatal: r.stderr })) as Many;
}

const id = (path: string) => native.cgroupId(path);
const progIds = (cgroup: string, type: string) => native.queryCgroup(cgroup, type).progIds;

test('captureRoot: pods under kubepods are balanced, skipped pods (and their new containers) are left alone, weft/<node> is never created', async (t) => {
  if (!requires(t, { bpffs: true, netns: true, cgroup2: true })) return;
  const tree = kubeTree();
  const node = `wt-kube-${process.pid}`;
  const ns = createNetns('wt-kube');
  let dp: Datapath | undefined;
  teardown(t, () => ns.destroy(), () => dp?.close(), () => Datapath.cleanup(node), () => tree.removeAll());
  ns.addAddress(`${BACKEND}/32`);
  ns.addAddress(`${VIP}/32`);
  for (const a of [VIP6, BACKEND6]) ns.run(['ip', 'addr', 'add', `${a}/128`, 'dev', 'lo', 'nodad']);
  await server(ns, 'tcp', [BACKEND_EP, VIP_DIRECT, `${BACKEND6}:8080`, `${VIP6}:80`]);
  await server(ns, 'udp', [`${BACKEND}:5353`, `${VIP}:53`]);

  dp = await open(node, tree.kubepods);
  assert.equal(dp.captureRoot, tree.kubepods);
  assert.equal(existsSync(dp.layout.cgroupRoot), false, 'no weft/<node> cgroups in captureRoot mode');
  for (const a of dp.attachments) assert.equal(a.cgroup, tree.kubepods, `${a.program} attached to the capture root`);
  assert.deepEqual(progIds(tree.kubepods, 'cgroup_inet4_connect'), [dp.attachments.find((a) => a.program === 'weft_connect4')!.progId]);
  assert.deepEqual(progIds(tree.kubepods, 'cgroup_sock_ops'), [dp.attachments.find((a) => a.program === 'weft_sockops')!.progId]);
  assert.throws(() => dp!.joinAgentCgroup(process.pid), /does not move processes into the agent cgroup/);
  assert.throws(() => dp!.createWorkloadCgroup('default', 'web'), /does not create workload cgroups/);
  dp.applyServices([
    { vip: VIP, port: 80, protocol: 'tcp', mode: 'l4', backends: [{ ip: BACKEND, port: 8080, weight: 1 }] },
    { vip: VIP6, port: 80, protocol: 'tcp', mode: 'l4', backends: [{ ip: BACKEND6, port: 8080, weight: 1 }] },
    { vip: VIP, port: 53, protocol: 'udp', mode: 'l4', backends: [{ ip: BACKEND, port: 5353, weight: 1 }] },
  ]);
  // connect6 + getpeername6, and unconnected UDP (sendmsg4 + recvmsg4): who answered and
  // where the reply appeared to come from.
  const v6 = async (cg: string) => { const r = await many(ns, cg, VIP6, 80, 2); return [Object.keys(r.counts), r.peer]; };
  const udp = async (cg: string) => {
    const r = await ns.exec(inCgroup(cg, ['node', CLIENT, 'udp', VIP, '53']), { timeoutMs: 30_000 });
    return JSON.parse(r.stdout.trim().split('\n').pop() || '{}') as { from: string; body: string };
  };
  const v6Balanced = [[`${BACKEND6}:8080`], [VIP6, 80]], v6Untouched = [[`${VIP6}:80`], [VIP6, 80]];
  const udpBalanced = { from: `${VIP}:53`, body: `${BACKEND}:5353` }, udpUntouched = { from: `${VIP}:53`, body: `${VIP}:53` };

  const balanced = (r: Many, what: string) => {
    assert.deepEqual(r.counts, { [BACKEND_EP]: 4 }, `${what}: balanced to the backend (${JSON.stringify(r)})`);
    assert.deepEqual(r.peer, [VIP, 80], `${what}: getpeername shows the VIP`);
  };
  const untouched = (r: Many, what: string) => {
    assert.deepEqual(r.counts, { [VIP_DIRECT]: 4 }, `${what}: not rewritten (${JSON.stringify(r)})`);
    assert.deepEqual(r.peer, [VIP, 80]);
  };
  for (const p of ['a', 'b', 'c', 'g'] as const) balanced(await many(ns, tree.pods[p].ctr, VIP, 80), `pod ${p} before any skip`);

  // Skip pod b (Burstable: two levels below kubepods) and pod g (Guaranteed: one level).
  assert.deepEqual(dp.skippedCgroups(), []);
  const skip = [id(tree.pods.b.pod), id(tree.pods.g.pod)];
  assert.deepEqual(dp.setSkippedCgroups(skip), { added: skip, removed: [] });
  assert.deepEqual(dp.setSkippedCgroups([...skip].reverse()), { added: [], removed: [] }, 'a minimal diff');
  assert.throws(() => dp!.setSkippedCgroups([...skip, 0n]), /skipped cgroup 0 is not a cgroup id/);
  assert.deepEqual(dp.skippedCgroups(), [...skip].sort((x, y) => (x < y ? -1 : 1)), 'unchanged after the refused list');

  const c0 = dp.counters().connect_balanced;
  balanced(await many(ns, tree.pods.a.ctr, VIP, 80), 'Burstable pod a (not skipped)');
  balanced(await many(ns, tree.pods.c.ctr, VIP, 80), 'Guaranteed pod c (not skipped)');
  assert.equal(dp.counters().connect_balanced - c0, 8n);
  untouched(await many(ns, tree.pods.b.ctr, VIP, 80), 'container of skipped Burstable pod b');
  untouched(await many(ns, tree.pods.g.ctr, VIP, 80), 'container of skipped Guaranteed pod g');
  untouched(await many(ns, tree.pods.b.pod, VIP, 80), 'a process in skipped pod b\'s own cgroup');
  assert.equal(dp.counters().connect_balanced - c0, 8n, 'skipped connects are not counted as balanced');
  assert.deepEqual(await v6(tree.pods.a.ctr), v6Balanced, 'IPv6: captured pod balanced, getpeername6 shows the VIP');
  assert.deepEqual(await v6(tree.pods.b.ctr), v6Untouched, 'IPv6: skipped pod untouched');
  assert.deepEqual(await udp(tree.pods.c.ctr), udpBalanced, 'UDP: captured pod\'s datagram balanced, the reply shows the VIP');
  assert.deepEqual(await udp(tree.pods.g.ctr), udpUntouched, 'UDP: skipped pod\'s datagram untouched');
  // A container started after the pod was skipped is skipped too (never listed itself).
  const late = join(tree.pods.b.pod, 'cri-containerd-late.scope');
  mkdirSync(late);
  untouched(await many(ns, late, VIP, 80), 'a container created after its pod was skipped');
  const nested = join(tree.pods.g.ctr, 'sub');
  mkdirSync(nested);
  untouched(await many(ns, nested, VIP, 80), 'a nested cgroup inside a skipped Guaranteed pod\'s container');

  // A restarted agent adopts the skip map; removing an entry captures the pod again.
  dp.close();
  dp = await open(node, tree.kubepods);
  assert.ok(dp.attachments.every((a) => a.adopted), 'links adopted in place');
  assert.deepEqual(dp.skippedCgroups(), [...skip].sort((x, y) => (x < y ? -1 : 1)), 'the skip map is adopted');
  untouched(await many(ns, tree.pods.b.ctr, VIP, 80), 'still skipped after the restart');
  assert.deepEqual(dp.setSkippedCgroups([id(tree.pods.g.pod)]), { added: [], removed: [id(tree.pods.b.pod)] });
  balanced(await many(ns, tree.pods.b.ctr, VIP, 80), 'pod b after it left the skip map');
  untouched(await many(ns, tree.pods.g.ctr, VIP, 80), 'pod g still skipped');
  assert.deepEqual(dp.setSkippedCgroups([]), { added: [], removed: [id(tree.pods.g.pod)] });
  balanced(await many(ns, tree.pods.g.ctr, VIP, 80), 'pod g after the skip map emptied');
});

test('captureRoot: sockops neither inserts nor measures skipped sockets', async (t) => {
  if (!requires(t, { bpffs: true, netns: true, cgroup2: true })) return;
  const tree = kubeTree();
  const node = `wt-kube-so-${process.pid}`;
  const ns = createNetns('wt-kube-so');
  let dp: Datapath | undefined;
  teardown(t, () => ns.destroy(), () => dp?.close(), () => Datapath.cleanup(node), () => tree.removeAll());
  dp = await open(node, tree.kubepods);
  dp.setSkippedCgroups([id(tree.pods.b.pod)]);
  const accel = native.BpfMap.openPinned(join(dp.layout.pinRoot, MAPS.accel));
  t.after(() => accel.close());
  const learned = (port: number) => accel.lookup(endpointCodec.encode({ ip: '127.0.0.1', port })) !== null;
  const waitLearned = async (port: number) => { for (let i = 0; i < 100 && !learned(port); i++) await new Promise((r) => setTimeout(r, 20)); return learned(port); };

  // Pinned endpoints are inserted from the first connection, when both sides are captured.
  dp.accelerate('127.0.0.1', 9090);
  dp.accelerate('127.0.0.1', 9091);
  await server(ns, 'tcp', ['127.0.0.1:9090'], tree.pods.a.ctr);
  await server(ns, 'tcp', ['127.0.0.1:9091'], tree.pods.b.ctr);
  let c = dp.counters().sockmap_inserts;
  assert.deepEqual((await many(ns, tree.pods.c.ctr, '127.0.0.1', 9090, 1)).counts, { '127.0.0.1:9090': 1 });
  assert.equal(dp.counters().sockmap_inserts - c, 2n, 'captured client and captured server: both inserted');
  c = dp.counters().sockmap_inserts;
  assert.deepEqual((await many(ns, tree.pods.b.ctr, '127.0.0.1', 9090, 1)).counts, { '127.0.0.1:9090': 1 });
  assert.equal(dp.counters().sockmap_inserts - c, 0n, 'skipped client: neither it nor (without its peer entry) the server is inserted');
  c = dp.counters().sockmap_inserts;
  assert.deepEqual((await many(ns, tree.pods.c.ctr, '127.0.0.1', 9091, 1)).counts, { '127.0.0.1:9091': 1 });
  assert.equal(dp.counters().sockmap_inserts - c, 1n, 'skipped server: only the captured client is inserted');

  // Server endpoints learn their bytes per connection at close, unless the server is skipped.
  await server(ns, 'tcp', ['127.0.0.1:9092'], tree.pods.a.ctr);
  await server(ns, 'tcp', ['127.0.0.1:9093'], tree.pods.b.ctr);
  await server(ns, 'tcp', ['127.0.0.1:9094'], tree.pods.g.ctr);
  assert.deepEqual((await many(ns, tree.pods.c.ctr, '127.0.0.1', 9092, 2)).counts, { '127.0.0.1:9092': 2 });
  assert.deepEqual((await many(ns, tree.pods.c.ctr, '127.0.0.1', 9093, 2)).counts, { '127.0.0.1:9093': 2 });
  assert.equal(await waitLearned(9092), true, 'a captured server endpoint is measured');
  assert.equal(learned(9093), false, 'a skipped server endpoint is not measured');
  // And a skip added later applies to the next connections (pod g: Guaranteed).
  dp.setSkippedCgroups([id(tree.pods.b.pod), id(tree.pods.g.pod)]);
  assert.deepEqual((await many(ns, tree.pods.c.ctr, '127.0.0.1', 9094, 2)).counts, { '127.0.0.1:9094': 2 });
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(learned(9094), false, 'a server in a newly skipped Guaranteed pod is not measured');
});

const CONNECT = `const s=require('net').connect({host:process.argv[1],port:8080});` +
  `const t=setTimeout(()=>{console.log('timeout');process.exit(0)},1500);` +
  `s.on('connect',()=>{console.log('connected');clearTimeout(t);s.end()});s.on('data',()=>{});` +
  `s.on('error',(e)=>{console.log(e.code);clearTimeout(t)})`;

test('captureRoot: STRICT drops an outsider\'s SYN to a captured pod and passes it to a skipped pod; cleanup leaves kubelet\'s cgroups', async (t) => {
  if (!requires(t, { bpffs: true, netns: true, cgroup2: true })) return;
  const tree = kubeTree();
  const node = `wt-kube-st-${process.pid}`;
  const ns = createNetns('wt-kube-st');
  const outside = createNetns('wt-kube-out');
  let dp: Datapath | undefined;
  teardown(t, () => outside.destroy(), () => ns.destroy(), () => dp?.close(), () => Datapath.cleanup(node), () => tree.removeAll());
  vethPair(ns, outside, { a: '192.168.80.1/24', b: '192.168.80.2/24' });
  outside.run(['ip', 'route', 'add', '10.250.1.0/24', 'via', '192.168.80.1']);
  ns.addAddress('10.250.1.11/32');
  ns.addAddress('10.250.1.12/32');
  ns.addAddress('10.250.1.13/32');
  await server(ns, 'tcp', ['10.250.1.11:8080'], tree.pods.a.ctr);   // captured, Burstable
  await server(ns, 'tcp', ['10.250.1.12:8080'], tree.pods.b.ctr);   // skipped, Burstable
  await server(ns, 'tcp', ['10.250.1.13:8080'], tree.pods.g.ctr);   // skipped, Guaranteed
  const from = async (to: string) => (await outside.exec([process.execPath, '-e', CONNECT, to], { timeoutMs: 10_000 })).stdout.trim();

  dp = await open(node, tree.kubepods);
  dp.setSkippedCgroups([id(tree.pods.b.pod), id(tree.pods.g.pod)]);
  dp.setMtlsMode('STRICT');
  assert.equal(dp.attachments.find((a) => a.program === 'weft_ingress')?.cgroup, tree.kubepods, 'the STRICT hook is on the capture root');
  const d0 = dp.counters().strict_drops;
  assert.equal(await from('10.250.1.11'), 'timeout', 'captured pod: the SYN from outside is dropped');
  assert.ok(dp.counters().strict_drops > d0);
  const d1 = dp.counters().strict_drops;
  assert.equal(await from('10.250.1.12'), 'connected', 'skipped Burstable pod: passes');
  assert.equal(await from('10.250.1.13'), 'connected', 'skipped Guaranteed pod: passes');
  assert.equal(dp.counters().strict_drops, d1, 'and nothing counted as dropped');
  dp.setSkippedCgroups([id(tree.pods.g.pod)]);
  assert.equal(await from('10.250.1.12'), 'timeout', 'pod b captured again: dropped');

  // Cleanup: every link and pin goes, kubelet's cgroups stay, weft/<node> never existed.
  dp.close();
  dp = undefined;
  const report = Datapath.cleanup(node);
  assert.equal(report.links.length, CGROUP_PROGRAMS.length, 'the STRICT hook included');
  assert.deepEqual([...report.maps].sort(), Object.values(MAPS).sort(), 'every map pin, the skip maps included');
  assert.deepEqual(report.cgroups, []);
  assert.deepEqual(report.movedPids, [], 'no process was moved out of kubelet\'s cgroups');
  for (const dir of [tree.kubepods, tree.pods.a.ctr, tree.pods.b.pod, tree.pods.g.ctr]) assert.ok(existsSync(dir), `${dir} kept`);
  for (const type of ['cgroup_inet4_connect', 'cgroup_sock_ops', 'cgroup_inet_ingress']) assert.deepEqual(progIds(tree.kubepods, type), [], `${type} detached`);
  assert.equal(await from('10.250.1.11'), 'connected', 'nothing enforced any more');
  assert.deepEqual(Datapath.inspect(node).links, []);
});

test('captureRoot: links pinned for another cgroup are replaced (weft tree ↔ capture root), then adopted in place', async (t) => {
  if (!requires(t, { bpffs: true, cgroup2: true })) return;
  const tree = kubeTree();
  const node = `wt-kube-mv-${process.pid}`;
  let dp: Datapath | undefined;
  teardown(t, () => dp?.close(), () => Datapath.cleanup(node), () => tree.removeAll());

  dp = await open(node);
  dp.setMtlsMode('STRICT');
  const own = new Map(dp.attachments.map((a) => [a.program, a]));
  const workloads = dp.layout.workloadsCgroup;
  assert.deepEqual(progIds(workloads, 'cgroup_inet4_connect'), [own.get('weft_connect4')!.progId]);
  dp.close();

  dp = await open(node, tree.kubepods);
  assert.equal(dp.attachments.length, CGROUP_PROGRAMS.length, 'the STRICT hook moves too');
  for (const a of dp.attachments) {
    assert.equal(a.adopted, false, a.program);
    assert.equal(a.replacedLinkId, own.get(a.program)!.linkId, `${a.program}: replaced the link pinned for weft's tree`);
    assert.equal(a.cgroup, tree.kubepods);
  }
  for (const type of ['cgroup_inet4_connect', 'cgroup_inet_ingress']) assert.deepEqual(progIds(workloads, type), [], `${type}: nothing left on weft's tree`);
  assert.deepEqual(progIds(dp.layout.cgroupRoot, 'cgroup_sock_ops'), []);
  assert.deepEqual(progIds(tree.kubepods, 'cgroup_inet4_connect'), [dp.attachments.find((a) => a.program === 'weft_connect4')!.progId]);
  const links = Datapath.inspect(node).links;
  assert.equal(links.length, CGROUP_PROGRAMS.length, 'one pin per program, no staging pin left');
  for (const l of links) assert.equal(l.cgroupId, id(tree.kubepods), `${l.name} pinned link is on the capture root`);
  const moved = new Map(dp.attachments.map((a) => [a.program, a]));
  dp.close();

  dp = await Datapath.open({ node, captureRoot: tree.kubepods, skippedCgroups: [id(tree.pods.b.pod)], logger: pino({ level: 'silent' }) });
  assert.deepEqual(dp.skippedCgroups(), [id(tree.pods.b.pod)], 'skippedCgroups given to open() are in the map');
  for (const a of dp.attachments) {
    assert.equal(a.adopted, true, `${a.program}: same capture root, adopted`);
    assert.equal(a.linkId, moved.get(a.program)!.linkId);
  }
  dp.close();

  // And back: without captureRoot the links return to weft's own tree.
  dp = await open(node);
  for (const a of dp.attachments) assert.equal(a.cgroup === workloads || a.cgroup === dp.layout.cgroupRoot, true, a.program);
  assert.deepEqual(progIds(tree.kubepods, 'cgroup_inet4_connect'), []);
  assert.deepEqual(progIds(workloads, 'cgroup_inet4_connect'), [dp.attachments.find((a) => a.program === 'weft_connect4')!.progId]);
});

test('captureRoot must be an existing cgroup v2 directory', async (t) => {
  if (!requires(t, { bpffs: true, cgroup2: true })) return;
  const node = `wt-kube-bad-${process.pid}`;
  t.after(() => Datapath.cleanup(node));
  await assert.rejects(Datapath.open({ node, captureRoot: 'kubepods.slice' }), /captureRoot "kubepods.slice" is not an absolute path/);
  await assert.rejects(Datapath.open({ node, captureRoot: '/sys/fs/cgroup/wt-no-such-dir' }), /captureRoot \/sys\/fs\/cgroup\/wt-no-such-dir is not a cgroup v2 directory/);
  await assert.rejects(Datapath.open({ node, captureRoot: '/tmp' }), /captureRoot \/tmp is not a cgroup v2 directory/);
  await assert.rejects(Datapath.open({ node, skippedCgroups: [-1n] }), /skipped cgroup -1 is not a cgroup id/);
});
