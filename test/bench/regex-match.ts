// Micro-benchmark of the route matcher's regex engine (bench:l7 has no regex route):
// ops/s of JavaScript's RegExp (the engine before, compiled as ^(?:P)$) against the
// policy matcher now (re2js, RE2 semantics) on typical route regexes, in the same run.
// Usage: node --import tsx test/bench/regex-match.ts   (REGEX_BENCH_MS per case, default 1000)
import { compilePolicyRegex } from '../../agent/policy/regex';

const MS = Number(process.env.REGEX_BENCH_MS ?? 1000);
const cases: { name: string; pattern: string; inputs: string[] }[] = [
  { name: 'path /items/[0-9]+', pattern: '/items/[0-9]+', inputs: ['/items/12345', '/items/abc', '/users/1'] },
  { name: 'path /api/v[12]/.*', pattern: '/api/v[12]/.*', inputs: ['/api/v1/orders/42?x', '/api/v3/x', '/static/app.js'] },
  { name: 'header (?i)(chrome|firefox).*', pattern: '(?i).*(chrome|firefox).*', inputs: ['Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36', 'curl/8.5.0'] },
  { name: 'gRPC /pkg.Svc/[^/]+', pattern: '/shop\\.Payments/[^/]+', inputs: ['/shop.Payments/Charge', '/shop.Catalog/List'] },
  { name: 'header canary-[a-f0-9]{8}', pattern: 'canary-[a-f0-9]{8}', inputs: ['canary-deadbeef', 'stable'] },
];

function opsPerSec(test: (s: string) => boolean, inputs: string[]): number {
  let n = 0, sink = 0;
  const end = process.hrtime.bigint() + BigInt(MS) * 1_000_000n;
  while (process.hrtime.bigint() < end) {
    for (let k = 0; k < 1000; k++) { if (test(inputs[k % inputs.length]!)) sink++; }
    n += 1000;
  }
  if (sink < 0) console.log(sink);
  return n / (MS / 1000);
}

const rows: string[][] = [['case', 'RegExp ops/s', 're2js ops/s', 're2js / RegExp']];
for (const c of cases) {
  const js = new RegExp(`^(?:${c.pattern.replace('(?i)', '')})$`, c.pattern.startsWith('(?i)') ? 'i' : '');
  const r = compilePolicyRegex(c.pattern);
  if (!('regex' in r)) throw new Error(r.error);
  for (const i of c.inputs) if (js.test(i) !== r.regex.test(i)) throw new Error(`engines disagree on ${c.pattern} / ${i}`);
  opsPerSec((s) => js.test(s), c.inputs); opsPerSec((s) => r.regex.test(s), c.inputs); // warm-up
  const a = opsPerSec((s) => js.test(s), c.inputs), b = opsPerSec((s) => r.regex.test(s), c.inputs);
  rows.push([c.name, a.toExponential(2), b.toExponential(2), (b / a).toFixed(3)]);
}
// The attack: (a+)+$ on "a"×n + "!" — exponential for RegExp, so only a small n for it.
const evil = '(a+)+$';
const jsEvil = new RegExp(`^(?:${evil})$`);
const re2Evil = compilePolicyRegex(evil);
if (!('regex' in re2Evil)) throw new Error(re2Evil.error);
for (const n of [20, 24]) {
  const s = `${'a'.repeat(n)}!`;
  const t0 = process.hrtime.bigint(); jsEvil.test(s); const t1 = process.hrtime.bigint(); re2Evil.regex.test(s); const t2 = process.hrtime.bigint();
  rows.push([`(a+)+$ on ${n} a's + "!" (one match, ms)`, (Number(t1 - t0) / 1e6).toFixed(1), (Number(t2 - t1) / 1e6).toFixed(3), '']);
}
{
  const s = `${'a'.repeat(50 * 1024)}!`;
  const t0 = process.hrtime.bigint(); re2Evil.regex.test(s); const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  rows.push(['(a+)+$ on 50 KB (one match, ms)', 'never returns', ms.toFixed(1), '']);
}
const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
for (const r of rows) process.stdout.write(`${r.map((c, i) => c.padEnd(w[i]!)).join('  ')}\n`);
