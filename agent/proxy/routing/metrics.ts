// weft_requests_total and weft_request_duration_seconds, the one place they are defined.
//
// Why not prom-client's Counter/Histogram directly: their inc/observe hash the label
// object on every call, which costs more than the rest of the request bookkeeping. Here
// a request records into a pre-resolved `RequestSeries` (label set fixed per connection
// and cluster; only response_code/grpc_status vary), and prom-client reads the
// aggregates at scrape time through custom collectors registered on the given Registry.
import type { Registry } from 'prom-client';

/** Istio-style label set from DESIGN.md, minus the per-response labels. */
export interface PeerLabels {
  reporter: 'source' | 'destination';
  source_workload: string;
  source_namespace: string;
  source_principal: string;
  destination_service: string;
  destination_workload: string;
  connection_security_policy: 'mutual_tls' | 'none' | 'unknown';
}

const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

class Aggregate {
  count = 0;
  sum = 0;
  readonly buckets = new Float64Array(BUCKETS.length);
  constructor(readonly labels: Record<string, string>) {}
}

/** The aggregates of one label set, keyed by response code and gRPC status. */
export class RequestSeries {
  private readonly byResponse = new Map<number, Aggregate>();
  constructor(private readonly base: PeerLabels, all: Set<RequestSeries>) { all.add(this); }

  /** Who is talking to whom on this connection (for the access log). */
  get peer(): PeerLabels { return this.base; }

  /** grpcStatus: -1 when not gRPC. */
  record(status: number, grpcStatus: number, seconds: number): void {
    const key = status * 32 + (grpcStatus + 1);
    let a = this.byResponse.get(key);
    if (a === undefined) {
      a = new Aggregate({ ...this.base, response_code: String(status), grpc_status: grpcStatus < 0 ? '' : String(grpcStatus) });
      this.byResponse.set(key, a);
    }
    a.count++;
    a.sum += seconds;
    for (let i = 0; i < BUCKETS.length; i++) if (seconds <= BUCKETS[i]!) { a.buckets[i]!++; break; }
  }

  aggregates(): IterableIterator<Aggregate> { return this.byResponse.values(); }
}

export class RequestMetrics {
  private readonly series = new Set<RequestSeries>();
  private readonly cache = new Map<string, RequestSeries>();

  constructor(registry: Registry) {
    const all = this.series;
    registry.registerMetric({
      name: 'weft_requests_total',
      get: () => ({
        name: 'weft_requests_total', help: 'Requests proxied at L7, by peers and response.', type: 'counter', aggregator: 'sum',
        values: [...all].flatMap((s) => [...s.aggregates()].map((a) => ({ labels: a.labels, value: a.count }))),
      }),
    } as never);
    registry.registerMetric({
      name: 'weft_request_duration_seconds',
      get: () => ({
        name: 'weft_request_duration_seconds', help: 'L7 request duration, first byte in to last byte out.', type: 'histogram', aggregator: 'sum',
        values: [...all].flatMap((s) => [...s.aggregates()].flatMap((a) => {
          const out: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
          let acc = 0;
          for (let i = 0; i < BUCKETS.length; i++) {
            acc += a.buckets[i]!;
            out.push({ labels: { ...a.labels, le: BUCKETS[i]! }, value: acc, metricName: 'weft_request_duration_seconds_bucket' });
          }
          out.push({ labels: { ...a.labels, le: '+Inf' }, value: a.count, metricName: 'weft_request_duration_seconds_bucket' });
          out.push({ labels: a.labels, value: a.sum, metricName: 'weft_request_duration_seconds_sum' });
          out.push({ labels: a.labels, value: a.count, metricName: 'weft_request_duration_seconds_count' });
          return out;
        })),
      }),
    } as never);
  }

  /** The series for a peer label set; the same labels give the same object. */
  seriesFor(labels: PeerLabels): RequestSeries {
    const key = `${labels.reporter}|${labels.source_workload}|${labels.source_namespace}|${labels.source_principal}|` +
      `${labels.destination_service}|${labels.destination_workload}|${labels.connection_security_policy}`;
    let s = this.cache.get(key);
    if (s === undefined) { s = new RequestSeries(labels, this.series); this.cache.set(key, s); }
    return s;
  }
}
