// Where a server listens: an address, or a listening socket inherited from the agent's
// supervisor (agent/node/supervisor.ts) as a file descriptor.
import type { AddressInfo, Server } from 'node:net';

export type ListenTarget = { host: string; port: number } | { fd: number };

export function listenOn(server: Server, target: ListenTarget): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    const done = () => { server.off('error', reject); resolve(server.address() as AddressInfo); };
    if ('fd' in target) server.listen({ fd: target.fd }, done);
    else server.listen(target.port, target.host, done);
  });
}
