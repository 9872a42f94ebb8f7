// A strict HTTP/1.1 message-head parser over raw Buffers, for the proxy hot path.
//
// Why hand-written: node:http builds a header object, a request object and several
// closures per request, which measured 7x HAProxy's CPU per request here. The proxy only
// needs framing (Content-Length / Transfer-Encoding / Connection), Host, and whatever a
// route matches on, so this parser records header offsets into a reusable Int32Array
// and decodes strings lazily. The raw head bytes are forwarded as they came.
//
// Why strict: a proxy that frames a message differently from the server behind it is a
// request-smuggling vector. Anything ambiguous (CL+TE, duplicate CL, obs-fold, bare LF,
// whitespace before a colon, unknown transfer codings) is rejected, never "repaired".

/** Parse failure: the status the client gets (the connection is then closed). */
export class HeadError {
  constructor(readonly status: number, readonly reason: string) {}
}

export const MAX_HEADERS = 100;

// tchar per RFC 9110 5.6.2, as a lookup table.
export const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) TCHAR[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TCHAR[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TCHAR[c] = 1;
// field-vchar / SP / HTAB / obs-text: anything but CTLs (HTAB allowed) and DEL.
export const VALUE_OK = new Uint8Array(256);
for (let c = 0x20; c <= 0xff; c++) VALUE_OK[c] = c === 0x7f ? 0 : 1;
VALUE_OK[0x09] = 1;
// request-target bytes: visible ASCII only (no SP, no CTL, no obs-text).
const TARGET_OK = new Uint8Array(256);
for (let c = 0x21; c <= 0x7e; c++) TARGET_OK[c] = 1;
TARGET_OK[0x23] = 0; // '#': a fragment is never sent (RFC 9112 §3.2); refused, not stripped

const CR = 13, LF = 10, SP = 32, HT = 9, COLON = 58;

export const enum Framing { None = 0, Length = 1, Chunked = 2, Close = 3 }

/** Lower-cases an ASCII byte. */
function lc(c: number): number { return c >= 0x41 && c <= 0x5a ? c | 0x20 : c; }

/** Compares buf[s..e) case-insensitively with a lower-case ASCII literal. */
export function eqLower(buf: Buffer, s: number, e: number, lit: string): boolean {
  if (e - s !== lit.length) return false;
  for (let i = 0; i < lit.length; i++) if (lc(buf[s + i]!) !== lit.charCodeAt(i)) return false;
  return true;
}

/** Connection header tokens we act on. */
const CONN_CLOSE = 1, CONN_KEEPALIVE = 2, CONN_UPGRADE = 4;

/** Parses a comma-separated Connection value into the flags above. */
function connectionFlags(buf: Buffer, s: number, e: number): number {
  let flags = 0;
  let i = s;
  while (i < e) {
    while (i < e && (buf[i] === SP || buf[i] === HT || buf[i] === 0x2c)) i++;
    const ts = i;
    while (i < e && buf[i] !== 0x2c && buf[i] !== SP && buf[i] !== HT) i++;
    if (eqLower(buf, ts, i, 'close')) flags |= CONN_CLOSE;
    else if (eqLower(buf, ts, i, 'keep-alive')) flags |= CONN_KEEPALIVE;
    else if (eqLower(buf, ts, i, 'upgrade')) flags |= CONN_UPGRADE;
  }
  return flags;
}

/** Strict decimal Content-Length; -1 when invalid. */
function parseLength(buf: Buffer, s: number, e: number): number {
  if (s === e || e - s > 15) return -1;
  let n = 0;
  for (let i = s; i < e; i++) {
    const d = buf[i]! - 0x30;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}

/**
 * Parsed head fields shared by requests and responses. One instance is reused per
 * connection; `reset` clears it between messages so parsing allocates nothing but the
 * few strings a caller asks for.
 */
export class MessageHead {
  buf: Buffer = Buffer.alloc(0);
  /** Offset just past the CRLFCRLF that ends the head. */
  headEnd = 0;
  /** HTTP minor version (0 or 1). */
  minor = 1;
  framing: Framing = Framing.None;
  contentLength = 0;
  /** Connection: close (or HTTP/1.0 without keep-alive). */
  close = false;
  /** Connection: upgrade together with an Upgrade header. */
  upgrade = false;
  /** An Upgrade header was present (with or without Connection: upgrade). */
  upgradeHeader = false;
  /** An x-forwarded-client-cert header was present (requests: stripped by the proxy). */
  xfcc = false;
  /** [nameStart, nameEnd, valueStart, valueEnd] per header. */
  readonly offsets = new Int32Array(MAX_HEADERS * 4);
  count = 0;
  /** Offset of the first header line (just after the start line's CRLF). */
  headersStart = 0;

  /** Value of the first header named `lname` (lower-case), or undefined. */
  header(lname: string): string | undefined {
    const o = this.offsets;
    for (let i = 0; i < this.count * 4; i += 4) {
      if (eqLower(this.buf, o[i]!, o[i + 1]!, lname)) return this.buf.toString('latin1', o[i + 2]!, o[i + 3]!);
    }
    return undefined;
  }

  /** Index of the first header named `lname`, or -1. */
  indexOf(lname: string): number {
    const o = this.offsets;
    for (let i = 0; i < this.count; i++) if (eqLower(this.buf, o[i * 4]!, o[i * 4 + 1]!, lname)) return i;
    return -1;
  }

  nameAt(i: number): string { return this.buf.toString('latin1', this.offsets[i * 4]!, this.offsets[i * 4 + 1]!).toLowerCase(); }
  valueAt(i: number): string { return this.buf.toString('latin1', this.offsets[i * 4 + 2]!, this.offsets[i * 4 + 3]!); }
}

export class RequestHead extends MessageHead {
  method = '';
  /** The request-target (origin-form path with query, or absolute-form). */
  target = '';
  /** Path and raw query of the target, for route matching (RequestView). */
  path = '';
  query = '';
  host = '';
  expectContinue = false;
  /** End of the request line (offset of its CR). */
  lineEnd = 0;
  /** The authority of an absolute-form target ('' for origin-form). */
  authority = '';
  /** '?' and the raw query, or '' when the target has no '?'. */
  search = '';
  /** The request line to forward instead of the received one (the normalized path,
   *  origin-form), or null when the received line is forwarded as is. */
  newLine: string | null = null;
}

export class ResponseHead extends MessageHead {
  status = 0;
}

/** Finds the end of a head: index just past CRLFCRLF, or -1 when not yet complete. */
export function findHeadEnd(buf: Buffer, from: number): number {
  const i = buf.indexOf('\r\n\r\n', from > 3 ? from - 3 : 0, 'latin1');
  return i < 0 ? -1 : i + 4;
}

/**
 * Parses header lines from `pos` to `end` (the final CRLF of the head excluded) into
 * `h`. Framing headers are validated here for both directions; `isRequest` adds the
 * request-only rules (Host, Expect). Throws HeadError.
 */
function parseHeaders(h: MessageHead, buf: Buffer, pos: number, end: number, isRequest: boolean, req: RequestHead | null): void {
  let sawCL = false, sawTE = false, sawHost = false, conn = 0, sawUpgradeHdr = false;
  let n = 0;
  const o = h.offsets;
  while (pos < end) {
    const c0 = buf[pos]!;
    if (c0 === SP || c0 === HT) throw new HeadError(400, 'obs-fold');
    // name
    const ns = pos;
    while (TCHAR[buf[pos]!] === 1) pos++;
    if (pos === ns) throw new HeadError(400, 'invalid header name');
    if (buf[pos] !== COLON) throw new HeadError(400, 'invalid header name');
    const ne = pos++;
    // value: OWS value OWS CRLF
    while (buf[pos] === SP || buf[pos] === HT) pos++;
    const vs = pos;
    while (VALUE_OK[buf[pos]!] === 1) pos++;
    if (buf[pos] !== CR || buf[pos + 1] !== LF) throw new HeadError(400, 'invalid header value or line ending');
    let ve = pos;
    while (ve > vs && (buf[ve - 1] === SP || buf[ve - 1] === HT)) ve--;
    pos += 2;
    if (n === MAX_HEADERS) throw new HeadError(431, 'too many headers');
    o[n * 4] = ns; o[n * 4 + 1] = ne; o[n * 4 + 2] = vs; o[n * 4 + 3] = ve;
    n++;
    // Only a handful of names matter; dispatch on length to keep the common case cheap.
    const len = ne - ns;
    if (len === 14 && eqLower(buf, ns, ne, 'content-length')) {
      if (sawCL) throw new HeadError(400, 'duplicate Content-Length');
      sawCL = true;
      const v = parseLength(buf, vs, ve);
      if (v < 0) throw new HeadError(400, 'invalid Content-Length');
      h.contentLength = v;
    } else if (len === 17 && eqLower(buf, ns, ne, 'transfer-encoding')) {
      if (sawTE) throw new HeadError(400, 'duplicate Transfer-Encoding');
      sawTE = true;
      if (!eqLower(buf, vs, ve, 'chunked')) throw new HeadError(isRequest ? 501 : 502, 'unsupported Transfer-Encoding');
    } else if (len === 10 && eqLower(buf, ns, ne, 'connection')) {
      conn |= connectionFlags(buf, vs, ve);
    } else if (len === 7 && eqLower(buf, ns, ne, 'upgrade')) {
      sawUpgradeHdr = true;
    } else if (len === 23 && eqLower(buf, ns, ne, 'x-forwarded-client-cert')) {
      h.xfcc = true;
    } else if (req !== null && len === 4 && eqLower(buf, ns, ne, 'host')) {
      if (sawHost) throw new HeadError(400, 'duplicate Host');
      sawHost = true;
      for (let i = vs; i < ve; i++) { const c = buf[i]!; if (c <= SP || c >= 0x7f || c === 0x2f || c === 0x40) throw new HeadError(400, 'invalid Host'); }
      req.host = buf.toString('latin1', vs, ve);
    } else if (req !== null && len === 6 && eqLower(buf, ns, ne, 'expect')) {
      if (eqLower(buf, vs, ve, '100-continue')) req.expectContinue = true;
      else throw new HeadError(417, 'unsupported Expect');
    }
  }
  h.count = n;
  if (sawCL && sawTE) throw new HeadError(isRequest ? 400 : 502, 'both Content-Length and Transfer-Encoding');
  if (sawTE && h.minor === 0) throw new HeadError(400, 'Transfer-Encoding in HTTP/1.0');
  if (req !== null && !sawHost && h.minor === 1) throw new HeadError(400, 'missing Host');
  h.framing = sawTE ? Framing.Chunked : sawCL ? Framing.Length : isRequest ? Framing.None : Framing.Close;
  if (h.framing === Framing.Length && h.contentLength === 0) h.framing = Framing.None;
  h.close = (conn & CONN_CLOSE) !== 0 || (h.minor === 0 && (conn & CONN_KEEPALIVE) === 0);
  h.upgrade = (conn & CONN_UPGRADE) !== 0 && sawUpgradeHdr;
  h.upgradeHeader = sawUpgradeHdr;
}

const MAX_TARGET = 8192;

/** The common methods as constant strings: no string is built for them per request. */
const METHODS = ['GET', 'POST', 'PUT', 'HEAD', 'DELETE', 'PATCH', 'OPTIONS'];

/** buf[s..e) as one of METHODS (exact, case-sensitive: methods are), or null. */
function knownMethod(buf: Buffer, s: number, e: number): string | null {
  const n = e - s;
  for (let m = 0; m < METHODS.length; m++) {
    const lit = METHODS[m]!;
    if (lit.length !== n) continue;
    let i = 0;
    while (i < n && buf[s + i] === lit.charCodeAt(i)) i++;
    if (i === n) return lit;
  }
  return null;
}

/** "HTTP/1." at the start of buf, compared byte by byte. */
function startsWithHttp1(buf: Buffer): boolean {
  return buf[0] === 0x48 && buf[1] === 0x54 && buf[2] === 0x54 && buf[3] === 0x50 && buf[4] === 0x2f && buf[5] === 0x31 && buf[6] === 0x2e;
}

/**
 * Parses a request head in buf[0..headEnd). `headEnd` comes from findHeadEnd. Throws
 * HeadError with the status to answer.
 */
export function parseRequestHead(h: RequestHead, buf: Buffer, headEnd: number): void {
  h.buf = buf; h.headEnd = headEnd; h.count = 0; h.contentLength = 0; h.xfcc = false;
  h.host = ''; h.expectContinue = false; h.newLine = null;
  let pos = 0;
  const ms = pos;
  while (TCHAR[buf[pos]!] === 1) pos++;
  if (pos === ms || buf[pos] !== SP) throw new HeadError(400, 'invalid method');
  h.method = knownMethod(buf, ms, pos) ?? buf.toString('latin1', ms, pos);
  pos++;
  const ts = pos;
  while (TARGET_OK[buf[pos]!] === 1) pos++;
  if (pos - ts > MAX_TARGET) throw new HeadError(414, 'request-target too long');
  if (buf[pos] === 0x23) throw new HeadError(400, 'fragment in request-target');
  if (pos === ts || buf[pos] !== SP) throw new HeadError(400, 'invalid request-target');
  if (h.method === 'CONNECT') throw new HeadError(405, 'CONNECT not supported');
  const t0 = buf[ts];
  if (t0 !== 0x2f && !(t0 === 0x2a && pos - ts === 1 && h.method === 'OPTIONS') && !eqLower(buf, ts, ts + 7, 'http://')) {
    throw new HeadError(400, 'request-target form not supported');
  }
  h.target = buf.toString('latin1', ts, pos);
  h.authority = '';
  let origin = h.target;
  if (t0 !== 0x2f && t0 !== 0x2a) {
    // absolute-form: route on its path component; its authority must be the Host.
    let ae = 7;
    while (ae < origin.length && origin.charCodeAt(ae) !== 0x2f && origin.charCodeAt(ae) !== 0x3f) ae++;
    h.authority = origin.slice(7, ae);
    if (h.authority === '' || h.authority.includes('@')) throw new HeadError(400, 'invalid authority in request-target');
    origin = ae === origin.length || origin.charCodeAt(ae) === 0x3f ? '/' + origin.slice(ae) : origin.slice(ae);
  }
  const q = origin.indexOf('?');
  if (q < 0) { h.path = origin; h.query = ''; h.search = ''; } else { h.path = origin.slice(0, q); h.query = origin.slice(q + 1); h.search = origin.slice(q); }
  pos++;
  // "HTTP/1.1" or "HTTP/1.0" then CRLF
  if (buf[pos] !== 0x48 || buf[pos + 1] !== 0x54 || buf[pos + 2] !== 0x54 || buf[pos + 3] !== 0x50 || buf[pos + 4] !== 0x2f) {
    throw new HeadError(400, 'invalid HTTP version');
  }
  if (buf[pos + 5] !== 0x31 || buf[pos + 6] !== 0x2e || (buf[pos + 7] !== 0x31 && buf[pos + 7] !== 0x30)) {
    throw new HeadError(buf[pos + 5]! >= 0x30 && buf[pos + 5]! <= 0x39 ? 505 : 400, 'unsupported HTTP version');
  }
  h.minor = buf[pos + 7]! - 0x30;
  pos += 8;
  if (buf[pos] !== CR || buf[pos + 1] !== LF) throw new HeadError(400, 'invalid request line ending');
  h.lineEnd = pos;
  pos += 2;
  h.headersStart = pos;
  parseHeaders(h, buf, pos, headEnd - 2, true, h);
  if (h.authority !== '') {
    // RFC 9112 §3.2.2: a proxy uses the target's authority, not Host. Two different
    // ones are two different answers to "which site": refused rather than picked.
    if (h.host === '') h.host = h.authority;
    else if (h.host.toLowerCase() !== h.authority.toLowerCase()) throw new HeadError(400, 'absolute-form authority differs from Host');
  }
}

/** Parses a response head; throws HeadError(502) when the upstream response is unframeable. */
export function parseResponseHead(h: ResponseHead, buf: Buffer, headEnd: number): void {
  h.buf = buf; h.headEnd = headEnd; h.count = 0; h.contentLength = 0; h.xfcc = false;
  if (headEnd < 14 || !startsWithHttp1(buf)) throw new HeadError(502, 'invalid status line');
  const minor = buf[7]! - 0x30;
  if ((minor !== 0 && minor !== 1) || buf[8] !== SP) throw new HeadError(502, 'invalid status line');
  h.minor = minor;
  const d0 = buf[9]! - 0x30, d1 = buf[10]! - 0x30, d2 = buf[11]! - 0x30;
  if (d0 < 1 || d0 > 5 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9) throw new HeadError(502, 'invalid status code');
  h.status = d0 * 100 + d1 * 10 + d2;
  let pos = 12;
  if (buf[pos] === SP) { pos++; while (VALUE_OK[buf[pos]!] === 1) pos++; }
  if (buf[pos] !== CR || buf[pos + 1] !== LF) throw new HeadError(502, 'invalid status line ending');
  pos += 2;
  h.headersStart = pos;
  parseHeaders(h, buf, pos, headEnd - 2, false, null);
}
