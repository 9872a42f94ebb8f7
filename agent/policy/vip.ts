// VIP allocation for Services that do not name one. Each service key has its own probe
// sequence (sha256(key#i) mod range), so a service's VIP depends only on its own name
// and on the addresses already taken — not on the order or number of unrelated
// services. Addresses handed out in the previous snapshot are kept first, so an existing
// service never moves when a new one happens to hash onto its slot.
import { createHash } from 'node:crypto';
import { WeftError } from '../lib/errors';
import { formatIPv4, hostRange, parseIPv4, type Cidr } from '../lib/ip';

const PROBES = 16;

export function allocateVips(
  range: Cidr,
  wanted: readonly string[],
  taken: ReadonlySet<string>,
  previous: ReadonlyMap<string, string>,
): Map<string, string> {
  const used = new Set(taken);
  const out = new Map<string, string>();
  const { first, count: usable } = hostRange(range);
  const inRange = (ip: number) => ip >= first && ip < first + usable;
  const sorted = [...wanted].sort();
  for (const key of sorted) {
    const prev = previous.get(key);
    if (prev !== undefined && inRange(parseIPv4(prev) ?? -1) && !used.has(prev)) { out.set(key, prev); used.add(prev); }
  }
  let free = usable - [...used].filter((v) => inRange(parseIPv4(v) ?? -1)).length;
  for (const key of sorted) {
    if (out.has(key)) continue;
    if (free <= 0) throw new WeftError('WEFT_ERR_CAPACITY', `VIP range ${formatIPv4(range.base)}/${range.prefix} is exhausted`);
    const slot = (i: number) => createHash('sha256').update(`${key}#${i}`).digest().readUInt32BE(0) % usable;
    // A few independent probes, then a linear walk from the first one: the walk always
    // ends (there is a free address) and is still a function of the key alone.
    let vip: string | undefined;
    for (let i = 0; i < PROBES && vip === undefined; i++) {
      const candidate = formatIPv4(first + slot(i));
      if (!used.has(candidate)) vip = candidate;
    }
    for (let off = 0, start = slot(0); vip === undefined; off++) {
      const candidate = formatIPv4(first + ((start + off) % usable));
      if (!used.has(candidate)) vip = candidate;
    }
    out.set(key, vip);
    used.add(vip);
    free--;
  }
  return out;
}
