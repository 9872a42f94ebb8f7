// Seeded mutation fuzzer for the proxy's parsers (npm run fuzz; a short run is part of
// the security test suite). Jazzer.js was tried first: @jazzer.js/core 4.0.0 installs,
// but its prebuilt libFuzzer binding needs GLIBC 2.38 and Debian 12 has 2.36, so this is
// a plain mutation loop over the committed seed corpus (test/security/corpus/, real
// client captures from corpus/capture.ts plus hand-written edge cases).
//
// Targets and the properties checked on every input:
//  h1     HTTP/1.1 message stream (head parser + body framer, pipelined requests):
//         - nothing is thrown but HeadError;
//         - no desync: every message boundary the proxy finds (head end, body end) is
//           the one an independent, slower reading (regex head grammar + a separate
//           chunked decoder, below) finds, and the framer gives the same answer however
//           the body bytes are split into reads;
//         - re-serialising a parsed head and parsing it again gives the same head;
//         - path normalization never throws and is idempotent.
//  h2     HTTP/2 server connection fed frame sequences (frame decoder, stream state,
//         HPACK, flow control), in random read splits: nothing thrown.
//  hpack  HPACK decoder over sequences of header blocks: only HpackError is thrown; a
//         valid decoded list has no CR/LF/NUL and lower-case names, and survives an
//         encode/decode round trip unchanged.
// For every target: a per-input time bound (a slow input is re-run once, then a
// failure) and a memory bound (RSS sampled), and the whole run has a time budget.
//
// Environment: WEFT_FUZZ_SECONDS (total budget, default 60), WEFT_FUZZ_SEED (default
// random; always printed: a run is reproducible from its seed), WEFT_FUZZ_TARGETS
// (comma list, default all), WEFT_FUZZ_INPUT_MS (per-input bound, default 250),
// WEFT_FUZZ_MAX_RSS_MB (default 768).
import { readFileSync, readdirSync, writeFileSync, mkdtempSync } from 'node:fs';
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { createHash } from 'node:crypto';
import { Framing, HeadError, RequestHead, findHeadEnd, parseRequestHead } from '../../agent/proxy/http/head-parser';
import { BodyFramer, FRAMING_ERROR } from '../../agent/proxy/http/body-framer';
import { normalizePath, type PathNormalization } from '../../agent/proxy/http/path';
import { H2Connection, type ConnectionHandler, type H2Stream } from '../../agent/proxy/h2/connection';
import { HpackDecoder, HpackEncoder, HpackError } from '../../agent/proxy/h2/hpack';
import { E } from '../../agent/proxy/h2/frame';

// ------------------------------------------------------------------ PRNG (mulberry32)
let state = 0;
function rnd(): number {
  state = (state + 0x6d2b79f5) | 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const ri = (n: number) => Math.floor(rnd() * n);
const pick = <T>(a: readonly T[]): T => a[ri(a.length)]!;

/** How far inputs got (printed per target: a fuzzer whose inputs all die in the first
 *  check would pass without testing anything). */
const stats: Record<string, number> = {};
const count = (k: string): void => { stats[k] = (stats[k] ?? 0) + 1; };

/** A property violation (as opposed to an error the module under test threw). */
class Violation extends Error {}
function check(cond: boolean, msg: string): void { if (!cond) throw new Violation(msg); }

// ------------------------------------------------------------------ mutations
const TOKENS = ['\r', '\n', '\r\n', '\0', ':', ' ', '\t', '\r\n ', '\r\n\t', ',', ';', '%', '%2f', '%2e', '/', '//', '/..', '/./', '#', '?', '\\', '\x7f', '\xff',
  '\r\n\r\n', 'Transfer-Encoding: chunked\r\n', 'Content-Length: 5\r\n', 'Content-Length: 0\r\n', 'Transfer-Encoding: chunked, identity\r\n',
  'Host: other\r\n', 'Connection: upgrade\r\nUpgrade: h2c\r\n', '0\r\n\r\n', 'GET /admin HTTP/1.1\r\n', 'HTTP/1.1', 'Expect: 100-continue\r\n'].map((s) => Buffer.from(s, 'latin1'));
const CHUNK_SIZES = ['0', '1', 'f', 'F', '10', 'ffffffff', 'fffffffffffff', 'ffffffffffffffff', '-1', '0x5', ' 5', '5 ', '05', '5;a=b', '5 ;x', '5;\x01', '+5', ''];

function insertAt(b: Buffer, at: number, x: Buffer): Buffer { return Buffer.concat([b.subarray(0, at), x, b.subarray(at)]); }

/** Offsets just after each CRLF (line starts). */
function lineStarts(b: Buffer): number[] {
  const out = [0];
  for (let i = b.indexOf('\r\n'); i >= 0; i = b.indexOf('\r\n', i + 2)) out.push(i + 2);
  return out;
}

function mutateGeneric(b: Buffer, pool: readonly Buffer[]): Buffer {
  const n = 1 + ri(4);
  for (let k = 0; k < n; k++) {
    const at = ri(b.length + 1);
    switch (ri(11)) {
      case 0: if (b.length) { b = Buffer.from(b); b[ri(b.length)]! ^= 1 << ri(8); } break;
      case 1: if (b.length) { b = Buffer.from(b); b[ri(b.length)] = ri(256); } break;
      case 2: b = insertAt(b, at, pick(TOKENS)); break;
      case 3: { const len = ri(Math.min(16, b.length - at) + 1); b = Buffer.concat([b.subarray(0, at), b.subarray(at + len)]); break; }
      case 4: { const o = pick(pool); const s = ri(o.length + 1); b = insertAt(b, at, o.subarray(s, s + ri(64))); break; }
      case 5: { // duplicate a line (duplicated headers)
        const ls = lineStarts(b); const i = ri(ls.length - 1 || 1); const s = ls[i]!, e = ls[i + 1] ?? b.length;
        b = insertAt(b, e, b.subarray(s, e)); break;
      }
      case 6: { // chunk-size games: replace a hex run at a line start
        const ls = lineStarts(b); const s = pick(ls); let e = s;
        while (e < b.length && /[0-9a-fA-F]/.test(String.fromCharCode(b[e]!))) e++;
        b = Buffer.concat([b.subarray(0, s), Buffer.from(pick(CHUNK_SIZES), 'latin1'), b.subarray(e)]); break;
      }
      case 7: if (b.length) { b = Buffer.from(b); const i = ri(b.length); const c = b[i]!; if (c >= 0x61 && c <= 0x7a) b[i] = c - 32; else if (c >= 0x41 && c <= 0x5a) b[i] = c + 32; } break;
      case 8: b = b.subarray(0, at); break;
      case 9: { const o = pick(pool); b = Buffer.concat([b, o.subarray(ri(o.length + 1))]); break; }
      default: { const len = ri(8); b = insertAt(b, at, b.subarray(at, at + len)); break; }
    }
  }
  return b.length > 65536 ? b.subarray(0, 65536) : b;
}

/** Frame-aware mutations for HTTP/2: frame header fields of a random frame. */
function mutateH2(b: Buffer, pool: readonly Buffer[]): Buffer {
  if (rnd() < 0.5) return mutateGeneric(b, pool);
  const starts: number[] = [];
  for (let i = 24; i + 9 <= b.length; i += 9 + b.readUIntBE(i, 3)) starts.push(i);
  if (!starts.length) return mutateGeneric(b, pool);
  b = Buffer.from(b);
  const f = pick(starts);
  switch (ri(6)) {
    case 0: b.writeUIntBE(ri(3) === 0 ? ri(1 << 24) : Math.max(0, b.readUIntBE(f, 3) + ri(9) - 4), f, 3); break;
    case 1: b[f + 3] = ri(12); break;
    case 2: b[f + 4] = ri(256); break;
    case 3: b.writeUInt32BE(pick([0, 1, 2, 3, 5, 0x7fffffff, 0x80000001, ri(64)]), f + 5); break;
    case 4: { const e = Math.min(b.length, f + 9 + b.readUIntBE(f, 3)); b = insertAt(b, e, b.subarray(f, e)); break; }
    default: { const e = Math.min(b.length, f + 9 + b.readUIntBE(f, 3)); b = Buffer.concat([b.subarray(0, f), b.subarray(e)]); break; }
  }
  return b;
}

// ------------------------------------------------------------------ HTTP/1.1: the reference reading
// Written separately from head-parser.ts/body-framer.ts, on strings and regexes, to be
// an independent second opinion about where messages end.
const TOKEN_RE = "[!#$%&'*+\\-.^_`|~0-9A-Za-z]+";
const REQ_LINE = new RegExp(`^(${TOKEN_RE}) ([\\x21-\\x7e]+) HTTP/1\\.([01])$`);
const FIELD = new RegExp(`^(${TOKEN_RE}):[ \\t]*([^\\x00-\\x08\\x0a-\\x1f\\x7f]*?)[ \\t]*$`);

interface RefHead { method: string; target: string; minor: number; fields: [string, string][] }

function refHead(head: string): RefHead | null {
  const lines = head.slice(0, -4).split('\r\n');
  const m = REQ_LINE.exec(lines[0]!);
  if (!m) return null;
  const fields: [string, string][] = [];
  for (const l of lines.slice(1)) {
    const f = FIELD.exec(l);
    if (!f) return null;
    fields.push([f[1]!.toLowerCase(), f[2]!]);
  }
  return { method: m[1]!, target: m[2]!, minor: Number(m[3]), fields };
}

/** Body framing of a request by RFC 9112 §6.3 (for a head the strict parser accepted). */
function refFraming(h: RefHead): { chunked: boolean; length: number } {
  const te = h.fields.find(([n]) => n === 'transfer-encoding');
  if (te) return { chunked: true, length: 0 };
  const cl = h.fields.find(([n]) => n === 'content-length');
  return { chunked: false, length: cl ? Number(cl[1]) : 0 };
}

type RefBody = { end: number } | 'error' | 'incomplete';

/** The end of a chunked body starting at `from` (same size/line limits as the proxy). */
function refChunked(s: string, from: number): RefBody {
  let i = from, fields = 0;
  for (;;) {
    const eol = s.indexOf('\r\n', i);
    const bad = /[\n\0-\x08\x0b-\x0c\x0e-\x1f]/.exec(s.slice(i, eol < 0 ? s.length : eol));
    if (eol < 0) {
      // An incomplete size line may already be wrong.
      // (at least one digit before anything else; BWS only before an extension)
      return bad || !/^(|[0-9a-fA-F]{1,13}(\r|[ \t]*;[\x20-\x7e\t]*\r?|[ \t]+)?)$/.test(s.slice(i)) ? 'error' : 'incomplete';
    }
    const line = s.slice(i, eol);
    const m = /^([0-9a-fA-F]{1,13})(?:[ \t]*;[\x20-\x7e\t]*)?$/.exec(line);
    if (!m) return 'error';
    const size = parseInt(m[1]!, 16);
    i = eol + 2;
    if (size === 0) break;
    if (s.length < i + size) return 'incomplete';
    i += size;
    if (s.length < i + 2) return s.length === i || s[i] === '\r' ? 'incomplete' : 'error';
    if (s[i] !== '\r' || s[i + 1] !== '\n') return 'error';
    i += 2;
  }
  // trailer section
  for (;;) {
    const eol = s.indexOf('\r\n', i);
    if (eol < 0) {
      const rest = s.slice(i);
      if (rest === '' || rest === '\r') return 'incomplete';
      return new RegExp(`^${TOKEN_RE}(:[^\\x00-\\x08\\x0a-\\x1f\\x7f]*\\r?)?$`).test(rest) && rest.length <= 8192 ? 'incomplete' : 'error';
    }
    const line = s.slice(i, eol);
    i = eol + 2;
    if (line === '') return { end: i };
    if (!new RegExp(`^${TOKEN_RE}:[^\\x00-\\x08\\x0a-\\x1f\\x7f]*$`).test(line) || line.length > 8192 || ++fields > 100) return 'error';
  }
}

// ------------------------------------------------------------------ HTTP/1.1 target
const MODES: PathNormalization[] = [{ mergeSlashes: true, escapedSlashes: 'REJECT' }, { mergeSlashes: false, escapedSlashes: 'KEEP' }, { mergeSlashes: true, escapedSlashes: 'UNESCAPE' }];

function sameHead(a: RequestHead, b: RequestHead, what: string): void {
  check(a.method === b.method && a.target === b.target && a.path === b.path && a.query === b.query && a.host === b.host, `${what}: request line or Host differ`);
  check(a.framing === b.framing && a.contentLength === b.contentLength && a.close === b.close && a.upgrade === b.upgrade && a.minor === b.minor, `${what}: framing differs`);
  check(a.count === b.count, `${what}: header count differs`);
  for (let i = 0; i < a.count; i++) check(a.nameAt(i) === b.nameAt(i) && a.valueAt(i) === b.valueAt(i), `${what}: header ${i} differs`);
}

/** Feeds body bytes to a framer in random pieces: the end offset, FRAMING_ERROR, or -2 (incomplete). */
function frameSplit(mode: Framing, cl: number, buf: Buffer, from: number): number {
  const f = new BodyFramer();
  f.start(mode, cl);
  if (f.done) return from;
  let i = from;
  while (i < buf.length) {
    const e = Math.min(buf.length, i + 1 + ri(rnd() < 0.3 ? 3 : 200));
    const stop = f.feed(buf, i, e);
    if (stop === FRAMING_ERROR) return FRAMING_ERROR;
    if (f.done) return stop;
    i = e;
  }
  return -2;
}

function fuzzH1(input: Buffer): void {
  const s = input.toString('latin1');
  let pos = 0;
  for (let msg = 0; msg < 8 && pos < input.length; msg++) {
    const rest = input.subarray(pos);
    const end = findHeadEnd(rest, 0);
    if (end < 0) return;
    const h = new RequestHead();
    try { parseRequestHead(h, rest, end); } catch (e) {
      if (e instanceof HeadError) return;
      throw e;
    }
    count(msg === 0 ? 'head accepted' : 'pipelined head accepted');
    // The independent reading accepts the same head with the same fields and framing.
    const ref = refHead(s.slice(pos, pos + end));
    check(ref !== null, 'accepted head the reference grammar rejects');
    check(ref!.method === h.method && ref!.target === h.target && ref!.minor === h.minor && ref!.fields.length === h.count, 'head differs from the reference reading');
    for (let i = 0; i < h.count; i++) check(ref!.fields[i]![0] === h.nameAt(i) && ref!.fields[i]![1] === h.valueAt(i), `field ${i} differs from the reference reading`);
    const rf = refFraming(ref!);
    check(rf.chunked === (h.framing === Framing.Chunked), 'chunked decision differs');
    if (!rf.chunked) check((rf.length === 0 ? Framing.None : Framing.Length) === h.framing && (rf.length === 0 || rf.length === h.contentLength), 'length decision differs');

    // Re-serialise and re-parse: the same head.
    let again = `${h.method} ${h.target} HTTP/1.${h.minor}\r\n`;
    for (let i = 0; i < h.count; i++) again += `${h.nameAt(i)}: ${h.valueAt(i)}\r\n`;
    const ab = Buffer.from(again + '\r\n', 'latin1');
    const h2 = new RequestHead();
    try { parseRequestHead(h2, ab, ab.length); } catch (e) { throw new Violation(`re-serialised head rejected: ${e instanceof HeadError ? e.reason : String(e)}`); }
    sameHead(h, h2, 're-serialised head');

    for (const m of MODES) {
      const n = normalizePath(h.path, m);
      if (n !== null) check(normalizePath(n, m) === n, `path normalization not idempotent: ${h.path} -> ${n}`);
    }

    // Body: the framer (whole, and in random pieces) against the reference decoder.
    const bodyFrom = pos + end;
    let bodyEnd: number;
    if (h.framing === Framing.Chunked) {
      const f = new BodyFramer();
      f.start(Framing.Chunked, 0);
      const whole = f.feed(input, bodyFrom, input.length);
      const r1 = whole === FRAMING_ERROR ? FRAMING_ERROR : f.done ? whole : -2;
      const r2 = frameSplit(Framing.Chunked, 0, input, bodyFrom);
      check(r1 === r2, `framer result depends on read boundaries (${r1} vs ${r2})`);
      const rb = refChunked(s, bodyFrom);
      if (r1 === FRAMING_ERROR) check(rb === 'error', `framer rejects a body the reference reads as ${JSON.stringify(rb)}`);
      else if (r1 === -2) check(rb === 'incomplete', `framer waits for more, reference says ${JSON.stringify(rb)}`);
      else check(typeof rb === 'object' && rb.end === r1, `body end ${r1} vs reference ${JSON.stringify(rb)}`);
      count(r1 >= 0 ? 'chunked body complete' : r1 === -2 ? 'chunked body incomplete' : 'chunked body rejected');
      if (r1 < 0) return;
      bodyEnd = r1;
    } else if (h.framing === Framing.Length) {
      if (input.length - bodyFrom < h.contentLength) return;
      const r = frameSplit(Framing.Length, h.contentLength, input, bodyFrom);
      check(r === bodyFrom + h.contentLength, 'content-length body end differs');
      bodyEnd = r;
    } else bodyEnd = bodyFrom;
    pos = bodyEnd;
  }
}

// ------------------------------------------------------------------ HTTP/2 target
class FakeSocket extends EventEmitter {
  written = 0;
  destroyed = false;
  write(b: Buffer): boolean { this.written += b.length; return true; }
  pause(): this { return this; }
  resume(): this { return this; }
  isPaused(): boolean { return false; }
  end(): this { this.destroyed = true; return this; }
  destroy(): this { this.destroyed = true; return this; }
  setNoDelay(): this { return this; }
}

const H2_LIMITS = { maxConcurrentStreams: 16, maxHeaderListSize: 16 * 1024, streamWindow: 256 * 1024, connectionWindow: 1024 * 1024, maxResetsPerSecond: 200, maxControlPerSecond: 1000 };

function fuzzH2(input: Buffer): void {
  let answered = 0;
  const handler: ConnectionHandler = {
    onStream(c: H2Connection, s: H2Stream, headers: string[], end: boolean) {
      check(headers.length % 2 === 0, 'odd header list');
      s.handler = { onHeaders() {}, onData(st, d) { c.credit(st, d.length); }, onSent() {}, onClosed() {} };
      if (++answered % 3 === 0) c.reset(s, E.CANCEL);
      else { c.sendHeaders(s, [':status', '200'], false); c.sendData(s, Buffer.from('ok'), end); }
    },
    onClose() {},
    onGoaway() {},
  };
  const sock = new FakeSocket();
  const c = new H2Connection(sock as never, false, H2_LIMITS, handler);
  let i = 0;
  while (i < input.length && !c.destroyed) {
    const e = Math.min(input.length, i + 1 + ri(rnd() < 0.3 ? 16 : 4096));
    c.feed(input.subarray(i, e));
    i = e;
  }
  count(c.destroyed ? 'h2 connection failed' : 'h2 connection alive');
  if (answered) count('h2 connection with streams');
  c.destroy();
}

// ------------------------------------------------------------------ HPACK target
function blocksOf(b: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i + 4 <= b.length;) { const n = b.readUInt32BE(i); out.push(b.subarray(i + 4, Math.min(b.length, i + 4 + n))); i += 4 + n; }
  return out;
}

function fuzzHpack(input: Buffer): void {
  // Mutated inputs are raw: either a length-prefixed sequence (the seeds) or garbage.
  const blocks = input.length >= 4 && input.readUInt32BE(0) <= input.length ? blocksOf(input) : [input];
  const dec = new HpackDecoder(4096);
  for (const b of blocks) {
    let r;
    try { r = dec.decode(b, 16 * 1024); } catch (e) {
      if (e instanceof HpackError) return; // the connection answers COMPRESSION_ERROR and closes
      throw e;
    }
    check(r.headers.length % 2 === 0, 'odd header list');
    count(r.invalid ? 'hpack block invalid' : 'hpack block valid');
    if (r.invalid || r.oversized) continue;
    for (let i = 0; i < r.headers.length; i++) {
      const v = r.headers[i]!;
      check(!/[\0\r\n]/.test(v), 'CR, LF or NUL in a decoded field not flagged invalid');
      if (i % 2 === 0) check(v.length > 0 && !/[A-Z]/.test(v), 'empty or upper-case name not flagged invalid');
    }
    const enc = new HpackEncoder();
    const round = new HpackDecoder(4096).decode(Buffer.from(enc.encode(r.headers)), 1 << 30);
    check(round.headers.length === r.headers.length && round.headers.every((x, i) => x === r.headers[i]), 'encode/decode round trip changed the list');
  }
}

// ------------------------------------------------------------------ driver
interface Target {
  name: string; dir: string; run(b: Buffer): void; typed: (e: unknown) => boolean; mutate(b: Buffer, pool: readonly Buffer[]): Buffer;
  /** Yield to the event loop every this many inputs: HTTP/2 connections flush their
   *  output on process.nextTick, which holds each connection until it runs. */
  yieldEvery: number;
}

const TARGETS: Target[] = [
  { name: 'h1', dir: 'h1', run: fuzzH1, typed: (e) => e instanceof HeadError, mutate: mutateGeneric, yieldEvery: 4096 },
  { name: 'h2', dir: 'h2', run: fuzzH2, typed: () => false, mutate: mutateH2, yieldEvery: 16 },
  { name: 'hpack', dir: 'hpack', run: fuzzHpack, typed: (e) => e instanceof HpackError, mutate: mutateGeneric, yieldEvery: 4096 },
];

export interface FuzzReport { seed: number; inputs: Record<string, number>; failures: string[] }

export async function fuzz(opts: { seconds: number; seed: number; targets?: string[]; inputMs?: number; maxRssMb?: number; log?: (s: string) => void }): Promise<FuzzReport> {
  const log = opts.log ?? ((s: string) => process.stdout.write(s + '\n'));
  const targets = TARGETS.filter((t) => !opts.targets || opts.targets.includes(t.name));
  const inputMs = opts.inputMs ?? 250, maxRss = (opts.maxRssMb ?? 768) * 1024 * 1024;
  const report: FuzzReport = { seed: opts.seed, inputs: {}, failures: [] };
  const corpusDir = join(__dirname, 'corpus');
  log(`fuzz: seed ${opts.seed} (WEFT_FUZZ_SEED=${opts.seed} reproduces), ${opts.seconds}s over ${targets.map((t) => t.name).join(', ')}`);
  for (const t of targets) {
    state = (opts.seed ^ createHash('sha256').update(t.name).digest().readUInt32LE(0)) | 0;
    const seeds: Buffer[] = readdirSync(join(corpusDir, t.dir)).sort().map((f) => readFileSync(join(corpusDir, t.dir, f)));
    const pool: Buffer[] = [...seeds];
    const deadline = performance.now() + (opts.seconds * 1000) / targets.length;
    let n = 0, lastCheck = performance.now();
    const fail = (input: Buffer, why: string): void => {
      const dir = mkdtempSync(join(tmpdir(), 'weft-fuzz-'));
      const file = join(dir, `${t.name}-${n}.bin`);
      writeFileSync(file, input);
      const msg = `${t.name}: input #${n} (seed ${opts.seed}): ${why}; saved to ${file}; base64 ${input.toString('base64').slice(0, 400)}`;
      report.failures.push(msg);
      log(`FAIL ${msg}`);
    };
    // Seeds first, unmutated: they must pass as they are.
    const queue: Buffer[] = [...seeds];
    while (performance.now() < deadline && report.failures.length < 5) {
      const input = queue.length ? queue.shift()! : t.mutate(pick(pool), pool);
      n++;
      const t0 = performance.now();
      let ok = true;
      try { t.run(input); } catch (e) {
        ok = false;
        if (e instanceof Violation) fail(input, e.message);
        else if (!t.typed(e)) fail(input, `threw ${e instanceof Error ? e.stack?.split('\n').slice(0, 3).join(' | ') : String(e)}`);
      }
      const took = performance.now() - t0;
      if (took > inputMs) {
        const t1 = performance.now();
        try { t.run(input); } catch { /* judged above */ }
        if (performance.now() - t1 > inputMs) fail(input, `took ${took.toFixed(0)} ms (bound ${inputMs} ms)`);
      }
      if (ok && pool.length < 512 && rnd() < 0.02) pool.push(input);
      if (n % t.yieldEvery === 0) await new Promise((r) => setImmediate(r));
      if (n % 64 === 0 && performance.now() - lastCheck > 500) {
        lastCheck = performance.now();
        // Watch memory: what is still live after a full GC (node --expose-gc; without
        // it, RSS, which garbage inflates).
        const gc = (globalThis as { gc?: () => void }).gc;
        let used: number;
        if (gc) { gc(); const m = process.memoryUsage(); used = m.heapUsed + m.external; } else used = process.memoryUsage().rss;
        if (used > maxRss) { fail(input, `${gc ? 'live heap' : 'RSS'} ${Math.round(used / 1048576)} MB over the ${opts.maxRssMb ?? 768} MB bound`); break; }
      }
    }
    report.inputs[t.name] = n;
    log(`fuzz: ${t.name}: reached ${JSON.stringify(stats)}`);
    for (const k of Object.keys(stats)) delete stats[k];
    const m = process.memoryUsage();
    log(`fuzz: ${t.name}: ${n} inputs, ${pool.length - seeds.length} kept in the pool, heap ${Math.round(m.heapUsed / 1048576)} MB, RSS ${Math.round(m.rss / 1048576)} MB`);
  }
  return report;
}

if (require.main === module) {
  const seed = process.env.WEFT_FUZZ_SEED !== undefined ? Number(process.env.WEFT_FUZZ_SEED) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
  void fuzz({
    seconds: Number(process.env.WEFT_FUZZ_SECONDS ?? 60), seed,
    ...(process.env.WEFT_FUZZ_TARGETS ? { targets: process.env.WEFT_FUZZ_TARGETS.split(',') } : {}),
    inputMs: Number(process.env.WEFT_FUZZ_INPUT_MS ?? 250), maxRssMb: Number(process.env.WEFT_FUZZ_MAX_RSS_MB ?? 768),
  }).then((r) => {
    process.stdout.write(`fuzz: ${r.failures.length ? `${r.failures.length} FAILURE(S)` : 'no failures'}; inputs ${JSON.stringify(r.inputs)}\n`);
    process.exit(r.failures.length ? 1 : 0);
  });
}
