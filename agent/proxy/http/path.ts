// Request path normalization, shared by the HTTP/1.1 and HTTP/2 proxies.
//
// Routing and AuthorizationPolicy compare paths as strings; backends do not: most of
// them decode `%61` to `a`, resolve `/./` and `/x/../`, and many merge `//`. A DENY on
// `/admin*` that sees the raw `/%61dmin` while the backend serves `/admin` protects
// nothing. So the proxy normalizes before routing and authorization, and forwards the
// normalized path: what the backend serves is what was authorized.
//
//  1. percent-encoding (RFC 3986 §6.2.2.2): escapes of unreserved characters
//     (ALPHA DIGIT - . _ ~) are decoded, every other escape is upper-cased; a `%` that
//     is not followed by two hex digits is refused;
//  2. `%2F` and `%5C` (an encoded '/' or '\'): refused (REJECT, the default), kept as
//     they are (KEEP), or decoded to '/' (UNESCAPE — both of them: a backend that treats
//     '\' as a separator must see the same segments as the authorizer);
//  3. runs of '/' merged into one (mergeSlashes, on by default);
//  4. dot segments removed (RFC 3986 §5.2.4), never above the root.
//
// A raw '\' (not allowed in a URI path at all) is refused, as are bytes outside
// visible ASCII and a path that does not start with '/'. The result is a fixed point:
// normalizing it again returns it unchanged (the tests and the fuzzer check this).
//
// Cost: one scan of the path when it holds none of '%', '\', "/.", "//" (the common
// case), which returns the input string itself.

export type EscapedSlashes = 'REJECT' | 'KEEP' | 'UNESCAPE';

export interface PathNormalization {
  /** Merge runs of '/' (default true). */
  mergeSlashes: boolean;
  /** What to do with `%2F` / `%5C` (default REJECT: 400). */
  escapedSlashes: EscapedSlashes;
}

export const DEFAULT_PATH_NORMALIZATION: Readonly<PathNormalization> = Object.freeze({ mergeSlashes: true, escapedSlashes: 'REJECT' });

const SLASH = 0x2f, DOT = 0x2e, PCT = 0x25, BSL = 0x5c;

// unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~"
const UNRESERVED = new Uint8Array(256);
for (let c = 0x30; c <= 0x39; c++) UNRESERVED[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) UNRESERVED[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) UNRESERVED[c] = 1;
for (const c of '-._~') UNRESERVED[c.charCodeAt(0)] = 1;

function hexVal(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}
const HEX = '0123456789ABCDEF';

/**
 * The normalized form of `path` (no query), `path` itself when it is already normal,
 * or null when it must be refused (400). `*` (OPTIONS *) is returned as is.
 */
export function normalizePath(path: string, o: PathNormalization): string | null {
  const n = path.length;
  if (n === 0 || path.charCodeAt(0) !== SLASH) return path === '*' ? path : null;
  let prev = 0, slow = false;
  for (let i = 0; i < n; i++) {
    const c = path.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f || c === 0x23 /* # */ || c === BSL) return null;
    if (c === PCT || (prev === SLASH && (c === DOT || c === SLASH))) slow = true;
    prev = c;
  }
  return slow ? normalizeSlow(path, o) : path;
}

function normalizeSlow(path: string, o: PathNormalization): string | null {
  // 1-2: percent-encoding.
  let s = '';
  const n = path.length;
  let from = 0;
  for (let i = path.indexOf('%'); i >= 0; i = path.indexOf('%', i)) {
    if (i + 2 >= n) return null;
    const h = hexVal(path.charCodeAt(i + 1)), l = hexVal(path.charCodeAt(i + 2));
    if (h < 0 || l < 0) return null;
    const b = h * 16 + l;
    s += path.slice(from, i);
    if (UNRESERVED[b] === 1) s += String.fromCharCode(b);
    else if (b === SLASH || b === BSL) {
      if (o.escapedSlashes === 'REJECT') return null;
      s += o.escapedSlashes === 'UNESCAPE' ? '/' : (b === SLASH ? '%2F' : '%5C');
    } else s += '%' + HEX[h] + HEX[l];
    i += 3;
    from = i;
  }
  s = from === 0 ? path : s + path.slice(from);
  // 3: merge slashes.
  if (o.mergeSlashes && s.includes('//')) s = s.replace(/\/{2,}/g, '/');
  // 4: remove dot segments (the path is absolute: it starts with '/').
  return removeDotSegments(s);
}

/** RFC 3986 §5.2.4 over an absolute path, segment by segment. */
export function removeDotSegments(p: string): string {
  if (!p.includes('/.')) return p;
  const out: string[] = [];
  // Segments after the leading '/'; a trailing "." or ".." leaves a trailing '/'.
  const segs = p.slice(1).split('/');
  for (let i = 0; i < segs.length; i++) {
    const seg = segs[i]!;
    const last = i === segs.length - 1;
    if (seg === '.') { if (last) out.push(''); continue; }
    if (seg === '..') { out.pop(); if (last) out.push(''); continue; }
    out.push(seg);
  }
  return '/' + out.join('/');
}
