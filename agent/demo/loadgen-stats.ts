// The traffic driver's own counters, as it writes them (a JSON file, replaced atomically
// every 250 ms) and the live view reads them. They are the client's view of the
// mesh — what a user would see — next to the agents' metrics.

export interface OutcomeCounts {
  sent: number;
  ok: number;
  failed: number;
  /** HTTP status or gRPC status name → count; transport errors under their error code. */
  outcomes: Record<string, number>;
}

export interface LoadgenStats {
  /** ms since the epoch of the last update. */
  at: number;
  rps: number;
  /** GET /product/N on frontend (frontend → catalog + cache). */
  browse: OutcomeCounts;
  /** catalog version named in successful browse answers → count (the canary split). */
  catalogVersions: Record<string, number>;
  /** GET /checkout on frontend (frontend → payments, which allows frontend). */
  checkout: OutcomeCounts;
  /** loadgen calling payments itself: the mesh must refuse it. */
  paymentsDirect: OutcomeCounts;
}

export function emptyCounts(): OutcomeCounts { return { sent: 0, ok: 0, failed: 0, outcomes: {} }; }
