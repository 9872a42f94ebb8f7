// Services by name outside Kubernetes (issue #17 part 3): a node namespace runs control
// and an agent with its DNS proxy on the node's bridge address; a pod namespace has its
// own /etc/resolv.conf naming the node's ordinary resolver — a real DNS server (Debian's
// dnsmasq) on port 53 in a namespace of its own — and nothing else. Nothing in the pod
// knows about weft's DNS: the kernel captures its queries.
//   a) getent hosts and dig from the pod resolve catalog.shop.svc.cluster.local (and the
//      short forms, bare NAME in the caller's namespace) to the Service's allocated VIP,
//      over UDP and TCP; a client dials the name and reaches the backend;
//   b) an outside name resolves through the upstream dnsmasq, which sees the query come
//      from the agent (the node address), not from the pod;
//   c) an answer too big for UDP comes back truncated, dig retries over TCP (captured
//      too) and gets it whole through the agent;
//   d) a process outside the mesh (the node's own namespace, no weft run) is not captured.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { requires } from '../lib/privileges';
import { podNode } from '../lib/pod-node';
import { waitAgentReady } from '../lib/mesh';
import { ROOT, weftArgv } from '../lib/weft';
import { cgroup2Root } from '../../agent/datapath/layout';

const FIX = join(ROOT, 'test', 'e2e', 'fixtures', 'pods');
const NODE_IP = '10.79.0.1';
const POD_A = '10.79.0.11', POD_B = '10.79.0.12', RESOLVER = '10.79.0.53';
const ADMIN = `${NODE_IP}:15020`;
const BIG_TXT = ['a', 'b', 'c'].map((c) => c.repeat(200));

const policies = (node: string) => `apiVersion: weft.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  trustDomain: weft.local
  mtls: {mode: PERMISSIVE}
  registrations: [{node: ${node}, namespaces: [shop]}]
---
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: catalog, namespace: shop}
spec:
  selector: {app: catalog}
  ports: [{name: tcp, port: 80, targetPort: 8080, protocol: TCP}]
`;

function sleep(ms: number): Promise<void> { return new Promise((r) => setTimeout(r, ms)); }

test('DNS: workloads resolve mesh names through the kernel-captured agent, outside names through the node\'s resolver', { timeout: 180_000 }, async (t) => {
  if (!requires(t, { bpffs: true, netns: true, cgroup2: true, commands: ['curl', 'nsenter', 'unshare', 'dig', 'getent', 'dnsmasq'] })) return;
  const { nodeName, dir, node, pods: [podA, podB, up], spawnIn, startControl, procs } = podNode(t, 'dns', NODE_IP, [['a', POD_A], ['b', POD_B], ['up', RESOLVER]]);
  const TOKEN = join(dir, 'agent', 'admin-token');

  // The node's resolver: dnsmasq on port 53 of its own namespace, authoritative for a
  // few outside names, logging every query with its source address.
  const dnsmasqLog = join(dir, 'dnsmasq.log');
  const dnsmasq = up.spawn(['dnsmasq', '--keep-in-foreground', '--conf-file=/dev/null', '--pid-file=', '--user=root', '--group=root',
    `--listen-address=${RESOLVER}`, '--bind-interfaces', '--port=53', '--no-resolv', '--no-hosts', '--log-queries', `--log-facility=${dnsmasqLog}`,
    '--address=/www.outside.test/192.0.2.80', `--txt-record=big.outside.test,${BIG_TXT.map((s) => `"${s}"`).join(',')}`]);
  let dnsmasqErr = '';
  dnsmasq.stderr?.on('data', (d: Buffer) => { dnsmasqErr += d.toString(); });
  for (let i = 0; ; i++) {
    const r = await up.exec(['dig', `@${RESOLVER}`, '+short', '+time=1', '+tries=1', 'www.outside.test']);
    if (r.stdout.trim() === '192.0.2.80') break;
    assert.ok(i < 50, `dnsmasq did not come up: ${dnsmasqErr}${r.stdout}${r.stderr}`);
    await sleep(100);
  }

  // The pod's resolv.conf: the node's resolver, as a VM or a pod without kube-dns has.
  const resolvConf = join(dir, 'pod-resolv.conf');
  writeFileSync(resolvConf, `nameserver ${RESOLVER}\noptions timeout:2 attempts:2\n`);
  /** argv in pod A, as the mesh workload shop/client-a, seeing the pod's resolv.conf
   *  (its own mount namespace, the host's /etc untouched). */
  const inPodA = async (argv: string[]) => {
    const run = weftArgv('run', '--workload', 'client-a', '--namespace', 'shop', '--label', 'app=client', '--admin', ADMIN, '--admin-token-file', TOKEN, '--address', POD_A, '--', ...argv);
    const r = await podA.exec(['unshare', '--mount', '--propagation', 'private', 'sh', '-c', 'mount --bind "$0" /etc/resolv.conf && exec "$@"', resolvConf, ...run], { timeoutMs: 40_000 });
    assert.equal(r.code, 0, `in pod A: ${argv.join(' ')}: ${r.stdout}${r.stderr}`);
    return r.stdout.trim();
  };

  const { caBundle } = await startControl(policies(nodeName));
  // DNS is on by default outside Kubernetes; the upstream is the node's resolver.
  const agent = spawnIn(node, weftArgv('agent', '--control', '127.0.0.1:15010', '--control-ca', caBundle, '--node', nodeName,
    '--token-file', join(dir, 'token'), '--state-dir', join(dir, 'agent'), '--workers', '1',
    '--outbound', `${NODE_IP}:15001`, '--admin', ADMIN, '--inbound', `${NODE_IP}:15008`, '--dns-upstream', RESOLVER));
  await agent.waitForLog(/"msg":"agent started"/);
  await waitAgentReady(node, ADMIN);
  const getJson = async <T>(path: string): Promise<T> => {
    const r = await node.exec(['curl', '-sf', '-H', `authorization: Bearer ${readFileSync(TOKEN, 'utf8').trim()}`, `http://${ADMIN}${path}`]);
    assert.equal(r.code, 0, `GET ${path}: ${r.stdout}${r.stderr}`);
    return JSON.parse(r.stdout) as T;
  };
  const metric = async (labels: string) => {
    const r = await node.exec(['curl', '-sf', `http://${ADMIN}/metrics`]);
    const line = r.stdout.split('\n').find((l) => l.startsWith('weft_dns_queries_total{') && labels.split(',').every((x) => l.includes(x)));
    return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
  };

  type Status = { dns: { listening: boolean; address: string; capture: { kernel: string | null; podNamespaces: { udp: boolean; tcp: boolean } }; names: { name: string; addresses: string[] }[] } };
  const status = await getJson<Status>('/v1/status');
  assert.equal(status.dns.listening, true);
  assert.equal(status.dns.address, `${NODE_IP}:15053`);
  assert.equal(status.dns.capture.kernel, `${NODE_IP}:15053`, 'the kernel captures workloads\' DNS to the listener');
  assert.deepEqual(status.dns.capture.podNamespaces, { udp: true, tcp: true }, 'both DNS sockets are in weft_dnsl_v1');
  const catalog = status.dns.names.find((n) => n.name === 'catalog.shop.svc.cluster.local');
  assert.ok(catalog, JSON.stringify(status.dns.names));
  const VIP = catalog.addresses[0]!;
  assert.match(VIP, /^10\.96\.\d+\.\d+$/, 'the VIP allocated from the default range: no policy names it');

  const server = spawnIn(podB, weftArgv('run', '--workload', 'catalog-0', '--namespace', 'shop', '--label', 'app=catalog', '--admin', ADMIN, '--admin-token-file', TOKEN, '--address', POD_B, '--',
    process.execPath, join(FIX, 'server.js'), POD_B, 'catalog-0'));
  await server.waitForLog(/listening/);

  await t.test('a) getent hosts and dig resolve the mesh name to the VIP (UDP and TCP); a client dials the name', async () => {
    const udp0 = await metric('transport="udp",result="answer"');
    const tcp0 = await metric('transport="tcp",result="answer"');
    assert.match(await inPodA(['getent', 'hosts', 'catalog.shop.svc.cluster.local']), new RegExp(`^${VIP.replace(/\./g, '\\.')}\\s+catalog\\.shop\\.svc\\.cluster\\.local$`));
    assert.equal(await inPodA(['dig', '+short', 'catalog.shop.svc.cluster.local']), VIP);
    assert.equal(await inPodA(['dig', '+short', '+tcp', 'CATALOG.Shop.svc.cluster.local']), VIP, 'over TCP, any case');
    assert.equal(await inPodA(['dig', '+short', 'catalog.shop']), VIP, 'NAME.NAMESPACE');
    assert.match(await inPodA(['getent', 'hosts', 'catalog']), new RegExp(`^${VIP.replace(/\./g, '\\.')}\\s`), 'bare NAME: the caller is in shop');
    // Full answers: authoritative, TTL, the resolver's address as the server (the reply
    // came back from where dig sent it: recvmsg4 restored the source).
    const full = await inPodA(['dig', '+noall', '+answer', '+comments', '+stats', 'catalog.shop.svc.cluster.local']);
    assert.match(full, /status: NOERROR/);
    assert.match(full, /flags: qr aa rd ra/);
    assert.match(full, new RegExp(`catalog\\.shop\\.svc\\.cluster\\.local\\.\\s+30\\s+IN\\s+A\\s+${VIP.replace(/\./g, '\\.')}`));
    assert.match(full, new RegExp(`SERVER: ${RESOLVER.replace(/\./g, '\\.')}#53`));
    const nx = await inPodA(['dig', '+noall', '+comments', '+authority', 'nope.shop.svc.cluster.local']);
    assert.match(nx, /status: NXDOMAIN/);
    assert.match(nx, /cluster\.local\.\s+5\s+IN\s+SOA/, 'negative answers carry the SOA');
    const nodata = await inPodA(['dig', '+noall', '+comments', 'AAAA', 'catalog.shop.svc.cluster.local']);
    assert.match(nodata, /status: NOERROR/);
    assert.match(nodata, /ANSWER: 0/, 'no IPv6 VIP: NODATA');
    assert.ok(await metric('transport="udp",result="answer"') >= udp0 + 4, 'the agent answered the UDP queries');
    assert.ok(await metric('transport="tcp",result="answer"') >= tcp0 + 1, 'and the TCP one');
    // The client dials the name: glibc resolves it through the agent, connect4 balances the VIP.
    const dial = JSON.parse(await inPodA([process.execPath, join(FIX, 'tcp-client.js'), 'catalog.shop.svc.cluster.local', '80'])) as { peer: string; reply: { name: string; peer: string } };
    assert.deepEqual(dial, { peer: VIP, reply: { name: 'catalog-0', peer: POD_A } });
  });

  await t.test('a2) weft status lists the names with their VIPs; weft explain takes a name', async () => {
    const st = await node.exec(weftArgv('status', '--admin', ADMIN, '--admin-token-file', TOKEN));
    assert.match(st.stdout, new RegExp(`dns\\s+listening on ${NODE_IP.replace(/\./g, '\\.')}:15053, workloads' port 53 captured to ${NODE_IP.replace(/\./g, '\\.')}:15053; upstream ${RESOLVER.replace(/\./g, '\\.')}:53`), st.stdout);
    assert.match(st.stdout, new RegExp(`catalog\\.shop\\.svc\\.cluster\\.local\\s+${VIP.replace(/\./g, '\\.')}`), st.stdout);
    const ex = await node.exec(weftArgv('explain', '--from', 'shop/catalog-0', '--to', 'catalog.shop.svc.cluster.local:80', '--admin', ADMIN, '--admin-token-file', TOKEN));
    assert.equal(ex.code, 0, ex.stderr);
    assert.match(ex.stdout, new RegExp(`service shop/catalog \\(catalog\\.shop\\.svc\\.cluster\\.local, VIP ${VIP.replace(/\./g, '\\.')}\\)`), ex.stdout);
  });

  await t.test('b) an outside name resolves through the node\'s resolver, asked by the agent', async () => {
    const before = readFileSync(dnsmasqLog, 'utf8').length;
    assert.equal(await inPodA(['dig', '+short', 'www.outside.test']), '192.0.2.80');
    assert.match(await inPodA(['getent', 'hosts', 'www.outside.test']), /^192\.0\.2\.80\s+www\.outside\.test$/);
    const log = readFileSync(dnsmasqLog, 'utf8').slice(before);
    const asked = [...log.matchAll(/query\[\w+\] www\.outside\.test from (\S+)/g)].map((m) => m[1]);
    assert.ok(asked.length >= 2, log);
    assert.deepEqual([...new Set(asked)], [NODE_IP], 'every query reached dnsmasq from the agent, none from the pod itself');
    assert.doesNotMatch(log, /catalog\.shop/, 'mesh names never leave the node');
  });

  await t.test('c) an answer too big for UDP: TC from the agent, dig retries over TCP (captured), whole answer', async () => {
    const tcp0 = await metric('transport="tcp",result="forwarded"');
    const out = await inPodA(['dig', '+noedns', '+noall', '+answer', '+comments', 'TXT', 'big.outside.test']);
    assert.match(out, /Truncated, retrying in TCP mode/);
    for (const s of BIG_TXT) assert.ok(out.includes(s), `the whole TXT record over TCP: ${out}`);
    assert.ok(await metric('transport="tcp",result="forwarded"') > tcp0, 'the TCP retry went through the agent');
  });

  await t.test('d) outside the mesh nothing is captured', async () => {
    const r = await node.exec(['dig', `@${RESOLVER}`, '+noall', '+comments', '+time=2', '+tries=1', 'catalog.shop.svc.cluster.local']);
    assert.doesNotMatch(r.stdout, /status: NOERROR/, `the node's own dig reached dnsmasq, which knows no mesh name: ${r.stdout}`);
    assert.match(r.stdout, /status: (REFUSED|NXDOMAIN|SERVFAIL)/);
  });

  await t.test('e) cleanup removes the DNS maps with the rest', async () => {
    const t0 = Date.now();
    for (const p of procs) p.proc.kill('SIGTERM');
    // A slow exit is reported with the process's last log lines (not asserted: the
    // agent's drain grace is 30 s by design).
    await Promise.all(procs.map((p) => p.exited.then(() => {
      const ms = Date.now() - t0;
      if (ms > 5000) process.stderr.write(`slow exit (${ms} ms): ${p.proc.spawnargs.slice(-14).join(' ').slice(0, 100)}\n${p.logs.slice(-12).join('\n')}\n`);
    })));
    const [cmd, ...rest] = weftArgv('agent', '--cleanup', '--node', nodeName);
    execFileSync(cmd!, rest, { cwd: ROOT, stdio: 'ignore' });
    assert.equal(existsSync(join('/sys/fs/bpf/weft', nodeName)), false, 'no pins left');
    assert.equal(existsSync(join(cgroup2Root(), 'weft', nodeName)), false, 'no cgroups left');
  });
});
