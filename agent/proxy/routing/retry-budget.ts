// Retry budget (Linkerd/Finagle style): over a sliding window, retries may add at most
// `ratio` of the original requests plus `minRetriesPerSecond` per second, so a failing
// backend sees bounded extra load instead of attempts x traffic.
const SLOTS = 10;
const SLOT_MS = 1000;

export class RetryBudget {
  private readonly requests = new Float64Array(SLOTS);
  private readonly retries = new Float64Array(SLOTS);
  private slotStart = 0;
  private slot = 0;
  /** Retries refused because the budget was spent (for tests and metrics). */
  refused = 0;

  constructor(private readonly ratio: number, private readonly minPerSecond: number) {}

  private advance(now: number): void {
    if (this.slotStart === 0) { this.slotStart = now; return; }
    let steps = Math.floor((now - this.slotStart) / SLOT_MS);
    if (steps <= 0) return;
    this.slotStart += steps * SLOT_MS;
    if (steps > SLOTS) steps = SLOTS;
    while (steps-- > 0) {
      this.slot = (this.slot + 1) % SLOTS;
      this.requests[this.slot] = 0;
      this.retries[this.slot] = 0;
    }
  }

  /** Counts one original request. */
  deposit(now: number): void { this.advance(now); this.requests[this.slot]!++; }

  /** Takes one retry from the budget; false when the budget is spent. */
  withdraw(now: number): boolean {
    this.advance(now);
    let req = 0, ret = 0;
    for (let i = 0; i < SLOTS; i++) { req += this.requests[i]!; ret += this.retries[i]!; }
    if (ret + 1 > this.minPerSecond * SLOTS + this.ratio * req) { this.refused++; return false; }
    this.retries[this.slot]!++;
    return true;
  }
}
