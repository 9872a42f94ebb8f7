// Reconnect delays: exponential growth capped at maxMs, with "equal jitter" (a delay is
// uniformly drawn from [d/2, d]) so a fleet of agents that lost the control API at the
// same moment does not reconnect in lockstep, while each agent still waits at least half
// the nominal delay (pure "full jitter" can retry immediately, over and over).
import { invalidArg } from '../lib/errors';

export interface BackoffOptions {
  baseMs?: number;
  maxMs?: number;
  /** Injected for tests; defaults to Math.random. */
  random?: () => number;
}

export class Backoff {
  readonly baseMs: number;
  readonly maxMs: number;
  private readonly random: () => number;
  private attempt = 0;

  constructor(opts: BackoffOptions = {}) {
    this.baseMs = opts.baseMs ?? 100;
    this.maxMs = opts.maxMs ?? 10_000;
    this.random = opts.random ?? Math.random;
    if (!(this.baseMs > 0) || !(this.maxMs >= this.baseMs)) throw invalidArg(`backoff: need 0 < baseMs <= maxMs, got ${this.baseMs}, ${this.maxMs}`);
  }

  /** The nominal (un-jittered) delay of the next attempt. */
  nominal(): number {
    return Math.min(this.maxMs, this.baseMs * 2 ** Math.min(this.attempt, 30));
  }

  /** The delay before the next attempt; each call counts as one failed attempt. */
  next(): number {
    const d = this.nominal();
    this.attempt++;
    return d / 2 + this.random() * (d / 2);
  }

  /** After a success, start again from baseMs. */
  reset(): void {
    this.attempt = 0;
  }
}
