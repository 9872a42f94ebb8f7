// The agent's DNS proxy (agent/dns/): the wire codec, the mesh name table, the
// resolver's semantics (NXDOMAIN vs NODATA, TTLs, EDNS0, truncation, case, id and
// question echo, malformed input) and the server with a forwarder on loopback.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { connect, createServer } from 'node:net';
import { once } from 'node:events';
import { Registry } from 'prom-client';

import {
  FLAG, RCODE, TYPE, buildQuery, buildResponse, encodeName, parseQuery, parseResponse, readName, truncateResponse, udpLimit,
  DnsFormatError,
} from '../../agent/dns/wire';
import { NameTable, validateClusterDomain } from '../../agent/dns/table';
import { MeshResolver, NEGATIVE_TTL_SECONDS, DEFAULT_TTL_SECONDS } from '../../agent/dns/resolver';
import { Forwarder, parseResolvConf, parseUpstream } from '../../agent/dns/upstream';
import { DnsServer } from '../../agent/dns/server';
import { callerAllowed } from '../../agent/dns/callers';
import { networkInterfaces } from 'node:os';
import { dnsConfig } from '../../agent/cli/agent';

const svc = (name: string, namespace: string, vip: string) => ({ name, namespace, vip, ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'HTTP' as const }] });
const table = new NameTable([svc('catalog', 'shop', '10.96.0.20'), svc('orders', 'shop', '10.96.0.21'), svc('api', 'v6', 'fd00:96::5'), svc('headless', 'shop', '')]);
const resolver = new MeshResolver(table);

function answer(q: Buffer, ns?: string) {
  const r = resolver.resolve(q, ns);
  assert.equal(r.kind, 'answer', `answered locally: ${JSON.stringify(r.kind)}`);
  return parseResponse((r as { response: Buffer }).response);
}
const ip4 = (b: Buffer) => [...b].join('.');

test('wire: names with compression pointers; loops, forward pointers and overlong names are errors', () => {
  const q = buildQuery(7, 'catalog.shop.svc.cluster.local', TYPE.A);
  assert.deepEqual(readName(q, 12).labels, ['catalog', 'shop', 'svc', 'cluster', 'local']);
  // A pointer to the question's name from a record after it.
  const msg = Buffer.concat([q, Buffer.from([0x03, 0x77, 0x77, 0x77, 0xc0, 12])]);
  assert.deepEqual(readName(msg, q.length).labels, ['www', 'catalog', 'shop', 'svc', 'cluster', 'local']);
  assert.equal(readName(msg, q.length).end, msg.length);
  const loop = Buffer.concat([Buffer.alloc(12), Buffer.from([0xc0, 12])]);
  assert.throws(() => readName(loop, 12), DnsFormatError, 'a pointer to itself');
  const fwd = Buffer.concat([Buffer.alloc(12), Buffer.from([0xc0, 14, 0])]);
  assert.throws(() => readName(fwd, 12), /forward/);
  assert.throws(() => encodeName(['a'.repeat(64)]), /label/);
  assert.throws(() => encodeName(Array(130).fill('ab')), /255/);
  assert.throws(() => readName(Buffer.concat([Buffer.alloc(12), Buffer.from([5, 0x61])]), 12), /past the message/);
});

test('wire: a query parses with its EDNS0 record; bad ones are dropped or FORMERR', () => {
  const q = parseQuery(buildQuery(0xbeef, 'Catalog.Shop', TYPE.AAAA, { edns: 4096 }));
  assert.ok(!('error' in q));
  assert.equal(q.id, 0xbeef);
  assert.deepEqual(q.question.labels, ['Catalog', 'Shop']);
  assert.deepEqual(q.edns, { udpSize: 4096, version: 0, do: false });
  assert.throws(() => parseQuery(Buffer.alloc(5)), DnsFormatError);
  const response = buildQuery(1, 'a', TYPE.A); response.writeUInt16BE(FLAG.QR, 2);
  assert.throws(() => parseQuery(response), /response/);
  const two = buildQuery(2, 'a', TYPE.A); two.writeUInt16BE(2, 4);
  assert.deepEqual(parseQuery(two), { id: 2, flags: FLAG.RD, error: RCODE.FORMERR });
  const notify = buildQuery(3, 'a', TYPE.A); notify.writeUInt16BE(4 << 11, 2);
  assert.equal((parseQuery(notify) as { error: number }).error, RCODE.NOTIMP);
});

test('resolver: A for NAME.NAMESPACE.svc.<domain> and every short form, case-insensitive, id and question echoed', () => {
  for (const name of ['catalog.shop.svc.cluster.local', 'CATALOG.Shop.SVC.Cluster.Local.', 'catalog.shop.svc', 'catalog.shop']) {
    const q = buildQuery(0x1234, name, TYPE.A);
    const r = answer(q);
    assert.equal(r.id, 0x1234);
    assert.equal(r.rcode, RCODE.NOERROR, name);
    assert.ok(r.flags & FLAG.QR && r.flags & FLAG.AA && r.flags & FLAG.RD && r.flags & FLAG.RA, 'QR AA RD RA');
    assert.deepEqual(r.question?.labels, name.replace(/\.$/, '').split('.'), 'the question as asked, case kept');
    assert.deepEqual(r.answers.map((a) => [a.type, ip4(a.rdata), a.ttl]), [[TYPE.A, '10.96.0.20', DEFAULT_TTL_SECONDS]], name);
    assert.deepEqual(r.answers[0]!.labels, r.question?.labels, 'the owner is the name asked');
  }
  // Bare NAME only with the caller's namespace.
  assert.equal(resolver.resolve(buildQuery(1, 'catalog', TYPE.A)).kind, 'forward');
  assert.deepEqual(answer(buildQuery(1, 'catalog', TYPE.A), 'shop').answers.map((a) => ip4(a.rdata)), ['10.96.0.20']);
  assert.equal(resolver.resolve(buildQuery(1, 'catalog', TYPE.A), 'other').kind, 'forward');
});

test('resolver: NXDOMAIN under the zone, NODATA for other types and empty non-terminals, SOA for negative caching', () => {
  const nx = answer(buildQuery(9, 'nope.shop.svc.cluster.local', TYPE.A));
  assert.equal(nx.rcode, RCODE.NXDOMAIN);
  assert.ok(nx.flags & FLAG.AA);
  assert.equal(nx.answers.length, 0);
  assert.deepEqual(nx.authority.map((a) => [a.type, a.labels.join('.'), a.ttl]), [[TYPE.SOA, 'cluster.local', NEGATIVE_TTL_SECONDS]]);
  assert.equal(nx.authority[0]!.rdata.readUInt32BE(nx.authority[0]!.rdata.length - 4), NEGATIVE_TTL_SECONDS, 'SOA minimum');
  assert.equal(answer(buildQuery(9, 'x.catalog.shop.svc.cluster.local', TYPE.A)).rcode, RCODE.NXDOMAIN);
  assert.equal(answer(buildQuery(9, 'other.cluster.local', TYPE.A)).rcode, RCODE.NXDOMAIN);
  assert.equal(answer(buildQuery(9, 'headless.shop.svc.cluster.local', TYPE.A)).rcode, RCODE.NXDOMAIN, 'no VIP: no name');
  // AAAA of an IPv4-only service: the name exists.
  const nodata = answer(buildQuery(9, 'catalog.shop.svc.cluster.local', TYPE.AAAA));
  assert.equal(nodata.rcode, RCODE.NOERROR);
  assert.equal(nodata.answers.length, 0);
  assert.equal(nodata.authority[0]?.type, TYPE.SOA);
  assert.equal(answer(buildQuery(9, 'catalog.shop', TYPE.TXT)).rcode, RCODE.NOERROR);
  for (const ent of ['shop.svc.cluster.local', 'svc.cluster.local', 'cluster.local']) {
    const r = answer(buildQuery(9, ent, TYPE.A));
    assert.equal(r.rcode, RCODE.NOERROR, ent);
    assert.equal(r.answers.length, 0, ent);
  }
  const soa = answer(buildQuery(9, 'cluster.local', TYPE.SOA));
  assert.deepEqual(soa.answers.map((a) => a.type), [TYPE.SOA]);
  // IPv6 VIP: AAAA answers, A is NODATA.
  const v6 = answer(buildQuery(9, 'api.v6', TYPE.AAAA));
  assert.deepEqual(v6.answers.map((a) => a.rdata.toString('hex')), ['fd000096000000000000000000000005']);
  assert.equal(answer(buildQuery(9, 'api.v6', TYPE.A)).answers.length, 0);
  const any = answer(buildQuery(9, 'orders.shop.svc.cluster.local', TYPE.ANY));
  assert.deepEqual(any.answers.map((a) => ip4(a.rdata)), ['10.96.0.21']);
  // Outside names and short forms that name no service go upstream.
  for (const name of ['example.com', 'www.example.com', 'nope.shop', 'cluster.local.example.com']) {
    assert.equal(resolver.resolve(buildQuery(1, name, TYPE.A)).kind, 'forward', name);
  }
});

test('resolver: EDNS0 echoed (our payload size), BADVERS for version > 0; malformed input dropped', () => {
  const r = answer(buildQuery(5, 'catalog.shop', TYPE.A, { edns: 4096 }));
  assert.deepEqual(r.opt, { udpSize: 1232, extendedRcode: 0 });
  assert.equal(answer(buildQuery(5, 'catalog.shop', TYPE.A)).opt, null, 'no OPT without one in the query');
  const v1 = buildQuery(5, 'catalog.shop', TYPE.A, { edns: 1232 });
  v1[v1.length - 5] = 1; // OPT version byte (TTL's second byte)
  const bad = answer(v1);
  assert.equal(bad.rcode, RCODE.BADVERS);
  assert.equal(bad.answers.length, 0);
  const overrun = buildQuery(1, 'catalog.shop', TYPE.A); overrun[12] = 60; // a label past the end
  for (const junk of [Buffer.alloc(0), Buffer.alloc(11, 0x7f), overrun, buildQuery(1, 'catalog.shop', TYPE.A).subarray(0, 20), buildQuery(1, 'catalog.shop', TYPE.A).subarray(0, -2)]) {
    assert.equal(resolver.resolve(junk).kind, 'drop');
  }
  // Random bytes never throw.
  for (let i = 0; i < 2000; i++) {
    const b = Buffer.from(Array.from({ length: 12 + (i % 80) }, () => Math.floor(Math.random() * 256)));
    b.writeUInt16BE(b.readUInt16BE(2) & ~FLAG.QR & 0x87ff, 2);
    assert.doesNotThrow(() => resolver.resolve(b));
  }
});

test('truncation: answers over 512 bytes (or the EDNS0 size) keep header, question and OPT with TC set', () => {
  const q = parseQuery(buildQuery(42, 'big.example', TYPE.A, { edns: 1232 }));
  assert.ok(!('error' in q));
  const answers = Array.from({ length: 60 }, (_, i) => ({ type: TYPE.A, ttl: 60, rdata: Buffer.from([10, 0, 0, i]) }));
  const full = buildResponse({ id: 42, queryFlags: q.flags, rcode: 0, authoritative: false, question: q.question.raw, answers, authority: [], edns: true });
  assert.ok(full.length > 512 && full.length < 1232, `${full.length} bytes`);
  assert.equal(truncateResponse(full, udpLimit(q.edns)), full, 'fits the EDNS0 size');
  const cut = parseResponse(truncateResponse(full, udpLimit(null)));
  assert.ok(cut.flags & FLAG.TC);
  assert.equal(cut.id, 42);
  assert.equal(cut.answers.length, 0);
  assert.deepEqual(cut.question?.labels, ['big', 'example']);
  assert.deepEqual(cut.opt, { udpSize: 1232, extendedRcode: 0 });
  assert.equal(udpLimit({ udpSize: 100, version: 0, do: false }), 512, 'never below 512');
  assert.equal(udpLimit({ udpSize: 65000, version: 0, do: false }), 1232, 'never above what we send');
});

test('table: cluster domain checked; names listed; VIP back to its service', () => {
  assert.equal(validateClusterDomain('Corp.Example.'), 'corp.example');
  assert.throws(() => validateClusterDomain('bad domain'), /not a DNS name/);
  const t = new NameTable([svc('catalog', 'shop', '10.96.0.20')], 'corp.example');
  assert.deepEqual(t.list().map((n) => n.fqdn), ['catalog.shop.svc.corp.example']);
  assert.equal(t.byVip('10.96.0.20')?.fqdn, 'catalog.shop.svc.corp.example');
  assert.equal(t.lookup(['catalog', 'shop', 'svc', 'cluster', 'local']).kind, 'outside', 'another domain is not ours');
  assert.equal(t.lookup(['catalog', 'shop', 'svc', 'corp', 'example']).kind, 'service');
});

test('upstream: resolv.conf nameservers and --dns-upstream forms', () => {
  assert.deepEqual(parseResolvConf('# c\nsearch a.b\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\nnameserver bogus\n options ndots:5\n'),
    [{ host: '10.0.0.2', port: 53 }, { host: 'fe80::1', port: 53 }]);
  assert.deepEqual(parseUpstream('127.0.0.1:5353'), { host: '127.0.0.1', port: 5353 });
  assert.deepEqual(parseUpstream('[fd00::1]:53'), { host: 'fd00::1', port: 53 });
  assert.deepEqual(parseUpstream('fd00::1'), { host: 'fd00::1', port: 53 });
  assert.throws(() => parseUpstream('dns.example:53'), /expected IP/);
});

/** A tiny authoritative server on loopback for the forwarder: one big name (over 512
 *  bytes of A records), one that never answers, everything else NXDOMAIN. */
async function fakeUpstream() {
  const reply = (msg: Buffer): Buffer | null => {
    const q = parseQuery(msg);
    if ('error' in q) return null;
    const name = q.question.labels.join('.').toLowerCase();
    if (name === 'silent.example') return null;
    const answers = name === 'big.example' ? Array.from({ length: 40 }, (_, i) => ({ type: TYPE.A, ttl: 60, rdata: Buffer.from([192, 0, 2, i]) }))
      : name === 'www.example' ? [{ type: TYPE.A, ttl: 60, rdata: Buffer.from([192, 0, 2, 80]) }] : [];
    return buildResponse({ id: q.id, queryFlags: q.flags, rcode: answers.length ? 0 : RCODE.NXDOMAIN, authoritative: true, question: q.question.raw, answers, authority: [], edns: q.edns !== null });
  };
  const udp = createSocket('udp4');
  udp.on('message', (m, r) => { const out = reply(m); if (out) udp.send(out, r.port, r.address); });
  udp.bind(0, '127.0.0.1');
  await once(udp, 'listening');
  const port = udp.address().port;
  const tcp = createServer((s) => {
    let buf = Buffer.alloc(0);
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const out = reply(buf.subarray(2, 2 + buf.readUInt16BE(0)));
        buf = buf.subarray(2 + buf.readUInt16BE(0));
        if (out) { const l = Buffer.alloc(2); l.writeUInt16BE(out.length); s.write(Buffer.concat([l, out])); }
      }
    });
    s.on('error', () => s.destroy());
  });
  tcp.listen(port, '127.0.0.1');
  await once(tcp, 'listening');
  return { port, close: () => { udp.close(); tcp.close(); } };
}

async function udpAsk(port: number, q: Buffer): Promise<Buffer> {
  const s = createSocket('udp4');
  try {
    s.send(q, port, '127.0.0.1');
    const [m] = await Promise.race([once(s, 'message'), new Promise<never>((_, rej) => setTimeout(() => rej(new Error('no UDP answer')), 4000))]);
    return m as Buffer;
  } finally { s.close(); }
}

async function tcpAsk(port: number, queries: Buffer[]): Promise<Buffer[]> {
  const s = connect(port, '127.0.0.1');
  await once(s, 'connect');
  s.write(Buffer.concat(queries.map((q) => { const l = Buffer.alloc(2); l.writeUInt16BE(q.length); return Buffer.concat([l, q]); })));
  const out: Buffer[] = [];
  let buf = Buffer.alloc(0);
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no TCP answers')), 4000);
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        out.push(Buffer.from(buf.subarray(2, 2 + buf.readUInt16BE(0))));
        buf = buf.subarray(2 + buf.readUInt16BE(0));
      }
      if (out.length === queries.length) { clearTimeout(t); resolve(); }
    });
  });
  s.destroy();
  return out;
}

test('server: mesh names answered, others forwarded over the client\'s transport; TC on UDP, whole over TCP; junk dropped', async (t) => {
  const up = await fakeUpstream();
  t.after(() => up.close());
  const registry = new Registry();
  const server = new DnsServer({
    host: '127.0.0.1', port: 0,
    resolver: new MeshResolver(table), forwarder: new Forwarder([{ host: '127.0.0.1', port: up.port }], { udpTimeoutMs: 300, tcpTimeoutMs: 500 }),
    namespaceOf: (ip) => (ip === '127.0.0.1' ? 'shop' : undefined), registry,
  });
  await server.listen();
  t.after(() => server.close());
  const port = server.port;

  const mesh = parseResponse(await udpAsk(port, buildQuery(11, 'catalog', TYPE.A)));
  assert.deepEqual(mesh.answers.map((a) => ip4(a.rdata)), ['10.96.0.20'], 'bare NAME: the caller\'s namespace from its address');
  const www = parseResponse(await udpAsk(port, buildQuery(12, 'WWW.example', TYPE.A)));
  assert.equal(www.id, 12, 'the client\'s id restored');
  assert.deepEqual(www.answers.map((a) => ip4(a.rdata)), ['192.0.2.80']);
  assert.equal(parseResponse(await udpAsk(port, buildQuery(13, 'none.example', TYPE.A))).rcode, RCODE.NXDOMAIN, 'upstream NXDOMAIN passed on');
  const big = parseResponse(await udpAsk(port, buildQuery(14, 'big.example', TYPE.A)));
  assert.ok(big.flags & FLAG.TC, 'over 512 bytes without EDNS0: truncated');
  assert.equal(big.answers.length, 0);
  const bigEdns = parseResponse(await udpAsk(port, buildQuery(15, 'big.example', TYPE.A, { edns: 1232 })));
  assert.equal(bigEdns.answers.length, 40, 'fits the EDNS0 size');
  assert.ok(!(bigEdns.flags & FLAG.TC));
  const [tcpBig, tcpMesh] = await tcpAsk(port, [buildQuery(16, 'big.example', TYPE.A), buildQuery(17, 'orders.shop.svc.cluster.local', TYPE.A)]);
  assert.equal(parseResponse(tcpBig!).answers.length, 40, 'TCP: the whole answer');
  assert.equal(parseResponse(tcpBig!).id, 16);
  assert.deepEqual(parseResponse(tcpMesh!).answers.map((a) => ip4(a.rdata)), ['10.96.0.21'], 'pipelined, in order');
  const fail = parseResponse(await udpAsk(port, buildQuery(18, 'silent.example', TYPE.A)));
  assert.equal(fail.rcode, RCODE.SERVFAIL, 'an upstream that never answers: SERVFAIL');
  // Junk: no answer, and the server keeps serving.
  const s = createSocket('udp4');
  s.send(Buffer.from('garbage'), port, '127.0.0.1');
  await new Promise((r) => setTimeout(r, 100));
  s.close();
  assert.equal(parseResponse(await udpAsk(port, buildQuery(19, 'catalog.shop', TYPE.A))).answers.length, 1);
  const counts = Object.fromEntries((await registry.getSingleMetric('weft_dns_queries_total')!.get()).values.map((v) => [`${v.labels.transport}/${v.labels.result}`, v.value]));
  assert.deepEqual(counts, { 'udp/answer': 2, 'udp/forwarded': 4, 'udp/servfail': 1, 'udp/dropped': 1, 'tcp/forwarded': 1, 'tcp/answer': 1 });
});

test('forwarder: bounded in flight; no upstream is SERVFAIL', async () => {
  const q = parseQuery(buildQuery(1, 'x.example', TYPE.A));
  assert.ok(!('error' in q));
  const none = await new Forwarder([]).forward(q, buildQuery(1, 'x.example', TYPE.A), 'udp');
  assert.equal(parseResponse(none.response).rcode, RCODE.SERVFAIL);
  // A server that never answers holds queries in flight; the cap answers the rest at once.
  const sink = createSocket('udp4');
  sink.bind(0, '127.0.0.1');
  await once(sink, 'listening');
  const f = new Forwarder([{ host: '127.0.0.1', port: sink.address().port }], { udpTimeoutMs: 300, maxPending: 4 });
  const started = Date.now();
  const all = await Promise.all(Array.from({ length: 10 }, () => f.forward(q, buildQuery(1, 'x.example', TYPE.A), 'udp')));
  assert.equal(all.filter((r) => r.upstream === null && r.error === 'too many queries in flight').length, 6);
  assert.ok(Date.now() - started < 2000);
  assert.equal(f.inFlight, 0);
  sink.close();
});

test('weft agent --dns flags: on by default outside Kubernetes, off with --kubernetes; clear errors', () => {
  const out = { host: '10.0.0.1', port: 15001 };
  assert.deepEqual(dnsConfig({}, out), { listen: { host: '10.0.0.1', port: 15053 }, capture: true });
  assert.equal(dnsConfig({ kubernetes: true }, out), undefined);
  assert.deepEqual(dnsConfig({ kubernetes: true, dns: 'on', 'dns-listen': '10.0.0.1:53', 'dns-upstream': '10.0.0.2,[fd00::2]:5353', 'cluster-domain': 'Corp.Example' }, out),
    { listen: { host: '10.0.0.1', port: 53 }, capture: true, upstreams: [{ host: '10.0.0.2', port: 53 }, { host: 'fd00::2', port: 5353 }], clusterDomain: 'corp.example' });
  assert.equal(dnsConfig({ dns: 'off' }, out), undefined);
  assert.throws(() => dnsConfig({ dns: 'yes' }, out), /--dns: expected on or off/);
  assert.throws(() => dnsConfig({ dns: 'off', 'dns-upstream': '10.0.0.2' }, out), /--dns-upstream needs --dns on/);
  assert.throws(() => dnsConfig({ 'dns-listen': '0.0.0.0:53' }, out), /not a specific IPv4 address/);
  assert.throws(() => dnsConfig({}, { host: '0.0.0.0', port: 15001 }), /not a specific IPv4 address/);
  assert.throws(() => dnsConfig({ 'dns-upstream': 'resolver.example' }, out), /--dns-upstream: upstream resolver/);
  assert.throws(() => dnsConfig({ 'cluster-domain': 'a b' }, out), /--cluster-domain/);
});

test('server: only this node and its workloads are answered; anyone else on the network is dropped (no open resolver)', async (t) => {
  const workloads: Parameters<typeof callerAllowed>[0] = [{ address: '10.77.0.11' }, { address: '10.77.0.12' }];
  assert.equal(callerAllowed(workloads, '127.0.0.1'), true, 'loopback: processes of this node');
  assert.equal(callerAllowed(workloads, '::ffff:10.77.0.11'), true, 'a local workload (pod) address, v4-mapped too');
  assert.equal(callerAllowed(workloads, '192.0.2.77'), false, 'another host');
  const own = Object.values(networkInterfaces()).flat().find((a) => a && !a.internal)?.address;
  if (own) assert.equal(callerAllowed([], own), true, 'the node\'s own interface address');

  const up = await fakeUpstream();
  t.after(() => up.close());
  const registry = new Registry();
  const server = new DnsServer({
    host: '127.0.0.1', port: 0, registry, allowed: () => false,
    resolver: new MeshResolver(table), forwarder: new Forwarder([{ host: '127.0.0.1', port: up.port }], { udpTimeoutMs: 300, tcpTimeoutMs: 500 }),
  });
  await server.listen();
  t.after(() => server.close());
  await assert.rejects(udpAsk(server.port, buildQuery(21, 'www.example', TYPE.A)), /no UDP answer/, 'a refused caller gets no answer, mesh or forwarded');
  const s = connect(server.port, '127.0.0.1');
  s.on('error', () => undefined);
  await once(s, 'close');
  assert.match(await registry.metrics(), /result="dropped"} 1/);
});
