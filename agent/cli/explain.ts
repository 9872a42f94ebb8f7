// `weft explain`: how a flow from a workload to HOST:PORT is handled, and why.
import type { Command } from './command';
import { parseFlags } from './command';
import { AdminClient, DEFAULT_ADMIN, adminTokenFrom } from '../admin/client';
import { invalidArg } from '../lib/errors';
import type { Explanation } from '../explain/explain';

const help = `Usage: weft explain --from WORKLOAD --to HOST:PORT [--path P] [--method M]
                    [--header name:value ...] [--json] [--admin HOST:PORT] [--admin-token-file FILE]

Explains what weft does with a connection or request from WORKLOAD (namespace/name) to
HOST:PORT (a VIP, a workload address, or a Service's name: NAME.NAMESPACE or
NAME.NAMESPACE.svc.cluster.local, as the agents' DNS answers it): which Service (its
name and VIP), whether it
stays on the kernel fast path or goes through the agent and why, which route rule of
which policy object matches, the backends with their weights and hops, and the
authorization verdict with the deciding policy. Computed by the control API on the
current snapshot, through the local agent.

Flags:
  --from WORKLOAD        source workload, namespace/name ("name" means default/name)
  --to HOST:PORT         destination
  --path P               request path for HTTP/gRPC services (default /)
  --method M             request method (default GET)
  --header name:value    request header (repeatable)
  --json                 print the explanation as JSON
  --admin HOST:PORT      the agent's admin address (default ${DEFAULT_ADMIN})
  --admin-token-file FILE  the agent's admin token, needed when --admin is not on loopback

Example:
  weft explain --from shop/frontend-0 --to catalog.shop.svc.cluster.local:80 --path /items --header x-canary:always`;

interface Flags { from?: string; to?: string; path?: string; method?: string; header?: string[]; json?: boolean; admin?: string; 'admin-token-file'?: string }

function render(e: Explanation): string {
  const out = [
    `from      ${e.from.workload} (${e.from.identity}) on ${e.from.node}`,
    `to        ${e.to}${e.service ? ` → service ${e.service.key}${e.service.name ? ` (${e.service.name}, VIP ${e.service.vip})` : ''} port ${e.service.portName} (${e.service.protocol})` : ''}`,
    `path      ${e.path.mode}: ${e.path.reason}`,
  ];
  if (e.route) out.push(`route     ${'reason' in e.route ? e.route.reason : `${e.route.object} rule ${e.route.rule}`}`);
  for (const b of e.backends) {
    out.push(`backend   ${b.service} ${b.weight}%`);
    for (const ep of b.endpoints) {
      const a = ep.authorization;
      out.push(`  ${ep.workload.padEnd(26)} ${`${ep.address}:${ep.port}`.padEnd(20)} ${ep.node.padEnd(10)} ${ep.hop.padEnd(26)} ${a.allowed ? 'ALLOW' : 'DENY'} (${a.reason})`);
    }
  }
  out.push(`verdict   ${e.verdict}`, `snapshot  ${e.version}`);
  return out.join('\n') + '\n';
}

export const command: Command = {
  name: 'explain',
  summary: 'explain how a flow from a workload to HOST:PORT is handled, and why',
  help,
  async run(argv) {
    const { values: v, help: wantHelp } = parseFlags<Flags>(argv, {
      from: { type: 'string' }, to: { type: 'string' }, path: { type: 'string' }, method: { type: 'string' },
      header: { type: 'string', multiple: true }, json: { type: 'boolean' }, admin: { type: 'string' }, 'admin-token-file': { type: 'string' },
    });
    if (wantHelp) { process.stdout.write(help + '\n'); return 0; }
    if (!v.from) throw invalidArg('--from is required');
    if (!v.to) throw invalidArg('--to is required');
    const q = new URLSearchParams({ from: v.from, to: v.to });
    if (v.path) q.set('path', v.path);
    if (v.method) q.set('method', v.method);
    for (const h of v.header ?? []) q.append('header', h);
    const e = await new AdminClient(v.admin ?? DEFAULT_ADMIN, 15_000, adminTokenFrom(v['admin-token-file'])).request<Explanation>('GET', `/v1/explain?${q}`);
    process.stdout.write(v.json ? JSON.stringify(e, null, 2) + '\n' : render(e));
    return 0;
  },
};
