// Per-node bootstrap tokens for tests that run several agents against one control API:
// a bare token binds to the first node that presents it, so each node gets its own
// 'NODE TOKEN' line, as the docs tell operators to do.
import { createHash } from 'node:crypto';

/** A stable token for `node` (distinct per seed, so tests do not share secrets). */
export function nodeToken(node: string, seed = 'weft-test'): string {
  return `tok-${createHash('sha256').update(seed).update('\0').update(node).digest('hex').slice(0, 40)}`;
}

/** The control API's --token-file content for these nodes. */
export function tokenLines(nodes: readonly string[], seed?: string): string {
  return nodes.map((n) => `${n} ${nodeToken(n, seed)}\n`).join('');
}
