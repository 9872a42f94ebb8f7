// Inbound L7: requests arriving for a local workload (after the mTLS hop terminated and
// the caller's SPIFFE ID is known) are authorized per request and forwarded to the
// workload. HTTP/1.1 gets 403, gRPC gets PERMISSION_DENIED. The same proxies as the
// outbound side do the work; only the authorization hook and the target differ.
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { Downstream, TimeoutSweeper, type Http1Options } from './downstream';
import type { H2Proxy } from '../h2/proxy';
import type { Authorizer, Peer } from '../routing/authz';
import type { ServiceRoutes } from '../routing/table';
import type { RequestSeries } from '../routing/metrics';
import type { Origin } from '../types';

/** Inbound connections are not attributed to a local source cgroup. */
const INBOUND_ORIGIN: Origin = { dstIp: '', dstPort: 0, cgroupId: 0 };

const H2_PREFACE_START = Buffer.from('PRI * HTTP/2.0', 'latin1');

/**
 * The x-forwarded-client-cert value for a request from a verified peer (Envoy's
 * SANITIZE_SET: whatever the client sent is dropped, weft's own is set): `By=` the
 * destination's SPIFFE ID, `URI=` the caller's. Null when the caller is not verified
 * (the header is then only removed).
 */
export function forwardedClientCert(destination: string, principal: string): string | null {
  if (principal === '') return null;
  return destination !== '' ? `By=${destination};URI=${principal}` : `URI=${principal}`;
}

export class InboundL7 {
  private readonly sweeper = new TimeoutSweeper(100);

  constructor(private readonly h1: Http1Options, private readonly h2: H2Proxy) {}

  /**
   * Serves one inbound connection. `routes` leads to the local workload (e.g.
   * L7Directory.lookup(workloadIp, port)); `authz` with `peer` decides per request.
   */
  handle(sock: Socket | Duplex, routes: ServiceRoutes, peer: Peer, authz: Authorizer, series: RequestSeries | null, origin: Origin = INBOUND_ORIGIN, destination = ''): void {
    const authorize = authz.forPeer(peer);
    const xfcc = forwardedClientCert(destination, peer.principal);
    sock.once('data', (first: Buffer) => {
      sock.pause();
      const n = Math.min(first.length, H2_PREFACE_START.length);
      if (first.compare(H2_PREFACE_START, 0, n, 0, n) === 0) this.h2.handle(sock as Socket, routes, origin, series, authorize, first, xfcc);
      else {
        new Downstream(sock, { routes, series, authorize, origin, xfcc }, this.h1, this.sweeper, first);
        sock.resume();
      }
    });
  }

  close(): void { this.sweeper.close(); }
}
