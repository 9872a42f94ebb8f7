// Per-endpoint pool of reusable upstream connections with the cluster's circuit
// breakers applied. Waiters are objects with a method, not closures, so queuing a
// request allocates nothing on the common path (an idle connection is returned at once).
import type { Cluster } from './cluster';
import type { EndpointState } from './endpoint';

export interface PooledConnection {
  readonly endpoint: EndpointState;
  /** Requests served so far (maxRequestsPerConnection). */
  served: number;
  destroy(): void;
}

export interface PoolWaiter<C> {
  /** Called with a connection, or null when none could be made (overflow/closed). */
  onPoolConnection(c: C | null): void;
}

export const enum Acquire { Ready, Queued, Overflow }

export class ConnectionPool<C extends PooledConnection> {
  private readonly idle: C[] = [];
  private readonly waiters: PoolWaiter<C>[] = [];
  /** Connection acquired by the last `acquire` that returned Ready. */
  acquired: C | null = null;

  constructor(readonly cluster: Cluster, readonly endpoint: EndpointState, private readonly create: (ep: EndpointState) => C) {}

  /** Gets a connection: Ready (in `acquired`), Queued (the waiter is called later), or Overflow. */
  acquire(w: PoolWaiter<C>): Acquire {
    const c = this.idle.pop();
    if (c !== undefined) { this.acquired = c; return Acquire.Ready; }
    const cl = this.cluster;
    if (cl.connections < cl.limits.maxConnections) {
      cl.connections++;
      try { this.acquired = this.create(this.endpoint); } catch (e) { cl.connections--; throw e; }
      return Acquire.Ready;
    }
    if (cl.pending >= cl.limits.maxPendingRequests) { cl.overflows++; return Acquire.Overflow; }
    cl.pending++;
    this.waiters.push(w);
    return Acquire.Queued;
  }

  /** Returns a healthy, idle connection for reuse (or hands it to a waiter). */
  release(c: C): void {
    c.served++;
    const max = this.cluster.limits.maxRequestsPerConnection;
    if (max > 0 && c.served >= max) { c.destroy(); return; }
    const w = this.waiters.shift();
    if (w !== undefined) { this.cluster.pending--; w.onPoolConnection(c); return; }
    this.idle.push(c);
  }

  /** A connection closed (for any reason): forget it and let a waiter open a new one. */
  closed(c: C): void {
    const i = this.idle.indexOf(c);
    if (i >= 0) this.idle.splice(i, 1);
    this.cluster.connections--;
    const w = this.waiters.shift();
    if (w !== undefined) {
      this.cluster.pending--;
      this.cluster.connections++;
      let c: C | null = null;
      try { c = this.create(this.endpoint); } catch { this.cluster.connections--; }
      w.onPoolConnection(c);
    }
  }

  /** Drops a waiter that went away (client closed) before it got a connection. */
  cancel(w: PoolWaiter<C>): void {
    const i = this.waiters.indexOf(w);
    if (i >= 0) { this.waiters.splice(i, 1); this.cluster.pending--; }
  }

  /** Closes idle connections and fails waiters (endpoint removed or shutdown). */
  drain(): void {
    for (const c of this.idle.splice(0)) c.destroy();
    for (const w of this.waiters.splice(0)) { this.cluster.pending--; w.onPoolConnection(null); }
  }
}
