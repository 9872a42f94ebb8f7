// The node's mesh workloads as the kernel sees them: weft_local_v1 (their addresses, the
// STRICT ingress hook's allow-list) and weft_direct_v1 (their endpoints, which a direct
// connect is redirected to the agent for). Both written as validated minimal diffs.
import { WeftError } from '../lib/errors';
import { parseIp } from '../lib/ip';
import type { Logger } from '../telemetry/logger';
import { bpfError } from './bpf-error';
import { DIRECT_F_MESH, LOCAL_F_WORKLOAD, addrCodec, directCodec, directKeyCodec, u32Codec } from './codec';
import type { DatapathMaps } from './maps';

export class LocalWorkloadMap {
  constructor(private readonly map: DatapathMaps['local'], private readonly log: Logger) {}

  /**
   * This node's mesh workload addresses (their own, e.g. pod IPs: `weft run --address`),
   * the allow-list bpf/ingress.bpf.c applies under STRICT besides loopback and the agent:
   * same-node pod-to-pod connections that the kernel balances (no mTLS hop) arrive over a
   * veth from the other pod's address. Call it whenever the local workload set changes
   * (and after open, which adopts what an earlier agent left): validates every address
   * first (nothing changes on error), then writes the minimal diff. Returns what changed.
   */
  set(addresses: string[]): { added: string[]; removed: string[] } {
    const wanted = new Map<string, Buffer>();
    for (const ip of addresses) {
      if (typeof ip !== 'string' || !parseIp(ip)) {
        throw new WeftError('WEFT_ERR_INVALID_ARG', `local workload address ${JSON.stringify(ip)} is not an IPv4 or IPv6 address`);
      }
      const key = addrCodec.encode({ ip });
      wanted.set(key.toString('hex'), key);
    }
    if (wanted.size > this.map.maxEntries) {
      throw new WeftError('WEFT_ERR_CAPACITY', `${wanted.size} local workload addresses, the map holds ${this.map.maxEntries}`);
    }
    const current = new Map(this.map.keys().map((k) => [k.toString('hex'), k]));
    const added: string[] = [], removed: string[] = [];
    const value = u32Codec.encode(LOCAL_F_WORKLOAD);
    try {
      // Additions first: a workload that moves address is never briefly unlisted.
      for (const [hex, key] of wanted) {
        if (current.has(hex)) continue;
        this.map.update(key, value);
        added.push(addrCodec.decode(key).ip);
      }
      for (const [hex, key] of current) {
        if (wanted.has(hex)) continue;
        this.map.delete(key);
        removed.push(addrCodec.decode(key).ip);
      }
    } catch (e) {
      throw bpfError('updating the local workload addresses', e);
    }
    if (added.length || removed.length) this.log.info({ added, removed }, 'local workload addresses updated');
    return { added, removed };
  }

  /** The addresses weft_local_v1 holds now. */
  list(): string[] {
    return this.map.keys().map((k) => addrCodec.decode(k).ip).sort();
  }
}

export class DirectEndpointMap {
  constructor(private readonly map: DatapathMaps['direct'], private readonly log: Logger) {}

  /**
   * The mesh workload endpoints a direct connect (to the workload's own address, not a
   * VIP) is redirected to the agent for (weft_direct_v1): every endpoint whose service
   * connections go through the agent, so that such a connection meets the same
   * authorization and mTLS hop. Port 0 stands for every port of the address. Validates
   * every entry first (nothing changes on error), then writes the minimal diff
   * (additions first). Returns what changed, as "ip:port" (IPv6 in brackets).
   */
  set(endpoints: { ip: string; port: number }[]): { added: string[]; removed: string[] } {
    const wanted = new Map<string, Buffer>();
    for (const e of endpoints) {
      if (typeof e?.ip !== 'string' || !parseIp(e.ip)) {
        throw new WeftError('WEFT_ERR_INVALID_ARG', `direct endpoint address ${JSON.stringify(e?.ip)} is not an IPv4 or IPv6 address`);
      }
      if (!Number.isInteger(e.port) || e.port < 0 || e.port > 65535) {
        throw new WeftError('WEFT_ERR_INVALID_ARG', `direct endpoint port ${JSON.stringify(e.port)} is not 0-65535`);
      }
      const key = directKeyCodec.encode(e);
      wanted.set(key.toString('hex'), key);
    }
    if (wanted.size > this.map.maxEntries) {
      throw new WeftError('WEFT_ERR_CAPACITY', `${wanted.size} direct workload endpoints, the map holds ${this.map.maxEntries}`);
    }
    const current = new Map(this.map.keys().map((k) => [k.toString('hex'), k]));
    const added: string[] = [], removed: string[] = [];
    const value = directCodec.encode({ flags: DIRECT_F_MESH });
    const show = (k: Buffer) => { const d = directKeyCodec.decode(k); return d.ip.includes(':') ? `[${d.ip}]:${d.port}` : `${d.ip}:${d.port}`; };
    try {
      for (const [hex, key] of wanted) {
        if (current.has(hex)) continue;
        this.map.update(key, value);
        added.push(show(key));
      }
      for (const [hex, key] of current) {
        if (wanted.has(hex)) continue;
        this.map.delete(key);
        removed.push(show(key));
      }
    } catch (e) {
      throw bpfError('updating the direct workload endpoints', e);
    }
    if (added.length || removed.length) this.log.info({ added: added.length, removed: removed.length }, 'direct workload endpoints updated');
    return { added, removed };
  }

  /** The endpoints weft_direct_v1 holds now, sorted. */
  list(): { ip: string; port: number }[] {
    return this.map.keys().map((k) => directKeyCodec.decode(k))
      .sort((a, b) => (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : a.port - b.port));
  }
}
