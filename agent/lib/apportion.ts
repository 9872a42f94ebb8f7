// Largest-remainder apportionment: `size` seats shared in proportion to `weights`, every
// non-zero weight keeping at least one seat and a zero weight getting none. The kernel's
// random-choice slots (agent/datapath/services.ts) and the Maglev table (maglev.ts) both
// turn endpoint weights into a fixed number of entries this way.
export function apportion(weights: readonly number[], size: number): number[] {
  const live = weights.filter((w) => w > 0).length;
  if (live === 0) return weights.map(() => 0);
  if (live > size) throw new RangeError(`${live} weighted entries do not fit in ${size}`);
  const total = weights.reduce((a, b) => a + Math.max(0, b), 0);
  const exact = weights.map((w) => (w > 0 ? (w * size) / total : 0));
  const shares = exact.map((x, i) => (weights[i]! > 0 ? Math.max(1, Math.floor(x)) : 0));
  let left = size - shares.reduce((a, b) => a + b, 0);
  // Hand out what flooring left over by largest remainder; take back (from the largest
  // holders) what the at-least-one rule overshot.
  const byRemainder = exact.map((_, i) => i).filter((i) => weights[i]! > 0).sort((a, b) => (exact[b]! % 1) - (exact[a]! % 1));
  for (let k = 0; left > 0; k++) { shares[byRemainder[k % byRemainder.length]!]!++; left--; }
  while (left < 0) { shares[shares.indexOf(Math.max(...shares))]!--; left++; }
  return shares;
}
