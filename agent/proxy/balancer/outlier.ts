// Outlier detection (Envoy/Istio semantics, reduced to what TrafficPolicy expresses):
// consecutive 5xx or consecutive gateway errors (502/503/504, connect failure, reset)
// eject an endpoint for baseEjectionTime x (number of times ejected), never more than
// maxEjectionPercent of the cluster at once. Ejections are reported through
// `onEjectionChange` so the integrator can drop the endpoint from the L4 maps as well.
import type { EndpointState } from './endpoint';

export interface OutlierSettings {
  consecutive5xx?: number;
  consecutiveGatewayErrors?: number;
  intervalMs: number;
  baseEjectionTimeMs: number;
  maxEjectionPercent: number;
}

export type EjectionListener = (service: string, endpoint: EndpointState, ejected: boolean) => void;

export class OutlierDetector {
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly service: string,
    private readonly endpoints: () => readonly EndpointState[],
    private readonly settings: OutlierSettings,
    private readonly onChange: EjectionListener,
  ) {
    // Re-admission runs on the configured interval; picks already treat an expired
    // ejection as available, the sweep only reports it and resets counters.
    this.timer = setInterval(() => this.sweep(performance.now()), Math.max(50, settings.intervalMs));
    this.timer.unref();
  }

  /** Records the outcome of one request. `gatewayError` covers 502-504 and transport failures. */
  record(e: EndpointState, status: number, gatewayError: boolean, now: number): void {
    if (status >= 500 || gatewayError) {
      e.consecutive5xx++;
      if (gatewayError) e.consecutiveGatewayErrors++;
      const s = this.settings;
      if ((s.consecutive5xx !== undefined && e.consecutive5xx >= s.consecutive5xx) ||
          (s.consecutiveGatewayErrors !== undefined && e.consecutiveGatewayErrors >= s.consecutiveGatewayErrors)) {
        this.eject(e, now);
      }
    } else if (e.consecutive5xx !== 0 || e.consecutiveGatewayErrors !== 0) {
      e.consecutive5xx = 0;
      e.consecutiveGatewayErrors = 0;
    }
  }

  private eject(e: EndpointState, now: number): void {
    if (e.ejectedUntil > now) return;
    const eps = this.endpoints();
    let ejected = 0;
    for (const x of eps) if (x.ejectedUntil > now) ejected++;
    if (((ejected + 1) * 100) / eps.length > this.settings.maxEjectionPercent) return;
    e.ejections++;
    e.ejectedUntil = now + this.settings.baseEjectionTimeMs * e.ejections;
    e.consecutive5xx = 0;
    e.consecutiveGatewayErrors = 0;
    this.onChange(this.service, e, true);
  }

  sweep(now: number): void {
    for (const e of this.endpoints()) {
      if (e.ejectedUntil !== 0 && e.ejectedUntil <= now) {
        e.ejectedUntil = 0;
        this.onChange(this.service, e, false);
      }
    }
  }

  close(): void { clearInterval(this.timer); }
}
