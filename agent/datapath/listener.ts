// The agent's side of redirection: its outbound listening socket registered for
// workloads in their own network namespaces (weft_agentl_v1), and where a redirected
// connection was going (weft_origin_v1, by the client's endpoint).
import type * as native from 'weft-native';
import { WeftError } from '../lib/errors';
import { v4Alternate } from '../lib/ip';
import { bpfError } from './bpf-error';
import { endpointCodec, originCodec } from './codec';

export interface Origin { dstIp: string; dstPort: number; cgroupId: bigint }

/**
 * Reads the origin map (the pinned one from any process, see agent/node/origin-map.ts).
 * The client's socket family decides the key: an IPv6 workload socket reaching an IPv4
 * listener through a v4-mapped redirect target is keyed '::ffff:a.b.c.d', while the
 * listener reports 'a.b.c.d' (and the reverse for a dual-stack one).
 */
export function readOrigin(map: native.BpfMap, clientIp: string, clientPort: number): Origin | null {
  const alternate = v4Alternate(clientIp);
  for (const ip of alternate ? [clientIp, alternate] : [clientIp]) {
    const v = map.lookup(endpointCodec.encode({ ip, port: clientPort }));
    if (v) { const o = originCodec.decode(v); return { dstIp: o.ip, dstPort: o.port, cgroupId: o.cgroupId }; }
  }
  return null;
}

export class AgentListenerMap {
  constructor(private readonly map: native.BpfMap) {}

  /**
   * Puts the agent's outbound listening socket (by fd, any process's copy of it) into
   * weft_agentl_v1: connect4/6 of a workload in its own network namespace cannot find
   * the listener with a lookup in that namespace, and learn from this map that an agent
   * listens (else fail mode applies). The kernel drops the entry when the socket closes.
   */
  set(fd: number): void {
    if (!Number.isInteger(fd) || fd < 0) throw new WeftError('WEFT_ERR_INVALID_ARG', `listener fd ${JSON.stringify(fd)} is not a file descriptor`);
    const v = Buffer.alloc(8); v.writeBigUInt64LE(BigInt(fd));
    try { this.map.update(Buffer.alloc(4), v); } catch (e) {
      throw bpfError('registering the outbound listener for pod namespaces', e);
    }
  }

  /** Whether weft_agentl_v1 holds a (live) listening socket. */
  registered(): boolean {
    return this.map.lookup(Buffer.alloc(4)) !== null;
  }
}
