// Local token bucket per route (Envoy local_ratelimit semantics): `tokensPerFill`
// tokens are added every `fillIntervalMs`, up to `maxTokens`. Refill is computed lazily
// on each take, so an idle route costs no timer.
export class TokenBucket {
  private tokens: number;
  private last = 0;

  constructor(private readonly maxTokens: number, private readonly tokensPerFill: number, private readonly fillIntervalMs: number) {
    this.tokens = maxTokens;
  }

  take(now: number): boolean {
    if (this.last === 0) this.last = now;
    const fills = Math.floor((now - this.last) / this.fillIntervalMs);
    if (fills > 0) {
      this.tokens = Math.min(this.maxTokens, this.tokens + fills * this.tokensPerFill);
      this.last += fills * this.fillIntervalMs;
    }
    if (this.tokens < 1) return false;
    this.tokens--;
    return true;
  }
}
