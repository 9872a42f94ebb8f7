// Per-request access log lines (JSON through pino), sampled so a busy proxy does not
// spend its CPU on logging. Off unless configured.
import type { Logger } from '../../telemetry/logger';
import type { PeerLabels } from './metrics';

export interface AccessLogOptions {
  logger: Logger;
  /** Fraction of requests logged, 0..1 (errors are always logged when logErrors). */
  sampleRate: number;
  logErrors: boolean;
}

export interface AccessRecord {
  method: string;
  path: string;
  authority: string;
  status: number;
  grpcStatus: number;
  durationMs: number;
  route: string;
  upstream: string;
  attempts: number;
  traceId: string;
  /** Why a response was generated locally ('' when the upstream answered). */
  flags: string;
  /** The connection's peers, as the kernel and the certificates name them. */
  peer?: PeerLabels;
}

/** Where the proxies report completed requests: the access log, `weft tap`, or both. */
export interface AccessSink {
  /** Cheap pre-check so callers build no record for requests nobody wants. */
  wants(status: number): boolean;
  write(r: AccessRecord): void;
}

export class AccessLog implements AccessSink {
  constructor(private readonly o: AccessLogOptions) {}

  /** Cheap pre-check so callers build no record for unsampled requests. */
  wants(status: number): boolean {
    return (this.o.logErrors && status >= 500) || (this.o.sampleRate > 0 && Math.random() < this.o.sampleRate);
  }

  write(r: AccessRecord): void {
    this.o.logger.info({
      method: r.method, path: r.path, authority: r.authority, status: r.status,
      grpc_status: r.grpcStatus < 0 ? undefined : r.grpcStatus, duration_ms: Math.round(r.durationMs * 1000) / 1000,
      route: r.route, upstream: r.upstream, attempts: r.attempts, trace_id: r.traceId || undefined, flags: r.flags || undefined,
      ...(r.peer ? {
        reporter: r.peer.reporter, source_principal: r.peer.source_principal, source_workload: r.peer.source_workload, source_namespace: r.peer.source_namespace,
        destination_service: r.peer.destination_service, destination_workload: r.peer.destination_workload, connection_security_policy: r.peer.connection_security_policy,
      } : {}),
    }, 'access');
  }
}
