// Wires the tunnel pieces for one agent: metrics on the agent's registry, the shared
// local forwarder, the 15008 listener and the outbound pool. The agent calls this once
// it has its node identity certificate; tests build whole "nodes" with it.
import type { Registry } from 'prom-client';
import type { AddressInfo } from 'node:net';
import type { IdentitySource } from '../../identity/manager';
import { componentLogger } from '../../telemetry/logger';
import type { L4Authorizer } from './authz';
import { LocalForwarder, type L7Inbound, type LocalWorkloadLookup } from './forward';
import { InboundServer } from './inbound';
import { TunnelMetrics } from './metrics';
import { Outbound } from './outbound';
import { TunnelPool } from './pool';

export interface TunnelOptions {
  identity: IdentitySource;
  /** The node's SPIFFE ID, presented by the 15008 listener (must be added to `identity`). */
  nodeIdentity: string;
  lookup: LocalWorkloadLookup;
  authorizer: L4Authorizer;
  /** Per-request authorization for destinations with L7 policies (forward.ts). */
  l7?: L7Inbound;
  registry: Registry;
  host?: string;
  port?: number;
  /** A listening socket inherited from the agent's supervisor. */
  fd?: number;
}

export interface Tunnel {
  metrics: TunnelMetrics;
  local: LocalForwarder;
  inbound: InboundServer;
  pool: TunnelPool;
  outbound: Outbound;
  address: AddressInfo;
  close(): Promise<void>;
}

export async function startTunnel(o: TunnelOptions): Promise<Tunnel> {
  const metrics = new TunnelMetrics(o.registry);
  const local = new LocalForwarder({ lookup: o.lookup, authorizer: o.authorizer, ...(o.l7 ? { l7: o.l7 } : {}), metrics, log: componentLogger('tunnel-forward') });
  const inbound = new InboundServer({ identity: o.identity, serverIdentity: o.nodeIdentity, forwarder: local, metrics, host: o.host, port: o.port, fd: o.fd });
  const address = await inbound.listen();
  const pool = new TunnelPool({ contextFor: (id) => o.identity.secureContextFor(id), trustDomain: o.identity.trustDomain, metrics });
  const outbound = new Outbound({
    pool, local, failMode: o.identity.failMode,
    hasCertificate: (id) => o.identity.tlsMaterial(id) !== null,
  });
  return {
    metrics, local, inbound, pool, outbound, address,
    close: async () => { pool.close(); inbound.destroy(); },
  };
}

export { PolicyAuthorizer, type L4Authorizer, type L4Request, type AuthzDecision } from './authz';
export { parseAuthority, splice, type L7Inbound, type LocalWorkload, type LocalWorkloadLookup, type Target } from './forward';
export type { NodeAddress, TunnelRequest } from './pool';
export type { OutboundRequest } from './outbound';
