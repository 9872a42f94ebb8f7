// What a proxy worker needs from the datapath: where a redirected connection was going
// and who opened it. The kernel records that in a pinned map, so any process can read it
// by opening the pin — no program loading, no writes, nothing the primary must share.
// Also: moving a process into the agent cgroup, so its own sockets are never redirected.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as native from 'weft-native';
import { nodeLayout } from '../datapath/layout';
import { MAPS } from '../datapath/programs';
import { readOrigin, type Origin } from '../datapath/datapath';
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

  /** Same answer as Datapath.lookupOrigin. */
  lookup(clientIp: string, clientPort: number): Origin | null {
    return readOrigin(this.map, clientIp, clientPort);
  }

  close(): void {
    this.map.close();
  }
}

/** Moves this process into the node's agent cgroup (the primary created it). */
export function joinAgentCgroup(node: string, pid: number = process.pid): void {
  writeFileSync(join(nodeLayout(node).agentCgroup, 'cgroup.procs'), String(pid));
}
