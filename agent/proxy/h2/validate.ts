// HTTP/2 message rules a server and an intermediary must hold (RFC 9113 §8): which
// header lists make a request or its trailers malformed. A malformed message is a stream
// error of type PROTOCOL_ERROR and is never handed on (§8.1.1). The connection applies
// these checks before a request reaches its handler; field syntax (name and value
// characters, §8.2.1) is checked by the HPACK decoder, which caches the verdict per
// dynamic table entry.
//
// Header lists are flat [name0, value0, name1, value1, ...] arrays of lower-case names.

/** checkRequest's verdict for a malformed request. */
export const MALFORMED = -2;
/** checkRequest's verdict for a well-formed request without content-length. */
export const NO_LENGTH = -1;


/** Largest content-length we parse (beyond 2^53 a number is no longer exact). */
const MAX_LENGTH_DIGITS = 15;

/** A content-length value (RFC 9110 §8.6: 1*DIGIT), or -1 when it is not one. */
export function parseLength(v: string): number {
  const n = v.length;
  if (n === 0 || n > MAX_LENGTH_DIGITS) return -1;
  let x = 0;
  for (let i = 0; i < n; i++) {
    const c = v.charCodeAt(i) - 0x30;
    if (c < 0 || c > 9) return -1;
    x = x * 10 + c;
  }
  return x;
}

/** "trailers", compared as a case-insensitive token. */
function isTrailers(v: string): boolean {
  return v === 'trailers' || (v.length === 8 && v.toLowerCase() === 'trailers');
}

/**
 * A regular (non-pseudo) field that makes any HTTP/2 message malformed: a
 * connection-specific field (connection, keep-alive, proxy-connection,
 * transfer-encoding, upgrade), or TE with any value other than "trailers" (§8.2.2).
 * Every request passes here field by field: the length decides before any string does.
 */
export function forbiddenField(name: string, value: string): boolean {
  switch (name.length) {
    case 2: return name === 'te' && !isTrailers(value);
    case 7: return name === 'upgrade';
    case 10: return name === 'connection' || name === 'keep-alive';
    case 16: return name === 'proxy-connection';
    case 17: return name === 'transfer-encoding';
    default: return false;
  }
}

/** host ":" port, as CONNECT's :authority must be (§8.5; RFC 9110 §9.3.6). */
function isHostPort(a: string): boolean {
  const colon = a.lastIndexOf(':');
  if (colon <= 0 || colon === a.length - 1 || a.length - colon - 1 > 5) return false;
  for (let i = colon + 1; i < a.length; i++) { const c = a.charCodeAt(i); if (c < 0x30 || c > 0x39) return false; }
  return a.indexOf('@') < 0 && a.indexOf('/') < 0;
}

/**
 * Checks a request's header list (§8.3, §8.5, §8.1.1): pseudo-headers first, each of
 * :method, :scheme, :path, :authority at most once and no other; :method, :scheme and a
 * non-empty :path present (for http and https an origin-form path, or "*" for OPTIONS);
 * CONNECT with :authority host:port and neither :scheme nor :path; no userinfo in an
 * http(s) :authority, and a Host naming the same authority; no connection-specific field;
 * TE only "trailers"; content-length one decimal value, and 0 when the HEADERS frame
 * ended the stream (`end`).
 *
 * Returns the declared content-length (>= 0), NO_LENGTH, or MALFORMED.
 */
export function checkRequest(h: readonly string[], end: boolean): number {
  let method: string | undefined, scheme: string | undefined, path: string | undefined, authority: string | undefined;
  let host: string | undefined;
  let regular = false;
  let length = NO_LENGTH;
  for (let i = 0; i < h.length; i += 2) {
    const n = h[i]!, v = h[i + 1]!;
    if (n.charCodeAt(0) === 0x3a) {
      // Pseudo-headers precede regular fields, appear once, and only the defined ones
      // (a response's :status, or :protocol without SETTINGS_ENABLE_CONNECT_PROTOCOL, is
      // unknown in a request).
      if (regular) return MALFORMED;
      switch (n) {
        case ':method': if (method !== undefined) return MALFORMED; method = v; break;
        case ':scheme': if (scheme !== undefined) return MALFORMED; scheme = v; break;
        case ':path': if (path !== undefined) return MALFORMED; path = v; break;
        case ':authority': if (authority !== undefined) return MALFORMED; authority = v; break;
        default: return MALFORMED;
      }
      continue;
    }
    regular = true;
    if (forbiddenField(n, v)) return MALFORMED;
    if (n.length === 14 && n === 'content-length') {
      const x = parseLength(v);
      if (x < 0 || (length !== NO_LENGTH && x !== length)) return MALFORMED;
      length = x;
    } else if (n.length === 4 && n === 'host') {
      if (host !== undefined) return MALFORMED;
      host = v;
    }
  }
  if (method === undefined || method === '') return MALFORMED;
  if (method === 'CONNECT') {
    if (scheme !== undefined || path !== undefined || authority === undefined || !isHostPort(authority)) return MALFORMED;
  } else {
    if (scheme === undefined || scheme === '' || path === undefined || path === '') return MALFORMED;
    if (scheme === 'http' || scheme === 'https') {
      if (path.charCodeAt(0) !== 0x2f && !(path === '*' && method === 'OPTIONS')) return MALFORMED;
      if (authority !== undefined && authority.indexOf('@') >= 0) return MALFORMED;
    }
  }
  // §8.3.1: a Host that names another entity than :authority.
  if (authority !== undefined && host !== undefined && host.toLowerCase() !== authority.toLowerCase()) return MALFORMED;
  // A body was announced but the stream ended with the headers (§8.1.1).
  if (end && length > 0) return MALFORMED;
  return length;
}

/** Trailers (§8.1): no pseudo-header, no connection-specific field. */
export function checkTrailers(h: readonly string[]): boolean {
  for (let i = 0; i < h.length; i += 2) {
    const n = h[i]!;
    if (n.charCodeAt(0) === 0x3a || forbiddenField(n, h[i + 1]!)) return false;
  }
  return true;
}

/** checkResponse's verdict for an informational (1xx) response. */
export const INFORMATIONAL = -3;

/**
 * Checks a response's header list (§8.3.2, §8.1): exactly one :status of three digits
 * and no other pseudo-header, pseudo-headers first, no connection-specific field; an
 * informational (1xx) response does not end the stream. `bodiless`: the response has no
 * content whatever its content-length says (a HEAD request, 204, 304; §8.1.1).
 *
 * Returns INFORMATIONAL, MALFORMED, or the content-length the DATA must match (NO_LENGTH
 * when there is none to check).
 */
export function checkResponse(h: readonly string[], end: boolean, head: boolean): number {
  let status = -1;
  let regular = false;
  let length = NO_LENGTH;
  for (let i = 0; i < h.length; i += 2) {
    const n = h[i]!, v = h[i + 1]!;
    if (n.charCodeAt(0) === 0x3a) {
      if (regular || n !== ':status' || status >= 0 || v.length !== 3) return MALFORMED;
      status = parseLength(v);
      if (status < 100) return MALFORMED;
      continue;
    }
    regular = true;
    if (forbiddenField(n, v)) return MALFORMED;
    if (n === 'content-length') {
      const x = parseLength(v);
      if (x < 0 || (length !== NO_LENGTH && x !== length)) return MALFORMED;
      length = x;
    }
  }
  if (status < 0) return MALFORMED;
  if (status < 200) return end ? MALFORMED : INFORMATIONAL;
  if (head || status === 204 || status === 304) return NO_LENGTH;
  if (end && length > 0) return MALFORMED;
  return length;
}
