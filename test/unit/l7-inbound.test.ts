// Inbound L7 authorization (AuthorizationPolicy, Istio semantics) and the outbound
// listener's protocol detection for non-HTTP traffic: TLS from the app passed through
// (SNI routing on request), server-first protocols relayed after the detection timeout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { execFile } from 'node:child_process';
import * as grpc from '@grpc/grpc-js';
import type { AuthorizationPolicyState, AuthorizationRule } from '../../agent/policy/snapshot';
import { Authorizer } from '../../agent/proxy/routing/authz';
import { InboundL7 } from '../../agent/proxy/http/inbound';
import { H2Proxy } from '../../agent/proxy/h2/proxy';
import { L7Directory } from '../../agent/proxy/routing/directory';
import { componentLogger } from '../../agent/telemetry/logger';
import { httpUpstream, service, view, startProxy } from './l7-harness';
import { detectProtocol, Detected } from '../../agent/proxy/outbound';

function rule(r: Partial<{ principals: string[]; namespaces: string[]; methods: string[]; paths: string[]; notPaths: string[]; when: AuthorizationRule['when'] }>): AuthorizationRule {
  return {
    from: r.principals || r.namespaces ? [{ principals: r.principals ?? [], notPrincipals: [], namespaces: r.namespaces ?? [], notNamespaces: [], ipBlocks: [], notIpBlocks: [] }] : [],
    to: r.methods || r.paths || r.notPaths ? [{ ports: [], methods: r.methods ?? [], paths: r.paths ?? [], notPaths: r.notPaths ?? [] }] : [],
    when: r.when ?? [],
  };
}
function policy(action: 'ALLOW' | 'DENY', rules: AuthorizationRule[]): AuthorizationPolicyState {
  return { key: `test/${action}`, action, workloads: ['test/w'], rules, l7: true };
}
const req = (method: string, path: string, headers: Record<string, string> = {}) => ({ method, path, query: '', header: (n: string) => headers[n] });
const FRONT = { principal: 'spiffe://t/ns/shop/sa/frontend', port: 8080 };
const OTHER = { principal: 'spiffe://t/ns/other/sa/batch', port: 8080 };

test('AuthorizationPolicy evaluator: DENY first, ALLOW required when present, globs and conditions', () => {
  assert.equal(new Authorizer([]).check(req('GET', '/'), OTHER), true, 'no policy: allow');
  const allow = new Authorizer([policy('ALLOW', [rule({ principals: ['t/ns/shop/sa/frontend'], methods: ['GET'], paths: ['/api/*'] })])]);
  assert.equal(allow.check(req('GET', '/api/items'), FRONT), true);
  assert.equal(allow.check(req('POST', '/api/items'), FRONT), false, 'method not allowed');
  assert.equal(allow.check(req('GET', '/admin'), FRONT), false, 'path not allowed');
  assert.equal(allow.check(req('GET', '/api/items'), OTHER), false, 'principal not allowed');
  const both = new Authorizer([
    policy('ALLOW', [rule({ namespaces: ['shop'] })]),
    policy('DENY', [rule({ paths: ['/api/secret'] }), rule({ when: [{ key: 'request.headers[x-debug]', values: ['1'], notValues: [] }] })]),
  ]);
  assert.equal(both.check(req('GET', '/api/x'), FRONT), true);
  assert.equal(both.check(req('GET', '/api/secret'), FRONT), false, 'DENY wins over ALLOW');
  assert.equal(both.check(req('GET', '/api/x', { 'x-debug': '1' }), FRONT), false, 'header condition');
  assert.equal(both.check(req('GET', '/api/x'), OTHER), false, 'namespace not allowed');
  const notPath = new Authorizer([policy('ALLOW', [rule({ notPaths: ['*.secret'] })])]);
  assert.equal(notPath.check(req('GET', '/a.secret'), OTHER), false);
  assert.equal(notPath.check(req('GET', '/a.txt'), OTHER), true);
  assert.equal(new Authorizer([policy('ALLOW', [])]).check(req('GET', '/'), FRONT), false, 'ALLOW with no rules denies all');
});

test('inbound: HTTP/1.1 denied with 403 and gRPC with PERMISSION_DENIED for the caller principal', async (t) => {
  const up = await httpUpstream((_q, res) => res.end('workload'));
  const grpcServer = new grpc.Server();
  const id = (b: Buffer) => b;
  grpcServer.addService({ Get: { path: '/shop.Items/Get', requestStream: false, responseStream: false, requestSerialize: id, requestDeserialize: id, responseSerialize: id, responseDeserialize: id, originalName: 'Get' } } as grpc.ServiceDefinition,
    { Get: (_c: unknown, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.from('item')) } as never);
  const gport = await new Promise<number>((res, rej) => grpcServer.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  const dir = new L7Directory();
  const log = componentLogger('inbound-test');
  const h2 = new H2Proxy({ connect: (ep) => connect({ host: ep.ip, port: ep.port }), logger: log, accessLog: null, tracer: null });
  const inbound = new InboundL7({ connect: (ep) => connect({ host: ep.ip, port: ep.port }), headerTimeoutMs: 5000, idleTimeoutMs: 60_000, maxHeadBytes: 16384, accessLog: null, tracer: null, logger: log }, h2);
  const authz = new Authorizer([policy('ALLOW', [rule({ principals: ['t/ns/shop/sa/frontend'], methods: ['GET', 'POST'], paths: ['/public/*', '/shop.Items/Get'] })])]);
  // Stands in for the mTLS terminator: the "peer" is chosen by which listener was used.
  const listen = (peer: typeof FRONT, target: number) => new Promise<number>((r) => {
    const srv = createServer((s: Socket) => inbound.handle(s, dir.lookup('127.0.0.1', target), peer, authz, null));
    srv.listen(0, '127.0.0.1', () => r((srv.address() as AddressInfo).port));
    t.after(() => srv.close());
  });
  const asFront = await listen(FRONT, up.port), asOther = await listen(OTHER, up.port);
  const grpcFront = await listen(FRONT, gport), grpcOther = await listen(OTHER, gport);
  t.after(async () => { inbound.close(); h2.close(); dir.close(); grpcServer.forceShutdown(); await up.close(); });

  const curl = (port: number, path: string) => new Promise<string>((res, rej) => execFile('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${port}${path}`], (e, o) => (e ? rej(e) : res(o))));
  assert.equal(await curl(asFront, '/public/a'), '200');
  assert.equal(await curl(asFront, '/private'), '403');
  assert.equal(await curl(asOther, '/public/a'), '403');

  const call = (port: number) => new Promise<grpc.ServiceError | null>((res) => {
    const c = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    c.makeUnaryRequest('/shop.Items/Get', id, id, Buffer.from('x'), (e) => { c.close(); res(e); });
  });
  assert.equal(await call(grpcFront), null);
  const denied = await call(grpcOther);
  assert.equal(denied?.code, grpc.status.PERMISSION_DENIED);
});

test('protocol detection classifies first bytes', () => {
  assert.equal(detectProtocol(Buffer.from('GET / HTTP/1.1\r\n')), Detected.Http1);
  assert.equal(detectProtocol(Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')), Detected.H2);
  assert.equal(detectProtocol(Buffer.from('PRI * HT')), Detected.NeedMore);
  assert.equal(detectProtocol(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x10])), Detected.Tls);
  assert.equal(detectProtocol(Buffer.from([0x00, 0x01, 0x02])), Detected.Opaque);
  assert.equal(detectProtocol(Buffer.from('SSH-2.0-OpenSSH')), Detected.Opaque);
});

test('TLS from the app passes through untouched (curl to an HTTPS origin); server-first protocols are relayed', async (t) => {
  // Server-first: the server speaks before the client sends anything.
  const banner = createServer((s) => { s.write('220 hello\r\n'); s.on('data', (d) => s.write(`echo ${d}`)); s.on('error', () => {}); });
  await new Promise<void>((r) => banner.listen(0, '127.0.0.1', r));
  const bport = (banner.address() as AddressInfo).port;
  const p = await startProxy(view([service({ name: 'smtp', vip: '10.96.3.1', port: 25, protocol: 'TCP', endpoints: [{ port: bport }] })]), { ip: '10.96.3.1', port: 25 }, { detectTimeoutMs: 100 });
  t.after(async () => { await p.close(); banner.close(); });
  const got = await new Promise<string>((resolve) => {
    const s = connect(p.port, '127.0.0.1');
    let data = '';
    s.on('data', (d) => { data += d; if (data === '220 hello\r\n') s.write('hi'); if (data.endsWith('echo hi')) { s.destroy(); resolve(data); } });
  });
  assert.equal(got, '220 hello\r\necho hi');

  // TLS: an HTTPS server with a self-signed cert; curl's handshake and request pass through.
  const forge = (await import('node-forge')).default;
  const keys = forge.pki.rsa.generateKeyPair(1024);
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = '01';
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 3600_000);
  cert.setSubject([{ name: 'commonName', value: 'app.example' }]);
  cert.setIssuer([{ name: 'commonName', value: 'app.example' }]);
  cert.sign(keys.privateKey);
  const https = await import('node:https');
  const srv = https.createServer({ key: forge.pki.privateKeyToPem(keys.privateKey), cert: forge.pki.certificateToPem(cert) }, (_q, res) => res.end('secure'));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => srv.close());
  let sniSeen = '';
  const q = await startProxy(view([]), { ip: '127.0.0.1', port: (srv.address() as AddressInfo).port }, {
    routeSni: (sni) => { sniSeen = sni; return null; },
  });
  t.after(() => q.close());
  const body = await new Promise<string>((res, rej) => execFile('curl', ['-sk', '--resolve', `app.example:${q.port}:127.0.0.1`, `https://app.example:${q.port}/`], (e, o) => (e ? rej(e) : res(o))));
  assert.equal(body, 'secure');
  assert.equal(sniSeen, 'app.example', 'SNI read from the ClientHello for routing');
});
