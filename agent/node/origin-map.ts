// What a proxy worker needs from the datapath: where a redirected connection was going
// and who opened it. The kernel records that in a pinned map, so any process can read it
// by opening the pin — no program loading, no writes, nothing the primary must share.
// Also: moving a process into the agent cgroup, so its own sockets are never redirected.
import { writeFileSync } from 'node:fs';
import { isIPv4 } from 'node:net';
import { join } from 'node:path';
import * as native from 'weft-native';
import { endpointCodec, originCodec } from '../datapath/codec';
import { nodeLayout } from '../datapath/layout';
import { MAPS } from '../datapath/programs';
import type { Origin } from '../datapath/datapath';
import { WeftError, describeError } from '../lib/errors';

export class OriginMap {
  private readonly map: native.BpfMap;

  constructor(node: string) {
    const path = join(nodeLayout(node).pinRoot, MAPS.origin);
    try {
      this.map = native.BpfMap.openPinned(path);
    } catch (e) {
      throw new WeftError('WEFT_ERR_BPF', `cannot open the origin map ${path} (is the primary agent worker running?): ${describeError(e)}`, { cause: e });
    }
  }

  /** Same answer as Datapath.lookupOrigin: the client's socket family decides the key, so
   *  an IPv4 address is also tried in its v4-mapped form. */
  lookup(clientIp: string, clientPort: number): Origin | null {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(clientIp);
    const alternate = mapped ? mapped[1]! : isIPv4(clientIp) ? `::ffff:${clientIp}` : undefined;
    for (const ip of alternate ? [clientIp, alternate] : [clientIp]) {
      const v = this.map.lookup(endpointCodec.encode({ ip, port: clientPort }));
      if (v) { const o = originCodec.decode(v); return { dstIp: o.ip, dstPort: o.port, cgroupId: o.cgroupId }; }
    }
    return null;
  }

  close(): void {
    this.map.close();
  }
}

/** Moves this process into the node's agent cgroup (the primary created it). */
export function joinAgentCgroup(node: string, pid: number = process.pid): void {
  writeFileSync(join(nodeLayout(node).agentCgroup, 'cgroup.procs'), String(pid));
}
