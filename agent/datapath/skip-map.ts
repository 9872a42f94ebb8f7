// weft_skip_v1 and its count weft_skipn_v1: the cgroups whose sockets weft leaves alone
// (the agent's own pod, hostNetwork pods, pods opted out), written as a minimal diff.
import { WeftError } from '../lib/errors';
import type { Logger } from '../telemetry/logger';
import { bpfError } from './bpf-error';
import { SKIP_F_SKIP, skipCodec, skipKeyCodec, skipStateCodec } from './codec';
import type { DatapathMaps } from './maps';

type SkipMaps = Pick<DatapathMaps, 'skip' | 'skipState'>;

const U64_MAX = (1n << 64n) - 1n;

/** Distinct cgroup ids (u64, never 0), or WEFT_ERR_INVALID_ARG naming the first bad one. */
export function checkCgroupIds(ids: bigint[]): bigint[] {
  if (!Array.isArray(ids)) throw new WeftError('WEFT_ERR_INVALID_ARG', 'skipped cgroups: expected an array of cgroup ids');
  for (const id of ids) {
    if (typeof id !== 'bigint' || id <= 0n || id > U64_MAX) {
      throw new WeftError('WEFT_ERR_INVALID_ARG', `skipped cgroup ${typeof id === 'bigint' ? id.toString() : JSON.stringify(id)} is not a cgroup id (a u64 above 0)`);
    }
  }
  return [...new Set(ids)];
}

/**
 * Makes weft_skip_v1 hold exactly `wanted` (with `keep`: what it holds plus `wanted`).
 * weft_skipn_v1 (the count the programs check first) never reads 0 while an entry is
 * present: it is raised to cover the additions before they are written and lowered to
 * the exact count after the removals.
 */
export function writeSkipped(maps: SkipMaps, wanted: bigint[], keep = false): { added: bigint[]; removed: bigint[] } {
  const current = new Set(maps.skip.keys().map((k) => skipKeyCodec.decode(k).cgroupId));
  const want = new Set(keep ? [...current, ...wanted] : wanted);
  const added = wanted.filter((id) => !current.has(id));
  const removed = [...current].filter((id) => !want.has(id));
  const state = (entries: number) => maps.skipState.update(Buffer.alloc(4), skipStateCodec.encode({ entries }));
  const value = skipCodec.encode({ flags: SKIP_F_SKIP });
  if (added.length) state(current.size + added.length);
  for (const id of added) maps.skip.update(skipKeyCodec.encode({ cgroupId: id }), value);
  for (const id of removed) maps.skip.delete(skipKeyCodec.encode({ cgroupId: id }));
  state(want.size);
  return { added, removed };
}

/** Re-syncs weft_skipn_v1 with the entries weft_skip_v1 holds (an agent killed
 *  mid-update may have left it above the real count). */
export function resyncSkipCount(maps: SkipMaps): void {
  maps.skipState.update(Buffer.alloc(4), skipStateCodec.encode({ entries: maps.skip.keys().length }));
}

export class SkipMap {
  constructor(private readonly maps: SkipMaps, private readonly log: Logger) {}

  /**
   * The cgroups whose sockets weft leaves alone (weft_skip_v1): the agent's own pod,
   * hostNetwork pods, pods opted out. A pod's cgroup id covers its containers, present
   * and future: the programs also check a socket's ancestors one and two levels below
   * the capture root (bpf/include/skip.h). connect/sendmsg/recvmsg/getpeername leave
   * such sockets untouched, sockops neither inserts nor measures them, STRICT lets
   * their packets pass. Validates every id first (nothing changes on error), then
   * writes the minimal diff; the map is pinned, so the list survives the agent. With
   * `keep`, entries not in `ids` stay (only additions): what a starting agent writes
   * before it has listed the pods, while the previous agent of a rollout still runs and
   * its own pod must stay skipped.
   */
  set(ids: bigint[], keep = false): { added: bigint[]; removed: bigint[] } {
    const wanted = checkCgroupIds(ids);
    if (wanted.length > this.maps.skip.maxEntries) {
      throw new WeftError('WEFT_ERR_CAPACITY', `${wanted.length} skipped cgroups, the map holds ${this.maps.skip.maxEntries}`);
    }
    try {
      const r = writeSkipped(this.maps, wanted, keep);
      if (r.added.length || r.removed.length) this.log.info({ added: r.added.map(String), removed: r.removed.map(String) }, 'skipped cgroups updated');
      return r;
    } catch (e) {
      throw bpfError('updating the skipped cgroups', e);
    }
  }

  /** The cgroup ids weft_skip_v1 holds now, ascending. */
  list(): bigint[] {
    return this.maps.skip.keys().map((k) => skipKeyCodec.decode(k).cgroupId).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }
}
