// Pooled, multiplexed upstream HTTP/2 connections, one group per (endpoint, source
// cgroup): transports may carry the source's identity (mTLS), so they are never shared
// across sources. A request goes to the least-loaded live connection; another
// connection is opened when all are busy, up to a per-endpoint cap.
import type { Drainable, EndpointState } from '../balancer/endpoint';
import type { Connector } from '../types';
import type { Origin } from '../types';
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

/** The connections to one (endpoint, source). */
class Group implements Drainable, ConnectionHandler {
  readonly conns: H2Connection[] = [];
  constructor(private readonly pool: UpstreamPool) {}

  // Servers cannot open streams; the connection rejects PUSH_PROMISE before this.
  onStream(c: H2Connection): void { c.fail(E.PROTOCOL_ERROR); }
  onGoaway(c: H2Connection): void { this.remove(c); }
  onClose(c: H2Connection): void { this.remove(c); this.pool.all.delete(c); }
  remove(c: H2Connection): void { const i = this.conns.indexOf(c); if (i >= 0) this.conns.splice(i, 1); }
  /** Endpoint left its cluster: finish what is open, then close. */
  drain(): void { for (const c of this.conns.splice(0)) c.drain(); }
}

export class UpstreamPool {
  readonly all = new Set<H2Connection>();
  constructor(private readonly o: PoolOptions) {}

  /** A connection to `ep` for `origin` with room for one more stream. Throws when the
   *  connector refuses (a WeftError from the tunnel, for instance). */
  get(ep: EndpointState, origin: Origin): H2Connection {
    let group = ep.h2.get(origin.cgroupId) as Group | undefined;
    if (group === undefined) { group = new Group(this); ep.h2.set(origin.cgroupId, group); }
    let best: H2Connection | null = null;
    for (const c of group.conns) {
      if (!c.canOpenStream || c.activeStreams >= c.peerMaxStreams) continue;
      if (best === null || c.activeStreams < best.activeStreams) best = c;
    }
    if (best !== null && (best.activeStreams < this.o.streamsPerSession || group.conns.length >= this.o.sessionsPerEndpoint)) return best;
    const conn = new H2Connection(this.o.connect(ep.endpoint, origin), true, this.o.limits, group);
    group.conns.push(conn);
    this.all.add(conn);
    return conn;
  }

  close(): void { for (const c of [...this.all]) c.destroy(); }
}
