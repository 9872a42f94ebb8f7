// The single-machine Kubernetes harness (test/lib/cluster.ts) itself: two nodes (one
// with a dotted EC2-style name), a Burstable and a BestEffort pod on each running a tiny
// HTTP server under runc, and a DaemonSet-style pod (privileged, hostNetwork, hostPID,
// bpffs and the node's cgroup tree mounted). Checks that every pod process is in its
// kubelet-shaped cgroup v2 scope and its own network namespace with its IP, that weft's
// pod-cgroup resolver finds the pods, that pods reach each other across nodes unNATed,
// that the API server holds kubelet-shaped Pods (listed by spec.nodeName, also from
// inside a pod through client-node's in-cluster config), that a container restart makes
// a new scope in the same pod cgroup and updates the status, that a deleted pod leaves
// nothing, and that cleanup leaves no namespace, cgroup, runc state or process behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { requires } from '../lib/privileges';
import { createCluster, sweepStaleClusters, type Pod } from '../lib/cluster';
import { cgroupMounts, cgroupV2Of } from '../lib/kube-cgroups';
import { runcList } from '../lib/runc';
import { loadDaemonSet, podOptionsFromTemplate } from '../lib/pod-template';
import { resolvePodCgroup } from '../../agent/discovery/pod-cgroup';
import { cgroup2Root } from '../../agent/datapath/layout';
import { until } from '../lib/wait';

const SERVER = `
const http = require('node:http');
const fs = require('node:fs');
http.createServer((req, res) => {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({
    pod: process.env.POD_NAME, node: process.env.NODE_NAME, podIP: process.env.POD_IP,
    cgroup: fs.readFileSync('/proc/self/cgroup', 'utf8').split('\\n').find((l) => l.startsWith('0::')),
    peer: req.socket.remoteAddress, local: req.socket.localAddress,
  }));
}).listen(8080, '0.0.0.0', () => console.log('listening'));
process.on('SIGTERM', () => process.exit(0));
`;

const GET = `
const [url] = process.argv.slice(1);
fetch(url).then((r) => r.text()).then((t) => { process.stdout.write(t); }, (e) => { console.error(String(e.cause ?? e)); process.exit(1); });
`;

const LIST_IN_CLUSTER = `
import('/opt/weft/node_modules/@kubernetes/client-node/dist/index.js').then(async (k8s) => {
  const kc = new k8s.KubeConfig();
  kc.loadFromCluster();
  const pods = await kc.makeApiClient(k8s.CoreV1Api).listPodForAllNamespaces({ fieldSelector: 'spec.nodeName=' + process.argv[1] });
  process.stdout.write(JSON.stringify({ server: kc.getCurrentCluster().server, pods: pods.items.map((p) => p.metadata.namespace + '/' + p.metadata.name).sort() }));
}).catch((e) => { console.error(e.stack || String(e)); process.exit(1); });
`;

const DISCOVER = `
const pino = require('pino');
const { KubernetesDiscovery } = require('/opt/weft/agent/discovery/kubernetes.ts');
const d = new KubernetesDiscovery({ node: { name: process.env.NODE_NAME, cgroupRoot: '/sys/fs/cgroup', localPodsOnly: true }, logger: pino({ level: 'silent' }) });
const timer = setTimeout(() => { console.error('no sync within 30 s'); process.exit(1); }, 30000);
d.start().then(async () => {
  clearTimeout(timer);
  process.stdout.write('RESULT ' + JSON.stringify(d.objects()) + '\\n');
  await d.stop();
  process.exit(0);
}, (e) => { console.error(e); process.exit(1); });
`;

const inode = (p: string): bigint => statSync(p, { bigint: true }).ino;

test('a 2-node cluster: pods under runc in kubelet cgroups, pod-to-pod across nodes, kubelet-shaped API objects, restarts, deletes, cleanup', { timeout: 180_000 }, async (t) => {
  if (!requires(t, { root: true, netns: true, cgroup2: true, commands: ['runc', 'nsenter', 'sysctl', 'curl'] })) return;
  await sweepStaleClusters();
  const cluster = await createCluster(t);
  const node1 = await cluster.addNode('ip-10-0-1-2.ec2.internal', { zone: 'us-east-1a' });
  const node2 = await cluster.addNode('node-2', { zone: 'us-east-1b' });

  const env = { POD_NAME: { fieldPath: 'metadata.name' }, POD_IP: { fieldPath: 'status.podIP' }, NODE_NAME: { fieldPath: 'spec.nodeName' } };
  const pods: Record<string, Pod> = {};
  for (const [node, i] of [[node1, 1], [node2, 2]] as const) {
    pods[`web-${i}`] = await cluster.addPod(node, {
      name: `web-${i}`, namespace: 'shop', serviceAccount: 'web', labels: { app: 'web' }, qos: 'Burstable',
      args: ['node', '-e', SERVER], env, ports: [{ containerPort: 8080, name: 'http' }],
    });
    pods[`batch-${i}`] = await cluster.addPod(node, {
      name: `batch-${i}`, namespace: 'shop', serviceAccount: 'batch', labels: { app: 'batch' }, qos: 'BestEffort',
      args: ['node', '-e', SERVER], env,
    });
  }
  for (const p of Object.values(pods)) await until(`${p.name} to listen (${JSON.stringify(p.logs())})`, () => p.logs().stdout.includes('listening'), { timeoutMs: 15_000, everyMs: 50 });

  await t.test('each pod process is in its kubelet-shaped cgroup v2 scope, found by weft\'s resolver', () => {
    for (const p of Object.values(pods)) {
      const uid_ = p.uid.replace(/-/g, '_');
      const q = p.qos.toLowerCase();
      const want = `/${cluster.cgroupBase}/${p.node.name}/kubepods.slice/kubepods-${q}.slice/kubepods-${q}-pod${uid_}.slice/cri-containerd-${p.container.id}.scope`;
      assert.match(p.container.id, /^[0-9a-f]{64}$/);
      assert.equal(cgroupV2Of(p.container.pid), want, p.name);
      assert.equal(p.container.cgroupPath, join(cgroup2Root(), want));
      assert.equal(dirname(p.container.cgroupPath), p.cgroupPath);
      // The agent's resolver, rooted at the node's tree (the agent's /sys/fs/cgroup there).
      const found = resolvePodCgroup(p.uid, p.node.cgroupPath, p.qos);
      assert.equal(found?.path, p.cgroupPath, p.name);
      assert.equal(found?.id, inode(p.cgroupPath));
      assert.equal(resolvePodCgroup(p.uid, p.node.cgroupPath)?.path, p.cgroupPath, `${p.name} without a QoS hint`);
    }
  });

  await t.test('each pod has its own network namespace with its IP', async () => {
    const seen = new Set<bigint>();
    for (const p of Object.values(pods)) {
      const ns = inode(`/proc/${p.container.pid}/ns/net`);
      assert.equal(ns, inode(`/run/netns/${p.netns.name}`), p.name);
      assert.notEqual(ns, inode(`/run/netns/${p.node.netns.name}`));
      seen.add(ns);
      assert.match(p.ip, new RegExp(`^10\\.81\\.${p.node.index}\\.\\d+$`));
      const addr = await p.exec(['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
      assert.equal(addr.code, 0, addr.stderr);
      assert.match(addr.stdout, new RegExp(`inet ${p.ip.replace(/\./g, '\\.')}/24`));
    }
    assert.equal(seen.size, 4);
  });

  await t.test('pod to pod across nodes, unNATed, and the outsider reaches pods on the LAN', async () => {
    for (const [from, to] of [['web-1', 'web-2'], ['batch-2', 'web-1'], ['web-1', 'batch-1']] as const) {
      const r = await pods[from]!.exec(['node', '-e', GET, `http://${pods[to]!.ip}:8080/`], {}, { timeoutMs: 10_000 });
      assert.equal(r.code, 0, `${from} → ${to}: ${r.stderr}`);
      const body = JSON.parse(r.stdout);
      assert.equal(body.pod, to);
      assert.equal(body.podIP, pods[to]!.ip);
      assert.equal(body.node, pods[to]!.node.name);
      assert.equal(body.peer, pods[from]!.ip, 'the server sees the client pod\'s own address');
      // Inside, the pod sees the node's cgroup namespace: paths from the node's root.
      assert.equal(body.cgroup, `0::${pods[to]!.container.cgroupPath.slice(pods[to]!.node.cgroupPath.length)}`);
      assert.match(body.cgroup, /^0::\/kubepods\.slice\/kubepods-(burstable|besteffort)\.slice\/kubepods-(burstable|besteffort)-pod[0-9a-f_]{36}\.slice\/cri-containerd-[0-9a-f]{64}\.scope$/);
    }
    const r = await cluster.outsider.exec(['curl', '-sS', '--max-time', '5', `http://${pods['web-2']!.ip}:8080/`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).peer, '10.80.0.99');
  });

  await t.test('the API server lists pods by spec.nodeName with kubelet-shaped objects', async () => {
    const list = await cluster.api.list('pods', { fieldSelector: `spec.nodeName=${node1.name}` });
    assert.equal(list.kind, 'PodList');
    assert.equal(list.apiVersion, 'v1');
    assert.match(list.metadata.resourceVersion, /^\d+$/);
    assert.deepEqual(list.items.map((i) => i.metadata!.name).sort(), ['batch-1', 'web-1']);
    for (const item of list.items) {
      const p = pods[item.metadata!.name!]!;
      const spec = item.spec as { nodeName: string; serviceAccountName: string; containers: { ports?: { containerPort: number }[] }[] };
      const status = item.status as Record<string, unknown> & { containerStatuses: Record<string, unknown>[]; conditions: { type: string; status: string }[] };
      assert.equal(item.metadata!.uid, p.uid);
      assert.equal(item.metadata!.namespace, 'shop');
      assert.equal(spec.nodeName, node1.name);
      assert.equal(spec.serviceAccountName, p.name.startsWith('web') ? 'web' : 'batch');
      assert.equal(status.phase, 'Running');
      assert.equal(status.podIP, p.ip);
      assert.deepEqual(status.podIPs, [{ ip: p.ip }]);
      assert.equal(status.hostIP, node1.ip);
      assert.equal(status.qosClass, p.qos);
      assert.ok(status.conditions.some((c) => c.type === 'Ready' && c.status === 'True'));
      assert.equal(status.containerStatuses[0]!.containerID, `containerd://${p.container.id}`);
      assert.equal(status.containerStatuses[0]!.restartCount, 0);
      if (p.name.startsWith('web')) assert.equal(spec.containers[0]!.ports?.[0]?.containerPort, 8080);
    }
    const nodes = await cluster.api.list('nodes');
    const n1 = nodes.items.find((n) => n.metadata!.name === node1.name)!;
    assert.deepEqual((n1.status as { addresses: unknown }).addresses, [{ type: 'InternalIP', address: node1.ip }, { type: 'Hostname', address: node1.name }]);
    assert.equal(n1.metadata!.labels!['kubernetes.io/hostname'], node1.name);
    assert.equal(n1.metadata!.labels!['topology.kubernetes.io/zone'], 'us-east-1a');

    // From inside a pod, the way an in-cluster client connects: service account files,
    // KUBERNETES_SERVICE_HOST, TLS to the API server in the control-plane namespace.
    const r = await pods['batch-2']!.exec(['node', '-e', LIST_IN_CLUSTER, node2.name], {}, { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { server: cluster.apiserver.url, pods: ['shop/batch-2', 'shop/web-2'] });
  });

  await t.test('Services and EndpointSlices are real-shaped', async () => {
    const svc = await cluster.addService({ name: 'web', namespace: 'shop', selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 8080, appProtocol: 'http' }] });
    assert.match((svc.spec as { clusterIP: string }).clusterIP, /^10\.96\./);
    const slice = await cluster.addEndpointSlice({ service: 'web', namespace: 'shop', ports: [{ name: 'http', port: 8080, appProtocol: 'http' }], pods: [{ pod: pods['web-1']! }, { pod: pods['web-2']!, ready: false }] });
    assert.equal(slice.metadata!.labels!['kubernetes.io/service-name'], 'web');
    assert.equal((slice.metadata!.ownerReferences as { uid: string }[])[0]!.uid, svc.metadata!.uid);
    const eps = slice.endpoints as { addresses: string[]; conditions: { ready: boolean }; nodeName: string; targetRef: { uid: string } }[];
    assert.deepEqual(eps.map((e) => [e.addresses[0], e.conditions.ready, e.nodeName, e.targetRef.uid]), [
      [pods['web-1']!.ip, true, node1.name, pods['web-1']!.uid], [pods['web-2']!.ip, false, node2.name, pods['web-2']!.uid]]);
    const bySvc = await cluster.api.list('endpointslices', { namespace: 'shop', labelSelector: 'kubernetes.io/service-name=web' });
    assert.equal(bySvc.items.length, 1);
  });

  await t.test('a container restart makes a new scope in the same pod cgroup and updates the status', async () => {
    const p = pods['web-1']!;
    const old = p.container;
    const oldScope = old.cgroupPath;
    await cluster.restartContainer(p);
    assert.notEqual(p.container.id, old.id);
    assert.equal(dirname(p.container.cgroupPath), p.cgroupPath);
    assert.equal(cgroupV2Of(p.container.pid), p.container.cgroupPath.slice(cgroup2Root().length));
    assert.ok(!existsSync(oldScope), 'the old scope is gone');
    assert.equal(p.restartCount, 1);
    assert.equal(p.previousLogs[0]!.id, old.id);
    const obj = await p.object();
    const cs = (obj.status as { containerStatuses: { containerID: string; restartCount: number; lastState: { terminated?: { exitCode: number; containerID: string } } }[] }).containerStatuses[0]!;
    assert.equal(cs.containerID, `containerd://${p.container.id}`);
    assert.equal(cs.restartCount, 1);
    assert.equal(cs.lastState.terminated?.exitCode, 137);
    assert.equal(cs.lastState.terminated?.containerID, `containerd://${old.id}`);
    await until('the new container to listen', () => p.logs().stdout.includes('listening'), { timeoutMs: 15_000, everyMs: 50 });
    const r = await pods['web-2']!.exec(['node', '-e', GET, `http://${p.ip}:8080/`], {}, { timeoutMs: 10_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(JSON.parse(r.stdout).cgroup, new RegExp(`cri-containerd-${p.container.id}\\.scope$`));
  });

  await t.test('a DaemonSet-style pod: privileged, host network and PIDs, bpffs and the node\'s cgroup tree', async () => {
    const agentLike = await cluster.addPod(node1, {
      name: 'weft-agent-x1', namespace: 'weft-system', serviceAccount: 'weft-agent', qos: 'Burstable',
      hostNetwork: true, hostPID: true, privileged: true, labels: { 'app.kubernetes.io/name': 'weft-agent' },
      env: { NODE_NAME: { fieldPath: 'spec.nodeName' }, NODE_IP: { fieldPath: 'status.hostIP' } },
      args: ['sh', '-c', 'echo "node=$(NODE_NAME) ip=$NODE_IP"; exec sleep 600'],
      mounts: [
        { name: 'bpffs', hostPath: '/sys/fs/bpf', mountPath: '/sys/fs/bpf', mountPropagation: 'Bidirectional', type: 'DirectoryOrCreate' },
        { name: 'cgroup', hostPath: node1.cgroupPath, mountPath: '/sys/fs/cgroup', mountPropagation: 'HostToContainer' },
      ],
    });
    assert.equal(agentLike.ip, node1.ip);
    await until('the agent-like pod to print', () => agentLike.logs().stdout.includes('node='), { timeoutMs: 15_000, everyMs: 50 });
    assert.equal(agentLike.logs().stdout.trim(), `node=${node1.name} ip=${node1.ip}`);
    assert.equal(inode(`/proc/${agentLike.container.pid}/ns/net`), inode(node1.netnsPath));
    assert.equal(inode(`/proc/${agentLike.container.pid}/ns/pid`), inode('/proc/self/ns/pid'));
    const r = await agentLike.exec(['sh', '-c', [
      `ls /proc/${pods['batch-1']!.container.pid}/cgroup >/dev/null && echo hostpid`,
      // A pod's /proc/<pid>/cgroup path, read in the node's cgroup namespace, is a
      // directory under the node's cgroup tree mounted at /sys/fs/cgroup.
      `p=$(sed -n 's/^0:://p' /proc/${pods['batch-1']!.container.pid}/cgroup); echo "cg=$p"; test -d "/sys/fs/cgroup$p" && echo mapped`,
      'ls /sys/fs/cgroup/kubepods.slice',
      'grep -E " /sys/fs/(bpf|cgroup) " /proc/self/mounts | cut -d" " -f2,3',
      'grep CapEff /proc/self/status',
      'ls /opt/weft/deploy/agent-daemonset.yaml',
    ].join('; ')]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^hostpid$/m);
    assert.match(r.stdout, new RegExp(`^cg=/kubepods\\.slice/kubepods-besteffort\\.slice/kubepods-besteffort-pod${pods['batch-1']!.uid.replace(/-/g, '_')}\\.slice/cri-containerd-${pods['batch-1']!.container.id}\\.scope$`, 'm'));
    assert.match(r.stdout, /^mapped$/m);
    assert.match(r.stdout, /kubepods-burstable\.slice/);
    assert.match(r.stdout, /^\/sys\/fs\/bpf bpf$/m);
    assert.match(r.stdout, /^\/sys\/fs\/cgroup cgroup2$/m);
    assert.doesNotMatch(r.stdout, /CapEff:\s*0000000000000000/);
    await cluster.deletePod(agentLike);
  });

  await t.test('the agent DaemonSet\'s own pod template runs as a pod (entrypoint + args, $(VAR)s, downward API, mapped host paths, configMap and projected ServiceAccount token volumes)', async () => {
    const ds = loadDaemonSet('deploy/agent-daemonset.yaml');
    const files = join(cluster.workDir, 'ds-volumes');
    for (const [d, f, v] of [['ca', 'ca-bundle.pem', readFileSync(cluster.apiserver.caPath, 'utf8')]] as const) {
      mkdirSync(join(files, d), { recursive: true });
      writeFileSync(join(files, d, f), v);
    }
    mkdirSync(join(files, 'state'));
    const o = podOptionsFromTemplate(ds, {
      // Instead of the weft binary, a stand-in that records the argv it was given; the
      // real bin/weft is run with exec below (starting the agent is another test's job).
      image: { entrypoint: ['/bin/sh', '-c', 'printf "%s\\n" "$0" "$@" > /tmp/argv; exec sleep 600'], workingDir: '/opt/weft' },
      hostPathMap: { '/sys/fs/cgroup': node2.cgroupPath, '/var/lib/weft': join(files, 'state') },
      volumeSources: { ca: join(files, 'ca') },
      hostAliases: [{ ip: '10.80.0.2', hostnames: ['weft-control.weft-system.svc'] }],
    });
    const agent = await cluster.addPod(node2, o);
    assert.equal(agent.qos, 'Burstable');
    const argv = await until('the argv file', async () => { const r = await agent.exec(['cat', '/tmp/argv']); return r.code === 0 && r.stdout ? r.stdout : undefined; }, { timeoutMs: 15_000, everyMs: 50 });
    const lines = argv.trim().split('\n');
    assert.equal(lines[0], 'agent');
    assert.ok(lines.includes(`--node=${node2.name}`), argv);
    assert.ok(lines.includes(`--outbound=${node2.ip}:15001`), argv);
    const r = await agent.exec(['sh', '-c', 'pwd; echo; cat /var/run/secrets/weft/control-token/token; echo; head -1 /etc/weft/ca/ca-bundle.pem; getent hosts weft-control.weft-system.svc; ls /sys/fs/cgroup/kubepods.slice; /opt/weft/bin/weft --help | head -1; touch /var/run/secrets/weft/control-token/x 2>&1 || echo read-only']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^\/opt\/weft$/m);
    // The projected token: a ServiceAccount JWT bound to this very Pod, for weft-control.
    const jwt = r.stdout.split('\n').find((l) => /^[\w-]+\.[\w-]+\.[\w-]+$/.test(l));
    assert.ok(jwt, r.stdout);
    const claims = JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as { aud: string[]; sub: string; 'kubernetes.io': { pod: { name: string; uid: string }; node: { name: string } } };
    assert.deepEqual(claims.aud, ['weft-control']);
    assert.equal(claims.sub, 'system:serviceaccount:weft-system:weft-agent');
    assert.deepEqual(claims['kubernetes.io'].pod, { name: agent.name, uid: agent.uid });
    assert.equal(claims['kubernetes.io'].node.name, node2.name);
    assert.match(r.stdout, /^-----BEGIN CERTIFICATE-----$/m);
    assert.match(r.stdout, /^10\.80\.0\.2\s+weft-control\.weft-system\.svc$/m);
    assert.match(r.stdout, /kubepods-burstable\.slice/);
    assert.match(r.stdout, /^weft — /m);
    assert.match(r.stdout, /read-only/);
    // weft's own Kubernetes discovery, run where the agent would run it (in this pod:
    // in-cluster config, the node's cgroup tree at /sys/fs/cgroup), lists and watches
    // this API server and resolves the node's pods to the cgroup ids the host sees.
    const d = await agent.exec(['sh', '-c', 'cd /opt/weft && exec node --import tsx -e "$0"', DISCOVER], {}, { timeoutMs: 60_000 });
    assert.equal(d.code, 0, d.stderr);
    const found = JSON.parse(d.stdout.split('\n').find((l) => l.startsWith('RESULT '))!.slice(7)) as {
      services: { metadata: { name: string }; spec: { vip: string } }[];
      workloads: { metadata: { annotations: Record<string, string> }; spec: { address: string; node: string } }[];
    };
    const byPod = new Map(found.workloads.map((w) => [w.metadata.annotations['weft.dev/pod-name'] ?? '', w]));
    for (const name of ['web-2', 'batch-2']) {
      const w = byPod.get(name);
      assert.ok(w, `discovery on ${node2.name} has no workload for ${name}: ${d.stdout}`);
      assert.equal(w.spec.address, pods[name]!.ip);
      assert.equal(w.spec.node, node2.name);
      assert.equal(w.metadata.annotations['weft.dev/cgroup-id'], String(inode(pods[name]!.cgroupPath)), `${name}: cgroup id as the agent resolves it = the host's`);
    }
    // A hostNetwork pod is a plaintext backend at its node's address, outside the mesh:
    // a workload with no cgroup of its own to capture (Service semantics, kubernetes-objects.ts).
    const host = byPod.get(agent.name);
    assert.ok(!host || (host.spec as { hostNetwork?: boolean }).hostNetwork === true, 'a host-network pod is at most a hostNetwork workload');
    assert.equal(host?.metadata.annotations['weft.dev/cgroup-id'], undefined, 'no mesh cgroup for a host-network pod');
    assert.ok(found.services.some((x) => x.metadata.name === 'web'), d.stdout);

    const obj = await agent.object();
    assert.equal((obj.spec as { priorityClassName: string }).priorityClassName, 'system-node-critical');
    const args = (obj.spec as { containers: { args: string[] }[] }).containers[0]!.args;
    assert.equal(args[0], 'agent');
    assert.ok(args.includes('--control=weft-control.weft-system.svc:15010'), args.join(' '));
    assert.equal((obj.status as { hostIP: string; podIP: string }).podIP, node2.ip);
    const onNode = await cluster.api.list('pods', { fieldSelector: `spec.nodeName=${node2.name},metadata.namespace=weft-system` });
    assert.deepEqual(onNode.items.map((p) => p.metadata!.name), [agent.name]);
    await cluster.deletePod(agent);
  });

  await t.test('a deleted pod leaves no object, namespace, cgroup or process', async () => {
    const p = pods['batch-2']!;
    const pid = p.container.pid;
    await cluster.deletePod(p);
    assert.equal(await cluster.api.find('pods', 'shop', 'batch-2'), undefined);
    assert.ok(!existsSync(`/run/netns/${p.netns.name}`));
    assert.ok(!existsSync(p.cgroupPath));
    assert.ok(!existsSync(`/proc/${pid}`) || !readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('node'));
    for (const m of cgroupMounts()) assert.ok(!existsSync(join(m.path, p.cgroupRel)), `${m.path}: pod cgroup left`);
  });

  const pids = Object.values(pods).map((p) => p.container.pid);
  const netnsNames = [cluster.lan, cluster.cp, cluster.outsider, node1.netns, node2.netns, ...Object.values(pods).map((p) => p.netns)].map((n) => n.name);
  const workDir = cluster.workDir, runcRoot = cluster.runcRoot, base = cluster.cgroupBase, apiPid = cluster.apiserver.pid;
  await cluster.cleanup();
  await cluster.cleanup(); // idempotent

  const listed = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  for (const n of netnsNames) assert.ok(!listed.split('\n').some((l) => l.split(' ')[0] === n), `netns ${n} left`);
  for (const m of cgroupMounts()) assert.ok(!existsSync(join(m.path, base)), `${m.path}/${base} left`);
  assert.ok(!existsSync(workDir), 'work dir left');
  assert.deepEqual(await runcList(runcRoot), []);
  for (const pid of [...pids, apiPid]) {
    let alive = false;
    try { alive = readFileSync(`/proc/${pid}/cgroup`, 'utf8').includes(base); } catch { /* gone */ }
    assert.ok(!alive, `process ${pid} left`);
  }
  assert.ok(!readdirSync(cgroup2Root()).includes(base));
});

test('what a crashed run leaves (SIGKILL: no cleanup ran) is swept by the next run', { timeout: 60_000 }, async (t) => {
  if (!requires(t, { root: true, netns: true, cgroup2: true, commands: ['runc', 'nsenter', 'sysctl'] })) return;
  const child = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'cluster-crash-child.ts')], { cwd: join(__dirname, '..', '..'), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => { out += d; });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => { err += d; });
  const [, signal] = await once(child, 'exit');
  assert.equal(signal, 'SIGKILL', err);
  const left = JSON.parse(out) as { workDir: string; cgroupBase: string; podPid: number; apiPid: number; netns: string[] };
  // It really is left behind: the pod's process runs on, orphaned.
  assert.ok(existsSync(left.workDir));
  assert.ok(existsSync(join(cgroup2Root(), left.cgroupBase)));
  assert.ok(existsSync(`/proc/${left.podPid}`));
  const removed = await sweepStaleClusters();
  assert.ok(removed.includes(left.workDir), removed.join(', '));
  assert.ok(!existsSync(left.workDir));
  for (const m of cgroupMounts()) assert.ok(!existsSync(join(m.path, left.cgroupBase)), `${m.path}/${left.cgroupBase} left`);
  const listed = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  for (const n of left.netns) assert.ok(!listed.includes(n), `netns ${n} left`);
  for (const pid of [left.podPid, left.apiPid]) {
    let alive = false;
    try { alive = !readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ')[2]!.startsWith('Z'); } catch { /* gone */ }
    assert.ok(!alive, `process ${pid} left`);
  }
});
