// Outlier ejections in the kernel's L4 tables: an endpoint that any worker's outlier
// detection ejected stays out of the L4 maps until every such worker let it back (or
// exited, taking its ejections with it).
import type { Endpoint } from '../proxy/balancer/endpoint';
import type { NodeView } from '../policy/snapshot';

export class Ejections {
  /** Endpoint ip:port → pids of the workers that have it ejected. */
  private readonly byEndpoint = new Map<string, Set<number>>();

  /** Records one worker's ejection of `ep` (or its end); returns the endpoint's key. */
  record(ep: Pick<Endpoint, 'ip' | 'port'>, ejected: boolean, pid: number): string {
    const key = `${ep.ip}:${ep.port}`;
    const pids = this.byEndpoint.get(key) ?? new Set<number>();
    if (ejected) { pids.add(pid); this.byEndpoint.set(key, pids); } else { pids.delete(pid); if (!pids.size) this.byEndpoint.delete(key); }
    return key;
  }

  /** Drops the ejections of workers not in `live`; true when any was dropped. */
  keepWorkers(live: Set<number>): boolean {
    let changed = false;
    for (const [key, pids] of this.byEndpoint) {
      for (const pid of pids) if (!live.has(pid)) { pids.delete(pid); changed = true; }
      if (!pids.size) this.byEndpoint.delete(key);
    }
    return changed;
  }

  /** The view's kernel services without the ejected backends. */
  filter(view: NodeView): NodeView['datapath'] {
    return view.datapath.map((s) => ({ ...s, backends: s.backends.filter((b) => !this.byEndpoint.has(`${b.ip}:${b.port}`)) }));
  }

  /** For `weft status`. */
  list(): { endpoint: string; workers: number[] }[] {
    return [...this.byEndpoint].map(([endpoint, pids]) => ({ endpoint, workers: [...pids] }));
  }
}
