// Hole 3: chunked request trailers reached the backend unvalidated (a request line or
// an obs-fold inside the trailer section, byte for byte); a request-target with a
// #fragment and an absolute-form target whose authority is not Host were forwarded.
// Now trailer fields follow the header-field rules (else 400), fragments are 400, and
// absolute-form must name the Host (it is forwarded in origin-form).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rawExchange, service, view, startProxy } from '../unit/l7-harness';
import { connect } from 'node:net';
import { h2Backend, h2Request, recordingBackend, startInbound, statusOf } from './harness';
import { HpackEncoder } from '../../agent/proxy/h2/hpack';

const OK = 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok';
const chunked = (trailer: string) => Buffer.from(`POST /upload HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n${trailer}\r\n`, 'latin1');
const done = (d: Buffer) => /\r\n\r\n[\s\S]*\n$/.test(d.toString('latin1'));

async function proxyTo(port: number) {
  return startProxy(view([service({ name: 'web', vip: '10.96.0.30', port: 80, endpoints: [{ port }] })]), { ip: '10.96.0.30', port: 80 });
}

test('trailers: a request line or an obs-fold in the trailer section is 400 and never reaches the backend', async (t) => {
  const be = await recordingBackend(OK);
  const p = await proxyTo(be.port);
  t.after(async () => { await p.close(); await be.close(); });
  const bad = [
    'GET /admin HTTP/1.1\r\nHost: svc\r\n',   // a request line smuggled as a "trailer"
    'X-Sum: 1\r\n folded: GET /admin\r\n',      // obs-fold
    'X-Sum : 1\r\n',                           // whitespace before the colon
    'X-Sum\r\n',                               // no colon
    ': empty-name\r\n',                        // empty name
    'X-Sum: a\x00b\r\n',                       // NUL in a value
    'X-Sum: 1\nGET /admin HTTP/1.1\r\n',      // bare LF
  ];
  for (const tr of bad) {
    const r = await rawExchange(p.port, chunked(tr), 2000);
    assert.equal(statusOf(r.data), 400, `trailer ${JSON.stringify(tr)} must be refused`);
  }
  assert.doesNotMatch(be.received(), /admin|folded|X-Sum/, 'no malformed trailer byte reached the backend');

  // Well-formed trailers still pass through.
  const r = await rawExchange(p.port, chunked('X-Checksum: abc\r\nX-Other:\tv 2 \r\n'), 2000, 0, (d) => d.toString().endsWith('ok'));
  assert.equal(statusOf(r.data), 200);
  assert.match(be.received(), /0\r\nX-Checksum: abc\r\nX-Other:\tv 2 \r\n\r\n$/);
});

test('targets: a #fragment is 400 (HTTP/1.1 and HTTP/2)', async (t) => {
  const be = await recordingBackend(OK);
  const p = await proxyTo(be.port);
  const h2 = await h2Backend();
  const ib = await startInbound(h2.port, []);
  t.after(async () => { await p.close(); await be.close(); await ib.close(); await h2.close(); });
  for (const target of ['/a#frag', '/a?x=1#frag', '/#', 'http://svc/a#f']) {
    const r = await rawExchange(p.port, Buffer.from(`GET ${target} HTTP/1.1\r\nHost: svc\r\n\r\n`), 2000, 0, done);
    assert.equal(statusOf(r.data), 400, `${target} must be refused`);
  }
  assert.equal(be.received(), '', 'nothing reached the backend');
  for (const path of ['/a#frag', '/a?x=1#frag']) assert.equal((await h2Request(ib.port, path)).status, 400, `:path ${path} must be refused`);
  assert.deepEqual(h2.paths, []);
});

test('targets: absolute-form whose authority differs from Host is 400; a matching one goes out in origin-form', async (t) => {
  const be = await recordingBackend(OK);
  const p = await proxyTo(be.port);
  t.after(async () => { await p.close(); await be.close(); });
  for (const [target, host] of [['http://evil.example/admin', 'svc'], ['http://svc:8080/x', 'svc'], ['http://user@svc/x', 'svc'], ['http:///x', 'svc']] as const) {
    const r = await rawExchange(p.port, Buffer.from(`GET ${target} HTTP/1.1\r\nHost: ${host}\r\n\r\n`), 2000, 0, done);
    assert.equal(statusOf(r.data), 400, `${target} with Host ${host} must be refused`);
  }
  assert.equal(be.received(), '', 'nothing reached the backend');
  const r = await rawExchange(p.port, Buffer.from('GET http://SVC/a/../b?q=1 HTTP/1.1\r\nHost: svc\r\n\r\n'), 2000, 0, (d) => d.toString().endsWith('ok'));
  assert.equal(statusOf(r.data), 200);
  assert.match(be.received(), /^GET \/b\?q=1 HTTP\/1\.1\r\nHost: svc\r\n/, 'origin-form, normalized, query kept');
});

/** Sends one HTTP/2 request with exactly `fields` (HPACK-encoded by weft's encoder) and
 *  returns the frame types the server sent back. */
async function rawH2(port: number, fields: string[]): Promise<number[]> {
  const block = Buffer.from(new HpackEncoder().encode(fields));
  const head = Buffer.alloc(9);
  head.writeUIntBE(block.length, 0, 3); head[3] = 1; head[4] = 0x5; head.writeUInt32BE(1, 5);
  const bytes = Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]), head, block]);
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let got = Buffer.alloc(0);
    const types = (): number[] => { const out: number[] = []; for (let i = 0; i + 9 <= got.length; i += 9 + got.readUIntBE(i, 3)) out.push(got[i + 3]!); return out; };
    const timer = setTimeout(() => { s.destroy(); resolve(types()); }, 500);
    s.on('data', (d: Buffer) => { got = Buffer.concat([got, d]); if (types().includes(3) || types().includes(1)) { clearTimeout(timer); s.destroy(); resolve(types()); } });
    s.on('error', () => {});
    s.write(bytes);
  });
}

test('targets: HTTP/2 requests with two :path fields, or a Host that is not :authority, are malformed (RST_STREAM)', async (t) => {
  const h2 = await h2Backend();
  const ib = await startInbound(h2.port, []);
  t.after(async () => { await ib.close(); await h2.close(); });
  const base = [':method', 'GET', ':scheme', 'http'];
  const RST = 3, HEADERS = 1;
  assert.ok((await rawH2(ib.port, [...base, ':path', '/ok', ':path', '/admin', ':authority', 'svc'])).includes(RST), 'duplicate :path');
  assert.ok((await rawH2(ib.port, [...base, ':path', '/ok', ':authority', 'svc', 'host', 'evil.example'])).includes(RST), 'Host differs from :authority');
  assert.deepEqual(h2.paths, [], 'nothing reached the backend');
  assert.ok((await rawH2(ib.port, [...base, ':path', '/ok', ':authority', 'svc', 'host', 'SVC'])).includes(HEADERS), 'same site: answered');
  assert.deepEqual(h2.paths, ['/ok']);
});

test('targets: an HTTP/1.0 absolute-form request without Host goes out in origin-form with its authority as Host', async (t) => {
  const be = await recordingBackend(OK);
  const p = await proxyTo(be.port);
  t.after(async () => { await p.close(); await be.close(); });
  const r = await rawExchange(p.port, Buffer.from('GET http://svc/x HTTP/1.0\r\n\r\n'), 2000, 0, (d) => d.toString().endsWith('ok'));
  assert.equal(statusOf(r.data), 200);
  assert.match(be.received(), /^GET \/x HTTP\/1\.0\r\nhost: svc\r\n\r\n$/);
});
