// The HTTP/2 engine itself (agent/proxy/h2/connection.ts), both sides, over loopback:
// what the server side hands its handler (a well-formed CONNECT goes through, for the
// node-to-node tunnel), how the client side (upstream connections) treats late frames
// on closed streams (RFC 9113 §5.1), that the memory of closed streams is bounded, and
// that resets a client provokes count towards the rapid-reset limit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket, type AddressInfo } from 'node:net';
import { H2Connection, type ConnectionHandler, type ConnectionLimits, type H2Stream, type StreamHandler } from '../../agent/proxy/h2/connection';
import { Peer, EH, ES, T, E, block, data, fr, hdr, rst, settings, wu } from '../lib/h2-conformance';

const LIMITS: ConnectionLimits = { maxConcurrentStreams: 100, maxHeaderListSize: 16384, streamWindow: 256 * 1024, connectionWindow: 1 << 20, maxResetsPerSecond: 200, maxControlPerSecond: 1000 };

const quiet: StreamHandler = { onHeaders() {}, onData(s, d) { s.conn.credit(s, d.length); }, onSent() {}, onClosed() {} };

/** A server-side H2Connection per accepted socket; `onStream` answers or not. */
async function codecServer(t: { after(fn: () => void): void }, onStream: (c: H2Connection, s: H2Stream, h: string[], end: boolean) => void, limits = LIMITS): Promise<{ port: number; conns: H2Connection[] }> {
  const conns: H2Connection[] = [];
  const handler: ConnectionHandler = { onStream, onClose() {}, onGoaway() {} };
  const server = createServer((sock) => { conns.push(new H2Connection(sock, false, limits, handler)); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => { for (const c of conns) c.destroy(); server.close(); });
  return { port: (server.address() as AddressInfo).port, conns };
}

const answer = (c: H2Connection, s: H2Stream, end: boolean): void => {
  s.handler = quiet;
  c.sendHeaders(s, [':status', '200'], false);
  c.sendData(s, Buffer.from('ok'), true);
  void end;
};

test('server side: a well-formed CONNECT reaches the handler (the tunnel), a malformed one does not', async (t) => {
  const seen: string[][] = [];
  const { port } = await codecServer(t, (c, s, h, end) => { seen.push(h); answer(c, s, end); });
  const p = await Peer.open(port);
  t.after(() => p.close());
  p.send(hdr(1, [':method', 'CONNECT', ':authority', '10.1.2.3:8080', 'x-weft', '1'], EH));
  await p.until((f) => f.type === T.HEADERS && f.stream === 1, 'response');
  assert.deepEqual(seen, [[':method', 'CONNECT', ':authority', '10.1.2.3:8080', 'x-weft', '1']]);
  p.send(hdr(3, [':method', 'CONNECT', ':authority', '10.1.2.3'], EH), hdr(5, [':method', 'CONNECT', ':scheme', 'http', ':path', '/', ':authority', 'a:1'], EH));
  const r5 = await p.until((f) => f.type === T.RST_STREAM && f.stream === 5, 'RST_STREAM(5)');
  assert.equal(r5!.payload.readUInt32BE(0), E.PROTOCOL_ERROR);
  assert.equal(p.frames.find((f) => f.type === T.RST_STREAM && f.stream === 3)?.payload.readUInt32BE(0), E.PROTOCOL_ERROR);
  assert.equal(seen.length, 1);
});

test('server side: closed streams are remembered within a bound; late frames on forgotten ones are dropped', async (t) => {
  const { port, conns } = await codecServer(t, (c, s, _h, end) => answer(c, s, end));
  const p = await Peer.open(port);
  t.after(() => p.close());
  const GET = [':method', 'GET', ':scheme', 'http', ':path', '/', ':authority', 'a'];
  for (let i = 0; i < 300; i++) p.send(hdr(2 * i + 1, GET));
  await p.until((f) => f.stream === 599 && (f.flags & ES) !== 0, 'the last response');
  // The memory is a fixed ring of the last 128 closed streams.
  const conn = conns[0] as unknown as { closedIds: Int32Array; recall(id: number): number };
  assert.equal(conn.closedIds.length, 128);
  assert.ok(conn.recall(599) >= 0 && conn.recall(599 - 2 * 127) >= 0, 'the last 128 are remembered');
  assert.equal(conn.recall(599 - 2 * 128), -1);
  assert.equal(conn.recall(1), -1);
  // DATA on stream 599 (ended both ways, remembered) is a connection error STREAM_CLOSED;
  // on stream 1 (long forgotten) it is dropped like a frame that crossed our reset.
  p.send(data(1, 'late'));
  const ping = Buffer.from('stillok!');
  p.send(fr(T.PING, 0, 0, ping));
  await p.until((f) => f.type === T.PING && f.payload.equals(ping), 'PING ACK');
  assert.equal(p.frames.some((f) => f.type === T.GOAWAY), false);
  p.send(data(599, 'late'));
  const g = await p.until((f) => f.type === T.GOAWAY, 'GOAWAY');
  assert.equal(g!.payload.readUInt32BE(4), E.STREAM_CLOSED);
});

test('server side: stream errors a client provokes count towards the rapid-reset limit', async (t) => {
  const { port } = await codecServer(t, (_c, s) => { s.handler = quiet; }, { ...LIMITS, maxResetsPerSecond: 20 });
  const p = await Peer.open(port);
  t.after(() => p.close());
  const POST = [':method', 'POST', ':scheme', 'http', ':path', '/', ':authority', 'a'];
  const frames: Buffer[] = [];
  // Each stream is opened and then made to fail with WINDOW_UPDATE 0 (a stream error
  // we send, not a reset the client sends).
  for (let i = 0; i < 30; i++) frames.push(hdr(2 * i + 1, POST, EH), wu(2 * i + 1, 0));
  p.send(...frames);
  const g = await p.until((f) => f.type === T.GOAWAY, 'GOAWAY');
  assert.equal(g!.payload.readUInt32BE(4), E.ENHANCE_YOUR_CALM);
  assert.ok(p.frames.filter((f) => f.type === T.RST_STREAM).length <= 21);
});

/** A raw HTTP/2 server: the test drives it frame by frame. */
async function rawServer(t: { after(fn: () => void): void }): Promise<{ port: number; next(): Promise<Peer> }> {
  const waiting: ((p: Peer) => void)[] = [];
  const ready: Peer[] = [];
  const server: Server = createServer((sock: Socket) => {
    const p = new Peer(sock, true);
    p.send(settings());
    const w = waiting.shift();
    if (w) w(p); else ready.push(p);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => { server.close(); });
  return {
    port: (server.address() as AddressInfo).port,
    next: () => (ready.length > 0 ? Promise.resolve(ready.shift()!) : new Promise((r) => waiting.push(r))),
  };
}

/** A client-side H2Connection to `port`; records what its streams see. */
function client(port: number): { c: H2Connection; events: string[]; closed: Promise<void>; open(path: string, end?: boolean, method?: string): H2Stream } {
  const events: string[] = [];
  let done!: () => void;
  const closed = new Promise<void>((r) => { done = r; });
  const c = new H2Connection(connect(port, '127.0.0.1'), true, LIMITS, { onStream() {}, onClose() { events.push('conn closed'); done(); }, onGoaway() { events.push('goaway'); } });
  const h: StreamHandler = {
    onHeaders(s, hl, end) { events.push(`${s.id} headers ${hl[1]}${end ? ' end' : ''}`); },
    onData(s, d, end) { c.credit(s, d.length); events.push(`${s.id} data ${d.length}${end ? ' end' : ''}`); },
    onSent() {},
    onClosed(s, code) { events.push(`${s.id} closed ${code}`); },
  };
  return { c, events, closed, open: (path, end = true, method = 'GET') => c.request([':method', method, ':scheme', 'http', ':path', path, ':authority', 'a'], end, h) };
}

const until = async (cond: () => boolean, what: string): Promise<void> => {
  const deadline = Date.now() + 3000;
  while (!cond()) { if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`); await new Promise((r) => setTimeout(r, 10)); }
};

test('client side: frames that crossed our reset are dropped; after the server\'s own END_STREAM, DATA is a connection error', async (t) => {
  const srv = await rawServer(t);
  const { c, events, closed, open } = client(srv.port);
  t.after(() => c.destroy());
  const s1 = open('/a', false);
  const p = await srv.next();
  t.after(() => p.close());
  await p.until((f) => f.type === T.HEADERS && f.stream === 1, 'request 1');
  // We cancel stream 1 while the server's response is on its way: its frames (HEADERS
  // keep HPACK in sync, DATA gives back connection window) are dropped without error.
  c.reset(s1, E.CANCEL);
  p.send(hdr(1, block([':status', '200']), EH), data(1, Buffer.alloc(16000)), data(1, Buffer.alloc(16000)), data(1, Buffer.alloc(8000)), wu(1, 10), rst(1, E.NO_ERROR));
  await p.until((f) => f.type === T.RST_STREAM && f.stream === 1, 'our RST_STREAM');
  // Stream 3 is served normally on the same connection.
  open('/b');
  await p.until((f) => f.type === T.HEADERS && f.stream === 3, 'request 3');
  p.send(hdr(3, block([':status', '200']), EH), data(3, 'ok', ES));
  await until(() => events.includes('3 closed 0'), 'stream 3 to finish');
  assert.equal(p.frames.some((f) => f.type === T.GOAWAY), false, p.describe());
  // The server sends DATA on stream 3 after its END_STREAM: connection error STREAM_CLOSED.
  p.send(data(3, 'late'));
  const g = await p.until((f) => f.type === T.GOAWAY, 'GOAWAY');
  assert.equal(g!.payload.readUInt32BE(4), E.STREAM_CLOSED);
  await closed;
  assert.deepEqual(events.filter((e) => e.startsWith('1 ')), [], 'nothing reached stream 1\'s handler after the reset');
});

test('client side: a stream the server reset answers a later frame with one RST_STREAM(STREAM_CLOSED); a server that opens a stream fails', async (t) => {
  const srv = await rawServer(t);
  const { c, events, closed, open } = client(srv.port);
  t.after(() => c.destroy());
  open('/a', false);
  const p = await srv.next();
  t.after(() => p.close());
  await p.until((f) => f.type === T.HEADERS && f.stream === 1, 'request 1');
  p.send(rst(1, E.REFUSED_STREAM));
  await until(() => events.includes(`1 closed ${E.REFUSED_STREAM}`), 'stream 1 reset');
  p.send(data(1, 'x'), data(1, 'y'), wu(1, 5));
  const r = await p.until((f) => f.type === T.RST_STREAM && f.stream === 1, 'RST_STREAM(1)');
  assert.equal(r!.payload.readUInt32BE(0), E.STREAM_CLOSED);
  const ping = Buffer.from('pingpong');
  p.send(fr(T.PING, 0, 0, ping));
  await p.until((f) => f.type === T.PING && f.payload.equals(ping), 'PING ACK');
  assert.equal(p.frames.filter((f) => f.type === T.RST_STREAM).length, 1, 'one reset, not one per frame');
  // A server may not open streams (push is disabled).
  p.send(hdr(2, block([':status', '200'])));
  const g = await p.until((f) => f.type === T.GOAWAY, 'GOAWAY');
  assert.equal(g!.payload.readUInt32BE(4), E.PROTOCOL_ERROR);
  await closed;
});

test('client side: a server whose first frame is not SETTINGS is refused', async (t) => {
  const server = createServer((sock) => { sock.write(fr(T.PING, 0, 0, Buffer.alloc(8))); sock.on('error', () => {}); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => { server.close(); });
  const { c, events, closed, open } = client((server.address() as AddressInfo).port);
  t.after(() => c.destroy());
  open('/a');
  await closed;
  assert.ok(events.includes(`1 closed ${E.REFUSED_STREAM}`) || events.some((e) => e.startsWith('1 closed')), events.join(', '));
});

test('client side: malformed responses are reset, never handed on; informational and HEAD responses are fine', async (t) => {
  const srv = await rawServer(t);
  const { c, events, open } = client(srv.port);
  t.after(() => c.destroy());
  // [response frames for the stream, malformed?]
  const cases: [string, (id: number) => Buffer[], boolean][] = [
    ['200 with a body', (id) => [hdr(id, block([':status', '200', 'content-length', '2']), EH), data(id, 'ok', ES)], false],
    ['100 then 200', (id) => [hdr(id, block([':status', '100']), EH), hdr(id, block([':status', '200'])) ], false],
    ['no :status', (id) => [hdr(id, block(['x-a', '1']))], true],
    ['two :status', (id) => [hdr(id, block([':status', '200', ':status', '200']))], true],
    [':status not three digits', (id) => [hdr(id, block([':status', '20']))], true],
    ['request pseudo-header in a response', (id) => [hdr(id, block([':status', '200', ':path', '/']))], true],
    ['connection-specific field', (id) => [hdr(id, block([':status', '200', 'transfer-encoding', 'chunked']))], true],
    ['informational response ending the stream', (id) => [hdr(id, block([':status', '103']))], true],
    ['DATA before the response headers', (id) => [data(id, 'x', ES)], true],
    ['content-length above the DATA', (id) => [hdr(id, block([':status', '200', 'content-length', '5']), EH), data(id, 'ok', ES)], true],
    ['content-length below the DATA', (id) => [hdr(id, block([':status', '200', 'content-length', '1']), EH), data(id, 'ok', ES)], true],
    ['trailers without END_STREAM', (id) => [hdr(id, block([':status', '200']), EH), hdr(id, block(['grpc-status', '0']), EH)], true],
    ['pseudo-header in trailers', (id) => [hdr(id, block([':status', '200']), EH), hdr(id, block([':status', '200']))], true],
    ['204 with content-length and no DATA', (id) => [hdr(id, block([':status', '204', 'content-length', '10']))], false],
  ];
  const p = await srv.next();
  t.after(() => p.close());
  for (const [name, frames, bad] of cases) {
    const s = open('/x');
    await p.until((f) => f.type === T.HEADERS && f.stream === s.id, `request ${s.id}`);
    p.send(...frames(s.id));
    await until(() => events.some((e) => e.startsWith(`${s.id} closed`)), `${name}: stream closed`);
    const closedWith = events.find((e) => e.startsWith(`${s.id} closed`));
    assert.equal(closedWith, `${s.id} closed ${bad ? E.PROTOCOL_ERROR : 0}`, name);
    if (bad) {
      const r = await p.until((f) => f.type === T.RST_STREAM && f.stream === s.id, `${name}: RST_STREAM`);
      assert.equal(r!.payload.readUInt32BE(0), E.PROTOCOL_ERROR, name);
      // Nothing of a malformed response reached the stream's handler except, for a
      // body that turned out too long or short, what came before the error was found.
      assert.equal(events.some((e) => e.startsWith(`${s.id} headers`) && !/content-length|trailers/.test(name)), false, `${name}: handed on`);
    }
  }
  // A HEAD response announces a length and carries no DATA.
  const hs = open('/', true, 'HEAD');
  await p.until((f) => f.type === T.HEADERS && f.stream === hs.id, 'HEAD request');
  p.send(hdr(hs.id, block([':status', '200', 'content-length', '1000'])));
  await until(() => events.includes(`${hs.id} closed 0`), 'HEAD response');
  assert.equal(p.frames.some((f) => f.type === T.GOAWAY), false, p.describe());
});

test('server side: DATA beyond the connection window is a connection error FLOW_CONTROL_ERROR', async (t) => {
  // A handler that consumes nothing: no window is given back.
  const { port } = await codecServer(t, (_c, s) => { s.handler = { onHeaders() {}, onData() {}, onSent() {}, onClosed() {} }; });
  const p = await Peer.open(port);
  t.after(() => p.close());
  const POST = [':method', 'POST', ':scheme', 'http', ':path', '/', ':authority', 'a'];
  // Connection window 1 MiB (65535 + the WINDOW_UPDATE the server sent), stream windows
  // 256 KiB: four full streams use it up, one more octet on a fifth is too many.
  const chunk = Buffer.alloc(16384);
  const frames: Buffer[] = [];
  for (let id = 1; id <= 7; id += 2) {
    frames.push(hdr(id, POST, EH));
    for (let k = 0; k < 16; k++) frames.push(data(id, chunk));
  }
  p.send(...frames);
  const ping = Buffer.from('windowok');
  p.send(fr(T.PING, 0, 0, ping));
  await p.until((f) => f.type === T.PING && f.payload.equals(ping), 'PING ACK');
  assert.equal(p.frames.some((f) => f.type === T.GOAWAY || f.type === T.RST_STREAM), false, `exactly the window is fine: ${p.describe()}`);
  p.send(hdr(9, POST, EH), data(9, 'x'));
  const g = await p.until((f) => f.type === T.GOAWAY, 'GOAWAY');
  assert.equal(g!.payload.readUInt32BE(4), E.FLOW_CONTROL_ERROR);
});
