// Types shared by the proxy's layers (listeners, protocol codecs, pipeline, pools,
// tunnel): who opened a connection and where it was going, and how a transport to an
// endpoint is opened. They live here, below every module that uses them, so no layer
// imports another layer's implementation just for a type.
import type { OnReadOpts, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Endpoint } from './balancer/endpoint';

/** Where a redirected connection was going and who opened it. */
export interface Origin {
  dstIp: string;
  dstPort: number;
  /** cgroup id of the process that opened the connection (source workload). */
  cgroupId: bigint | number;
}

/** Who a source cgroup is (metrics labels). */
export interface SourceInfo { workload: string; namespace: string; principal: string }

/** Opens a transport to an endpoint on behalf of the connection's origin (the source
 *  decides the identity of an mTLS tunnel). May throw a WeftError (refused).
 *  `read`: a connector that opens a plain TCP socket passes it as net.connect's
 *  `onread`, so the proxy reads into its own reused buffer instead of through the
 *  Readable stream (other transports ignore it: the proxy then reads 'data' events). */
export type Connector = (ep: Endpoint, origin: Origin, read?: OnReadOpts) => Socket | Duplex;
