// Turns two consecutive observations (every agent's /metrics plus the traffic driver's
// own counters) into what the live view shows for that second: per-service request
// rate, success rate and p99 (source-side weft_requests_total and
// weft_request_duration_seconds), the identities talking over mTLS (destination-side
// weft_tcp_connections_opened_total with connection_security_policy="mutual_tls"),
// refusals (weft_tcp_connections_denied_total), the kernel's weft_bpf_* counters, and
// the snapshot version each agent serves, and the control API's last policy reload
// (accepted, or rejected with its diagnostics). Every number is a difference of counters the
// processes exported; nothing is estimated here.
import type { Sample } from './prom-text';
import type { LoadgenStats, OutcomeCounts } from './loadgen-stats';
import type { ReloadStatus } from '../control/reload-status';

export interface AgentScrape { node: string; samples: Sample[] | null; error?: string }
export interface Observation {
  at: number; agents: AgentScrape[]; loadgen: LoadgenStats | null;
  /** The control API's last policy reload and every node's snapshot (null: unknown). */
  reload?: ReloadStatus | null;
}

export interface ServiceRow { service: string; rps: number; success: number | null; p99ms: number | null; failures: Record<string, number> }
export interface IdentityPair { source: string; destination: string; node: string; connections: number; newPerSec: number }
export interface Denial { source: string; destination: string; reason: string; node: string; total: number; perSec: number }
export interface ClientRow { rps: number; success: number | null; outcomes: Record<string, number> }

export interface Frame {
  /** Seconds since the view started. */
  t: number;
  services: ServiceRow[];
  mtls: IdentityPair[];
  denials: Denial[];
  /** weft_bpf_<field>_total summed over agents: per second and total. */
  bpf: Record<string, { perSec: number; total: number }>;
  agents: { node: string; snapshot: string | null; error?: string }[];
  /** The control API's last reload: accepted, or rejected with file:line:col diagnostics. */
  reload: ReloadStatus | null;
  /** The traffic driver's view (null until it has written its first counters). */
  client: null | {
    browse: ClientRow; checkout: ClientRow;
    /** loadgen → payments: `success` is the share the mesh refused (as it must). */
    paymentsDirect: ClientRow;
    /** Catalog versions that answered in this second / since the start. */
    versions: Record<string, number>; versionsTotal: Record<string, number>;
  };
}

const key = (s: Sample) => `${s.name}{${Object.entries(s.labels).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}=${v}`).join(',')}}`;

/** Per-series increase between two scrapes of one agent (a reset counts from zero). */
function increases(prev: Sample[] | null | undefined, cur: Sample[]): Map<string, { sample: Sample; delta: number }> {
  const before = new Map((prev ?? []).map((s) => [key(s), s.value]));
  const out = new Map<string, { sample: Sample; delta: number }>();
  for (const s of cur) {
    const b = before.get(key(s));
    out.set(key(s), { sample: s, delta: prev ? (b === undefined || s.value < b ? s.value : s.value - b) : 0 });
  }
  return out;
}

const isSuccess = (l: Record<string, string>) => {
  const code = Number(l.response_code);
  return code >= 200 && code < 400 && (l.grpc_status === undefined || l.grpc_status === '' || l.grpc_status === '0');
};

/** histogram_quantile over summed bucket increases, linear inside the bucket. */
export function quantile(q: number, buckets: Map<number, number>): number | null {
  const les = [...buckets.keys()].sort((a, b) => a - b);
  const total = buckets.get(Infinity) ?? 0;
  if (!total) return null;
  const rank = q * total;
  let prevLe = 0, prevCount = 0;
  for (const le of les) {
    const c = buckets.get(le)!;
    if (c >= rank) {
      if (le === Infinity) return prevLe;
      return prevLe + (le - prevLe) * ((rank - prevCount) / Math.max(c - prevCount, 1e-9));
    }
    prevLe = le; prevCount = c;
  }
  return null;
}

function clientRow(prev: OutcomeCounts | undefined, cur: OutcomeCounts, seconds: number): ClientRow {
  const ok = cur.ok - (prev?.ok ?? 0), failed = cur.failed - (prev?.failed ?? 0);
  const outcomes: Record<string, number> = {};
  for (const [k, v] of Object.entries(cur.outcomes)) {
    const d = v - (prev?.outcomes[k] ?? 0);
    if (d > 0) outcomes[k] = d;
  }
  return { rps: (ok + failed) / seconds, success: ok + failed ? ok / (ok + failed) : null, outcomes };
}

interface ServiceAcc { ok: number; all: number; failures: Record<string, number>; buckets: Map<number, number> }

export function buildFrame(prev: Observation | null, cur: Observation, startedAt: number): Frame {
  const seconds = prev ? Math.max((cur.at - prev.at) / 1000, 0.001) : 1;
  const services = new Map<string, ServiceAcc>();
  const serviceRow = (name: string): ServiceAcc => {
    let r = services.get(name);
    if (!r) services.set(name, (r = { ok: 0, all: 0, failures: {}, buckets: new Map() }));
    return r;
  };
  const mtls = new Map<string, IdentityPair>();
  const denials = new Map<string, Denial>();
  const bpf: Frame['bpf'] = {};
  const agents: Frame['agents'] = [];

  for (const a of cur.agents) {
    if (!a.samples) { agents.push({ node: a.node, snapshot: null, error: a.error ?? 'no metrics' }); continue; }
    const before = prev?.agents.find((p) => p.node === a.node)?.samples;
    agents.push({ node: a.node, snapshot: a.samples.find((s) => s.name === 'weft_policy_snapshot_version' && s.value === 1)?.labels.version ?? null });
    for (const { sample: s, delta } of increases(before, a.samples).values()) {
      const l = s.labels;
      if (s.name === 'weft_requests_total' && l.reporter === 'source') {
        const row = serviceRow(l.destination_service!);
        row.all += delta;
        if (isSuccess(l)) row.ok += delta;
        else if (delta > 0) {
          const what = l.grpc_status && l.grpc_status !== '0' ? `grpc ${l.grpc_status}` : l.response_code!;
          row.failures[what] = (row.failures[what] ?? 0) + delta;
        }
      } else if (s.name === 'weft_request_duration_seconds_bucket' && l.reporter === 'source') {
        const row = serviceRow(l.destination_service!);
        const le = l.le === '+Inf' ? Infinity : Number(l.le);
        row.buckets.set(le, (row.buckets.get(le) ?? 0) + delta);
      } else if (s.name === 'weft_tcp_connections_opened_total' && l.connection_security_policy === 'mutual_tls' && l.reporter === 'destination') {
        const k = `${l.source_principal}|${l.destination_workload}|${a.node}`;
        const p = mtls.get(k) ?? { source: l.source_principal!, destination: `${l.destination_namespace ?? ''}/${l.destination_workload}`, node: a.node, connections: 0, newPerSec: 0 };
        p.connections += s.value;
        p.newPerSec += delta / seconds;
        mtls.set(k, p);
      } else if (s.name === 'weft_tcp_connections_denied_total') {
        const k = `${l.source_principal}|${l.destination_workload}|${l.reason}|${a.node}`;
        const d = denials.get(k) ?? { source: l.source_principal!, destination: l.destination_workload!, reason: l.reason!, node: a.node, total: 0, perSec: 0 };
        d.total += s.value;
        d.perSec += delta / seconds;
        denials.set(k, d);
      } else if (s.name.startsWith('weft_bpf_') && s.name.endsWith('_total')) {
        const f = s.name.slice('weft_bpf_'.length, -'_total'.length);
        const b = bpf[f] ?? { perSec: 0, total: 0 };
        b.total += s.value;
        b.perSec += delta / seconds;
        bpf[f] = b;
      }
    }
  }

  let client: Frame['client'] = null;
  const lg = cur.loadgen, plg = prev?.loadgen ?? undefined;
  if (lg) {
    const versions: Record<string, number> = {};
    for (const [v, n] of Object.entries(lg.catalogVersions)) {
      const d = n - (plg?.catalogVersions[v] ?? 0);
      if (d > 0) versions[v] = d;
    }
    client = {
      browse: clientRow(plg?.browse, lg.browse, seconds), checkout: clientRow(plg?.checkout, lg.checkout, seconds),
      paymentsDirect: clientRow(plg?.paymentsDirect, lg.paymentsDirect, seconds), versions, versionsTotal: { ...lg.catalogVersions },
    };
  }

  return {
    t: Math.round((cur.at - startedAt) / 1000),
    services: [...services.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([service, r]) => ({
      service, rps: r.all / seconds, success: r.all ? r.ok / r.all : null, p99ms: r.all ? (quantile(0.99, r.buckets) ?? 0) * 1000 : null, failures: r.failures,
    })),
    mtls: [...mtls.values()].sort((a, b) => a.source.localeCompare(b.source) || a.destination.localeCompare(b.destination)),
    denials: [...denials.values()].sort((a, b) => b.total - a.total),
    bpf, agents, client, reload: cur.reload ?? null,
  };
}
