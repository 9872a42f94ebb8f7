// weft_bpf_*: the kernel's per-CPU counters (bpf/include/weft_abi.h struct
// weft_counters), summed over CPUs at scrape time. Nothing is cached in user space, so a
// restarted agent reports the same totals: the counters live in a pinned map.
import type { Registry } from 'prom-client';
import { COUNTER_FIELDS, type Counters } from '../datapath/codec';

const HELP: Record<string, string> = {
  connect_balanced: 'Connects and UDP sends the kernel rewrote to a backend (L4 fast path).',
  connect_redirected: 'Connects the kernel redirected to the agent outbound listener.',
  no_backend: 'Connects refused at once because the service had no backends.',
  sockmap_inserts: 'Established sockets inserted into the SOCKHASH for socket-to-socket redirection.',
  sockmap_skipped: 'Established sockets judged not worth a SOCKHASH insertion.',
  msg_redirected: 'sk_msg messages redirected socket-to-socket.',
  msg_redirected_bytes: 'Bytes redirected socket-to-socket by sk_msg.',
  msg_miss: 'sk_msg messages with no local peer socket (normal TCP path).',
  origin_inserts: 'Redirected connections recorded in the origin map.',
  fail_open: 'Redirect-mode connects balanced in the kernel because no agent listened (MeshConfig failMode open).',
  fail_closed: 'Redirect-mode connects refused because no agent listened (MeshConfig failMode closed).',
  strict_drops: 'Connection attempts (SYNs) from outside the node to a mesh workload dropped under mTLS STRICT.',
};

export function registerBpfMetrics(registry: Registry, source: { counters(): Counters }): void {
  // One map read per scrape, not one per metric.
  let cached: { at: number; value: Counters } | null = null;
  const read = (): Counters => {
    const now = Date.now();
    if (!cached || now - cached.at > 100) cached = { at: now, value: source.counters() };
    return cached.value;
  };
  for (const field of COUNTER_FIELDS) {
    const name = `weft_bpf_${field}_total`;
    registry.registerMetric({
      name,
      get: () => ({
        name, help: HELP[field] ?? field, type: 'counter', aggregator: 'sum',
        values: [{ value: Number(read()[field]), labels: {} }],
      }),
      reset: () => {},
    } as unknown as Parameters<Registry['registerMetric']>[0]);
  }
}
