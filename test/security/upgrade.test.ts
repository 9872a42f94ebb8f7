// Hole 2: any 101 became an opaque tunnel. `Upgrade: h2c` on an allowed path and a 101
// from the backend, and every HTTP/2 request after it escaped per-request
// authorization. Now only WebSocket upgrades are forwarded; h2c (and any other) offer
// is stripped (Upgrade, HTTP2-Settings, their Connection tokens) and a 101 nobody
// asked for is answered 502 and the connection closed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rawExchange, service, view, startProxy } from '../unit/l7-harness';
import { denyPaths, recordingBackend, startInbound, statusOf } from './harness';

const H2C_OFFER = 'GET /public HTTP/1.1\r\nHost: svc\r\nConnection: Upgrade, HTTP2-Settings, keep-alive\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n';
// What a client would send over the "upgraded" connection: HTTP/2 preface and a request
// for the denied path (HEADERS with a literal :path /admin), plus an HTTP/1.1 try.
const H2_PREFACE = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';
const SMUGGLED = Buffer.concat([
  Buffer.from(H2_PREFACE, 'latin1'),
  Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]), // SETTINGS
  Buffer.from([0, 0, 9, 1, 5, 0, 0, 0, 1, 0x82, 0x04, 0x06, ...Buffer.from('/admin')]), // HEADERS :method GET, :path /admin
  Buffer.from('GET /admin HTTP/1.1\r\nHost: svc\r\n\r\n', 'latin1'),
]);

test('upgrade: an h2c offer is stripped before the backend sees it (outbound)', async (t) => {
  const be = await recordingBackend('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
  const p = await startProxy(view([service({ name: 'web', vip: '10.96.0.20', port: 80, endpoints: [{ port: be.port }] })]), { ip: '10.96.0.20', port: 80 });
  t.after(async () => { await p.close(); await be.close(); });
  const r = await rawExchange(p.port, Buffer.from(H2C_OFFER, 'latin1'), 2000, 0, (d) => d.toString().endsWith('ok'));
  assert.equal(statusOf(r.data), 200);
  const got = be.received();
  assert.match(got, /^GET \/public HTTP\/1\.1\r\n/);
  assert.doesNotMatch(got, /upgrade|http2-settings|h2c/i, 'Upgrade, HTTP2-Settings and their Connection tokens removed');
  assert.match(got, /\r\nconnection: keep-alive\r\n/i, 'other Connection tokens kept');
});

test('upgrade: a 101 the proxy did not ask for is 502 and closes; nothing after it reaches the backend (inbound, DENY /admin*)', async (t) => {
  // A backend that switches to h2c whatever it was asked, then records what follows.
  let switched = false;
  const be = await recordingBackend('', (s) => {
    if (!switched) { switched = true; s.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n'); }
  });
  const ib = await startInbound(be.port, [denyPaths(['/admin*'])]);
  t.after(async () => { await ib.close(); await be.close(); });
  const r = await rawExchange(ib.port, [Buffer.from(H2C_OFFER, 'latin1'), SMUGGLED], 1500, 150);
  assert.equal(statusOf(r.data), 502, 'unexpected 101 answered 502');
  assert.doesNotMatch(r.data.toString('latin1'), /101 Switching/, 'the 101 is not passed to the client');
  assert.ok(r.closed, 'connection closed');
  assert.doesNotMatch(be.received(), /admin/, 'no request for /admin reached the backend');
  assert.doesNotMatch(be.received(), /PRI \* HTTP\/2\.0/, 'no HTTP/2 bytes reached the backend');
});

test('upgrade: WebSocket still passes (101 becomes a tunnel)', async (t) => {
  const be = await recordingBackend('', (s, d) => {
    if (d.toString().startsWith('GET /ws')) s.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
    else s.write(d);
  });
  const ib = await startInbound(be.port, [denyPaths(['/admin*'])]);
  t.after(async () => { await ib.close(); await be.close(); });
  const r = await rawExchange(ib.port, [Buffer.from('GET /ws HTTP/1.1\r\nHost: svc\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n'), Buffer.from('frame-bytes')], 2000, 100,
    (d) => d.toString().endsWith('frame-bytes'));
  assert.match(r.data.toString(), /^HTTP\/1\.1 101 [\s\S]*\r\n\r\nframe-bytes$/);
  assert.match(be.received(), /\r\nUpgrade: websocket\r\n/, 'the WebSocket offer is forwarded as sent');
});
