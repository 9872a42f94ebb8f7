// Power-of-two-choices over peak-EWMA cost (as Linkerd's balancer): sample two distinct
// endpoints at random, take the cheaper. O(1) per pick, no global sort, and it avoids
// the herd behaviour of always picking the global minimum.
import type { EndpointState } from './endpoint';

/** Picks from `eps`, skipping ejected endpoints; null when none is available. */
export function pickP2C(eps: readonly EndpointState[], now: number): EndpointState | null {
  const n = eps.length;
  if (n === 0) return null;
  if (n === 1) return available(eps[0]!, now) ? eps[0]! : null;
  let a = eps[(Math.random() * n) | 0]!;
  let b = eps[(Math.random() * (n - 1)) | 0]!;
  if (b === a) b = eps[n - 1]!;
  const okA = available(a, now), okB = available(b, now);
  if (okA && okB) return a.cost(now) <= b.cost(now) ? a : b;
  if (okA) return a;
  if (okB) return b;
  // Both samples ejected: fall back to a scan so a mostly-ejected cluster still serves.
  let best: EndpointState | null = null;
  for (const e of eps) if (available(e, now) && (best === null || e.cost(now) < best.cost(now))) best = e;
  return best;
}

/** Round robin over the rotation, skipping ejected endpoints. */
export function pickRoundRobin(eps: readonly EndpointState[], now: number, start: number): EndpointState | null {
  for (let i = 0; i < eps.length; i++) {
    const e = eps[(start + i) % eps.length]!;
    if (available(e, now)) return e;
  }
  return null;
}

/** Least request: P2C on in-flight count only (Envoy's LEAST_REQUEST). */
export function pickLeastRequest(eps: readonly EndpointState[], now: number): EndpointState | null {
  const n = eps.length;
  if (n <= 1) return pickRoundRobin(eps, now, 0);
  const a = eps[(Math.random() * n) | 0]!, b = eps[(Math.random() * n) | 0]!;
  const okA = available(a, now), okB = available(b, now);
  if (okA && okB) return a.inflight <= b.inflight ? a : b;
  return okA ? a : okB ? b : pickRoundRobin(eps, now, (Math.random() * n) | 0);
}

/** The workload's Maglev entry; while its endpoint is ejected, the next entries in
 *  table order (so the callers of an ejected endpoint spread over the others, and come
 *  back to it when the ejection ends). */
export function pickMaglev(table: readonly EndpointState[], now: number, entry: number): EndpointState | null {
  for (let i = 0; i < table.length; i++) {
    const e = table[(entry + i) % table.length]!;
    if (available(e, now)) return e;
  }
  return null;
}

function available(e: EndpointState, now: number): boolean {
  return e.ejectedUntil === 0 || e.ejectedUntil <= now;
}
