// IP addresses as the datapath stores them: 16 bytes in network order, IPv4 in the
// first 4 (not v4-mapped), plus a family tag. Node has no inet_pton, so the parsing and
// formatting live here, in one place, for the codecs and the validators.
import { isIP } from 'node:net';

export type Family = 4 | 6;

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

/** Formats 16 stored bytes back to text (RFC 5952 style for IPv6). */
export function formatIp(bytes: Buffer, family: number): string {
  if (family === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  // v4-mapped addresses print the way Node reports them (socket.remoteAddress).
  if (bytes.subarray(0, 10).every((x) => x === 0) && bytes[10] === 0xff && bytes[11] === 0xff) {
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
