// IPv4 addresses and CIDRs as 32-bit unsigned numbers: what VIP allocation, range checks
// and ipBlocks need, without pulling in a library.

export function parseIPv4(s: string): number | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return null;
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const o = Number(m[i]);
    if (o > 255 || (m[i] as string).length > 1 && (m[i] as string)[0] === '0') return null;
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
