// Node-to-node mTLS between two simulated nodes (network namespaces joined by a veth
// link), each running the real tunnel in its own process (fixtures/mtls/node.ts) with
// certificates from a CA in this process. Certificates live WEFT_MTLS_E2E_TTL seconds
// (default 6, so several renewals and a whole root rotation fit in ~16 s of traffic; set
// it to 30 to run the wording, which takes ~2 minutes).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { requires } from '../lib/privileges';
import { createNetns, vethPair, type Netns } from '../lib/netns';
import { CertificateAuthority } from '../../agent/identity/ca';
import { createCsr, generateSigningKey, privateKeyToPem } from '../../agent/identity/pki';
import { nodeSpiffeId } from '../../agent/identity/spiffe';
import { startNode, type NodeHandle } from './fixtures/mtls/harness';
import type { NodeConfig } from './fixtures/mtls/node';
import type { AuthorizationPolicyState } from '../../agent/policy/snapshot';

const TD = 'cluster.local';
const TTL = Number(process.env.WEFT_MTLS_E2E_TTL ?? 6);
const FRONTEND = 'spiffe://cluster.local/ns/shop/sa/frontend';
const CATALOG = 'spiffe://cluster.local/ns/shop/sa/catalog';
const NODE1 = nodeSpiffeId(TD, 'node-1');
const NODE2 = nodeSpiffeId(TD, 'node-2');
const N1 = '10.77.0.1', N2 = '10.77.0.2';
const BACKEND = { ip: '10.250.2.11', port: 8080 };
const CAPTURE = { host: '127.0.0.1', port: 15001 };
const NODE2_TUNNEL = { host: N2, port: 15008 };

interface Stats { handshakes: number; echo: { accepted: number; bytes: number }; renewals: Record<string, number>; captureFailures: number }

function baseConfig(name: string, nodeIdentity: string, addr: string): NodeConfig {
  return {
    name, trustDomain: TD, ttlSeconds: TTL, nodeIdentity, identities: [], tunnel: { host: addr, port: 15008 },
    workloads: [], policies: [], echo: [], captures: [],
  };
}

/** Runs a client process inside `ns` that sends `payload` to the capture listener and
 *  prints what came back. */
async function clientExchange(ns: Netns, payload: string): Promise<string> {
  const script = "const s=require('net').connect(+process.env.PORT,process.env.HOST);const c=[];s.on('data',d=>c.push(d));" +
    "s.on('error',()=>{});s.on('close',()=>process.stdout.write(Buffer.concat(c)));s.end(process.env.PAYLOAD)";
  const r = await ns.exec([process.execPath, '-e', script], {
    env: { ...process.env, HOST: CAPTURE.host, PORT: String(CAPTURE.port), PAYLOAD: payload }, timeoutMs: 10_000,
  });
  return r.stdout;
}

async function metric(node: NodeHandle, name: string): Promise<string[]> {
  return (await node.call<string>('metrics')).split('\n').filter((l) => l.startsWith(`${name}{`));
}

test('mTLS between two nodes', async (t) => {
  if (!requires(t, { netns: true, commands: ['tcpdump', 'nsenter'] })) return;
  const caDir = await mkdtemp(join(tmpdir(), 'weft-mtls-e2e-'));
  t.after(() => rm(caDir, { recursive: true, force: true }));
  const ca = await CertificateAuthority.loadOrCreate(caDir, { trustDomain: TD, maxTtlSeconds: TTL });

  const ns1 = createNetns('wt-mtls');
  t.after(() => ns1.destroy());
  const ns2 = createNetns('wt-mtls');
  t.after(() => ns2.destroy());
  const link = vethPair(ns1, ns2, { a: `${N1}/24`, b: `${N2}/24` });
  ns2.addAddress(`${BACKEND.ip}/32`);

  const cfg1: NodeConfig = {
    ...baseConfig('node-1', NODE1, N1), identities: [FRONTEND],
    captures: [{ listen: CAPTURE, sourceIdentity: FRONTEND, sourceWorkload: 'frontend-0', nodeAddress: NODE2_TUNNEL, target: BACKEND }],
  };
  const cfg2: NodeConfig = {
    ...baseConfig('node-2', NODE2, N2), identities: [CATALOG], echo: [BACKEND],
    workloads: [{ ...BACKEND, key: 'shop/catalog-0', name: 'catalog-0', namespace: 'shop', principal: CATALOG, service: 'shop/catalog' }],
  };
  // What the control API would allow from registrations: each node its own workloads.
  const node1 = await startNode(ns1, cfg1, ca, new Set([NODE1, FRONTEND]));
  t.after(() => node1.stop());
  const node2 = await startNode(ns2, cfg2, ca, new Set([NODE2, CATALOG]));
  t.after(() => node2.stop());

  await t.test('a workload on node 1 reaches node 2; the link carries TLS only; node 2 metrics name the caller', async () => {
    const marker = `WEFT-MARKER-${randomBytes(12).toString('hex')}`;
    const pcap = join(caDir, 'link.pcap');
    const dump = ns1.spawn(['tcpdump', '-i', link.a, '-n', '-U', '--immediate-mode', '-s', '0', '-w', pcap, 'tcp'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let dumpErr = '';
    await new Promise<void>((resolve, reject) => {
      dump.stderr!.on('data', (d: Buffer) => { dumpErr += d; if (dumpErr.includes('listening on')) resolve(); });
      dump.once('exit', () => reject(new Error(`tcpdump exited: ${dumpErr}`)));
    });
    const payload = `${marker} `.repeat(200);
    assert.equal(await clientExchange(ns1, payload), payload, 'echo through the tunnel');
    // Control: the same capture does see a marker that crosses the link in clear (sent
    // raw to the TLS port, which drops it), so the absence above means encryption.
    const control = `CONTROL-${marker}`;
    const sent = await ns1.exec([process.execPath, '-e', `const s=require('net').connect(15008,'${N2}',()=>s.end(process.env.P,()=>console.log('sent')));s.on('error',(e)=>console.log(e.message))`], { env: { ...process.env, P: control }, timeoutMs: 5000 });
    await new Promise((r) => setTimeout(r, 300));
    dump.kill('SIGINT');
    await once(dump, 'exit');
    const captured = await readFile(pcap);
    assert.ok(captured.includes(control), `capture sees cleartext payloads (control client: ${sent.stdout.trim()} ${sent.stderr.trim()}; ${captured.length} bytes captured)`);
    // The tunnelled payload held the marker 200 times; only the control copy may show.
    assert.equal(captured.toString('latin1').split(marker).length - 1, 1, 'the marker never crosses the link in clear');
    assert.ok(captured.includes(Buffer.from([0x17, 0x03, 0x03])), 'TLS application data records on the link');

    const opened = await metric(node2, 'weft_tcp_connections_opened_total');
    assert.ok(opened.some((l) => l.includes(`source_principal="${FRONTEND}"`) && l.includes('reporter="destination"')
      && l.includes('connection_security_policy="mutual_tls"') && l.includes('source_workload="frontend-0"')), opened.join('\n'));
    const received = await metric(node2, 'weft_tcp_received_bytes_total');
    assert.ok(received.some((l) => l.includes(FRONTEND) && Number(l.split(' ').pop()) >= payload.length), received.join('\n'));
  });

  await t.test('rejected: another CA, expired, wrong trust domain, CSR for a foreign identity, CONNECT to a non-local address', async () => {
    const before = (await node2.call<Stats>('stats')).echo.accepted;
    const key = await generateSigningKey();
    const keyPem = await privateKeyToPem(key.privateKey);
    const material = async (signer: CertificateAuthority, id: string) => ({
      key: keyPem, ca: ca.trustBundle(),
      cert: (await signer.signCsr(await createCsr(key, id), { allowedSpiffeIds: new Set([id]), ttlSeconds: TTL })).certChainPem.join(''),
    });
    const otherDir = await mkdtemp(join(tmpdir(), 'weft-mtls-other-'));
    t.after(() => rm(otherDir, { recursive: true, force: true }));
    const evilId = 'spiffe://evil.local/ns/shop/sa/frontend';
    const cases = [
      { name: 'another CA', m: await material(await CertificateAuthority.loadOrCreate(otherDir, { trustDomain: TD }), FRONTEND), reason: 'tls_handshake' },
      { name: 'expired', m: await material(await CertificateAuthority.loadOrCreate(caDir, { trustDomain: TD, clock: () => Date.now() - 3600_000 }), FRONTEND), reason: 'tls_handshake' },
      { name: 'wrong trust domain', m: await material(await CertificateAuthority.loadOrCreate(caDir, { trustDomain: 'evil.local' }), evilId), reason: 'unauthenticated' },
    ];
    for (const c of cases) {
      const r = await node1.call<{ ok: boolean; code?: string }>('tryTunnel', { material: c.m, sourceIdentity: FRONTEND, nodeAddress: NODE2_TUNNEL, target: BACKEND });
      assert.equal(r.ok, false, c.name);
      assert.equal(r.code, 'WEFT_ERR_UNAVAILABLE', c.name);
      const denied = await metric(node2, 'weft_tcp_connections_denied_total');
      assert.ok(denied.some((l) => l.includes(`reason="${c.reason}"`)), `${c.name}: ${denied.join('\n')}`);
    }

    const csr = await node1.call<{ issued: boolean }>('addIdentity', { id: CATALOG });
    assert.equal(csr.issued, false, 'node 1 cannot obtain the identity of a workload on node 2');
    assert.ok(node1.signs.some((s) => s.spiffeId === CATALOG && !s.ok && /WEFT_ERR_PERMISSION/.test(s.error!)));

    for (const target of [{ ip: N1, port: 15008 }, { ip: '10.250.2.99', port: 8080 }, { ip: BACKEND.ip, port: 9999 }]) {
      const r = await node1.call<{ ok: boolean; code?: string }>('tryTunnel', { sourceIdentity: FRONTEND, nodeAddress: NODE2_TUNNEL, target });
      assert.deepEqual([r.ok, r.code], [false, 'WEFT_ERR_PERMISSION'], JSON.stringify(target));
    }
    const denied = await metric(node2, 'weft_tcp_connections_denied_total');
    assert.ok(denied.some((l) => l.includes('reason="not_local_workload"') && l.endsWith(' 3')), denied.join('\n'));
    assert.equal((await node2.call<Stats>('stats')).echo.accepted, before, 'nothing reached the workload');
  });

  await t.test('an AuthorizationPolicy that does not allow the caller refuses, counts, and nothing reaches the workload', async () => {
    const policy: AuthorizationPolicyState = {
      key: 'shop/catalog-allow-checkout', action: 'ALLOW', workloads: ['shop/catalog-0'], l7: false,
      rules: [{ from: [{ principals: ['cluster.local/ns/shop/sa/checkout'], notPrincipals: [], namespaces: [], notNamespaces: [], ipBlocks: [], notIpBlocks: [] }], to: [], when: [] }],
    };
    await node2.call('setPolicies', { policies: [policy] });
    const before = (await node2.call<Stats>('stats')).echo.accepted;
    assert.equal(await clientExchange(ns1, 'should-not-arrive'), '', 'connection refused');
    assert.equal((await node2.call<Stats>('stats')).echo.accepted, before, 'nothing reached the workload');
    const denied = await metric(node2, 'weft_tcp_connections_denied_total');
    assert.ok(denied.some((l) => l.includes(`source_principal="${FRONTEND}"`) && l.includes('reason="policy"')
      && l.includes('destination_workload="shop/catalog-0"')), denied.join('\n'));
    await node2.call('setPolicies', { policies: [] });
    assert.equal(await clientExchange(ns1, 'allowed-again'), 'allowed-again');
  });

  await t.test(`traffic across several ${TTL} s certificate rotations and a root rotation: no failed request`, async () => {
    const s1 = await node1.call<Stats>('stats');
    const oldRoot = ca.trustBundle()[0]!;
    // Staged root rotation: new root trusted now, signing after one TTL, old root dropped
    // one TTL later; agents pick the bundle up with their renewals.
    const plan = await ca.rotateRoot({ activateAfterSeconds: TTL });
    const ms = Math.max(TTL * 2.6 * 1000, TTL * 1000 + plan.oldRootsRetireAt.getTime() - Date.now());
    const r = await node1.call<{ completed: number; failed: number; errors: string[]; longSent: number; longEchoed: number; longError?: string }>(
      'traffic', { capture: CAPTURE, ms, payload: 'rotation', concurrency: 4 });
    const s2 = await node1.call<Stats & { lastCaptureFailure?: string }>('stats');
    assert.equal(r.failed, 0, `${r.errors.join('; ')}; last capture failure: ${s2.lastCaptureFailure}`);
    assert.ok(r.completed > 100, `only ${r.completed} exchanges`);
    assert.equal(r.longError, undefined);
    assert.equal(r.longEchoed, r.longSent, 'a connection open across all rotations kept working');
    assert.ok(s2.renewals[FRONTEND]! - s1.renewals[FRONTEND]! >= 3, `renewals: ${JSON.stringify(s2.renewals)}`);
    assert.ok(s2.handshakes > s1.handshakes, 'renewed certificates were put to use on new sessions');
    assert.equal(s2.captureFailures, s1.captureFailures);
    assert.deepEqual(ca.trustBundle().length, 1);
    assert.notEqual(ca.trustBundle()[0], oldRoot, 'the root was replaced');
  });
});
