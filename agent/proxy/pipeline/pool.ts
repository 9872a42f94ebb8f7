// One pool of upstream connections per (endpoint, source), for every transport the
// proxy opens: HTTP/1.1 connections carry one request at a time, HTTP/2 (and tunnel)
// connections many. The cluster's circuit breakers apply to all of them the same way:
//   maxConnections      - connections open across the cluster,
//   maxPendingRequests  - requests waiting for a connection (or a stream on one),
//   maxRequestsPerConnection - requests before a connection is retired.
// A request that finds no room and no queue space overflows (counted on the cluster).
// Waiters are objects with a method, not closures, so queuing allocates nothing on the
// common path (a free connection is returned at once).
// The pool is not tied to L7 clusters: anything with the breaker's counters and limits
// (a Cluster, or the tunnel's per-peer-node limits) and any target (an EndpointState, a
// node address) will do.
import type { EndpointState } from '../balancer/endpoint';

/** The counters and limits a pool applies (balancer/cluster.ts's Cluster is one). */
export interface Breaker {
  /** Open connections, requests waiting for one, requests refused (overflow). */
  connections: number;
  pending: number;
  overflows: number;
  readonly limits: { readonly maxConnections: number; readonly maxPendingRequests: number; readonly maxRequestsPerConnection: number };
}

export interface PooledConnection {
  /** Requests started on it (pool-owned). */
  served: number;
  /** Requests it carries now (pool-owned). */
  leases: number;
  /** No new requests: closed once its last one is done (pool-owned). */
  retired: boolean;
  /** Can take a request now (not closing; HTTP/2: no GOAWAY received). */
  readonly usable: boolean;
  /** Requests it may carry at once (HTTP/1.1: 1; HTTP/2: the peer's stream limit). */
  readonly capacity: number;
  /** Asked to take no new requests: close when idle (HTTP/2: GOAWAY, finish streams). */
  retire(): void;
  destroy(): void;
}

export interface PoolWaiter<C> {
  /** Called with a leased connection, or null when none could be made (closed). */
  onPoolConnection(c: C | null): void;
}

export const enum Acquire { Ready, Queued, Overflow }

export interface PoolShape {
  /** Requests on one connection before another is opened (HTTP/1.1: 1)... */
  perConnection: number;
  /** ...up to this many connections to the endpoint (then the least loaded is shared,
   *  up to its capacity). */
  perEndpoint: number;
}

export const EXCLUSIVE: PoolShape = { perConnection: 1, perEndpoint: Infinity };

export class ConnectionPool<C extends PooledConnection, T = EndpointState> {
  /** Open connections (multiplexed pools scan them; exclusive pools keep `idle`). */
  private readonly conns: C[] = [];
  /** Exclusive pools: connections with no request, most recently used last. */
  private readonly idle: C[] = [];
  private readonly waiters: PoolWaiter<C>[] = [];
  private readonly exclusive: boolean;
  private draining = false;
  /** Connection leased by the last `acquire` that returned Ready. */
  acquired: C | null = null;

  constructor(readonly cluster: Breaker, readonly endpoint: T, private readonly create: (target: T) => C, private readonly shape: PoolShape = EXCLUSIVE) {
    this.exclusive = shape.perConnection === 1;
  }

  /** Open connections of this pool. */
  get size(): number { return this.conns.length; }

  /** Leases a connection: Ready (in `acquired`), Queued (the waiter is called later),
   *  or Overflow (counted on the cluster). Throws when the connector refuses. */
  acquire(w: PoolWaiter<C>): Acquire {
    let c = this.free(this.shape.perConnection);
    if (c === null && this.canOpen()) c = this.open();
    if (c === null && !this.exclusive) c = this.free(Infinity);
    if (c !== null) { this.lease(c); this.acquired = c; return Acquire.Ready; }
    const cl = this.cluster;
    if (this.draining || cl.pending >= cl.limits.maxPendingRequests) { cl.overflows++; return Acquire.Overflow; }
    cl.pending++;
    this.waiters.push(w);
    return Acquire.Queued;
  }

  /** A request on `c` is done and `c` can take another (or is retired). */
  release(c: C): void {
    if (c.leases > 0) c.leases--;
    if (c.retired || this.draining || !c.usable) {
      if (c.leases === 0) c.destroy();
      return;
    }
    const w = this.waiters.shift();
    if (w !== undefined) { this.cluster.pending--; this.lease(c); w.onPoolConnection(c); return; }
    if (this.exclusive) this.idle.push(c);
  }

  /** A connection closed (for any reason): forget it and let a waiter open a new one. */
  closed(c: C): void {
    const i = this.conns.indexOf(c);
    if (i < 0) return;
    this.conns.splice(i, 1);
    const j = this.idle.indexOf(c);
    if (j >= 0) this.idle.splice(j, 1);
    this.cluster.connections--;
    if (this.waiters.length === 0 || this.draining) return;
    // Waiters stay queued until a connection can be opened or one frees up.
    while (this.waiters.length > 0 && this.canOpen()) {
      const w = this.waiters.shift()!;
      this.cluster.pending--;
      let n: C | null = null;
      try { n = this.open(); this.lease(n); } catch { n = null; }
      w.onPoolConnection(n);
    }
  }

  /** Drops a waiter that went away (client closed, timed out) before it got a connection. */
  cancel(w: PoolWaiter<C>): void {
    const i = this.waiters.indexOf(w);
    if (i >= 0) { this.waiters.splice(i, 1); this.cluster.pending--; }
  }

  /** Endpoint removed or shutdown: idle connections close, busy ones after their
   *  requests, waiters fail. */
  drain(): void {
    this.draining = true;
    for (const c of this.idle.splice(0)) c.destroy();
    for (const c of [...this.conns]) { c.retired = true; if (c.leases === 0) c.destroy(); else c.retire(); }
    for (const w of this.waiters.splice(0)) { this.cluster.pending--; w.onPoolConnection(null); }
  }

  private canOpen(): boolean {
    return !this.draining && this.conns.length < this.shape.perEndpoint && this.cluster.connections < this.cluster.limits.maxConnections;
  }

  private open(): C {
    this.cluster.connections++;
    let c: C;
    try { c = this.create(this.endpoint); } catch (e) { this.cluster.connections--; throw e; }
    this.conns.push(c);
    return c;
  }

  /** A usable connection with fewer than `limit` requests (and room under its capacity):
   *  exclusive pools take the most recently idle one, multiplexed the least loaded. */
  private free(limit: number): C | null {
    if (this.exclusive) {
      for (let c = this.idle.pop(); c !== undefined; c = this.idle.pop()) if (c.usable && !c.retired) return c;
      return null;
    }
    let best: C | null = null;
    for (const c of this.conns) {
      if (!c.usable || c.retired || c.leases >= limit || c.leases >= c.capacity) continue;
      if (best === null || c.leases < best.leases) best = c;
    }
    return best;
  }

  private lease(c: C): void {
    c.leases++;
    c.served++;
    const max = this.cluster.limits.maxRequestsPerConnection;
    if (max > 0 && c.served >= max && !c.retired) { c.retired = true; if (!this.exclusive) c.retire(); }
  }
}
