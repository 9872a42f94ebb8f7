// Route regexes run on what clients send. On a backtracking engine a pattern like
// (a+)+$ and one crafted 50 KB header take exponential time and freeze a proxy worker;
// policy regexes now run with RE2 semantics (linear), and what RE2 cannot run
// (backreferences, lookaround) is refused by `weft validate` and the control API's
// loader, located at the pattern.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isolate } from './policy-isolate';
import { validateReport } from '../../agent/cli/validate';
import { loadPolicyTexts } from '../../agent/policy';

const EVIL = '(a+)+$';

function routePolicy(match: string): string {
  return `apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: api, namespace: shop}
spec:
  vip: 10.96.0.10
  selector: {app: api}
  ports: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: api-0, namespace: shop, labels: {app: api}}
spec: {address: 10.250.0.5, node: n1}
---
apiVersion: weft.dev/v1alpha1
kind: HTTPRoute
metadata: {name: api, namespace: shop}
spec:
  parentRefs: [{name: api, port: 80}]
  rules:
    - matches: [${match}]
      backendRefs: [{name: api, port: 80}]
`;
}

// Compiles the policy exactly as control and agent do (loader, compiler, node view, the
// proxy's route table) and times selectRoute() on the crafted request.
const MATCH_IN_WORKER = `
  const { loadPolicyTexts, compile, forNode } = require('./agent/policy');
  const { L7Directory } = require('./agent/proxy/routing/directory');
  const { selectRoute } = require('./agent/proxy/routing/table');
  const set = loadPolicyTexts([{ file: 'route.yaml', text: input.policy }]);
  if (set.diagnostics.length) throw new Error(JSON.stringify(set.diagnostics));
  const dir = new L7Directory();
  dir.apply(forNode(compile(set, []), 'n1'));
  const routes = dir.lookup('10.96.0.10', 80);
  const req = (r) => ({ method: 'GET', path: r.path ?? '/', query: r.query ?? '', header: (n) => (r.headers ?? {})[n] });
  const warm = selectRoute(routes, req({ path: '/a', query: 'q=a', headers: { 'x-probe': 'a' } })).name;
  const t0 = process.hrtime.bigint();
  const crafted = selectRoute(routes, req(input.request)).name;
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  return { warm, crafted, ms };
`;

const crafted = 'a'.repeat(50 * 1024) + '!';
const cases: { where: string; match: string; request: { path?: string; query?: string; headers?: Record<string, string> } }[] = [
  { where: 'header', match: `{headers: [{name: x-probe, type: RegularExpression, value: "${EVIL}"}]}`, request: { headers: { 'x-probe': crafted } } },
  { where: 'path', match: `{path: {type: RegularExpression, value: "/${EVIL}"}}`, request: { path: `/${crafted}` } },
  { where: 'query', match: `{queryParams: [{name: q, type: RegularExpression, value: "${EVIL}"}]}`, request: { query: `q=${crafted}` } },
];

for (const c of cases) {
  test(`regex ${EVIL} in a ${c.where} match: a 50 KB crafted ${c.where} is matched in under 100 ms`, async () => {
    const r = await isolate<{ warm: string; crafted: string; ms: number }>(MATCH_IN_WORKER, { policy: routePolicy(c.match), request: c.request }, { timeoutMs: 5000 });
    assert.ok(r.ok, `the matcher did not return: ${r.ok ? '' : `${r.reason}: ${r.message}`}`);
    assert.equal(r.value.warm, 'shop/api#0', 'the route matches an ordinary request');
    assert.equal(r.value.crafted, 'default', 'the crafted value does not match (it ends in "!"): the fallback serves it');
    assert.ok(r.value.ms < 100, `matching took ${r.value.ms.toFixed(1)} ms`);
  });
}

function validateOne(name: string, text: string): { code: number; stdout: string } {
  const dir = mkdtempSync(join(tmpdir(), 'wt-sec-regex-'));
  writeFileSync(join(dir, name), text);
  const cwd = process.cwd();
  process.chdir(dir);
  try { return validateReport([name], 'text'); } finally { process.chdir(cwd); }
}

/** "line:col" (1-based) of the first occurrence of `needle` in `text`. */
function posOf(text: string, needle: string): string {
  const i = text.indexOf(needle);
  assert.ok(i >= 0, `${needle} not in the policy`);
  const before = text.slice(0, i).split('\n');
  return `${before.length}:${before[before.length - 1]!.length + 1}`;
}

const RE2_ONLY = '(RE2 syntax: matching must stay linear in the input)';

test('weft validate refuses patterns RE2 cannot run (lookbehind, lookahead, backreference), at file:line:col of the pattern', () => {
  const text = routePolicy(
    '{path: {type: RegularExpression, value: "(?<=/api)/items"}, headers: [{name: x-a, type: RegularExpression, value: "(a)\\\\1"}, {name: x-b, type: RegularExpression, value: "v(?!1)"}]}');
  const r = validateOne('route.yaml', text);
  assert.equal(r.code, 1);
  assert.equal(r.stdout,
    `route.yaml:${posOf(text, '"(?<=/api)')}: spec.rules[0].matches[0].path.value: invalid regular expression "(?<=/api)/items": lookbehind (?<=...) is not supported ${RE2_ONLY}\n` +
    `route.yaml:${posOf(text, '"(a)')}: spec.rules[0].matches[0].headers[0].value: invalid regular expression "(a)\\\\1": backreferences (\\1) are not supported ${RE2_ONLY}\n` +
    `route.yaml:${posOf(text, '"v(?!1)"')}: spec.rules[0].matches[0].headers[1].value: invalid regular expression "v(?!1)": negative lookahead (?!...) is not supported ${RE2_ONLY}\n`);
});

test('the control API refuses the same patterns: the loader it uses reports them with file:line:col', () => {
  const text = routePolicy('{headers: [{name: x-a, type: RegularExpression, value: "(?<=a)b"}]}');
  const r = loadPolicyTexts([{ file: 'git/route.yaml', text }]);
  assert.deepEqual(r.diagnostics.map((d) => `${d.file}:${d.line}:${d.col}`), [`git/route.yaml:${posOf(text, '"(?<=a)b"')}`]);
  assert.match(r.diagnostics[0]!.message, /lookbehind/);
});

test('anchoring is unchanged: a policy regex must match the whole value', async () => {
  const r = await isolate<string[]>(`
    const { loadPolicyTexts, compile, forNode } = require('./agent/policy');
    const { L7Directory } = require('./agent/proxy/routing/directory');
    const { selectRoute } = require('./agent/proxy/routing/table');
    const set = loadPolicyTexts([{ file: 'route.yaml', text: input }]);
    if (set.diagnostics.length) throw new Error(JSON.stringify(set.diagnostics));
    const dir = new L7Directory();
    dir.apply(forNode(compile(set, []), 'n1'));
    const routes = dir.lookup('10.96.0.10', 80);
    return ['/items/42', '/items/42/x', '/v1/items/42', '/items/4a2', '/items/'].map((path) =>
      selectRoute(routes, { method: 'GET', path, query: '', header: () => undefined }).name);
  `, routePolicy('{path: {type: RegularExpression, value: "/items/[0-9]+"}}'), { timeoutMs: 5000 });
  assert.ok(r.ok, r.ok ? '' : r.message);
  assert.deepEqual(r.value, ['shop/api#0', 'default', 'default', 'default', 'default']);
});
