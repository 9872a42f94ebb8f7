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

function counter<L extends string>(registry: Registry, name: string, help: string, labelNames: readonly L[]): Counter<L> {
  // Tolerate a second TunnelMetrics on the same registry (inbound and outbound built
  // separately): prom-client refuses duplicate names.
  const existing = registry.getSingleMetric(name);
  if (existing) return existing as Counter<L>;
  return new Counter({ name, help, labelNames, registers: [registry] });
}

/** Counters for one connection, bound once so the per-chunk cost is an add. */
export interface ConnectionMeter {
  /** Bytes from the client toward the workload. */
  received(n: number): void;
  /** Bytes from the workload toward the client. */
  sent(n: number): void;
  closed(): void;
}

export class TunnelMetrics {
  readonly opened: Counter<TcpLabel>;
  readonly closed: Counter<TcpLabel>;
  readonly sentBytes: Counter<TcpLabel>;
  readonly receivedBytes: Counter<TcpLabel>;
  readonly denied: Counter<typeof DENY_LABELS[number]>;
  readonly handshakes: Counter<'role'>;

  constructor(registry: Registry) {
    this.opened = counter(registry, 'weft_tcp_connections_opened_total', 'TCP connections opened through the mesh.', TCP_LABELS);
    this.closed = counter(registry, 'weft_tcp_connections_closed_total', 'TCP connections closed through the mesh.', TCP_LABELS);
    this.sentBytes = counter(registry, 'weft_tcp_sent_bytes_total', 'Bytes sent toward the client (response direction).', TCP_LABELS);
    this.receivedBytes = counter(registry, 'weft_tcp_received_bytes_total', 'Bytes received from the client (request direction).', TCP_LABELS);
    this.denied = counter(registry, 'weft_tcp_connections_denied_total',
      'Connections refused by the tunnel: authorization policy, non-local target, failed authentication.', DENY_LABELS);
    this.handshakes = counter(registry, 'weft_tunnel_tls_handshakes_total',
      'Full TLS handshakes on the node-to-node tunnel (client: pooled sessions opened; server: accepted).', ['role']);
  }

  connection(labels: TcpLabels): ConnectionMeter {
    this.opened.inc(labels);
    const rx = this.receivedBytes.labels(labels);
    const tx = this.sentBytes.labels(labels);
    let done = false;
    return {
      received: (n) => rx.inc(n),
      sent: (n) => tx.inc(n),
      closed: () => { if (!done) { done = true; this.closed.inc(labels); } },
    };
  }

  deny(reporter: string, sourcePrincipal: string | null, destinationWorkload: string, reason: DenyReason): void {
    this.denied.inc({ reporter, source_principal: sourcePrincipal ?? 'unknown', destination_workload: destinationWorkload, reason });
  }
}

/** Meters an upstream socket: responses as they arrive, requests from the socket's own
 *  write counter (so no wrapper sits in the request path), close once. */
export function meterSocket(upstream: Socket, meter: ConnectionMeter): void {
  let written = 0;
  const flushWritten = () => {
    const w = upstream.bytesWritten;
    if (w > written) { meter.received(w - written); written = w; }
  };
  // Attaching a 'data' listener would start the flow before the consumer is there (and
  // bytes arriving meanwhile would be dropped): count only once the consumer starts it.
  upstream.once('resume', () => upstream.on('data', (chunk: Buffer) => { meter.sent(chunk.length); flushWritten(); }));
  upstream.once('close', () => { flushWritten(); meter.closed(); });
}
