// Maglev consistent hashing (Eisenbud et al., "Maglev: A Fast and Reliable Software
// Network Load Balancer", NSDI 2016), shared by the kernel path (the table is written
// into a service's slot map) and the L7 balancer (the same table over its endpoints), so
// a TrafficPolicy with `loadBalancer: {type: MAGLEV}` means the same thing at L4 and L7.
//
// What is hashed is the calling workload: the kernel's cgroup id of the process that
// connects (bpf_get_current_cgroup_id() in connect4/6, the origin's cgroup id in the
// agent). Every connection of one workload reaches the same backend, and when the backend
// set changes only the workloads whose entries moved change backend (about 1/N of them
// for one of N backends removed), unlike weighted random where every new connection
// draws again.
//
// Weights: each backend gets a number of table entries proportional to its weight
// (largest remainder, a non-zero weight keeps at least one entry, zero gets none). The
// fill takes turns as in the paper, but a backend that holds its share sits out.
import { apportion } from './apportion';

/** Entries per table: a prime (the permutation then visits every entry) that fits the
 *  datapath's per-service slot capacity (MAX_SLOTS_PER_SERVICE, 1024). */
export const MAGLEV_TABLE_SIZE = 1021;

/** 32-bit FNV-1a of a string with a seed: two seeds give the offset and skip. */
function fnv1a(s: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/**
 * The lookup table: entry -> index into `keys`. `keys` name the backends stably (e.g.
 * "10.0.1.1:8080"), so a backend keeps its preference list whatever its position.
 * Returns an empty table when no backend has a weight.
 */
export function maglevTable(keys: readonly string[], weights: readonly number[], size = MAGLEV_TABLE_SIZE): Uint16Array {
  const shares = apportion(weights, size);
  if (shares.every((s) => s === 0)) return new Uint16Array(0);
  const n = keys.length;
  const offset = keys.map((k) => fnv1a(k, 0) % size);
  const skip = keys.map((k) => (fnv1a(k, 0x5bd1e995) % (size - 1)) + 1);
  const next = new Uint32Array(n);
  const held = new Uint32Array(n);
  const EMPTY = 0xffff;
  const table = new Uint16Array(size).fill(EMPTY);
  // Turns go in key order, so the table depends on the backend set, not on the order a
  // snapshot happens to list it in.
  const turns = keys.map((_, i) => i).sort((a, b) => (keys[a]! < keys[b]! ? -1 : keys[a]! > keys[b]! ? 1 : 0));
  for (let filled = 0; filled < size;) {
    for (const i of turns) {
      if (filled === size) break;
      if (held[i]! >= shares[i]!) continue;
      let c = (offset[i]! + next[i]! * skip[i]!) % size;
      while (table[c] !== EMPTY) { next[i]!++; c = (offset[i]! + next[i]! * skip[i]!) % size; }
      table[c] = i;
      next[i]!++;
      held[i]!++;
      filled++;
    }
  }
  return table;
}

const M64 = (1n << 64n) - 1n;

/** The entry a workload's cgroup id selects: MurmurHash3's 64-bit finalizer, then the
 *  low 32 bits modulo the table size. bpf/include/lb.h computes the same. */
export function maglevEntry(cgroupId: bigint | number, size = MAGLEV_TABLE_SIZE): number {
  let x = BigInt(cgroupId) & M64;
  x ^= x >> 33n;
  x = (x * 0xff51afd7ed558ccdn) & M64;
  x ^= x >> 33n;
  x = (x * 0xc4ceb9fe1a85ec53n) & M64;
  x ^= x >> 33n;
  return Number(x & 0xffffffffn) % size;
}
