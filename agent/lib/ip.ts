// IP addresses, in one place: textual IPv4/IPv6 parsing and formatting (Node has no
// inet_pton), IPv4 as a 32-bit unsigned number with CIDRs (VIP allocation, range checks,
// ipBlocks), and the v4-mapped helpers (::ffff:a.b.c.d, how a dual-stack socket reports
// an IPv4 peer).
import { isIP } from 'node:net';

// ---- 16-byte form, as the datapath stores addresses --------------------------------

export type Family = 4 | 6;

/** An address in the datapath's form: 16 bytes in network order, IPv4 in the first 4
 *  (not v4-mapped), plus a family tag. */
export interface ParsedIp {
  family: Family;
  bytes: Buffer; // always 16 bytes
}

/** Parses a textual IPv4/IPv6 address; returns null when it is not one. */
export function parseIp(ip: string): ParsedIp | null {
  const family = isIP(ip);
  if (family === 4) {
    const bytes = Buffer.alloc(16);
    ip.split('.').forEach((part, i) => { bytes[i] = Number(part); });
    return { family: 4, bytes };
  }
  if (family !== 6) return null;
  return { family: 6, bytes: parseIpv6(ip) };
}

function parseIpv6(ip: string): Buffer {
  const bytes = Buffer.alloc(16);
  const zone = ip.indexOf('%');
  const addr = zone >= 0 ? ip.slice(0, zone) : ip;
  const [head, tail] = addr.includes('::') ? addr.split('::') : [addr, undefined];
  const groups = (s: string | undefined): number[] => {
    if (!s) return [];
    const out: number[] = [];
    for (const part of s.split(':')) {
      if (part.includes('.')) {
        const v4 = part.split('.').map(Number);
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else {
        out.push(parseInt(part, 16));
      }
    }
    return out;
  };
  const h = groups(head);
  const t = groups(tail);
  const all = tail === undefined ? h : [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
  all.forEach((g, i) => bytes.writeUInt16BE(g, i * 2));
  return bytes;
}

/** True when 16 IPv6 bytes are a v4-mapped address (::ffff:0:0/96). */
export function isV4MappedBytes(bytes: Buffer): boolean {
  return bytes.subarray(0, 10).every((x) => x === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
}

/** Formats 16 stored bytes back to text (RFC 5952 style for IPv6). */
export function formatIp(bytes: Buffer, family: number): string {
  if (family === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  // v4-mapped addresses print the way Node reports them (socket.remoteAddress).
  if (isV4MappedBytes(bytes)) {
    return `::ffff:${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`;
  }
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push(bytes.readUInt16BE(i * 2));
  // Longest run (≥ 2) of zero groups becomes '::'.
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = (gs: number[]) => gs.map((g) => g.toString(16)).join(':');
  if (best < 0) return hex(groups);
  return `${hex(groups.slice(0, best))}::${hex(groups.slice(best + bestLen))}`;
}

// ---- v4-mapped text -----------------------------------------------------------------

const V4_MAPPED = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i;

/** The IPv4 address a '::ffff:a.b.c.d' text maps, or undefined when it is not one. */
export function v4OfMapped(ip: string): string | undefined {
  return V4_MAPPED.exec(ip)?.[1];
}

/** '::ffff:a.b.c.d' → 'a.b.c.d'; any other text unchanged. */
export function unmapV4(ip: string): string {
  return v4OfMapped(ip) ?? ip;
}

/** The other spelling of the same IPv4 peer: 'a.b.c.d' ↔ '::ffff:a.b.c.d' (undefined
 *  for an address that has none). */
export function v4Alternate(ip: string): string | undefined {
  const mapped = v4OfMapped(ip);
  if (mapped !== undefined) return mapped;
  return isIP(ip) === 4 ? `::ffff:${ip}` : undefined;
}

// ---- IPv4 as a 32-bit number, and CIDRs --------------------------------------------

const DOTTED_QUAD = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** Parses dotted-quad IPv4 into an unsigned 32-bit number; null when it is not one.
 *  Octets with a leading zero are refused unless `leadingZeros` (the Kubernetes API's
 *  legacy "sloppy" form reads them as decimal). */
export function parseIPv4(s: string, opts: { leadingZeros?: boolean } = {}): number | null {
  const m = DOTTED_QUAD.exec(s);
  if (!m) return null;
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const o = Number(m[i]);
    if (o > 255 || !opts.leadingZeros && (m[i] as string).length > 1 && (m[i] as string)[0] === '0') return null;
    n = n * 256 + o;
  }
  return n;
}

export function formatIPv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export interface Cidr { base: number; prefix: number; size: number }

/** Parses "a.b.c.d/n"; returns an error string for people when it is not a valid,
 *  aligned IPv4 CIDR (a bare address counts as /32). */
export function parseCidr(s: string): Cidr | string {
  const [addr, bits, extra] = s.split('/');
  if (extra !== undefined) return `"${s}" is not a valid CIDR`;
  const base = parseIPv4(addr ?? '');
  if (base === null) return `"${s}" is not a valid CIDR: "${addr}" is not an IPv4 address`;
  if (bits !== undefined && !/^\d{1,2}$/.test(bits)) return `"${s}" is not a valid CIDR: bad prefix length`;
  const prefix = bits === undefined ? 32 : Number(bits);
  if (prefix > 32) return `"${s}" is not a valid CIDR: prefix length ${prefix} > 32`;
  const size = 2 ** (32 - prefix);
  if (base % size !== 0) return `"${s}" is not a valid CIDR: host bits are set (did you mean ${formatIPv4(base - (base % size))}/${prefix}?)`;
  return { base, prefix, size };
}

/** Addresses usable for hosts (network and broadcast excluded when the range has them). */
export function hostRange(c: Cidr): { first: number; count: number } {
  return c.size > 2 ? { first: c.base + 1, count: c.size - 2 } : { first: c.base, count: c.size };
}

export function cidrContains(c: Cidr, ip: number): boolean {
  return ip >= c.base && ip < c.base + c.size;
}
