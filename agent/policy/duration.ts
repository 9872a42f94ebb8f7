// Go-style durations ("1.5s", "250ms", "1h30m") → integer milliseconds. The schema
// (kinds.ts DURATION_PATTERN) has already rejected malformed strings.
import { WeftError } from '../lib/errors';

const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

export function durationMs(s: string): number {
  let total = 0;
  let matched = '';
  for (const m of s.matchAll(/([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)/g)) {
    total += Number(m[1]) * (UNIT_MS[m[2] as string] as number);
    matched += m[0];
  }
  if (!matched || matched !== s) throw new WeftError('WEFT_ERR_INVALID_ARG', `"${s}" is not a valid duration`);
  return Math.round(total);
}
