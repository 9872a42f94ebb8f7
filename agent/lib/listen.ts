// Where a server listens: an address, or a listening socket inherited from the agent's
// supervisor (agent/node/supervisor.ts) as a file descriptor.
import type { AddressInfo, Server } from 'node:net';
import { invalidArg } from './errors';

export type ListenTarget = { host: string; port: number } | { fd: number };

export function listenOn(server: Server, target: ListenTarget): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    const done = () => { server.off('error', reject); resolve(server.address() as AddressInfo); };
    if ('fd' in target) server.listen({ fd: target.fd }, done);
    else server.listen(target.port, target.host, done);
  });
}

/** Parses HOST:PORT (IPv6 as [::1]:PORT). */
export function parseHostPort(s: string, flag: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(s);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port < 1 || port > 65535) throw invalidArg(`${flag}: expected HOST:PORT, got '${s}'`);
  return { host: (m[1] ?? m[2]) as string, port };
}
