// Waiting in tests, one of each: a plain delay, polling until a check holds, and waiting
// for a check to hold when something the test subscribes to wakes it (no polling).
//
//   await sleep(200);
//   const d = await until('the agent to program pod B', () => debug().then((d) => ready(d) && d), { timeoutMs: 30_000, everyMs: 100 });
//   const v = await waitFor(() => store.version(), (wake) => subscribe(wake), 5000, 'a version');

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A check's "not yet": undefined, null or false. */
type NotYet = undefined | null | false;

export interface UntilOptions {
  /** Give up after this long (default 10 s). */
  timeoutMs?: number;
  /** Delay between checks (default 20 ms). */
  everyMs?: number;
  /** A throwing check counts as "not yet" (its last error is in the timeout message);
   *  by default the error ends the wait. */
  retryErrors?: boolean;
  /** More for the timeout message, read when it is thrown (e.g. the state last seen). */
  explain?: () => string;
}

/** Calls `check` (immediately, then every `everyMs`) until it returns something other
 *  than undefined, null or false, and resolves with that; rejects after `timeoutMs`. */
export async function until<T>(what: string, check: () => T | NotYet | Promise<T | NotYet>, o: UntilOptions = {}): Promise<T> {
  const timeoutMs = o.timeoutMs ?? 10_000;
  const end = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== null && v !== false) return v;
    } catch (e) {
      if (!o.retryErrors) throw e;
      lastError = e;
    }
    if (Date.now() > end) {
      const why = o.explain ? `: ${o.explain()}` : lastError !== undefined ? `: ${(lastError as Error)?.message ?? String(lastError)}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await sleep(o.everyMs ?? 20);
  }
}

/** Resolves with `check`'s first value other than undefined, checking now and on every
 *  `wake` that `subscribe` arranges (it returns the unsubscribe); rejects after `ms`. A
 *  throwing check ends the wait with its error. */
export function waitFor<T>(check: () => T | undefined, subscribe: (wake: () => void) => () => void, ms = 5000, what = 'condition'): Promise<T> {
  return new Promise((resolve, reject) => {
    let unsub: () => void = () => undefined;
    let done = false;
    const timer = setTimeout(() => { done = true; unsub(); reject(new Error(`timed out after ${ms} ms waiting for ${what}`)); }, ms);
    const wake = () => {
      if (done) return;
      let v: T | undefined;
      try { v = check(); } catch (e) { done = true; clearTimeout(timer); unsub(); reject(e); return; }
      if (v !== undefined) { done = true; clearTimeout(timer); unsub(); resolve(v); }
    };
    unsub = subscribe(wake);
    wake();
  });
}
