// Upstream HTTP/2 connections, pooled per (endpoint, source cgroup) by the one connection
// pool (pipeline/pool.ts) under the cluster's limits: transports may carry the source's
// identity (mTLS), so they are never shared across sources. A request goes to the
// least-loaded live connection; another connection is opened when all carry
// `streamsPerSession`, up to `sessionsPerEndpoint` and the cluster's maxConnections;
// past that a request waits for a stream (maxPendingRequests) or overflows.
import type { Cluster } from '../balancer/cluster';
import type { EndpointState } from '../balancer/endpoint';
import type { Connector, Origin } from '../types';
import { ConnectionPool, type PooledConnection } from '../pipeline/pool';
import { H2Connection, type ConnectionHandler, type ConnectionLimits } from './connection';
import { E } from './frame';

export interface PoolOptions {
  connect: Connector;
  limits: ConnectionLimits;
  /** Streams on one connection before another is opened... */
  streamsPerSession: number;
  /** ...up to this many connections per (endpoint, source). */
  sessionsPerEndpoint: number;
}

/** One client connection as the pool sees it: streams are its leases. */
export class H2Upstream implements PooledConnection, ConnectionHandler {
  served = 0;
  leases = 0;
  retired = false;
  readonly conn: H2Connection;

  constructor(readonly endpoint: EndpointState, transport: ReturnType<Connector>, limits: ConnectionLimits, private readonly pool: ConnectionPool<H2Upstream>, private readonly all: Set<H2Upstream>) {
    this.conn = new H2Connection(transport, true, limits, this);
    all.add(this);
  }

  get usable(): boolean { return this.conn.canOpenStream; }
  get capacity(): number { return this.conn.peerMaxStreams; }
  /** GOAWAY: open streams finish, then the connection closes. */
  retire(): void { this.conn.drain(); }
  destroy(): void { this.conn.destroy(); }

  // Servers cannot open streams; the connection rejects PUSH_PROMISE before this.
  onStream(c: H2Connection): void { c.fail(E.PROTOCOL_ERROR); }
  /** No new streams (usable turns false); open ones finish. */
  onGoaway(): void { /* the pool skips it from now on */ }
  onClose(): void { this.all.delete(this); this.pool.closed(this); }
}

export class UpstreamPool {
  readonly all = new Set<H2Upstream>();
  constructor(private readonly o: PoolOptions) {}

  /** The pool of connections to `ep` for `origin` (created on first use). */
  poolFor(ep: EndpointState, cluster: Cluster, origin: Origin): ConnectionPool<H2Upstream> {
    let p = ep.h2.get(origin.cgroupId) as ConnectionPool<H2Upstream> | undefined;
    if (p === undefined) {
      const o = this.o;
      const pool: ConnectionPool<H2Upstream> = new ConnectionPool<H2Upstream>(cluster, ep,
        (e) => new H2Upstream(e, o.connect(e.endpoint, origin), o.limits, pool, this.all),
        { perConnection: o.streamsPerSession, perEndpoint: o.sessionsPerEndpoint });
      ep.h2.set(origin.cgroupId, pool);
      p = pool;
    }
    return p;
  }

  close(): void { for (const c of [...this.all]) c.destroy(); }
}
