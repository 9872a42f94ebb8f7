// What a node agent serves on its admin port besides metrics and health: the /debug
// views, the /v1 API (`weft run`, `weft status`, `weft explain`) and the tap stream.
import type { AdminOptions } from '../admin/server';
import { Datapath } from '../datapath/datapath';
import type { NodeView } from '../policy/snapshot';
import type { SyncClient } from '../sync/client';
import { parseExplainQuery } from './explain-query';
import type { PodIndex } from './pods';
import type { Registrations } from './registrations';
import type { RequestTap } from './tap';
import type { LocalWorkload } from './workloads';
import { reloadStatus } from '../control/reload-status';

export interface AdminRouteSources {
  node: string;
  sync: Pick<SyncClient, 'state' | 'explain' | 'status'>;
  view: () => NodeView | null;
  datapath: Datapath;
  /** The serving workers with their request counts (a scrape of every worker). */
  workers: () => Promise<unknown>;
  localWorkloads: () => LocalWorkload[];
  pods: PodIndex | null;
  certificates: () => unknown[];
  registrations: Registrations;
  status: () => Record<string, unknown>;
  tap: RequestTap;
}

export function adminRoutes(s: AdminRouteSources): Pick<AdminOptions, 'debug' | 'api' | 'streams'> {
  const dp = s.datapath;
  return {
    debug: {
      config: () => ({ node: s.node, sync: s.sync.state(), view: s.view() }),
      workers: () => s.workers(),
      bpf: () => ({ inspect: Datapath.inspect(s.node), counters: dp.counters(), services: dp.services(), attachments: dp.attachments, localWorkloads: dp.localWorkloads(), skippedCgroups: dp.skippedCgroups().map(String), eagerEndpoints: dp.eagerEndpoints(), agentListener: dp.agentListenerRegistered() }),
      workloads: () => s.localWorkloads(),
      pods: () => ({
        pods: (s.pods?.list() ?? []).map((p) => ({ ...p, cgroup: p.cgroup ? { path: p.cgroup.path, id: p.cgroup.id.toString() } : null })),
        recentReady: s.pods?.recentReady ?? [],
      }),
      certificates: () => s.certificates(),
    },
    api: {
      'POST /v1/workloads': (body) => s.registrations.register(body),
      'DELETE /v1/workloads': (_b, url) => s.registrations.deregister(url.searchParams.get('namespace') ?? '', url.searchParams.get('name') ?? ''),
      'GET /v1/status': () => s.status(),
      // `weft explain`: the control API reasons over the full snapshot (this node only
      // has its own view).
      'GET /v1/mesh': () => s.sync.status().then(reloadStatus),
      'GET /v1/explain': (_b, url) => s.sync.explain(parseExplainQuery(url.searchParams)),
    },
    streams: { 'GET /v1/tap': (req, res, url) => s.tap.serve(req, res, url) },
  };
}
