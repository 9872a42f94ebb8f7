// A cluster is the set of endpoints behind one (service, port), with the knobs a
// TrafficPolicy sets: circuit-breaking limits, outlier detection and the retry budget.
// It outlives snapshots: `update` keeps EndpointState (latency history, ejections,
// pooled connections) for endpoints that stay.
import { EndpointState, type Endpoint } from './endpoint';
import { pickLeastRequest, pickMaglev, pickP2C, pickRoundRobin } from './p2c';
import { maglevEntry, maglevTable } from '../../lib/maglev';
import type { LoadBalancerType } from '../../policy/snapshot';
import { OutlierDetector, type EjectionListener, type OutlierSettings } from './outlier';
import { RetryBudget } from '../routing/retry-budget';

export interface ClusterLimits {
  connectTimeoutMs: number;
  /** Upstream connections across the cluster (circuit breaker). */
  maxConnections: number;
  /** Requests waiting for a connection. */
  maxPendingRequests: number;
  /** Requests in flight. */
  maxRequests: number;
  /** Requests per upstream connection before it is retired (0 = unlimited). */
  maxRequestsPerConnection: number;
}

export interface ClusterSettings {
  /** Default P2C_PEAK_EWMA. MAGLEV hashes the calling workload (its cgroup id) over the
   *  same table the kernel uses for L4 services (agent/lib/maglev.ts). */
  loadBalancer?: LoadBalancerType;
  limits?: Partial<ClusterLimits>;
  outlier?: OutlierSettings;
  retryBudget?: { ratio: number; minRetriesPerSecond: number };
}

export const DEFAULT_LIMITS: ClusterLimits = {
  connectTimeoutMs: 5000, maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 4096, maxRequestsPerConnection: 0,
};

/** The default retry budget when a TrafficPolicy sets none (Linkerd's default). */
const DEFAULT_BUDGET = { ratio: 0.2, minRetriesPerSecond: 10 };

export class Cluster {
  endpoints: EndpointState[] = [];
  limits: ClusterLimits = DEFAULT_LIMITS;
  budget: RetryBudget = new RetryBudget(DEFAULT_BUDGET.ratio, DEFAULT_BUDGET.minRetriesPerSecond);
  outlier: OutlierDetector | null = null;
  /** Open upstream connections, requests waiting for one, requests in flight. */
  connections = 0;
  pending = 0;
  active = 0;
  /** Requests refused by a circuit breaker (overflow). */
  overflows = 0;
  private lb: LoadBalancerType = 'P2C_PEAK_EWMA';
  private rr = 0;
  /** MAGLEV only: entry -> endpoint. */
  private maglev: EndpointState[] = [];
  private budgetKey = '';
  private outlierKey = '';

  constructor(readonly name: string, private readonly onEjection: EjectionListener) {}

  /** Applies a new endpoint set and settings, keeping state of endpoints that stay. */
  update(endpoints: { endpoint: Endpoint; weight?: number }[], settings: ClusterSettings = {}): EndpointState[] {
    const old = new Map(this.endpoints.map((e) => [e.key, e]));
    const next: EndpointState[] = [];
    for (const { endpoint, weight } of endpoints) {
      const key = `${endpoint.ip}:${endpoint.port}`;
      const kept = old.get(key);
      if (kept) old.delete(key);
      // Endpoint weight is honoured by repetition: P2C samples proportionally.
      const e = kept ?? new EndpointState(endpoint, weight ?? 1);
      next.push(e);
    }
    this.endpoints = [];
    for (const e of next) for (let i = 0; i < Math.max(1, Math.min(16, Math.round(e.weight))); i++) this.endpoints.push(e);
    this.limits = { ...DEFAULT_LIMITS, ...settings.limits };
    this.lb = settings.loadBalancer ?? 'P2C_PEAK_EWMA';
    this.maglev = this.lb === 'MAGLEV' ? [...maglevTable(next.map((e) => e.key), next.map((e) => e.weight))].map((i) => next[i]!) : [];
    const b = settings.retryBudget ?? DEFAULT_BUDGET;
    const bk = `${b.ratio}/${b.minRetriesPerSecond}`;
    if (bk !== this.budgetKey) { this.budget = new RetryBudget(b.ratio, b.minRetriesPerSecond); this.budgetKey = bk; }
    const ok = settings.outlier ? JSON.stringify(settings.outlier) : '';
    if (ok !== this.outlierKey) {
      this.outlier?.close();
      this.outlier = settings.outlier ? new OutlierDetector(this.name, () => this.unique(), settings.outlier, this.onEjection) : null;
      this.outlierKey = ok;
    }
    // Endpoints that left: an ejection of theirs is over as far as the datapath cares.
    for (const gone of old.values()) if (gone.ejectedUntil !== 0) this.onEjection(this.name, gone, false);
    return [...old.values()];
  }

  /** Distinct endpoints (the rotation repeats weighted ones). */
  unique(): EndpointState[] { return [...new Set(this.endpoints)]; }

  /** `caller`: the cgroup id of the workload that made the request (MAGLEV hashes it). */
  pick(now: number, caller: bigint | number = 0): EndpointState | null {
    switch (this.lb) {
      case 'MAGLEV': return pickMaglev(this.maglev, now, maglevEntry(caller, this.maglev.length || 1));
      case 'ROUND_ROBIN': return pickRoundRobin(this.endpoints, now, this.rr++);
      case 'RANDOM': return pickRoundRobin(this.endpoints, now, (Math.random() * this.endpoints.length) | 0);
      case 'LEAST_REQUEST': return pickLeastRequest(this.endpoints, now);
      default: return pickP2C(this.endpoints, now);
    }
  }

  close(): void { this.outlier?.close(); }
}
