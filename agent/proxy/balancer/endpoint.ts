// Per-endpoint state shared by the HTTP/1.1 and HTTP/2 paths: the peak-EWMA latency
// estimate the balancer ranks by, in-flight count, and outlier-detection counters.
// One instance lives as long as the endpoint stays in its cluster across snapshots, so
// latency history and ejections survive a policy update.

/** An upstream address plus what the integrator needs to choose a transport. */
export interface Endpoint {
  ip: string;
  port: number;
  /** Free-form metadata from the snapshot (workload key, node, SPIFFE identity...). */
  meta?: Record<string, string>;
}

export interface Drainable { drain(): void }

/** Decay time constant of the latency estimate (Linkerd uses 10 s). */
const TAU_MS = 10_000;
/** Latency assumed for an endpoint never measured, so new ones are tried but not flooded. */
const DEFAULT_RTT_MS = 1;

export class EndpointState {
  readonly key: string;
  /** Peak-EWMA of response latency in ms. */
  ewma = DEFAULT_RTT_MS;
  private stamp = 0;
  inflight = 0;
  consecutive5xx = 0;
  consecutiveGatewayErrors = 0;
  /** 0 when in rotation; otherwise performance.now() when the ejection ends. */
  ejectedUntil = 0;
  ejections = 0;
  /** Connection pools, owned by the protocol layers (HTTP/1.1 pools, HTTP/2 sessions),
   *  keyed by the source cgroup: upstream transports may carry the source's identity
   *  (mTLS client certificate), so connections are never shared across sources. */
  readonly h1 = new Map<bigint | number, Drainable>();
  readonly h2 = new Map<bigint | number, Drainable>();

  /** Closes idle connections of both protocols (endpoint removed or shutdown). */
  drain(): void {
    for (const p of this.h1.values()) p.drain();
    for (const p of this.h2.values()) p.drain();
    this.h1.clear();
    this.h2.clear();
  }

  constructor(readonly endpoint: Endpoint, readonly weight = 1) {
    this.key = `${endpoint.ip}:${endpoint.port}`;
  }

  /**
   * The cost P2C compares: expected latency scaled by queue depth. The estimate decays
   * while an endpoint gets no traffic (as Finagle's peak EWMA), so an endpoint that
   * lost a comparison once is probed again later instead of starving; one never
   * measured costs only its queue, so a new endpoint is tried at once.
   */
  cost(now: number): number {
    if (this.stamp === 0) return this.inflight * DEFAULT_RTT_MS;
    return this.ewma * Math.exp(-(now - this.stamp) / TAU_MS) * (this.inflight + 1);
  }

  /**
   * Folds one latency sample in. Peak-sensitive: a slower sample replaces the estimate
   * at once, a faster one decays it, so one slow endpoint is avoided quickly and
   * trusted again slowly.
   */
  observe(rttMs: number, now: number): void {
    if (rttMs > this.ewma) this.ewma = rttMs;
    else {
      const w = Math.exp(-(now - this.stamp) / TAU_MS);
      this.ewma = this.ewma * w + rttMs * (1 - w);
    }
    this.stamp = now;
  }
}
