// Small measurement helpers the benches share: nearest-rank percentiles and a
// process's memory from /proc.
import { readFileSync } from 'node:fs';

/** The nearest-rank percentile `p` (0–100) of `xs`; NaN for no samples. */
export function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]! : NaN;
}

/** Resident set size now and its peak (VmHWM), in MB. */
export function procMemMb(pid: number): { rss: number; peak: number } {
  const st = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(st)?.[1] ?? NaN);
  return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
}
