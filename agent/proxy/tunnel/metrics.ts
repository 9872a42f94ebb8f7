// Connection metrics of the tunnel (HBONE) path, Istio's TCP metric set with weft names.
// One module defines them all so the agent hands in its registry once and every
// direction reports into the same series. Label values come from authenticated facts
// only: source_principal is the peer's verified SPIFFE ID (or the kernel-recorded
// identity on the same-node path), never something the client asserted.
import { Counter, type Registry } from 'prom-client';
import type { Socket } from 'node:net';

export const TCP_LABELS = [
  'reporter', 'source_workload', 'source_namespace', 'source_principal',
  'destination_service', 'destination_workload', 'destination_namespace', 'destination_principal',
  'connection_security_policy',
] as const;
export type TcpLabel = typeof TCP_LABELS[number];
export type TcpLabels = Record<TcpLabel, string>;

export type DenyReason = 'policy' | 'not_local_workload' | 'unauthenticated' | 'tls_handshake' | 'bad_request';
const DENY_LABELS = ['reporter', 'source_principal', 'destination_workload', 'reason'] as const;

function counter<L extends string>(registry: Registry, name: string, help: string, labelNames: readonly L[], collect?: () => void): Counter<L> {
  // Tolerate a second TunnelMetrics on the same registry (inbound and outbound built
  // separately): prom-client refuses duplicate names.
  const existing = registry.getSingleMetric(name);
  if (existing) return existing as Counter<L>;
  return new Counter({ name, help, labelNames, registers: [registry], ...(collect ? { collect } : {}) });
}

/** Counters for one connection, bound once. Byte counts are read from the socket when
 *  the registry is scraped (and at close), so nothing is done per chunk. */
export interface ConnectionMeter {
  /** Takes the byte counts of `source` from now on. */
  track(source: ByteSource): void;
  closed(): void;
}

/** What a meter reads: bytes from the client toward the workload (written to the
 *  upstream) and from the workload toward the client (read from it). */
export interface ByteSource { readonly bytesWritten: number; readonly bytesRead: number }

interface LiveMeter { flush(): void }

/** Meters of open connections, per byte counter (shared by every TunnelMetrics of a
 *  registry, since the counters are). */
const liveMeters = new WeakMap<object, Set<LiveMeter>>();

export class TunnelMetrics {
  readonly opened: Counter<TcpLabel>;
  readonly closed: Counter<TcpLabel>;
  readonly sentBytes: Counter<TcpLabel>;
  readonly receivedBytes: Counter<TcpLabel>;
  readonly denied: Counter<typeof DENY_LABELS[number]>;
  readonly handshakes: Counter<'role'>;

  private readonly live: Set<LiveMeter>;

  constructor(registry: Registry) {
    this.opened = counter(registry, 'weft_tcp_connections_opened_total', 'TCP connections opened through the mesh.', TCP_LABELS);
    this.closed = counter(registry, 'weft_tcp_connections_closed_total', 'TCP connections closed through the mesh.', TCP_LABELS);
    const live = new Set<LiveMeter>();
    const collect = () => { for (const m of live) m.flush(); };
    this.sentBytes = counter(registry, 'weft_tcp_sent_bytes_total', 'Bytes sent toward the client (response direction).', TCP_LABELS, collect);
    this.receivedBytes = counter(registry, 'weft_tcp_received_bytes_total', 'Bytes received from the client (request direction).', TCP_LABELS, collect);
    if (!liveMeters.has(this.sentBytes)) liveMeters.set(this.sentBytes, live);
    this.live = liveMeters.get(this.sentBytes)!;
    this.denied = counter(registry, 'weft_tcp_connections_denied_total',
      'Connections refused by the tunnel: authorization policy, non-local target, failed authentication.', DENY_LABELS);
    this.handshakes = counter(registry, 'weft_tunnel_tls_handshakes_total',
      'Full TLS handshakes on the node-to-node tunnel (client: pooled sessions opened; server: accepted).', ['role']);
  }

  connection(labels: TcpLabels): ConnectionMeter {
    this.opened.inc(labels);
    const rx = this.receivedBytes.labels(labels);
    const tx = this.sentBytes.labels(labels);
    const live = this.live;
    let source: ByteSource | null = null;
    let written = 0, read = 0, done = false;
    const meter: LiveMeter = {
      flush: () => {
        if (source === null) return;
        const w = source.bytesWritten, r = source.bytesRead;
        if (w > written) { rx.inc(w - written); written = w; }
        if (r > read) { tx.inc(r - read); read = r; }
      },
    };
    return {
      track: (s) => { source = s; live.add(meter); },
      closed: () => {
        if (done) return;
        done = true;
        meter.flush();
        live.delete(meter);
        this.closed.inc(labels);
      },
    };
  }

  deny(reporter: string, sourcePrincipal: string | null, destinationWorkload: string, reason: DenyReason): void {
    this.denied.inc({ reporter, source_principal: sourcePrincipal ?? 'unknown', destination_workload: destinationWorkload, reason });
  }
}

/** Meters an upstream socket: its own byte counters (what was written to it came from
 *  the client, what was read from it went to the client), read at scrape and at close,
 *  so no listener sits in the data path. */
export function meterSocket(upstream: Socket, meter: ConnectionMeter): void {
  meter.track(upstream);
  upstream.once('close', () => meter.closed());
}
