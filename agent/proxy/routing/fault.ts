// Fault injection (Gateway API / Istio HTTPFaultInjection): a percentage of requests is
// delayed, and a percentage is answered with a fixed status instead of being forwarded.
export interface FaultSpec {
  delay?: { percent: number; fixedDelayMs: number };
  abort?: { percent: number; httpStatus?: number; grpcStatus?: number };
}

/** Delay in ms to apply to this request (0 = none). */
export function faultDelay(f: FaultSpec): number {
  return f.delay !== undefined && Math.random() * 100 < f.delay.percent ? f.delay.fixedDelayMs : 0;
}

/** True when this request is to be aborted. */
export function faultAbort(f: FaultSpec): boolean {
  return f.abort !== undefined && Math.random() * 100 < f.abort.percent;
}
