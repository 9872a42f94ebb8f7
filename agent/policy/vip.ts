// VIP allocation for Services that do not name one. Each service key has its own probe
// sequence (sha256(key#i) mod range), so a service's VIP depends only on its own name
// and on the addresses already taken — not on the order or number of unrelated
// services. Addresses handed out in the previous snapshot are kept first, so an existing
// service never moves when a new one happens to hash onto its slot.
import { createHash } from 'node:crypto';
import { WeftError } from '../lib/errors';
import { formatIPv4, parseIPv4, type Cidr } from './net';

export function allocateVips(
  range: Cidr,
  wanted: readonly string[],
  taken: ReadonlySet<string>,
  previous: ReadonlyMap<string, string>,
): Map<string, string> {
  const used = new Set(taken);
  const out = new Map<string, string>();
  const usable = range.size > 2 ? range.size - 2 : range.size; // skip network and broadcast
  const first = range.size > 2 ? range.base + 1 : range.base;
  const inRange = (ip: number) => ip >= first && ip < first + usable;
  const sorted = [...wanted].sort();
  for (const key of sorted) {
    const prev = previous.get(key);
    const ip = prev === undefined ? null : parseIPv4(prev);
    if (prev !== undefined && ip !== null && inRange(ip) && !used.has(prev)) { out.set(key, prev); used.add(prev); }
  }
  for (const key of sorted) {
    if (out.has(key)) continue;
    if (used.size >= usable + taken.size) throw new WeftError('WEFT_ERR_CAPACITY', `VIP range ${formatIPv4(range.base)}/${range.prefix} is exhausted`);
    for (let i = 0; ; i++) {
      const h = createHash('sha256').update(`${key}#${i}`).digest().readUInt32BE(0);
      const vip = formatIPv4(first + (h % usable));
      if (!used.has(vip)) { out.set(key, vip); used.add(vip); break; }
      if (i > usable * 4) throw new WeftError('WEFT_ERR_CAPACITY', `VIP range ${formatIPv4(range.base)}/${range.prefix} is exhausted`);
    }
  }
  return out;
}
