// weft on Kubernetes nodes, as real as one machine allows (test/lib/cluster.ts): two
// nodes (network namespaces on a LAN), pods started by runc in kubelet-shaped cgroups
// (systemd naming, Burstable and BestEffort) and their own network namespaces on each
// node's bridge, a fake API server with the real list/watch semantics, and `weft control
// --kubernetes` on the control-plane host. The agent runs on each node as the DaemonSet
// says: the command, args, env and host mounts are read from deploy/agent-daemonset.yaml
// (entrypoint from deploy/Dockerfile), in its own kubelet-shaped pod cgroup, on the host
// network, with the service account token kubelet mounts. No pod is registered by hand.
//   a) a pod connects to a ClusterIP: balanced in the kernel over its node's pods
//      (kernel counters: balanced, not redirected), getpeername shows the ClusterIP; with
//      a backend on the other node the connection takes the agent's mTLS hop instead;
//   b) an HTTP Service is redirected to the agent, which names the caller by its pod's
//      service account (metrics and access log), whatever headers it sends;
//   c) a container restart (a new container cgroup) keeps the pod's identity;
//   d) pod → pod across nodes is mTLS only: on the LAN, 15008 and never the payload;
//   e) mTLS STRICT: an outsider's plaintext SYN to a pod is dropped, the kubelet's probe
//      from the node and a same-node pod pass;
//   f) node A is named ip-10-0-1-2.ec2.internal (an EKS node name) throughout;
//   g) an agent rollout (maxSurge 1: new pod first, then the old one stopped) under load:
//      0 failed L4 connects, 0 refused L7 requests, an in-flight request finishes;
//   h) the agent's processes (supervisor and workers) stay in its pod's cgroup;
//   i) uninstall (the preStop hook with WEFT_UNINSTALL=true) leaves no pin, link or cgroup.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { requires } from '../lib/privileges';
import { createCluster, CP_IP, type Cluster, type ClusterNode, type Pod } from '../lib/cluster';
import { agentPodSpec, readDaemonSet } from '../lib/daemonset';
import { ROOT, watchWeft, weftArgv, type WeftProcess } from '../lib/weft';
import { cgroupV2Of } from '../lib/kube-cgroups';
import { nodeLayout } from '../../agent/datapath/layout';
import { until as waitUntil } from '../lib/wait';

const NODE_A = 'ip-10-0-1-2.ec2.internal';
const NODE_B = 'node-b';
const TD = 'weft.local';
const ECHO_VIP = '10.96.0.10';
const WEB_VIP = '10.96.0.20';
const REMOTE_VIP = '10.96.0.30';
const LOCAL_VIP = '10.96.0.40';
const APP = '/opt/weft/test/e2e/fixtures/k8s/app.js';
const CLIENT = '/opt/weft/test/e2e/fixtures/k8s/client.js';

const mesh = (mode: 'PERMISSIVE' | 'STRICT') => `apiVersion: weft.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  trustDomain: ${TD}
  mtls: {mode: ${mode}}
`;

const until = <T>(what: string, ms: number, check: () => Promise<T | undefined | false> | T | undefined | false): Promise<T> =>
  waitUntil(what, check, { timeoutMs: ms, everyMs: 200, retryErrors: true });

async function json<T>(pod: Pod, args: string[], timeoutMs = 60_000): Promise<T> {
  const r = await pod.exec(['node', CLIENT, ...args], undefined, { timeoutMs });
  if (r.code !== 0) throw new Error(`client ${args.join(' ')} in ${pod.name}: exit ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as T;
}

/** GET on the agent's admin port from the node itself (loopback: no token needed). */
async function admin(node: ClusterNode, path: string): Promise<string> {
  const r = await node.netns.exec(['curl', '-sf', '--max-time', '5', `http://127.0.0.1:15020${path}`]);
  if (r.code !== 0) throw new Error(`GET ${path} on ${node.name}: curl exit ${r.code} ${r.stderr}`);
  return r.stdout;
}

function metric(text: string, name: string, labels: Record<string, string>): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

test('Kubernetes: the DaemonSet meshes the pods kubelet runs', { timeout: 600_000 }, async (t) => {
  if (!requires(t, { root: true, bpffs: true, cgroup2: true, netns: true, commands: ['runc', 'curl', 'tcpdump', 'bpftool'] })) return;
  const cluster: Cluster = await createCluster(t);
  const work = join(cluster.workDir, 'k8s-e2e');
  mkdirSync(work, { recursive: true });

  // ---------------------------------------------------------------- control plane
  const policies = join(work, 'policies');
  mkdirSync(policies);
  writeFileSync(join(policies, 'mesh.yaml'), mesh('PERMISSIVE'));
  // No bootstrap secret: each agent presents its projected ServiceAccount token (the
  // test's kubelet requests it from the API server bound to the agent's Pod) and the
  // control API reviews it (TokenReview) against the node the agent claims.
  const caDir = join(work, 'configmap-weft-ca-bundle');
  mkdirSync(caDir);
  const controlState = join(work, 'control-state');
  // The control API's own args from deploy/control.yaml, with its mounted paths mapped to
  // this host and the API server's kubeconfig (it is not in a pod here).
  const controlDoc = parseAllDocuments(readFileSync(join(ROOT, 'deploy', 'control.yaml'), 'utf8')).map((d) => d.toJS() as { kind?: string; spec?: { template?: { spec?: { containers?: { args?: string[] }[] } } } })
    .find((d) => d.kind === 'Deployment');
  const mapped: Record<string, string> = { '/etc/weft/policies': policies, '/var/lib/weft-control': controlState };
  const controlArgs = (controlDoc?.spec?.template?.spec?.containers?.[0]?.args ?? []).map((a) => {
    const [flag, value] = a.split('=', 2);
    if (value === undefined) return a;
    for (const [from, to] of Object.entries(mapped)) if (value === from || value.startsWith(`${from}/`)) return `${flag}=${to}${value.slice(from.length)}`;
    return a;
  });
  assert.ok(controlArgs.includes('--kubernetes'), 'control.yaml runs the control API with --kubernetes');
  // Its Lease and CA Secret live in weft-system (kubectl apply -k creates the namespace first).
  await cluster.api.create('namespaces', { metadata: { name: 'weft-system' } }).catch((e: { code?: number }) => { if (e.code !== 409) throw e; });
  const control: WeftProcess = watchWeft(cluster.cp.spawn([...weftArgv(...controlArgs, '--kubeconfig', cluster.apiserver.kubeconfigPath, '--poll-interval', '1s')], { stdio: ['ignore', 'pipe', 'pipe'] }));
  t.after(() => control.kill('SIGKILL'));
  const bundle = join(controlState, 'ca-bundle.pem');
  await until('the control API\'s CA bundle', 60_000, () => existsSync(bundle) && readFileSync(bundle, 'utf8').includes('BEGIN CERTIFICATE'));
  writeFileSync(join(caDir, 'ca-bundle.pem'), readFileSync(bundle));

  // ------------------------------------------------------------------- nodes, agents
  const nodeA = await cluster.addNode(NODE_A, { zone: 'zone-a' });
  const nodeB = await cluster.addNode(NODE_B, { zone: 'zone-b' });
  const ds = readDaemonSet();
  assert.equal(ds.updateStrategy.rollingUpdate?.maxSurge, 1, 'rollouts start the new agent pod first');
  assert.equal(ds.updateStrategy.rollingUpdate?.maxUnavailable, 0);
  const startAgent = (node: ClusterNode, name: string): Promise<Pod> => {
    const spec = agentPodSpec(ds, 'agent', {
      hostPath: (p) => {
        if (p === '/sys/fs/bpf') return '/sys/fs/bpf';
        // The node's own cgroup tree, as a kind node sees only its own.
        if (p === '/sys/fs/cgroup') return node.cgroupPath;
        if (p === '/var/lib/weft') return join(work, `state-${node.index}`);
        throw new Error(`the DaemonSet mounts host path ${p}: map it for the test`);
      },
      secret: (n) => { throw new Error(`secret ${n}`); },
      configMap: (n) => { if (n === 'weft-ca-bundle') return caDir; throw new Error(`configMap ${n}`); },
    });
    // The image links /usr/local/bin/weft to /opt/weft/bin/weft (deploy/Dockerfile);
    // here /opt/weft is this checkout, built.
    assert.match(readFileSync(join(ROOT, 'deploy', 'Dockerfile'), 'utf8'), /ln -s \/opt\/weft\/bin\/weft \/usr\/local\/bin\/weft/);
    const args = spec.args[0] === 'weft' ? ['/opt/weft/bin/weft', ...spec.args.slice(1)] : spec.args;
    return cluster.addPod(node, {
      name, namespace: 'weft-system', serviceAccount: spec.serviceAccount, labels: spec.labels, qos: 'Burstable',
      resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '2', memory: '512Mi' } },
      args, env: spec.env, mounts: spec.mounts, hostNetwork: spec.hostNetwork, hostPID: spec.hostPID, privileged: spec.privileged,
      // kube-dns would resolve the control API's Service name; /etc/hosts does here.
      hostAliases: [{ ip: CP_IP, hostnames: ['weft-control.weft-system.svc'] }],
    });
  };
  let agentA = await startAgent(nodeA, 'weft-agent-a1');
  const agentB = await startAgent(nodeB, 'weft-agent-b1');
  const ready = (node: ClusterNode, pod: Pod) => until(`the agent on ${node.name} to be ready`, 90_000, async () => {
    if (pod.container.exited()) throw new Error(`agent ${pod.name} exited:\n${pod.logs().stderr.slice(-4000)}`);
    return (await node.netns.exec(['curl', '-sf', '--max-time', '2', `http://${node.ip}:15020/readyz`])).code === 0;
  });
  try {
    await ready(nodeA, agentA);
    await ready(nodeB, agentB);
  } catch (e) {
    throw new Error(`${(e as Error).message}\ncontrol:\n${control.logs.slice(-30).join('\n')}\nagent A:\n${agentA.logs().stdout.slice(-3000)}${agentA.logs().stderr.slice(-3000)}`);
  }
  // Both bootstrapped with their Pod-bound ServiceAccount tokens (no secret was given).
  for (const n of [NODE_A, NODE_B]) {
    assert.ok(control.logs.some((l) => l.includes('"msg":"agent connected"') && l.includes(`"node":"${n}"`) && l.includes('"auth":"service-account"')),
      `${n} authenticated with its ServiceAccount token:\n${control.logs.filter((l) => l.includes('agent connected')).join('\n')}`);
  }

  // ------------------------------------------------------------------- workloads
  const appPorts = [{ name: 'http', containerPort: 8080 }, { name: 'tcp', containerPort: 7000 }];
  const app = (node: ClusterNode, name: string, labels: Record<string, string>, qos: 'Burstable' | 'BestEffort') => cluster.addPod(node, {
    name, namespace: 'shop', serviceAccount: 'web', labels, qos, ports: appPorts,
    ...(qos === 'Burstable' ? { resources: { requests: { cpu: '10m' } } } : {}),
    args: ['node', APP], env: { POD_NAME: { fieldPath: 'metadata.name' } }, automountServiceAccountToken: false,
  });
  const webA = await app(nodeA, 'web-a', { app: 'web', local: 'yes' }, 'BestEffort');
  const webA2 = await app(nodeA, 'web-a2', { local: 'yes' }, 'Burstable');
  const webB = await app(nodeB, 'web-b', { app: 'web', remote: 'yes' }, 'Burstable');
  // Nobody registers this pod: its identity comes from its Pod object.
  const client = await cluster.addPod(nodeA, {
    name: 'client', namespace: 'shop', serviceAccount: 'frontend', labels: { app: 'client' }, qos: 'Burstable',
    resources: { requests: { cpu: '10m' } }, args: ['node', '-e', 'setInterval(() => {}, 1 << 30)'], automountServiceAccountToken: false,
  });
  // Opted out by label: the kernel must leave its sockets alone (skip map, by its pod
  // cgroup, which covers its container's).
  const legacy = await cluster.addPod(nodeA, {
    name: 'legacy', namespace: 'shop', serviceAccount: 'legacy', labels: { app: 'legacy', 'weft.dev/dataplane-mode': 'none' }, qos: 'BestEffort',
    args: ['node', '-e', 'setInterval(() => {}, 1 << 30)'], automountServiceAccountToken: false,
  });
  const sliceFor = (service: string, pods: Pod[]) => cluster.addEndpointSlice({
    service, namespace: 'shop', ports: [{ name: 'tcp', port: 7000, protocol: 'TCP' }, { name: 'http', port: 8080, protocol: 'TCP', appProtocol: 'http' }],
    pods: pods.map((pod) => ({ pod })),
  });
  await cluster.addService({ name: 'echo', namespace: 'shop', clusterIP: ECHO_VIP, selector: { app: 'web' }, ports: [{ name: 'tcp', port: 7000, targetPort: 'tcp', protocol: 'TCP' }] });
  await cluster.addService({ name: 'web', namespace: 'shop', clusterIP: WEB_VIP, selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'http', protocol: 'TCP', appProtocol: 'http' }] });
  await cluster.addService({ name: 'remote', namespace: 'shop', clusterIP: REMOTE_VIP, selector: { remote: 'yes' }, ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP', appProtocol: 'http' }] });
  await sliceFor('echo', [webA, webB]);
  await sliceFor('web', [webA, webB]);
  await sliceFor('remote', [webB]);
  // Every backend on the client's node: plain TCP stays in the kernel.
  await cluster.addService({ name: 'local-echo', namespace: 'shop', clusterIP: LOCAL_VIP, selector: { local: 'yes' }, ports: [{ name: 'tcp', port: 7000, targetPort: 'tcp', protocol: 'TCP' }] });
  await sliceFor('local-echo', [webA, webA2]);
  const principal = `spiffe://${TD}/ns/shop/sa/frontend`;
  await until('the client pod meshed on node A', 60_000, async () => {
    const s = JSON.parse(await admin(nodeA, '/v1/status')) as { workloads: { key: string; identity: string }[] };
    return s.workloads.some((w) => w.key === 'shop/client' && w.identity === principal);
  });
  // Kubernetes mode: pods get their identity from the API server, never from a
  // registration, not even one that presents the agent's admin token.
  const adminToken = readFileSync(join(work, `state-${nodeA.index}`, 'admin-token'), 'utf8').trim();
  const reg = await nodeA.netns.exec(['curl', '-s', '--max-time', '5', '-w', '\n%{http_code}', '-X', 'POST', '-H', `authorization: Bearer ${adminToken}`,
    '-d', JSON.stringify({ name: 'impostor', namespace: 'shop', serviceAccount: 'frontend', labels: { app: 'web' }, address: '10.0.0.66' }), 'http://127.0.0.1:15020/v1/workloads']);
  assert.match(reg.stdout, /Kubernetes mode[^\n]*\n+403$/, `registration in Kubernetes mode: ${reg.stdout}`);
  assert.ok(!(JSON.parse(await admin(nodeA, '/v1/status')) as { workloads: { key: string }[] }).workloads.some((w) => w.key === 'shop/impostor'));
  await until('both agents to have the Services', 60_000, async () => {
    for (const n of [nodeA, nodeB]) {
      const view = JSON.parse(await admin(n, '/debug/config')) as { view: { services: { name: string; endpoints: unknown[] }[] } | null };
      const names = new Map((view.view?.services ?? []).map((s) => [s.name, s.endpoints.length]));
      if (names.get('echo') !== 2 || names.get('web') !== 2 || names.get('remote') !== 1 || names.get('local-echo') !== 2) return false;
    }
    return true;
  });

  await t.test('a) an unregistered pod connects to a ClusterIP: balanced in the kernel, getpeername shows the ClusterIP', async () => {
    type Bpf = { counters: Record<string, string> };
    const before = JSON.parse(await admin(nodeA, '/debug/bpf')) as Bpf;
    const rs = await json<{ pod?: string; peer?: string; error?: string }[]>(client, ['l4', LOCAL_VIP, '7000', '40']);
    const after = JSON.parse(await admin(nodeA, '/debug/bpf')) as Bpf;
    assert.deepEqual(rs.filter((r) => r.error), [], 'every connect succeeded');
    assert.ok(rs.every((r) => r.peer === `${LOCAL_VIP}:7000`), `getpeername: ${[...new Set(rs.map((r) => r.peer))].join(', ')}`);
    const by = new Map<string, number>();
    for (const r of rs) by.set(r.pod!, (by.get(r.pod!) ?? 0) + 1);
    assert.deepEqual([...by.keys()].sort(), ['web-a', 'web-a2'], 'both backends (equal weights) got connections');
    const delta = (k: string) => BigInt(after.counters[k] ?? 0) - BigInt(before.counters[k] ?? 0);
    assert.ok(delta('connect_balanced') >= 40n, `the kernel balanced the connects (${delta('connect_balanced')})`);
    assert.equal(delta('connect_redirected'), 0n, 'nothing went through the agent');
    // With a backend on the other node the same kind of Service needs an mTLS hop: the
    // kernel redirects it to the agent, which tunnels; getpeername still shows the VIP.
    const remote = await json<{ pod?: string; peer?: string; error?: string }[]>(client, ['l4', ECHO_VIP, '7000', '20']);
    assert.deepEqual(remote.filter((r) => r.error), []);
    assert.ok(remote.every((r) => r.peer === `${ECHO_VIP}:7000`));
    assert.deepEqual([...new Set(remote.map((r) => r.pod))].sort(), ['web-a', 'web-b']);
  });

  await t.test('a2) an opted-out pod (weft.dev/dataplane-mode=none) is not captured', async () => {
    await until('legacy skipped on node A', 30_000, async () => {
      const st = JSON.parse(await admin(nodeA, '/v1/status')) as { pods?: { skipped: { key: string }[] } };
      return st.pods?.skipped.some((p) => p.key === 'shop/legacy');
    });
    type Bpf = { counters: Record<string, string> };
    const before = JSON.parse(await admin(nodeA, '/debug/bpf')) as Bpf;
    // Nothing but weft handles ClusterIPs here (no kube-proxy): left alone, the connect
    // goes nowhere.
    const r = await json<string>(legacy, ['connect', LOCAL_VIP, '7000', '1500']);
    const after = JSON.parse(await admin(nodeA, '/debug/bpf')) as Bpf;
    assert.notEqual(r, 'ok', 'the ClusterIP was rewritten for a pod that opted out');
    assert.equal(BigInt(after.counters.connect_balanced ?? 0) - BigInt(before.counters.connect_balanced ?? 0), 0n);
    assert.equal(BigInt(after.counters.connect_redirected ?? 0) - BigInt(before.counters.connect_redirected ?? 0), 0n);
  });

  await t.test('b) an HTTP Service is redirected and the caller is named by its pod\'s service account', async () => {
    const rs = await json<{ status?: number; pod?: string; error?: string; headers?: Record<string, string> }[]>(client, ['http', `http://${WEB_VIP}/hello`, '10']);
    assert.ok(rs.every((r) => r.status === 200), JSON.stringify(rs.filter((r) => r.status !== 200)));
    const metrics = await admin(nodeA, '/metrics');
    assert.ok(metric(metrics, 'weft_requests_total', { source_principal: principal }) >= 10, `requests by ${principal} in metrics`);
    assert.equal(metric(metrics, 'weft_requests_total', { source_principal: 'spoofed' }), 0);
    // The access log (the DaemonSet logs every request; pino writes to stderr) names the
    // caller too.
    await until('an access log line naming the caller', 10_000, () => (agentA.logs().stdout + agentA.logs().stderr).split('\n').some((l: string) => l.includes('"path":"/hello"') && l.includes(principal)))
      .catch((e: Error) => { throw new Error(`${e.message}\nagent stdout:\n${agentA.logs().stdout.slice(-3000)}\nagent stderr:\n${agentA.logs().stderr.slice(-3000)}`); });
    // The backend never sees the spoofed client certificate header.
    for (const r of rs) assert.notEqual(r.headers?.['x-forwarded-client-cert'], 'By=spoofed');
  });

  await t.test('c) a container restart (new container cgroup) keeps the pod\'s identity', async () => {
    const before = cgroupV2Of(client.container.pid);
    await cluster.restartContainer(client);
    const after = cgroupV2Of(client.container.pid);
    assert.notEqual(after, before, 'the new container has its own cgroup');
    const base = metric(await admin(nodeA, '/metrics'), 'weft_requests_total', { source_principal: principal });
    const rs = await json<{ status?: number }[]>(client, ['http', `http://${WEB_VIP}/again`, '5']);
    assert.ok(rs.every((r) => r.status === 200), JSON.stringify(rs));
    const now = metric(await admin(nodeA, '/metrics'), 'weft_requests_total', { source_principal: principal });
    assert.ok(now >= base + 5, `the restarted container's requests count as ${principal} (${base} → ${now})`);
  });

  await t.test('d) pod → pod across nodes is mTLS only: the LAN carries 15008, never the payload', async () => {
    const lanIf = (await nodeB.netns.exec(['ip', '-o', 'route', 'get', nodeA.ip])).stdout.match(/ dev (\S+)/)?.[1];
    assert.ok(lanIf, 'node B\'s LAN interface');
    const pcap = join(work, 'lan.pcap');
    const dump = nodeB.netns.spawn(['tcpdump', '-Z', 'root', '--immediate-mode', '-i', lanIf, '-U', '-w', pcap, 'tcp'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let started = '';
    dump.stderr!.on('data', (d: Buffer) => { started += d.toString(); });
    await until('tcpdump to listen', 10_000, () => started.includes('listening on'));
    const marker = `weft-secret-${Date.now()}`;
    const rs = await json<{ status?: number; pod?: string }[]>(client, ['http', `http://${REMOTE_VIP}/${marker}`, '5']);
    await new Promise((r) => setTimeout(r, 500));
    dump.kill('SIGINT');
    await new Promise((r) => dump.once('exit', r));
    assert.ok(rs.every((r) => r.status === 200 && r.pod === 'web-b'), JSON.stringify(rs));
    const text = await new Promise<string>((resolve) => {
      const p = spawn('tcpdump', ['-nn', '-r', pcap, '-A'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      p.stdout.on('data', (d: Buffer) => { out += d.toString('latin1'); });
      p.stderr.on('data', (d: Buffer) => { out += d.toString('latin1'); });
      p.on('exit', () => resolve(out));
    });
    const summary = text.split('\n').filter((l) => / IP6? /.test(l)).slice(0, 15).join('\n');
    assert.ok(text.includes(`${nodeA.ip}.`) && text.includes('.15008'), `the tunnel went node to node on 15008; the LAN (${lanIf}) saw:\n${summary}\ntcpdump: ${started}\n${text.slice(0, 500)}`);
    assert.ok(!text.includes(marker), 'the request path never crossed the LAN in clear text');
    assert.ok(!text.includes(`${webB.ip}.8080`), 'nothing was sent to the pod\'s own port across the LAN');
  });

  await t.test('e) mTLS STRICT: an outsider\'s SYN to a pod is dropped, the kubelet probe and a same-node pod pass', async () => {
    const version = (n: ClusterNode) => admin(n, '/v1/status').then((s) => (JSON.parse(s) as { control: { version: string } }).control.version);
    const [va, vb] = [await version(nodeA), await version(nodeB)];
    writeFileSync(join(policies, 'mesh.yaml'), mesh('STRICT'));
    await until('both agents on the STRICT snapshot', 60_000, async () => (await version(nodeA)) !== va && (await version(nodeB)) !== vb);
    const outsider = await cluster.outsider.exec(['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--connect-timeout', '2', `http://${webA.ip}:8080/`]);
    assert.notEqual(outsider.stdout, '200', 'the outsider reached the pod in plaintext');
    const probe = await nodeA.netns.exec(['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--connect-timeout', '2', `http://${webA.ip}:8080/healthz`]);
    assert.equal(probe.stdout, '200', `kubelet's probe from the node: ${probe.stderr}`);
    const direct = await json<string>(client, ['connect', webA.ip, '8080', '2000']);
    if (direct !== 'ok') {
      const d = JSON.parse(await admin(nodeA, '/debug/bpf')) as { localWorkloads: unknown; counters: unknown; skippedCgroups: unknown };
      assert.fail(`a same-node pod reaches the pod directly: ${direct}; client ${client.ip} → ${webA.ip}; allow-list ${JSON.stringify(d.localWorkloads)}; counters ${JSON.stringify(d.counters)}; skipped ${JSON.stringify(d.skippedCgroups)}`);
    }
    const bpf = JSON.parse(await admin(nodeA, '/debug/bpf')) as { counters: Record<string, string> };
    assert.ok(Number(bpf.counters.strict_drops ?? 0) > 0, `STRICT drops counted: ${JSON.stringify(bpf.counters)}`);
    // Services still work under STRICT, across nodes too.
    const rs = await json<{ status?: number }[]>(client, ['http', `http://${REMOTE_VIP}/strict`, '3']);
    assert.ok(rs.every((r) => r.status === 200), JSON.stringify(rs));
    writeFileSync(join(policies, 'mesh.yaml'), mesh('PERMISSIVE'));
  });

  await t.test('h) the agent\'s supervisor and workers stay in its pod\'s cgroup', async () => {
    const own = cgroupV2Of(agentA.container.pid);
    assert.ok(own?.includes(`pod${agentA.uid.replace(/-/g, '_')}`), `agent in its pod cgroup: ${own}`);
    const children = readdirSync('/proc').filter((d) => /^\d+$/.test(d)).filter((pid) => {
      try { const st = readFileSync(`/proc/${pid}/stat`, 'utf8'); return Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]) === agentA.container.pid; } catch { return false; }
    });
    assert.ok(children.length >= 1, 'the supervisor runs workers');
    for (const pid of children) assert.equal(cgroupV2Of(Number(pid)), own, `worker ${pid} in the agent pod's cgroup`);
  });

  await t.test('g) an agent rollout under load: 0 failed L4 connects, 0 refused L7 requests, in-flight requests finish', async () => {
    const load = json<{ l4: number; l4Failed: string[]; l4FailedAt?: number[]; http: number; httpFailed: unknown[]; slow: { status?: number; error?: string } }>(client, ['load', ECHO_VIP, '7000', `http://${WEB_VIP}/load`, '9000'], 120_000);
    await new Promise((r) => setTimeout(r, 1000));
    // maxSurge 1: the new agent pod starts beside the old one and becomes ready...
    const next = await startAgent(nodeA, 'weft-agent-a2');
    await until('the new agent to start', 60_000, () => next.logs().stdout.includes('agent started') || next.logs().stderr.includes('agent started'));
    await new Promise((r) => setTimeout(r, 1500));
    // ... then the old one is stopped (SIGTERM, as kubelet does) and deleted.
    const old = agentA;
    const stoppedAt = Date.now();
    await old.kill('SIGTERM');
    const code = await old.container.wait();
    const oldLogs = old.logs().stdout + old.logs().stderr;
    await cluster.deletePod(old, { graceMs: 30_000 });
    agentA = next;
    const r = await load;
    const warnings = (logs: string) => logs.split('\n').filter((l) => /"level":[45]0/.test(l)).slice(-8).join('\n');
    assert.deepEqual(r.l4Failed, [], `L4 connects during the rollout: ${r.l4} ok; failed at ${(r.l4FailedAt ?? []).map((t) => t - stoppedAt).join(', ')} ms from the old agent's SIGTERM;\nold agent:\n${warnings(oldLogs)}\nnew agent:\n${warnings(next.logs().stdout + next.logs().stderr)}`);
    const errors = (pod: Pod) => (pod.logs().stdout + pod.logs().stderr).split('\n').filter((l) => /"status":5\d\d|"level":[45]0/.test(l)).slice(-10).join('\n');
    const oldErrors = oldLogs.split('\n').filter((l) => /"status":5\d\d|"level":[45]0/.test(l)).slice(-10).join('\n');
    assert.deepEqual(r.httpFailed, [], `L7 requests during the rollout: ${r.http} ok; new agent:\n${errors(next)}\nold agent (exit ${code}):\n${oldErrors}`);
    assert.ok(r.l4 > 20 && r.http > 20, `load ran: ${r.l4} L4, ${r.http} L7`);
    assert.equal(r.slow.status, 200, `the request in flight when the old agent stopped: ${JSON.stringify(r.slow)}`);
  });

  await t.test('i) uninstall leaves no pin, link or cgroup', async () => {
    for (const [node, pod] of [[nodeA, agentA], [nodeB, agentB]] as const) {
      const hook = ds.spec.containers[0]!.lifecycle?.preStop?.exec?.command;
      assert.ok(hook, 'the DaemonSet has a preStop hook');
      const r = await pod.exec(hook, { WEFT_UNINSTALL: 'true', NODE_NAME: node.name, PATH: '/opt/weft/bin:/usr/bin:/bin' }, { timeoutMs: 30_000 });
      assert.equal(r.code, 0, `preStop on ${node.name}: ${r.stderr}`);
      await cluster.deletePod(pod, { graceMs: 30_000 });
      assert.ok(!existsSync(nodeLayout(node.name).pinRoot), `no pins left for ${node.name}`);
      assert.ok(!existsSync(join(node.cgroupPath, 'weft')), 'no weft cgroups on the node');
      const links = await new Promise<string>((resolve) => {
        const p = spawn('bpftool', ['cgroup', 'tree', join(node.cgroupPath, 'kubepods.slice')], { stdio: ['ignore', 'pipe', 'ignore'] });
        let out = '';
        p.stdout.on('data', (d: Buffer) => { out += d.toString(); });
        p.on('exit', () => resolve(out));
      });
      assert.ok(!/weft_/.test(links), `no weft program attached below ${node.name}'s kubepods:\n${links}`);
    }
  });
});
