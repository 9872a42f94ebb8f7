// The agent's own same-node hops, which the kernel splices from their first connection.
import type { NodeView } from '../policy/snapshot';

/**
 * The agent's own same-node hops, spliced by sockmap from their first connection
 * (Datapath.setEagerEndpoints): its outbound listener, and the endpoints on this node of
 * the services it proxies (redirect mode), which its pools keep long-lived keep-alive
 * connections to. Measured with npm run bench:l7 (the "node path" rows).
 */
export function eagerHops(view: NodeView, outbound: { host: string; port: number }): { ip: string; port: number }[] {
  const byKey = new Map(view.services.map((s) => [s.key, s]));
  const out = new Map<string, { ip: string; port: number }>();
  const add = (ip: string, port: number) => out.set(`${ip}|${port}`, { ip, port });
  if (outbound.host !== '0.0.0.0' && outbound.host !== '::') add(outbound.host, outbound.port);
  for (const d of view.datapath) {
    if (d.mode !== 'redirect') continue;
    for (const ep of byKey.get(d.service)?.endpoints ?? []) {
      const port = ep.ports[d.portName];
      if (ep.node === view.node && port !== undefined) add(ep.address, port);
    }
  }
  return [...out.values()];
}
