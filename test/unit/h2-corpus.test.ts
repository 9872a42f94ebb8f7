// HTTP/2 corruption and abuse corpus against the proxy's downstream side, over raw
// sockets: each case gets the right connection error (GOAWAY code) or stream error
// (RST_STREAM code / HTTP status), and the proxy keeps serving well-formed clients
// afterwards (no crash, no leaked streams upstream).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { connect, createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { service, view, startProxy } from './l7-harness';
import { HpackDecoder, HpackEncoder } from '../../agent/proxy/h2/hpack';
import { E, F, PREFACE, S, T, frame, goawayFrame, settingsFrame, u32Frame } from '../../agent/proxy/h2/frame';
import { H2Proxy } from '../../agent/proxy/h2/proxy';
import { componentLogger } from '../../agent/telemetry/logger';

const VIP = '10.96.7.1';

interface Frame { type: number; flags: number; stream: number; payload: Buffer }

/** A hand-driven HTTP/2 client: sends whatever bytes it is told, records frames back. */
class Raw {
  readonly frames: Frame[] = [];
  readonly enc = new HpackEncoder();
  readonly dec = new HpackDecoder();
  closed = false;
  private buf = Buffer.alloc(0);
  private wake: (() => void) | null = null;
  constructor(readonly sock: Socket) {
    sock.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      while (this.buf.length >= 9) {
        const len = this.buf.readUIntBE(0, 3);
        if (this.buf.length < 9 + len) break;
        this.frames.push({ type: this.buf[3]!, flags: this.buf[4]!, stream: this.buf.readUInt32BE(5) & 0x7fffffff, payload: this.buf.subarray(9, 9 + len) });
        this.buf = this.buf.subarray(9 + len);
      }
      this.wake?.();
    });
    sock.on('error', () => {});
    sock.on('close', () => { this.closed = true; this.wake?.(); });
  }
  static async open(port: number, preface = true): Promise<Raw> {
    const s = connect(port, '127.0.0.1');
    await new Promise((r) => s.once('connect', r));
    const raw = new Raw(s);
    if (preface) s.write(Buffer.concat([PREFACE, settingsFrame([])]));
    return raw;
  }
  send(...b: Buffer[]): void { if (!this.sock.destroyed) this.sock.write(Buffer.concat(b)); }
  /** HEADERS (+ CONTINUATION frames when the block exceeds 16 KiB). */
  headers(stream: number, h: string[], flags = F.END_HEADERS | F.END_STREAM): Buffer {
    const block = this.enc.encode(h);
    if (block.length <= 16384) return frame(T.HEADERS, flags, stream, block);
    const out = [frame(T.HEADERS, flags & ~F.END_HEADERS, stream, block.subarray(0, 16384))];
    for (let at = 16384; at < block.length; at += 16384) {
      out.push(frame(T.CONTINUATION, at + 16384 >= block.length ? flags & F.END_HEADERS : 0, stream, block.subarray(at, at + 16384)));
    }
    return Buffer.concat(out);
  }
  /** Waits for a frame matching `pred` (or the close, when `pred` is null). */
  async until(pred: ((f: Frame) => boolean) | null, ms = 5000): Promise<Frame | null> {
    const deadline = Date.now() + ms;
    for (;;) {
      const f = pred === null ? undefined : this.frames.find(pred);
      if (f !== undefined) return f;
      if (this.closed) return null;
      if (Date.now() > deadline) throw new Error(`timed out; frames: ${this.frames.map((x) => x.type).join(',')}`);
      await new Promise<void>((r) => { this.wake = r; setTimeout(r, 50); });
    }
  }
  async goaway(): Promise<number> {
    const g = await this.until((f) => f.type === T.GOAWAY);
    assert.ok(g !== null, 'GOAWAY before close');
    await this.until(null);
    return g.payload.readUInt32BE(4);
  }
  async rst(stream: number): Promise<number> {
    const r = await this.until((f) => f.type === T.RST_STREAM && f.stream === stream);
    assert.ok(r !== null, `RST_STREAM on ${stream}`);
    return r.payload.readUInt32BE(0);
  }
  close(): void { this.sock.destroy(); }
}

const req = (path = '/ok', extra: string[] = []): string[] => [':method', 'POST', ':scheme', 'http', ':path', path, ':authority', 'svc', ...extra];

async function setup(t: { after(fn: () => Promise<void> | void): void }) {
  const st = { open: 0 };
  const origin = http2.createServer();
  origin.on('stream', (s, h) => {
    st.open++;
    s.on('close', () => { st.open--; });
    s.on('error', () => {});
    if (h[':path'] === '/hold') return; // never answers
    if (h[':path'] === '/slow') { setTimeout(() => { if (!s.destroyed) { s.respond({ ':status': 200 }); s.end('slow'); } }, 300); return; }
    let body = '';
    s.on('data', (d: Buffer) => { body += d.toString(); });
    s.on('trailers', (tr) => { body += `|${String(tr['x-req-trailer'])}`; });
    s.on('end', () => { if (!s.destroyed) { s.respond({ ':status': 200 }); s.end(h[':path'] === '/echo' ? body : 'ok'); } });
  });
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
  const proxy = await startProxy(view([service({ name: 'h2', vip: VIP, port: 8080, protocol: 'HTTP2', endpoints: [{ port: (origin.address() as AddressInfo).port }] })]), { ip: VIP, port: 8080 });
  const raws: Raw[] = [];
  t.after(async () => { for (const r of raws) r.close(); await proxy.close(); await new Promise((r) => origin.close(r)); });
  const open = async (preface = true) => { const r = await Raw.open(proxy.port, preface); raws.push(r); return r; };
  /** A well-formed request through a fresh connection must still work. */
  const healthy = async () => {
    const c = await open();
    c.send(c.headers(1, req()));
    const h = await c.until((f) => f.type === T.HEADERS && f.stream === 1);
    assert.deepEqual(c.dec.decode(h!.payload, 1 << 20).headers.slice(0, 2), [':status', '200']);
    const d = await c.until((f) => f.type === T.DATA && f.stream === 1 && (f.flags & F.END_STREAM) !== 0);
    assert.equal(d!.payload.toString(), 'ok');
    c.close();
  };
  return { open, healthy, st, proxy, origin };
}

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const settings = (id: number, v: number): Buffer => settingsFrame([id, v]);

/** Connection errors: [name, bytes after a valid preface (given a fresh encoder), GOAWAY code]. */
const CONNECTION_CASES: [string, (c: Raw) => Buffer[], number][] = [
  ['frame larger than SETTINGS_MAX_FRAME_SIZE', () => [frame(T.DATA, 0, 1, Buffer.alloc(16385))], E.FRAME_SIZE_ERROR],
  ['DATA on stream 0', () => [frame(T.DATA, 0, 0, Buffer.from('x'))], E.PROTOCOL_ERROR],
  ['SETTINGS with a partial entry', () => [frame(T.SETTINGS, 0, 0, Buffer.alloc(5))], E.FRAME_SIZE_ERROR],
  ['SETTINGS on a stream', () => [frame(T.SETTINGS, 0, 1, Buffer.alloc(0))], E.PROTOCOL_ERROR],
  ['SETTINGS_ENABLE_PUSH = 2', () => [settings(S.ENABLE_PUSH, 2)], E.PROTOCOL_ERROR],
  ['SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1', () => [settings(S.INITIAL_WINDOW_SIZE, 2 ** 31)], E.FLOW_CONTROL_ERROR],
  ['SETTINGS_MAX_FRAME_SIZE below 16384', () => [settings(S.MAX_FRAME_SIZE, 100)], E.PROTOCOL_ERROR],
  ['PING of 7 bytes', () => [frame(T.PING, 0, 0, Buffer.alloc(7))], E.FRAME_SIZE_ERROR],
  ['GOAWAY on a stream', () => [frame(T.GOAWAY, 0, 1, Buffer.alloc(8))], E.PROTOCOL_ERROR],
  ['connection WINDOW_UPDATE of 0', () => [u32Frame(T.WINDOW_UPDATE, 0, 0)], E.PROTOCOL_ERROR],
  ['connection window above 2^31-1', () => [u32Frame(T.WINDOW_UPDATE, 0, 0x7fffffff)], E.FLOW_CONTROL_ERROR],
  ['RST_STREAM on an idle stream', () => [u32Frame(T.RST_STREAM, 5, 8)], E.PROTOCOL_ERROR],
  ['DATA on an idle stream', () => [frame(T.DATA, 0, 9, Buffer.from('x'))], E.PROTOCOL_ERROR],
  ['HEADERS on an even (server) stream id', (c) => [c.headers(2, req())], E.PROTOCOL_ERROR],
  ['PUSH_PROMISE from a client', () => [frame(T.PUSH_PROMISE, F.END_HEADERS, 1, Buffer.from([0, 0, 0, 2, 0x82]))], E.PROTOCOL_ERROR],
  ['HPACK index 0', () => [frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 1, hex('80'))], E.COMPRESSION_ERROR],
  ['HPACK index beyond both tables', () => [frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 1, hex('ff0a'))], E.COMPRESSION_ERROR],
  ['HPACK Huffman string containing EOS', () => [frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 1, hex('0084ffffffff0161'))], E.COMPRESSION_ERROR],
  ['HPACK truncated literal', () => [frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 1, hex('000a6162'))], E.COMPRESSION_ERROR],
  ['HPACK table size update above SETTINGS_HEADER_TABLE_SIZE', () => [frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 1, hex('3fe21f82'))], E.COMPRESSION_ERROR],
  ['padding longer than the HEADERS frame', () => [frame(T.HEADERS, F.END_HEADERS | F.PADDED, 1, Buffer.from([9, 0x82]))], E.PROTOCOL_ERROR],
  ['DATA in the middle of a header block', (c) => [c.headers(1, req(), 0), frame(T.DATA, 0, 1, Buffer.from('x'))], E.PROTOCOL_ERROR],
  ['CONTINUATION without HEADERS', () => [frame(T.CONTINUATION, F.END_HEADERS, 1, hex('82'))], E.PROTOCOL_ERROR],
  ['CONTINUATION on another stream', (c) => [c.headers(1, req(), 0), frame(T.CONTINUATION, F.END_HEADERS, 3, hex('82'))], E.PROTOCOL_ERROR],
  ['CONTINUATION flood (header block without end)', (c) => [c.headers(1, req(), 0), ...Array.from({ length: 8 }, () => frame(T.CONTINUATION, 0, 1, Buffer.alloc(16384, 0x40)))], E.ENHANCE_YOUR_CALM],
  ['empty CONTINUATION flood', (c) => [c.headers(1, req(), 0), ...Array.from({ length: 1200 }, () => frame(T.CONTINUATION, 0, 1, null))], E.ENHANCE_YOUR_CALM],
  ['PING flood', () => Array.from({ length: 1200 }, () => frame(T.PING, 0, 0, Buffer.alloc(8))), E.ENHANCE_YOUR_CALM],
  ['SETTINGS flood', () => Array.from({ length: 1200 }, () => settingsFrame([])), E.ENHANCE_YOUR_CALM],
  ['empty DATA flood', (c) => [c.headers(1, req('/hold'), F.END_HEADERS), ...Array.from({ length: 1200 }, () => frame(T.DATA, 0, 1, null))], E.ENHANCE_YOUR_CALM],
  ['rapid reset (CVE-2023-44487)', (c) => Array.from({ length: 300 }, (_x, i) => Buffer.concat([c.headers(2 * i + 1, req('/hold'), F.END_HEADERS), u32Frame(T.RST_STREAM, 2 * i + 1, E.CANCEL)])), E.ENHANCE_YOUR_CALM],
];

test('h2 corpus: connection errors get GOAWAY with the right code', async (t) => {
  const { open, healthy } = await setup(t);
  const bad = await open(false);
  bad.send(Buffer.from('PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n'));
  assert.equal(await bad.goaway(), E.PROTOCOL_ERROR, 'bad preface');
  for (const [name, bytes, code] of CONNECTION_CASES) {
    const c = await open();
    c.send(...bytes(c));
    assert.equal(await c.goaway(), code, name);
  }
  await healthy();
});

test('h2 corpus: stream errors reset one stream, the connection lives on', async (t) => {
  const { open, healthy, st } = await setup(t);
  const c = await open();
  // Malformed requests (§8.2, §8.3).
  c.send(c.headers(1, [':method', 'GET', ':scheme', 'http', ':authority', 'svc']));
  assert.equal(await c.rst(1), E.PROTOCOL_ERROR, 'missing :path');
  c.send(c.headers(3, [...req(), 'X-Upper', 'v']));
  assert.equal(await c.rst(3), E.PROTOCOL_ERROR, 'upper-case header name');
  c.send(c.headers(5, ['x-first', 'v', ...req()]));
  assert.equal(await c.rst(5), E.PROTOCOL_ERROR, 'pseudo-header after a regular one');
  c.send(c.headers(7, [...req(), ':foo', 'bar']));
  assert.equal(await c.rst(7), E.PROTOCOL_ERROR, 'unknown pseudo-header');
  // Flow control: more than the 256 KiB stream window we advertised.
  c.send(c.headers(9, req('/hold'), F.END_HEADERS));
  for (let i = 0; i < 17; i++) c.send(frame(T.DATA, 0, 9, Buffer.alloc(16384)));
  assert.equal(await c.rst(9), E.FLOW_CONTROL_ERROR, 'stream window exceeded');
  // Stream WINDOW_UPDATE of 0.
  c.send(c.headers(11, req('/hold'), F.END_HEADERS), u32Frame(T.WINDOW_UPDATE, 11, 0));
  assert.equal(await c.rst(11), E.PROTOCOL_ERROR, 'stream WINDOW_UPDATE of 0');
  // DATA after END_STREAM.
  c.send(c.headers(13, req('/hold'), F.END_HEADERS | F.END_STREAM), frame(T.DATA, 0, 13, Buffer.from('late')));
  assert.equal(await c.rst(13), E.STREAM_CLOSED, 'DATA after END_STREAM');
  // Trailers without END_STREAM.
  c.send(c.headers(15, req('/hold'), F.END_HEADERS), c.headers(15, ['x-t', '1'], F.END_HEADERS));
  assert.equal(await c.rst(15), E.PROTOCOL_ERROR, 'trailers without END_STREAM');
  // Header list over SETTINGS_MAX_HEADER_LIST_SIZE (16 KiB): 431, nothing forwarded.
  c.send(c.headers(17, req('/ok', ['x-big', 'a'.repeat(17000)])));
  const h = await c.until((f) => f.type === T.HEADERS && f.stream === 17);
  assert.deepEqual(c.dec.decode(h!.payload, 1 << 20).headers.slice(0, 2), [':status', '431']);
  // The connection still works, and a normal request goes through on it.
  c.send(c.headers(19, req()));
  const ok = await c.until((f) => f.type === T.DATA && f.stream === 19 && (f.flags & F.END_STREAM) !== 0);
  assert.equal(ok!.payload.toString(), 'ok');
  // Field values that would split a header line on an HTTP/1.1 hop (§8.2.1).
  c.send(c.headers(21, [...req(), 'x-split', 'a\r\nx-smuggled: 1']));
  assert.equal(await c.rst(21), E.PROTOCOL_ERROR, 'CR LF in a header value');
  c.send(c.headers(23, [...req(), 'x-nul', 'a\0b']));
  assert.equal(await c.rst(23), E.PROTOCOL_ERROR, 'NUL in a header value');
  assert.equal(c.frames.some((f) => f.type === T.GOAWAY), false);
  // Every reset stream was cancelled upstream too.
  const s = Date.now();
  while (st.open > 0 && Date.now() - s < 3000) await new Promise((r) => setTimeout(r, 20));
  assert.equal(st.open, 0, 'no stream left open upstream');
  c.close();
  await healthy();
});

test('h2 corpus: concurrent stream limit refuses the 257th stream; GOAWAY from the client is accepted', async (t) => {
  const { open, healthy } = await setup(t);
  const c = await open();
  const frames: Buffer[] = [];
  for (let i = 0; i < 257; i++) frames.push(c.headers(2 * i + 1, req('/hold'), F.END_HEADERS));
  c.send(...frames);
  assert.equal(await c.rst(513), E.REFUSED_STREAM);
  assert.equal(c.frames.filter((f) => f.type === T.RST_STREAM).length, 1);
  c.send(goawayFrame(0, E.NO_ERROR));
  c.close();
  await healthy();
});

test('drain: GOAWAY(NO_ERROR) names the last stream, open streams finish, later ones are not served', async (t) => {
  const { proxy } = await setup(t);
  // An H2Proxy of our own (the outbound's is private), on the harness's routes.
  const h2 = new H2Proxy({ connect: (ep) => connect({ host: ep.ip, port: ep.port }), logger: componentLogger('test'), accessLog: null, tracer: null });
  const routes = proxy.directory.lookup(VIP, 8080);
  const server = createServer((sock) => h2.handle(sock, routes, { dstIp: VIP, dstPort: 8080, cgroupId: 1 }, null, null, null));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => { h2.close(); server.close(); });
  const c = await Raw.open((server.address() as AddressInfo).port);
  t.after(() => c.close());
  c.send(c.headers(1, req('/slow')));
  await new Promise((r) => setTimeout(r, 100));
  const drained = h2.drain();
  const g = await c.until((f) => f.type === T.GOAWAY);
  assert.equal(g!.payload.readUInt32BE(0), 1, 'last stream id');
  assert.equal(g!.payload.readUInt32BE(4), E.NO_ERROR);
  c.send(c.headers(3, req()));
  const d = await c.until((f) => f.type === T.DATA && f.stream === 1 && (f.flags & F.END_STREAM) !== 0);
  assert.equal(d!.payload.toString(), 'slow', 'the stream in flight finished');
  await drained;
  await c.until(null);
  assert.equal(c.frames.some((f) => f.stream === 3), false, 'a stream opened after GOAWAY is not served');
});

test('request body and request trailers reach the upstream', async (t) => {
  const { proxy } = await setup(t);
  const session = http2.connect(`http://127.0.0.1:${proxy.port}`);
  t.after(() => session.destroy());
  const r = session.request({ ':method': 'POST', ':path': '/echo' }, { waitForTrailers: true });
  r.on('wantTrailers', () => r.sendTrailers({ 'x-req-trailer': 'tv' }));
  r.end('abc');
  let got = '';
  r.on('data', (d: Buffer) => { got += d.toString(); });
  await new Promise((res) => r.on('end', res));
  assert.equal(got, 'abc|tv');
});

test('connection window: bytes of streams that end unconsumed are returned, the connection never starves', async (t) => {
  const { open } = await setup(t);
  const c = await open();
  // 72 streams x 256 KiB = 18 MiB, more than the 16 MiB connection window: each stream
  // fills its window towards an upstream that never reads, then the client resets it.
  const chunk = frame(T.DATA, 0, 0, Buffer.alloc(16384));
  for (let i = 0; i < 72; i++) {
    const id = 2 * i + 1;
    const parts = [c.headers(id, req('/hold'), F.END_HEADERS)];
    for (let k = 0; k < 16; k++) { const f = Buffer.from(chunk); f.writeUInt32BE(id, 5); parts.push(f); }
    parts.push(u32Frame(T.RST_STREAM, id, E.CANCEL));
    c.send(...parts);
    if (i % 8 === 7) await new Promise((r) => setTimeout(r, 20));
  }
  // A request with a body still gets through on the same connection.
  c.send(c.headers(145, req('/echo'), F.END_HEADERS), frame(T.DATA, F.END_STREAM, 145, Buffer.from('after')));
  const d = await c.until((f) => f.type === T.DATA && f.stream === 145 && (f.flags & F.END_STREAM) !== 0);
  assert.equal(d!.payload.toString(), 'after');
  assert.equal(c.frames.some((f) => f.type === T.GOAWAY), false);
});
