// Differential table test of the one authorization engine: every condition kind an
// AuthorizationPolicy can carry (from, to, when; their not- forms), as ALLOW and as DENY,
// for a caller that matches it and one that does not, asked through
//   - the tunnel (PolicyAuthorizer: the per-connection decision allow / deny / l7), and
//   - the L7 path (the Authorizer callback the HTTP/1.1 and HTTP/2 codecs call per
//     request; and, for the address conditions, real requests through InboundL7 on both
//     protocols).
// Where the tunnel decides (allow or deny), the L7 path must decide the same; where the
// decision needs the request (l7), the tunnel refuses a plain connection and the L7 path
// decides as the table expects.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import type { AuthorizationPolicyState, AuthorizationRule } from '../../agent/policy/snapshot';
import { PolicyAuthorizer } from '../../agent/proxy/tunnel/authz';
import { Authorizer, type Peer } from '../../agent/proxy/routing/authz';
import { InboundL7 } from '../../agent/proxy/http/inbound';
import { H2Proxy } from '../../agent/proxy/h2/proxy';
import { L7Directory } from '../../agent/proxy/routing/directory';
import { componentLogger } from '../../agent/telemetry/logger';

interface Caller {
  principal: string; sourceIp: string; destinationIp: string; port: number;
  method: string; path: string; headers: Record<string, string>;
}
/** Matches every pattern of the table... */
const A: Caller = { principal: 'spiffe://td/ns/shop/sa/front', sourceIp: '10.1.2.3', destinationIp: '10.9.0.5', port: 8080, method: 'GET', path: '/api/items', headers: { 'x-user': 'alice' } };
/** ...and this one none of them. */
const B: Caller = { principal: 'spiffe://td/ns/other/sa/batch', sourceIp: '192.168.7.9', destinationIp: '10.9.0.6', port: 9090, method: 'POST', path: '/admin', headers: { 'x-user': 'bob' } };

type Kind = { name: string; request: boolean; rule: AuthorizationRule };
const src = (s: Partial<AuthorizationRule['from'][0]>): AuthorizationRule => ({ from: [{ principals: [], notPrincipals: [], namespaces: [], notNamespaces: [], ipBlocks: [], notIpBlocks: [], ...s }], to: [], when: [] });
const op = (o: Partial<AuthorizationRule['to'][0]>): AuthorizationRule => ({ from: [], to: [{ ports: [], methods: [], paths: [], notPaths: [], ...o }], when: [] });
const when = (key: string, values: string[], notValues: string[] = []): AuthorizationRule => ({ from: [], to: [], when: [{ key, values, notValues }] });

/** Every kind, written so that caller A matches and caller B does not. */
const KINDS: Kind[] = [
  { name: 'from.principals', request: false, rule: src({ principals: ['td/ns/shop/*'] }) },
  { name: 'from.principals (spiffe:// form)', request: false, rule: src({ principals: ['spiffe://td/ns/shop/sa/front'] }) },
  { name: 'from.notPrincipals', request: false, rule: src({ notPrincipals: ['*/sa/batch'] }) },
  { name: 'from.namespaces', request: false, rule: src({ namespaces: ['shop'] }) },
  { name: 'from.notNamespaces', request: false, rule: src({ notNamespaces: ['oth*'] }) },
  { name: 'from.ipBlocks', request: false, rule: src({ ipBlocks: ['10.1.0.0/16'] }) },
  { name: 'from.notIpBlocks', request: false, rule: src({ notIpBlocks: ['192.168.0.0/16'] }) },
  { name: 'to.ports', request: false, rule: op({ ports: ['8080'] }) },
  { name: 'to.methods', request: true, rule: op({ methods: ['GET', 'HEAD'] }) },
  { name: 'to.paths', request: true, rule: op({ paths: ['/api/*'] }) },
  { name: 'to.notPaths', request: true, rule: op({ notPaths: ['/admin*'] }) },
  { name: 'when source.principal', request: false, rule: when('source.principal', ['spiffe://td/ns/shop/sa/front']) },
  { name: 'when source.principal notValues', request: false, rule: when('source.principal', [], ['td/ns/other/*']) },
  { name: 'when source.namespace', request: false, rule: when('source.namespace', ['shop']) },
  { name: 'when source.namespace notValues', request: false, rule: when('source.namespace', [], ['other']) },
  { name: 'when source.ip', request: false, rule: when('source.ip', ['10.1.2.0/24']) },
  { name: 'when source.ip notValues', request: false, rule: when('source.ip', [], ['192.168.7.9']) },
  { name: 'when destination.ip', request: false, rule: when('destination.ip', ['10.9.0.5']) },
  { name: 'when destination.ip notValues', request: false, rule: when('destination.ip', [], ['10.9.0.6/32']) },
  { name: 'when destination.port', request: false, rule: when('destination.port', ['8080']) },
  { name: 'when destination.port notValues', request: false, rule: when('destination.port', [], ['9090']) },
  { name: 'when request.headers', request: true, rule: when('request.headers[x-user]', ['alice']) },
  { name: 'when request.headers notValues', request: true, rule: when('request.headers[x-user]', [], ['bob']) },
];

const WORKLOAD = 'shop/items';
const policy = (action: 'ALLOW' | 'DENY', rule: AuthorizationRule): AuthorizationPolicyState =>
  ({ key: `shop/${action.toLowerCase()}`, action, workloads: [WORKLOAD], rules: [rule], l7: rule.when.length > 0 || rule.to.some((t) => t.methods.length + t.paths.length + t.notPaths.length > 0) });
const peerOf = (c: Caller): Peer => ({ principal: c.principal, port: c.port, ip: c.sourceIp, destinationIp: c.destinationIp });
const requestOf = (c: Caller) => ({ method: c.method, path: c.path, query: '', header: (n: string) => c.headers[n] });

for (const kind of KINDS) {
  test(`authorization differential: ${kind.name}`, () => {
    for (const action of ['ALLOW', 'DENY'] as const) {
      const tunnel = new PolicyAuthorizer([policy(action, kind.rule)]);
      // The L7 path asks the engine the tunnel compiled, as the agent wires it.
      const l7 = new Authorizer(tunnel.engine.workload(WORKLOAD));
      for (const [who, caller, matches] of [['A', A, true], ['B', B, false]] as const) {
        const expected = action === 'ALLOW' ? matches : !matches;
        const at = `${action} ${kind.name}, caller ${who}`;
        const conn = tunnel.engine.connection(WORKLOAD, { principal: caller.principal, sourceIp: caller.sourceIp, destinationIp: caller.destinationIp, destinationPort: caller.port });
        const plain = tunnel.authorize({
          sourcePrincipal: caller.principal, sourceNamespace: caller.principal.split('/')[4]!, sourceIp: caller.sourceIp,
          destinationWorkload: WORKLOAD, destinationIp: caller.destinationIp, destinationPort: caller.port,
        });
        const perRequest = l7.forPeer(peerOf(caller))(requestOf(caller));
        const decided = tunnel.engine.request(WORKLOAD, { principal: caller.principal, sourceIp: caller.sourceIp, destinationIp: caller.destinationIp, destinationPort: caller.port }, requestOf(caller));
        assert.equal(perRequest, expected, `${at}: L7 path`);
        assert.equal(decided.verdict, expected ? 'allow' : 'deny', `${at}: per-request decision`);
        if (kind.request) {
          assert.equal(conn.verdict, 'l7', `${at}: a request condition is undecidable per connection`);
          assert.equal(plain.allowed, false, `${at}: the tunnel refuses what it cannot prove`);
        } else {
          assert.equal(conn.verdict, expected ? 'allow' : 'deny', `${at}: tunnel decision`);
          assert.equal(plain.allowed, perRequest, `${at}: tunnel and L7 path agree`);
        }
      }
    }
  });
}

test('authorization differential: a request condition next to an unmet connection condition is decided per connection', () => {
  const rule: AuthorizationRule = { ...src({ namespaces: ['shop'] }), to: [{ ports: [], methods: ['GET'], paths: [], notPaths: [] }] };
  const allow = new PolicyAuthorizer([policy('ALLOW', rule)]);
  assert.equal(allow.engine.connection(WORKLOAD, { principal: B.principal, destinationPort: 80 }).verdict, 'deny', 'no request can make B match');
  assert.equal(allow.engine.connection(WORKLOAD, { principal: A.principal, destinationPort: 80 }).verdict, 'l7');
  const deny = new PolicyAuthorizer([policy('DENY', rule)]);
  assert.equal(deny.engine.connection(WORKLOAD, { principal: B.principal, destinationPort: 80 }).verdict, 'allow', 'no request can make B denied');
  assert.equal(deny.engine.connection(WORKLOAD, { principal: A.principal, destinationPort: 80 }).verdict, 'l7');
});

// The drift this engine fixed: the L7 path knew no source.ip / destination.ip, so such a
// DENY never fired. Real requests through the inbound L7 proxy, HTTP/1.1 and HTTP/2.
test('authorization differential: source.ip and destination.ip DENY fire on the L7 path over HTTP/1.1 and HTTP/2', async (t) => {
  const backend = http.createServer((_q, r) => r.end('ok'));
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  const h2backend = http2.createServer((_q, r) => r.end('ok'));
  await new Promise<void>((r) => h2backend.listen(0, '127.0.0.1', r));
  const dir = new L7Directory();
  const log = componentLogger('authz-diff-test');
  const direct = (ep: { ip: string; port: number }) => connect({ host: ep.ip, port: ep.port });
  const h2 = new H2Proxy({ connect: direct, logger: log, accessLog: null, tracer: null });
  const inbound = new InboundL7({ connect: direct, headerTimeoutMs: 5000, idleTimeoutMs: 60_000, maxHeadBytes: 16384, accessLog: null, tracer: null, logger: log }, h2);
  const tunnel = new PolicyAuthorizer([
    policy('DENY', { from: [], to: [], when: [{ key: 'source.ip', values: ['10.1.0.0/16'], notValues: [] }, { key: 'request.headers[x-probe]', values: ['source'], notValues: [] }] }),
    { ...policy('DENY', { from: [], to: [], when: [{ key: 'destination.ip', values: ['10.9.0.5'], notValues: [] }, { key: 'request.headers[x-probe]', values: ['destination'], notValues: [] }] }), key: 'shop/deny-destination' },
  ]);
  const authz = new Authorizer(tunnel.engine.workload(WORKLOAD));
  const servers: ReturnType<typeof createServer>[] = [];
  const listen = (peer: Peer, target: number) => new Promise<number>((r) => {
    const srv = createServer((s: Socket) => inbound.handle(s, dir.lookup('127.0.0.1', target), peer, authz, null));
    servers.push(srv);
    srv.listen(0, '127.0.0.1', () => r((srv.address() as AddressInfo).port));
  });
  t.after(async () => {
    for (const s of servers) s.close();
    inbound.close(); h2.close(); dir.close();
    backend.close(); h2backend.close();
  });
  const h1port = (backend.address() as AddressInfo).port, h2port = (h2backend.address() as AddressInfo).port;
  const get1 = (port: number, probe: string) => new Promise<number>((res, rej) => {
    http.get({ host: '127.0.0.1', port, path: '/', headers: { 'x-probe': probe }, agent: false }, (r) => { r.resume(); r.on('end', () => res(r.statusCode!)); }).on('error', rej);
  });
  const get2 = (port: number, probe: string) => new Promise<number>((res, rej) => {
    const c = http2.connect(`http://127.0.0.1:${port}`);
    c.on('error', rej);
    const s = c.request({ ':path': '/', 'x-probe': probe });
    s.on('response', (h) => { s.resume(); s.on('end', () => { c.close(); res(Number(h[':status'])); }); });
    s.on('error', rej);
    s.end();
  });
  for (const [proto, get, target] of [['HTTP/1.1', get1, h1port], ['HTTP/2', get2, h2port]] as const) {
    const fromA = await listen(peerOf(A), target), fromB = await listen(peerOf(B), target);
    assert.equal(await get(fromA, 'source'), 403, `${proto}: source.ip DENY fires for a caller in 10.1.0.0/16`);
    assert.equal(await get(fromB, 'source'), 200, `${proto}: not for one outside`);
    assert.equal(await get(fromA, 'destination'), 403, `${proto}: destination.ip DENY fires for 10.9.0.5`);
    assert.equal(await get(fromB, 'destination'), 200, `${proto}: not for another destination`);
    assert.equal(await get(fromA, 'none'), 200, `${proto}: the header part must hold too`);
  }
});
