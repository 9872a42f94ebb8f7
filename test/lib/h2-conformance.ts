// An HTTP/2 server conformance suite over raw frames (RFC 9113, RFC 7541), grouped by
// the RFC sections whose MUSTs each case checks. Every case opens its own connection to
// a server at `port`, sends what it names and checks the verdict the RFC gives: a
// connection error (GOAWAY with the code, then the close), a stream error (RST_STREAM
// with the code on that stream; a GOAWAY with the same code is also accepted, as §5.4
// lets any stream error be treated as a connection error), or that a well-formed
// exchange is served. The same cases run against weft's front end and a reference
// server (test/unit/h2-conformance.test.ts).
//
// Frames and header blocks are built here byte by byte (literal HPACK representations,
// hand-made Huffman strings), not with the code under test.
import { connect, type Socket } from 'node:net';
import { HpackDecoder } from '../../agent/proxy/h2/hpack';

export const T = { DATA: 0, HEADERS: 1, PRIORITY: 2, RST_STREAM: 3, SETTINGS: 4, PUSH_PROMISE: 5, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const;
export const ES = 0x1, ACK = 0x1, EH = 0x4, PADDED = 0x8, PRIO = 0x20;
export const E = {
  NO_ERROR: 0, PROTOCOL_ERROR: 1, INTERNAL_ERROR: 2, FLOW_CONTROL_ERROR: 3, SETTINGS_TIMEOUT: 4, STREAM_CLOSED: 5,
  FRAME_SIZE_ERROR: 6, REFUSED_STREAM: 7, CANCEL: 8, COMPRESSION_ERROR: 9, CONNECT_ERROR: 10, ENHANCE_YOUR_CALM: 11,
} as const;
const ERR_NAME = Object.fromEntries(Object.entries(E).map(([k, v]) => [v, k])) as Record<number, string>;
export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const S_HEADER_TABLE_SIZE = 1, S_ENABLE_PUSH = 2, S_MAX_CONCURRENT_STREAMS = 3, S_INITIAL_WINDOW_SIZE = 4, S_MAX_FRAME_SIZE = 5;

/** How long a case waits for the verdict it expects. */
const WAIT_MS = 3000;

// ------------------------------------------------------------------ frames and HPACK
export function fr(type: number, flags: number, stream: number, payload: Buffer | number[] = []): Buffer {
  const p = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const h = Buffer.alloc(9);
  h.writeUIntBE(p.length, 0, 3);
  h[3] = type; h[4] = flags;
  h.writeUInt32BE(stream >>> 0, 5);
  return Buffer.concat([h, p]);
}
export const u32 = (v: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32BE(v >>> 0); return b; };
export const settings = (...pairs: number[]): Buffer => {
  const p = Buffer.alloc(pairs.length * 3);
  for (let i = 0; i < pairs.length; i += 2) { p.writeUInt16BE(pairs[i]!, i * 3); p.writeUInt32BE(pairs[i + 1]!, i * 3 + 2); }
  return fr(T.SETTINGS, 0, 0, p);
};
export const ping = (data: Buffer, flags = 0): Buffer => fr(T.PING, flags, 0, data);
export const rst = (id: number, code: number): Buffer => fr(T.RST_STREAM, 0, id, u32(code));
export const wu = (id: number, inc: number): Buffer => fr(T.WINDOW_UPDATE, 0, id, u32(inc));
const prio = (id: number, dep: number): Buffer => fr(T.PRIORITY, 0, id, Buffer.concat([u32(dep), Buffer.from([15])]));
export const data = (id: number, s: string | Buffer, flags = 0): Buffer => fr(T.DATA, flags, id, Buffer.isBuffer(s) ? s : Buffer.from(s));

/** An HPACK integer with an N-bit prefix (RFC 7541 §5.1). */
function hint(v: number, prefix: number, first: number): number[] {
  const max = (1 << prefix) - 1;
  if (v < max) return [first | v];
  const out = [first | max];
  v -= max;
  while (v >= 128) { out.push((v & 0x7f) | 0x80); v = Math.floor(v / 128); }
  out.push(v);
  return out;
}
const hstr = (s: string): Buffer => { const b = Buffer.from(s, 'latin1'); return Buffer.concat([Buffer.from(hint(b.length, 7, 0)), b]); };
/** Literal field without indexing, new name (§6.2.2). */
const lit = (name: string, value: string): Buffer => Buffer.concat([Buffer.from([0]), hstr(name), hstr(value)]);
/** Literal field with incremental indexing, new name (§6.2.1). */
const litIndexed = (name: string, value: string): Buffer => Buffer.concat([Buffer.from([0x40]), hstr(name), hstr(value)]);
export const block = (h: string[]): Buffer => Buffer.concat(h.flatMap((_x, i) => (i % 2 === 0 ? [lit(h[i]!, h[i + 1]!)] : [])));
export const hdr = (id: number, h: string[] | Buffer, flags = EH | ES): Buffer => fr(T.HEADERS, flags, id, Buffer.isBuffer(h) ? h : block(h));

const req = (method: string, path = '/ok', extra: string[] = []): string[] => [':method', method, ':scheme', 'http', ':path', path, ':authority', 'localhost', ...extra];
const GET = (extra: string[] = []): string[] => req('GET', '/ok', extra);
const POST = (extra: string[] = []): string[] => req('POST', '/ok', extra);
/** A request the server keeps open: it has no END_STREAM and the path is not served. */
const HOLD = (extra: string[] = []): string[] => req('POST', '/hold', extra);

// ------------------------------------------------------------------ the client
interface Frame { type: number; flags: number; stream: number; payload: Buffer }

export class Peer {
  readonly frames: Frame[] = [];
  readonly settings = new Map<number, number>();
  closed = false;
  private buf = Buffer.alloc(0);
  private wake: (() => void) | null = null;
  private readonly dec = new HpackDecoder(65536);
  private decoded = 0;
  private readonly headerLists = new Map<Frame, string[]>();
  /** `server`: this end accepted the connection (it reads the client preface first). */
  constructor(readonly sock: Socket, server = false) {
    let preface = server ? PREFACE.length : 0;
    sock.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      if (preface > 0) {
        const n = Math.min(preface, this.buf.length);
        if (!this.buf.subarray(0, n).equals(PREFACE.subarray(PREFACE.length - preface, PREFACE.length - preface + n))) { sock.destroy(); return; }
        preface -= n;
        this.buf = this.buf.subarray(n);
      }
      while (this.buf.length >= 9) {
        const len = this.buf.readUIntBE(0, 3);
        if (this.buf.length < 9 + len) break;
        const f = { type: this.buf[3]!, flags: this.buf[4]!, stream: this.buf.readUInt32BE(5) & 0x7fffffff, payload: this.buf.subarray(9, 9 + len) };
        this.frames.push(f);
        if (f.type === T.SETTINGS && !(f.flags & ACK)) for (let i = 0; i + 6 <= len; i += 6) this.settings.set(f.payload.readUInt16BE(i), f.payload.readUInt32BE(i + 2));
        this.buf = this.buf.subarray(9 + len);
      }
      this.wake?.();
    });
    sock.on('error', () => {});
    sock.on('close', () => { this.closed = true; this.wake?.(); });
  }

  /** Connects; `first` replaces the client preface (default: the preface and an empty
   *  SETTINGS). With the standard preface, waits for the server's SETTINGS. */
  static async open(port: number, first: Buffer | null = null): Promise<Peer> {
    const s = connect(port, '127.0.0.1');
    await new Promise<void>((res, rej) => { s.once('connect', res); s.once('error', rej); });
    const p = new Peer(s);
    p.send(first ?? Buffer.concat([PREFACE, settings()]));
    if (first === null) await p.until((f) => f.type === T.SETTINGS && !(f.flags & ACK), 'server SETTINGS');
    return p;
  }

  send(...b: Buffer[]): void { if (!this.sock.destroyed) this.sock.write(Buffer.concat(b)); }
  close(): void { this.sock.destroy(); }

  /** The first frame matching `pred`; null when the connection closed first. Throws on timeout. */
  async until(pred: (f: Frame) => boolean, what: string, ms = WAIT_MS): Promise<Frame | null> {
    const deadline = Date.now() + ms;
    for (;;) {
      const f = this.frames.find(pred);
      if (f !== undefined) return f;
      if (this.closed) return null;
      if (Date.now() > deadline) throw new Error(`no ${what} within ${ms} ms (got ${this.describe()})`);
      await new Promise<void>((r) => { this.wake = r; setTimeout(r, 20); });
    }
  }

  /** The header list of HEADERS frame `f` (decoding every earlier block in order). */
  headerList(f: Frame): string[] {
    const hs = this.frames.filter((x) => x.type === T.HEADERS);
    for (; this.decoded < hs.length && !this.headerLists.has(f); this.decoded++) {
      const h = hs[this.decoded]!;
      this.headerLists.set(h, this.dec.decode(h.payload, 1 << 20).headers);
    }
    return this.headerLists.get(f) ?? [];
  }

  describe(): string {
    return this.frames.map((f) => {
      const name = Object.keys(T).find((k) => T[k as keyof typeof T] === f.type) ?? `type${f.type}`;
      const code = f.type === T.GOAWAY ? ` ${ERR_NAME[f.payload.readUInt32BE(4)]}` : f.type === T.RST_STREAM ? ` ${ERR_NAME[f.payload.readUInt32BE(0)]}` : '';
      return `${name}(${f.stream})${code}`;
    }).join(' ') + (this.closed ? ' <closed>' : '');
  }
}

// ------------------------------------------------------------------ verdicts
const names = (codes: number[]): string => codes.map((c) => ERR_NAME[c]).join('|');

/** A connection error: GOAWAY with one of `codes`, then the connection closes.
 *  `goawayOptional`: a close without GOAWAY also counts (an invalid preface, §3.4). */
async function connError(p: Peer, codes: number[], goawayOptional = false): Promise<void> {
  const g = await p.until((f) => f.type === T.GOAWAY, `GOAWAY ${names(codes)}`);
  if (g === null) {
    if (goawayOptional) return;
    throw new Error(`closed without GOAWAY ${names(codes)} (got ${p.describe()})`);
  }
  const code = g.payload.readUInt32BE(4);
  if (!codes.includes(code)) throw new Error(`GOAWAY ${ERR_NAME[code]}, want ${names(codes)} (got ${p.describe()})`);
  if (await p.until(() => false, 'the close after GOAWAY').catch(() => 'open') === 'open') throw new Error('connection left open after a connection error');
}

/** A stream error on `id`: RST_STREAM with one of `codes` (or a connection error with one). */
async function streamError(p: Peer, id: number, codes: number[]): Promise<void> {
  const f = await p.until((x) => (x.type === T.RST_STREAM && x.stream === id) || x.type === T.GOAWAY, `RST_STREAM(${id}) ${names(codes)}`);
  if (f === null) throw new Error(`closed without RST_STREAM(${id}) ${names(codes)} (got ${p.describe()})`);
  const code = f.type === T.GOAWAY ? f.payload.readUInt32BE(4) : f.payload.readUInt32BE(0);
  if (!codes.includes(code)) throw new Error(`${f.type === T.GOAWAY ? 'GOAWAY' : 'RST_STREAM'} ${ERR_NAME[code]}, want ${names(codes)} (got ${p.describe()})`);
  // A stream error leaves the connection usable.
  if (f.type === T.RST_STREAM) await alive(p, false);
}

let pingSeq = 0;
/** The connection is open and working: a PING is answered, and nothing was reset or
 *  refused (unless `strict` is false). */
async function alive(p: Peer, strict = true): Promise<void> {
  const payload = Buffer.alloc(8);
  payload.writeUInt32BE(++pingSeq, 4);
  p.send(ping(payload));
  const a = await p.until((f) => (f.type === T.PING && (f.flags & ACK) !== 0 && f.payload.equals(payload)) || f.type === T.GOAWAY, 'PING ACK');
  if (a === null || a.type === T.GOAWAY) throw new Error(`connection failed (got ${p.describe()})`);
  if (strict && p.frames.some((f) => f.type === T.RST_STREAM)) throw new Error(`unexpected RST_STREAM (got ${p.describe()})`);
}

/** Stream `id` is answered 200 with its body up to END_STREAM, nothing is reset; returns the body. */
async function response(p: Peer, id: number): Promise<string> {
  const h = await p.until((f) => (f.type === T.HEADERS && f.stream === id) || f.type === T.GOAWAY || (f.type === T.RST_STREAM && f.stream === id), `response HEADERS(${id})`);
  if (h === null || h.type !== T.HEADERS) throw new Error(`no response on ${id} (got ${p.describe()})`);
  const status = p.headerList(h).slice(0, 2).join(' ');
  if (status !== ':status 200') throw new Error(`response ${status}, want :status 200`);
  const done = (f: Frame): boolean => f.stream === id && (f.flags & ES) !== 0 && (f.type === T.DATA || f.type === T.HEADERS);
  const end = await p.until((f) => done(f) || f.type === T.GOAWAY || (f.type === T.RST_STREAM && f.stream === id), `END_STREAM on ${id}`);
  if (end === null || !done(end)) throw new Error(`response on ${id} did not end (got ${p.describe()})`);
  await alive(p, false);
  return Buffer.concat(p.frames.filter((f) => f.type === T.DATA && f.stream === id).map((f) => f.payload)).toString();
}

/** Waits until stream `id`'s response has ended (both sides sent END_STREAM). */
async function ended(p: Peer, id: number): Promise<void> {
  await p.until((f) => f.stream === id && (f.flags & ES) !== 0 && (f.type === T.DATA || f.type === T.HEADERS), `END_STREAM on ${id}`);
}

// ------------------------------------------------------------------ the cases
export interface Case {
  id: string;
  title: string;
  /** The client preface this case sends itself (null: the standard one). */
  raw?: boolean;
  /** What an intermediary hands on to its origin: 'request' a whole request (a
   *  well-formed case), 'headers' the request headers only, because the error comes
   *  later in the stream (the origin's stream is then reset); none when unset. */
  forwards?: 'request' | 'headers';
  run(p: Peer, port: number): Promise<void>;
}

const PROTO = [E.PROTOCOL_ERROR];
const sz = (n: number, fill = 0): Buffer => Buffer.alloc(n, fill);
/** A header block with the fields of `h` and then the raw representation `tail`. */
const withTail = (h: string[], tail: number[]): Buffer => Buffer.concat([block(h), Buffer.from(tail)]);
/** A literal field "x-h" with a Huffman-coded value given as bytes. */
const huff = (bytes: number[]): number[] => [0, 3, 0x78, 0x2d, 0x68, 0x80 | bytes.length, ...bytes];

const malformed = (id: string, title: string, h: string[] | Buffer, flags = EH | ES, after: Buffer[] = []): Case => ({
  id, title, run: async (p) => { p.send(hdr(1, h, flags), ...after); await streamError(p, 1, PROTO); },
  // Malformed in what follows the request headers (body, trailers, another HEADERS).
  ...(after.some((b) => b[3] === T.DATA || b[3] === T.HEADERS) ? { forwards: 'headers' as const } : {}),
});

export const CASES: Case[] = [
  // §3.4 connection preface
  { id: '3.4/1', title: 'invalid connection preface', raw: true, run: async (p) => { p.send(Buffer.from('PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n'), settings()); await connError(p, PROTO, true); } },
  { id: '3.4/2', title: 'preface not followed by SETTINGS', raw: true, run: async (p) => { p.send(PREFACE, ping(sz(8))); await connError(p, PROTO, true); } },
  { id: '3.4/3', title: "server's preface starts with SETTINGS", run: async (p) => { if (p.frames[0]?.type !== T.SETTINGS) throw new Error(`first frame ${p.describe()}`); } },
  // §4.1 frame format
  { id: '4.1/1', title: 'unknown frame type is ignored', run: async (p) => { p.send(fr(0xee, 0, 0, sz(8)), fr(0xee, 0xff, 1, sz(3))); await alive(p); } },
  { id: '4.1/2', title: 'unknown flags are ignored (PING)', run: async (p) => { p.send(ping(Buffer.from('flags!!!'), 0xfe)); await p.until((f) => f.type === T.PING && (f.flags & ACK) !== 0 && f.payload.toString() === 'flags!!!', 'PING ACK'); } },
  { id: '4.1/3', title: 'reserved bit of the stream id is ignored', run: async (p) => { p.send(hdr(0x80000001, GET())); await response(p, 1); } },
  // §4.2 frame size
  { id: '4.2/1', title: 'DATA above SETTINGS_MAX_FRAME_SIZE', run: async (p) => { p.send(hdr(1, HOLD(), EH), data(1, sz(16385))); await streamError(p, 1, [E.FRAME_SIZE_ERROR]); } },
  { id: '4.2/2', title: 'HEADERS above SETTINGS_MAX_FRAME_SIZE', run: async (p) => { p.send(fr(T.HEADERS, EH | ES, 1, Buffer.concat([block(GET()), lit('x-pad', 'a'.repeat(16385))]))); await connError(p, [E.FRAME_SIZE_ERROR]); } },
  { id: '4.2/3', title: 'SETTINGS above SETTINGS_MAX_FRAME_SIZE', run: async (p) => { p.send(fr(T.SETTINGS, 0, 0, sz(16386))); await connError(p, [E.FRAME_SIZE_ERROR]); } },
  // §4.3 field blocks
  { id: '4.3/1', title: 'undecodable field block', run: async (p) => { p.send(hdr(1, Buffer.from([0x80]))); await connError(p, [E.COMPRESSION_ERROR]); } },
  { id: '4.3/2', title: 'field block interrupted by PRIORITY', run: async (p) => { p.send(hdr(1, GET(), ES), prio(1, 0), fr(T.CONTINUATION, EH, 1, [])); await connError(p, PROTO); } },
  { id: '4.3/3', title: 'field block interrupted by HEADERS on another stream', run: async (p) => { p.send(hdr(1, GET(), ES), hdr(3, GET())); await connError(p, PROTO); } },
  { id: '4.3/4', title: 'field block over HEADERS and two CONTINUATIONs', run: async (p) => {
    const b = block(GET(['x-a', 'b']));
    p.send(fr(T.HEADERS, ES, 1, b.subarray(0, 5)), fr(T.CONTINUATION, 0, 1, b.subarray(5, 20)), fr(T.CONTINUATION, EH, 1, b.subarray(20)));
    await response(p, 1);
  } },
  // §5.1 stream states
  { id: '5.1/1', title: 'idle: DATA', run: async (p) => { p.send(data(1, 'x')); await connError(p, PROTO); } },
  { id: '5.1/2', title: 'idle: RST_STREAM', run: async (p) => { p.send(rst(1, E.CANCEL)); await connError(p, PROTO); } },
  { id: '5.1/3', title: 'idle: WINDOW_UPDATE', run: async (p) => { p.send(wu(1, 100)); await connError(p, PROTO); } },
  { id: '5.1/4', title: 'idle: CONTINUATION', run: async (p) => { p.send(fr(T.CONTINUATION, EH, 1, block(GET()))); await connError(p, PROTO); } },
  { id: '5.1/5', title: 'idle: PRIORITY is accepted', run: async (p) => { p.send(prio(3, 0)); await alive(p); p.send(hdr(3, GET())); await response(p, 3); } },
  { id: '5.1/6', title: 'half-closed (remote): DATA', run: async (p) => { p.send(hdr(1, HOLD()), data(1, 'x')); await streamError(p, 1, [E.STREAM_CLOSED]); } },
  { id: '5.1/7', title: 'half-closed (remote): HEADERS', run: async (p) => { p.send(hdr(1, HOLD()), hdr(1, ['x-t', '1'])); await streamError(p, 1, [E.STREAM_CLOSED]); } },
  { id: '5.1/8', title: 'half-closed (remote): WINDOW_UPDATE and PRIORITY are accepted', run: async (p) => { p.send(hdr(1, HOLD()), wu(1, 100), prio(1, 0)); await alive(p); } },
  { id: '5.1/9', title: 'closed by RST_STREAM: DATA', run: async (p) => { p.send(hdr(1, HOLD(), EH), rst(1, E.CANCEL), data(1, 'x')); await streamError(p, 1, [E.STREAM_CLOSED]); } },
  { id: '5.1/10', title: 'closed by RST_STREAM: HEADERS', run: async (p) => { p.send(hdr(1, HOLD(), EH), rst(1, E.CANCEL), hdr(1, ['x-t', '1'])); await streamError(p, 1, [E.STREAM_CLOSED]); } },
  { id: '5.1/11', title: 'closed by RST_STREAM: PRIORITY is accepted', run: async (p) => { p.send(hdr(1, HOLD(), EH), rst(1, E.CANCEL), prio(1, 0)); await alive(p); } },
  { id: '5.1/12', title: 'closed after END_STREAM both ways: DATA', run: async (p) => { p.send(hdr(1, GET())); await ended(p, 1); p.send(data(1, 'x')); await streamError(p, 1, [E.STREAM_CLOSED]); } },
  { id: '5.1/13', title: 'closed after END_STREAM both ways: HEADERS', run: async (p) => { p.send(hdr(1, GET())); await ended(p, 1); p.send(hdr(1, GET())); await streamError(p, 1, [E.STREAM_CLOSED, E.PROTOCOL_ERROR]); } },
  { id: '5.1/14', title: 'closed after END_STREAM: WINDOW_UPDATE, RST_STREAM and PRIORITY are accepted', run: async (p) => { p.send(hdr(1, GET())); await ended(p, 1); p.send(wu(1, 10), prio(1, 0), rst(1, E.CANCEL)); await alive(p); } },
  { id: '5.1/15', title: 'closed by our RST_STREAM: frames in flight are dropped', run: async (p) => {
    p.send(hdr(1, POST(['Upper', 'x']), EH), data(1, 'x'), wu(1, 10), hdr(3, GET()));
    await streamError(p, 1, PROTO);
    await response(p, 3);
  } },
  // §5.1.1 stream identifiers
  { id: '5.1.1/1', title: 'even stream id from a client', run: async (p) => { p.send(hdr(2, GET())); await connError(p, PROTO); } },
  { id: '5.1.1/2', title: 'stream id lower than one already opened', run: async (p) => { p.send(hdr(5, HOLD(), EH), hdr(3, GET())); await connError(p, PROTO); } },
  { id: '5.1.1/3', title: 'skipped stream ids are allowed', run: async (p) => { p.send(hdr(1, GET()), hdr(7, GET())); await response(p, 1); await response(p, 7); } },
  { id: '5.1.1/4', title: 'DATA on a skipped (never opened) stream', run: async (p) => { p.send(hdr(5, HOLD(), EH), data(3, 'x')); await connError(p, [E.PROTOCOL_ERROR, E.STREAM_CLOSED]); } },
  // §5.1.2 concurrency
  { id: '5.1.2/1', title: 'streams above SETTINGS_MAX_CONCURRENT_STREAMS', run: async (p) => {
    const max = p.settings.get(S_MAX_CONCURRENT_STREAMS);
    if (max === undefined || max > 1000) throw new Error(`no usable SETTINGS_MAX_CONCURRENT_STREAMS (${max})`);
    const frames: Buffer[] = [];
    for (let i = 0; i <= max; i++) frames.push(hdr(2 * i + 1, HOLD(), EH));
    p.send(settings(), ...frames);
    await streamError(p, 2 * max + 1, [E.REFUSED_STREAM, E.PROTOCOL_ERROR]);
  } },
  // §5.3.1 stream dependencies
  { id: '5.3.1/1', title: 'HEADERS depending on its own stream', run: async (p) => { p.send(fr(T.HEADERS, EH | ES | PRIO, 1, Buffer.concat([u32(1), Buffer.from([15]), block(GET())]))); await streamError(p, 1, PROTO); } },
  { id: '5.3.1/2', title: 'PRIORITY depending on its own stream', run: async (p) => { p.send(hdr(1, HOLD(), EH), prio(1, 1)); await streamError(p, 1, PROTO); } },
  // §5.5 extensions
  { id: '5.5/1', title: 'unknown frame type inside a field block', run: async (p) => { p.send(hdr(1, GET(), ES), fr(0xee, 0, 1, sz(4)), fr(T.CONTINUATION, EH, 1, [])); await connError(p, PROTO); } },
  // §6.1 DATA
  { id: '6.1/1', title: 'DATA on stream 0', run: async (p) => { p.send(data(0, 'x')); await connError(p, PROTO); } },
  { id: '6.1/2', title: 'DATA padding as long as the payload', run: async (p) => { p.send(hdr(1, POST(), EH), fr(T.DATA, PADDED | ES, 1, [3, 1, 2])); await connError(p, PROTO); } },
  { id: '6.1/3', title: 'padded DATA is accepted', run: async (p) => { p.send(hdr(1, POST(['content-length', '2']), EH), fr(T.DATA, PADDED | ES, 1, [4, 0x61, 0x62, 0, 0, 0, 0])); await response(p, 1); } },
  // §6.2 HEADERS
  { id: '6.2/1', title: 'HEADERS on stream 0', run: async (p) => { p.send(hdr(0, GET())); await connError(p, PROTO); } },
  { id: '6.2/2', title: 'HEADERS padding longer than the payload', run: async (p) => { p.send(fr(T.HEADERS, EH | ES | PADDED, 1, Buffer.concat([Buffer.from([200]), block(GET())]))); await connError(p, PROTO); } },
  { id: '6.2/3', title: 'padded HEADERS with priority fields are accepted', run: async (p) => { p.send(fr(T.HEADERS, EH | ES | PADDED | PRIO, 1, Buffer.concat([Buffer.from([3]), u32(0), Buffer.from([15]), block(GET()), sz(3)]))); await response(p, 1); } },
  // §6.3 PRIORITY
  { id: '6.3/1', title: 'PRIORITY on stream 0', run: async (p) => { p.send(fr(T.PRIORITY, 0, 0, sz(5))); await connError(p, PROTO); } },
  { id: '6.3/2', title: 'PRIORITY of 4 octets', run: async (p) => { p.send(hdr(1, HOLD(), EH), fr(T.PRIORITY, 0, 1, sz(4))); await streamError(p, 1, [E.FRAME_SIZE_ERROR]); } },
  // §6.4 RST_STREAM
  { id: '6.4/1', title: 'RST_STREAM on stream 0', run: async (p) => { p.send(rst(0, E.CANCEL)); await connError(p, PROTO); } },
  { id: '6.4/2', title: 'RST_STREAM of 3 octets', run: async (p) => { p.send(hdr(1, HOLD(), EH), fr(T.RST_STREAM, 0, 1, sz(3))); await connError(p, [E.FRAME_SIZE_ERROR]); } },
  // §6.5 SETTINGS
  { id: '6.5/1', title: 'SETTINGS ACK with a payload', run: async (p) => { p.send(fr(T.SETTINGS, ACK, 0, sz(6))); await connError(p, [E.FRAME_SIZE_ERROR]); } },
  { id: '6.5/2', title: 'SETTINGS on a stream', run: async (p) => { p.send(fr(T.SETTINGS, 0, 1, [])); await connError(p, PROTO); } },
  { id: '6.5/3', title: 'SETTINGS length not a multiple of 6', run: async (p) => { p.send(fr(T.SETTINGS, 0, 0, sz(3))); await connError(p, [E.FRAME_SIZE_ERROR]); } },
  { id: '6.5.2/1', title: 'SETTINGS_ENABLE_PUSH of 2', run: async (p) => { p.send(settings(S_ENABLE_PUSH, 2)); await connError(p, PROTO); } },
  { id: '6.5.2/2', title: 'SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1', run: async (p) => { p.send(settings(S_INITIAL_WINDOW_SIZE, 2 ** 31)); await connError(p, [E.FLOW_CONTROL_ERROR]); } },
  { id: '6.5.2/3', title: 'SETTINGS_MAX_FRAME_SIZE below 16384', run: async (p) => { p.send(settings(S_MAX_FRAME_SIZE, 16383)); await connError(p, PROTO); } },
  { id: '6.5.2/4', title: 'SETTINGS_MAX_FRAME_SIZE above 2^24-1', run: async (p) => { p.send(settings(S_MAX_FRAME_SIZE, 2 ** 24)); await connError(p, PROTO); } },
  { id: '6.5.2/5', title: 'unknown setting is ignored', run: async (p) => { p.send(settings(0xabc, 7)); await alive(p); } },
  { id: '6.5.3/1', title: 'SETTINGS is acknowledged', run: async (p) => {
    p.send(settings(S_HEADER_TABLE_SIZE, 4096));
    const acks = async (): Promise<number> => { await alive(p); return p.frames.filter((f) => f.type === T.SETTINGS && (f.flags & ACK) !== 0 && f.payload.length === 0).length; };
    const deadline = Date.now() + WAIT_MS;
    while (await acks() < 2) { if (Date.now() > deadline) throw new Error(`SETTINGS not acknowledged (got ${p.describe()})`); await new Promise((r) => setTimeout(r, 20)); }
  } },
  // §6.7 PING
  { id: '6.7/1', title: 'PING is answered with the same payload', run: async (p) => { p.send(ping(Buffer.from('h2conf!!'))); await p.until((f) => f.type === T.PING && (f.flags & ACK) !== 0 && f.payload.toString() === 'h2conf!!', 'PING ACK'); } },
  { id: '6.7/2', title: 'PING ACK is not answered', run: async (p) => {
    p.send(ping(Buffer.from('no-reply'), ACK));
    await alive(p);
    if (p.frames.some((f) => f.type === T.PING && f.payload.toString() === 'no-reply')) throw new Error('answered a PING ACK');
  } },
  { id: '6.7/3', title: 'PING on a stream', run: async (p) => { p.send(fr(T.PING, 0, 1, sz(8))); await connError(p, PROTO); } },
  { id: '6.7/4', title: 'PING of 6 octets', run: async (p) => { p.send(fr(T.PING, 0, 0, sz(6))); await connError(p, [E.FRAME_SIZE_ERROR]); } },
  // §6.8 GOAWAY
  { id: '6.8/1', title: 'GOAWAY on a stream', run: async (p) => { p.send(fr(T.GOAWAY, 0, 1, sz(8))); await connError(p, PROTO); } },
  // §6.9 WINDOW_UPDATE and flow control
  { id: '6.9/1', title: 'connection WINDOW_UPDATE of 0', run: async (p) => { p.send(wu(0, 0)); await connError(p, PROTO); } },
  { id: '6.9/2', title: 'stream WINDOW_UPDATE of 0', run: async (p) => { p.send(hdr(1, HOLD(), EH), wu(1, 0)); await streamError(p, 1, PROTO); } },
  { id: '6.9/3', title: 'WINDOW_UPDATE of 3 octets', run: async (p) => { p.send(fr(T.WINDOW_UPDATE, 0, 0, sz(3))); await connError(p, [E.FRAME_SIZE_ERROR]); } },
  { id: '6.9.1/1', title: 'connection window above 2^31-1', run: async (p) => { p.send(wu(0, 2 ** 31 - 1)); await connError(p, [E.FLOW_CONTROL_ERROR]); } },
  { id: '6.9.1/2', title: 'stream window above 2^31-1', run: async (p) => { p.send(hdr(1, HOLD(), EH), wu(1, 2 ** 31 - 1)); await streamError(p, 1, [E.FLOW_CONTROL_ERROR]); } },
  { id: '6.9.1/3', title: 'DATA beyond the stream window the server advertised', run: async (p) => {
    const win = p.settings.get(S_INITIAL_WINDOW_SIZE) ?? 65535;
    const frames = [hdr(1, HOLD(), EH)];
    for (let left = win + 1; left > 0; left -= 16384) frames.push(data(1, sz(Math.min(16384, left))));
    p.send(...frames);
    await streamError(p, 1, [E.FLOW_CONTROL_ERROR]);
  } },
  { id: '6.9.1/4', title: "the server keeps to the client's stream window", raw: true, run: async (p) => {
    p.send(PREFACE, settings(S_INITIAL_WINDOW_SIZE, 1), hdr(1, GET()));
    const d = await p.until((f) => f.type === T.DATA && f.stream === 1, 'DATA');
    if (d === null || d.payload.length !== 1) throw new Error(`first DATA of ${d?.payload.length} octets in a window of 1`);
    await new Promise((r) => setTimeout(r, 100));
    if (p.frames.filter((f) => f.type === T.DATA).length !== 1) throw new Error('sent beyond the stream window');
    p.send(wu(1, 100));
    await ended(p, 1);
  } },
  { id: '6.9.2/1', title: 'SETTINGS_INITIAL_WINDOW_SIZE changes the windows of open streams', raw: true, run: async (p) => {
    p.send(PREFACE, settings(S_INITIAL_WINDOW_SIZE, 0), hdr(1, GET()));
    await p.until((f) => f.type === T.HEADERS && f.stream === 1, 'response HEADERS');
    await new Promise((r) => setTimeout(r, 100));
    if (p.frames.some((f) => f.type === T.DATA && f.payload.length > 0)) throw new Error('DATA sent into a window of 0');
    p.send(settings(S_INITIAL_WINDOW_SIZE, 100));
    await ended(p, 1);
  } },
  { id: '6.9.2/2', title: 'SETTINGS_INITIAL_WINDOW_SIZE change that overflows an open stream window', run: async (p) => {
    p.send(hdr(1, HOLD(), EH), wu(1, 2 ** 31 - 1 - 65535));
    await alive(p);
    p.send(settings(S_INITIAL_WINDOW_SIZE, 65536));
    await connError(p, [E.FLOW_CONTROL_ERROR]);
  } },
  // §6.10 CONTINUATION
  { id: '6.10/1', title: 'CONTINUATION after END_HEADERS', run: async (p) => { p.send(hdr(1, HOLD(), EH), fr(T.CONTINUATION, EH, 1, block(['x-a', 'b']))); await connError(p, PROTO); } },
  { id: '6.10/2', title: 'DATA instead of CONTINUATION', run: async (p) => { p.send(hdr(1, POST(), 0), data(1, 'x')); await connError(p, PROTO); } },
  { id: '6.10/3', title: 'CONTINUATION on another stream', run: async (p) => { p.send(hdr(1, GET(), ES), fr(T.CONTINUATION, EH, 3, [])); await connError(p, PROTO); } },
  // §8.1 messages
  malformed('8.1/1', 'second HEADERS without END_STREAM', HOLD(), EH, [hdr(1, ['x-t', '1'], EH)]),
  { id: '8.1/2', title: 'trailers are accepted', forwards: 'request', run: async (p) => { p.send(hdr(1, POST(), EH), data(1, 'abc'), hdr(1, ['x-t', '1'])); await response(p, 1); } },
  malformed('8.1/3', 'pseudo-header in trailers', POST(), EH, [data(1, 'abc'), hdr(1, [':path', '/x'])]),
  // §8.1.1 content-length
  malformed('8.1.1/1', 'content-length above the DATA received', POST(['content-length', '4']), EH, [data(1, 'abc', ES)]),
  malformed('8.1.1/2', 'content-length below the DATA received', POST(['content-length', '2']), EH, [data(1, 'ab'), data(1, 'cd', ES)]),
  malformed('8.1.1/3', 'content-length with END_STREAM on HEADERS', POST(['content-length', '3'])),
  malformed('8.1.1/4', 'content-length not met when trailers end the stream', POST(['content-length', '4']), EH, [data(1, 'abc'), hdr(1, ['x-t', '1'])]),
  malformed('8.1.1/5', 'content-length that is not a number', POST(['content-length', '3x']), EH, [data(1, 'abc', ES)]),
  { id: '8.1.1/6', title: 'content-length met over two DATA frames', forwards: 'request', run: async (p) => { p.send(hdr(1, POST(['content-length', '4']), EH), data(1, 'ab'), data(1, 'cd', ES)); await response(p, 1); } },
  // §8.2.1 field validity
  malformed('8.2.1/1', 'upper-case field name', GET(['X-Upper', 'v'])),
  malformed('8.2.1/2', 'space in a field name', GET(['x a', 'v'])),
  malformed('8.2.1/3', 'colon inside a field name', GET(['x:a', 'v'])),
  malformed('8.2.1/4', 'non-ASCII octet in a field name', GET(['x-\xe9', 'v'])),
  malformed('8.2.1/5', 'DEL in a field name', GET(['x-\x7f', 'v'])),
  malformed('8.2.1/6', 'empty field name', GET(['', 'v'])),
  malformed('8.2.1/7', 'NUL in a field value', GET(['x-a', 'a\0b'])),
  malformed('8.2.1/8', 'CR in a field value', GET(['x-a', 'a\rb'])),
  malformed('8.2.1/9', 'LF in a field value', GET(['x-a', 'a\nb'])),
  malformed('8.2.1/10', 'leading space in a field value', GET(['x-a', ' v'])),
  malformed('8.2.1/11', 'trailing tab in a field value', GET(['x-a', 'v\t'])),
  { id: '8.2.1/12', title: 'inner spaces, tabs and obs-text in a value are accepted', forwards: 'request', run: async (p) => { p.send(hdr(1, GET(['x-a', 'a b\tc \xe9']))); await response(p, 1); } },
  // §8.2.2 connection-specific fields
  malformed('8.2.2/1', 'connection field', GET(['connection', 'keep-alive'])),
  malformed('8.2.2/2', 'keep-alive field', GET(['keep-alive', 'timeout=5'])),
  malformed('8.2.2/3', 'proxy-connection field', GET(['proxy-connection', 'keep-alive'])),
  malformed('8.2.2/4', 'transfer-encoding field', POST(['transfer-encoding', 'chunked']), EH, [data(1, 'abc', ES)]),
  malformed('8.2.2/5', 'upgrade field', GET(['upgrade', 'websocket'])),
  malformed('8.2.2/6', 'TE other than "trailers"', GET(['te', 'gzip'])),
  { id: '8.2.2/7', title: 'TE "trailers" is accepted', forwards: 'request', run: async (p) => { p.send(hdr(1, GET(['te', 'trailers']))); await response(p, 1); } },
  // §8.3.1 request pseudo-headers
  malformed('8.3.1/1', 'unknown pseudo-header', GET([':foo', 'bar'])),
  malformed('8.3.1/2', 'response pseudo-header in a request', [':status', '200', ...GET()]),
  malformed('8.3.1/3', 'pseudo-header after a regular field', ['x-a', 'b', ...GET()]),
  malformed('8.3.1/4', 'duplicated :method', [':method', 'GET', ...GET()]),
  malformed('8.3.1/5', 'duplicated :scheme', [':scheme', 'http', ...GET()]),
  malformed('8.3.1/6', 'duplicated :path', [':path', '/ok', ...GET()]),
  malformed('8.3.1/7', 'duplicated :authority', [':authority', 'localhost', ...GET()]),
  malformed('8.3.1/8', 'missing :method', [':scheme', 'http', ':path', '/ok', ':authority', 'localhost']),
  malformed('8.3.1/9', 'missing :scheme', [':method', 'GET', ':path', '/ok', ':authority', 'localhost']),
  malformed('8.3.1/10', 'missing :path', [':method', 'GET', ':scheme', 'http', ':authority', 'localhost']),
  malformed('8.3.1/11', 'empty :path', req('GET', '')),
  malformed('8.3.1/12', ':protocol without SETTINGS_ENABLE_CONNECT_PROTOCOL', [':method', 'CONNECT', ':protocol', 'websocket', ':scheme', 'http', ':path', '/ok', ':authority', 'localhost']),
  malformed('8.3.1/13', 'Host naming another authority than :authority', GET(['host', 'elsewhere.example'])),
  // §8.4 server push
  { id: '8.4/1', title: 'PUSH_PROMISE from a client', forwards: 'headers', run: async (p) => { p.send(hdr(1, HOLD(), EH), fr(T.PUSH_PROMISE, EH, 1, Buffer.concat([u32(2), block(GET())]))); await connError(p, PROTO); } },
  // §8.5 CONNECT
  malformed('8.5/1', 'CONNECT with :path', [':method', 'CONNECT', ':path', '/', ':authority', 'localhost:443']),
  malformed('8.5/2', 'CONNECT with :scheme', [':method', 'CONNECT', ':scheme', 'http', ':authority', 'localhost:443']),
  malformed('8.5/3', 'CONNECT without :authority', [':method', 'CONNECT']),
  // RFC 7541 HPACK
  { id: 'hpack/2.3.3', title: 'index beyond the static and dynamic tables', run: async (p) => { p.send(hdr(1, withTail(GET(), [0xff, 0x80, 0x01]))); await connError(p, [E.COMPRESSION_ERROR]); } },
  { id: 'hpack/4.2/1', title: 'table size update above SETTINGS_HEADER_TABLE_SIZE', run: async (p) => {
    const max = p.settings.get(S_HEADER_TABLE_SIZE) ?? 4096;
    p.send(hdr(1, Buffer.concat([Buffer.from(hint(max + 1, 5, 0x20)), block(GET())])));
    await connError(p, [E.COMPRESSION_ERROR]);
  } },
  { id: 'hpack/4.2/2', title: 'table size update after a field', run: async (p) => { p.send(hdr(1, withTail(GET(), [0x20]))); await connError(p, [E.COMPRESSION_ERROR]); } },
  { id: 'hpack/4.2/3', title: 'table size updates at the start of a block are accepted', run: async (p) => { p.send(hdr(1, Buffer.concat([Buffer.from([0x20, 0x3f, 0xe1, 0x1f]), block(GET())]))); await response(p, 1); } },
  { id: 'hpack/5.1', title: 'integer overflowing its representation', run: async (p) => { p.send(hdr(1, withTail(GET(), [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]))); await connError(p, [E.COMPRESSION_ERROR]); } },
  { id: 'hpack/5.2/1', title: 'Huffman string containing EOS', run: async (p) => { p.send(hdr(1, withTail(GET(), huff([0x1f, 0xff, 0xff, 0xff, 0xff])))); await connError(p, [E.COMPRESSION_ERROR]); } },
  { id: 'hpack/5.2/2', title: 'Huffman padding longer than 7 bits', run: async (p) => { p.send(hdr(1, withTail(GET(), huff([0x1f, 0xff])))); await connError(p, [E.COMPRESSION_ERROR]); } },
  { id: 'hpack/5.2/3', title: 'Huffman padding that is not the EOS prefix', run: async (p) => { p.send(hdr(1, withTail(GET(), huff([0x18])))); await connError(p, [E.COMPRESSION_ERROR]); } },
  { id: 'hpack/5.2/4', title: 'Huffman strings are accepted', run: async (p) => {
    // :authority (static name 1) = Huffman "www.example.com" (RFC 7541 C.4.1).
    const auth = [0x01, 0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff];
    p.send(hdr(1, withTail([':method', 'GET', ':scheme', 'http', ':path', '/ok'], auth)));
    await response(p, 1);
  } },
  { id: 'hpack/6.1', title: 'indexed field with index 0', run: async (p) => { p.send(hdr(1, withTail(GET(), [0x80]))); await connError(p, [E.COMPRESSION_ERROR]); } },
  { id: 'hpack/6.2.1', title: 'dynamic table entries are kept across blocks', run: async (p) => {
    p.send(hdr(1, Buffer.concat([block([':method', 'GET', ':scheme', 'http', ':path', '/ok']), litIndexed(':authority', 'localhost')])));
    await response(p, 1);
    p.send(hdr(3, Buffer.concat([block([':method', 'GET', ':scheme', 'http', ':path', '/ok']), Buffer.from([0xbe])])));
    await response(p, 3);
  } },
];

export interface Verdict { id: string; title: string; pass: boolean; detail: string }

/** Runs every case against the server at `port`, each on a connection of its own. */
export async function runCases(port: number, cases: Case[] = CASES): Promise<Verdict[]> {
  const out: Verdict[] = [];
  for (const c of cases) {
    let p: Peer | null = null;
    try {
      p = c.raw ? await Peer.open(port, Buffer.alloc(0)) : await Peer.open(port);
      await c.run(p, port);
      out.push({ id: c.id, title: c.title, pass: true, detail: '' });
    } catch (e) {
      out.push({ id: c.id, title: c.title, pass: false, detail: (e as Error).message });
    } finally {
      p?.close();
    }
  }
  return out;
}
