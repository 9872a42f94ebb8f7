// Node totals for /metrics when the agent runs several worker processes: each worker
// keeps its own prom-client registry, the primary collects them at scrape time (over the
// supervisor's IPC relay) and merges them with prom-client's AggregatorRegistry.
//
// Request, connection and tunnel metrics are summed: a node's request count is the sum of
// its workers'. Process runtime metrics (memory, CPU, event loop lag, GC, handles — the
// `weft_process_*` / `weft_nodejs_*` defaults) describe one process each: summing event
// loop lags or averaging start times would be nonsense, so they keep one series per
// worker, told apart by a `worker` label.
import { AggregatorRegistry, type Registry } from 'prom-client';
import type { WorkerMetrics } from '../node/ipc';

const PER_PROCESS = /^weft_(process|nodejs)_/;

export interface WorkerMetricsPart { worker: number; metrics: WorkerMetrics }

export function aggregateWorkers(parts: WorkerMetricsPart[]): Registry {
  return AggregatorRegistry.aggregate(parts.map((p) => p.metrics.map((m) => {
    if (!PER_PROCESS.test(m.name)) return m;
    const worker = String(p.worker);
    // Every series is unique per worker now, so 'sum' just keeps each one as it is.
    return { ...m, aggregator: 'sum' as const, values: m.values.map((v) => ({ ...v, labels: { ...v.labels, worker } })) };
  })));
}

/** Sum of every series of a counter in one worker's metrics (0 when absent). */
export function counterTotal(metrics: WorkerMetrics, name: string): number {
  const m = metrics.find((x) => x.name === name);
  return m ? m.values.reduce((s, v) => s + v.value, 0) : 0;
}
