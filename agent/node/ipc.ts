// The messages a `weft agent` supervisor and its workers exchange over the IPC channel
// (node's 'advanced' serialization: structured clone, so bigints and Dates survive).
//
// Roles: worker 0 is the PRIMARY — it owns the node's singletons (BPF datapath writes,
// the control sync client, workload registration, the identity manager's CSRs and
// renewals, the admin listener). Every other worker is a PROXY worker: it accepts on the
// shared outbound (15001) and inbound (15008) sockets and runs only the L7/tunnel plane,
// fed by the primary through the supervisor (workers never talk to each other directly:
// the supervisor is the only process that knows them all, and it outlives them).
import type { NodeView } from '../policy/snapshot';
import type { CertificateInfo, TlsMaterial } from '../identity/manager';
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { AccessRecord } from '../proxy/routing/access-log';
import type { LocalWorkload } from './workloads';

export type WorkerRole = 'primary' | 'proxy';

/** One identity's current key, chain and bundle, as the primary's IdentityManager has it. */
export interface IdentityEntry { info: CertificateInfo; material: TlsMaterial }

export interface IdentityState {
  trustDomain: string;
  failMode: 'open' | 'closed';
  /** Identities the node manages; those without a certificate yet have `entry: null`. */
  identities: { spiffeId: string; entry: IdentityEntry | null }[];
  trustBundle: string[];
}

/** What a proxy worker needs to serve: each field is replaced whole when present. */
export interface NodeState {
  view?: NodeView;
  workloads?: LocalWorkload[];
  identity?: IdentityState;
  /** Someone runs `weft tap` on the primary: forward access records. */
  tapping?: boolean;
}

export type WorkerMetrics = MetricObjectWithValues<MetricValue<string>>[];

export interface WorkerInfo { worker: number; role: WorkerRole; pid: number }

/** Worker → supervisor. */
export type WorkerMessage =
  | { type: 'ready' }
  /** The worker cannot start (sent just before it exits): why, for the supervisor's exit. */
  | { type: 'fatal'; reason: string }
  /** A proxy worker (re)started and listens for messages: send it the cached state. */
  | { type: 'hello' }
  /** Primary: publish a state change; the supervisor answers 'state-synced' with the
   *  same seq once every proxy worker applied it (or the sync timeout passed). */
  | { type: 'state'; seq: number; state: NodeState }
  /** Proxy worker: it applied the state with this seq. */
  | { type: 'state-applied'; seq: number }
  /** Proxy worker: its outlier detection ejected (or restored) an endpoint. */
  | { type: 'ejection'; service: string; ip: string; port: number; ejected: boolean }
  /** Proxy worker: a completed request, while tapping (see NodeState.tapping). */
  | { type: 'access'; record: AccessRecord }
  /** Primary: collect every other worker's metrics for a scrape. */
  | { type: 'collect-metrics'; id: number }
  /** Any worker: its metrics, answering the supervisor's 'collect-metrics'. */
  | { type: 'metrics'; id: number; metrics: WorkerMetrics };

/** Supervisor → worker. */
export type SupervisorMessage =
  | { type: 'drain'; graceMs: number }
  | { type: 'state'; seq: number; state: NodeState }
  | { type: 'state-synced'; seq: number; lagging: number[] }
  /** To the primary: a proxy worker's ejection change (by pid: a replaced worker's
   *  ejections end with it, its slot's next process starts with none). */
  | { type: 'ejection'; pid: number; service: string; ip: string; port: number; ejected: boolean }
  | { type: 'collect-metrics'; id: number }
  /** To the primary: a proxy worker's access record for `weft tap`. */
  | { type: 'access'; record: AccessRecord }
  /** To the primary whenever the set of serving workers changes (for `weft status`). */
  | { type: 'workers'; workers: WorkerInfo[] }
  /** To the primary: the other workers' metrics (those that answered in time). */
  | { type: 'worker-metrics'; id: number; workers: (WorkerInfo & { metrics: WorkerMetrics })[]; missing: WorkerInfo[] };
