// deploy/monitoring: the alert rules pass `promtool check rules` and their unit tests
// (`promtool test rules`, one or more per alert), the PrometheusRule manifest and the
// dashboard are what `npm run monitoring:gen` makes from their sources, and every
// dashboard panel has a title, a unit and PromQL that Prometheus' own parser accepts.
// (test/e2e/monitoring.test.ts checks the metric names against a running agent and
// control API, and evaluates every query in a real Prometheus.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { requires } from '../lib/privileges';
import { ROOT } from '../lib/weft';
import {
  DASHBOARD_FILE, MONITORING, PROMETHEUS_RULE_FILE, RULES_FILE, RULES_TEST_FILE,
  dashboard, dashboardQueries, ruleGroups, substituteVariables,
} from '../lib/monitoring';

const promtool = (...args: string[]) => {
  const r = spawnSync('promtool', args, { cwd: MONITORING, encoding: 'utf8' });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
};

test('monitoring: promtool check rules accepts the alert rules', (t) => {
  if (!requires(t, { commands: ['promtool'] })) return;
  const r = promtool('check', 'rules', RULES_FILE);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, new RegExp(`SUCCESS: ${ruleGroups().flatMap((g) => g.rules).length} rules found`));
});

test('monitoring: promtool test rules passes, with a unit test that fires each alert', (t) => {
  if (!requires(t, { commands: ['promtool'] })) return;
  const r = promtool('test', 'rules', RULES_TEST_FILE);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /SUCCESS/);
  const tests = (YAML.parse(readFileSync(RULES_TEST_FILE, 'utf8')) as { tests: { alert_rule_test?: { alertname: string; exp_alerts: unknown[] }[] }[] }).tests;
  const fired = new Set(tests.flatMap((x) => x.alert_rule_test ?? []).filter((a) => a.exp_alerts.length > 0).map((a) => a.alertname));
  const alerts = ruleGroups().flatMap((g) => g.rules).map((r) => r.alert).filter((a): a is string => !!a);
  assert.deepEqual(alerts.filter((a) => !fired.has(a)), [], 'alerts without a unit test that fires them');
  for (const want of ['WeftCertificateNotRenewed', 'WeftCertificateExpiringSoon', 'WeftPolicyChangeRejected', 'WeftAgentNacking', 'WeftAgentStaleSnapshot',
    'WeftAgentDown', 'WeftFailOpenTraffic', 'WeftStrictDropsRising', 'WeftControlAPIUnreachable']) assert.ok(alerts.includes(want), `alert ${want}`);
  for (const r of ruleGroups().flatMap((g) => g.rules)) {
    assert.ok(r.labels?.severity && r.annotations?.summary && r.annotations.description, `${r.alert}: severity, summary, description`);
  }
});

test('monitoring: the PrometheusRule and the dashboard are what monitoring:gen makes from their sources', () => {
  const gen = require(join(ROOT, 'scripts', 'gen-monitoring.js')) as { prometheusRule(text: string): string; dashboardText(): string };
  const rules = readFileSync(RULES_FILE, 'utf8');
  assert.equal(readFileSync(PROMETHEUS_RULE_FILE, 'utf8'), gen.prometheusRule(rules), 'prometheusrule.yaml is stale: npm run monitoring:gen');
  assert.equal(readFileSync(DASHBOARD_FILE, 'utf8'), gen.dashboardText(), 'weft-dashboard.json is stale: npm run monitoring:gen');
  const pr = YAML.parse(readFileSync(PROMETHEUS_RULE_FILE, 'utf8')) as { apiVersion: string; kind: string; metadata: { namespace: string }; spec: { groups: unknown } };
  assert.equal(pr.apiVersion, 'monitoring.coreos.com/v1');
  assert.equal(pr.kind, 'PrometheusRule');
  assert.equal(pr.metadata.namespace, 'weft-system');
  assert.deepEqual(pr.spec.groups, ruleGroups(), 'the PrometheusRule carries exactly the rules file\'s groups');
});

test('monitoring: the dashboard is current Grafana schema: datasource variable, and every panel titled, with a unit and queries', () => {
  const d = dashboard();
  assert.ok(d.schemaVersion >= 39, `schemaVersion ${d.schemaVersion}`);
  assert.ok(d.uid && d.title);
  const ds = d.templating.list.find((v) => v.type === 'datasource');
  assert.ok(ds && ds.name === 'datasource' && ds.query === 'prometheus', 'a datasource variable for Prometheus');
  const ids = new Set<number>();
  const panels = d.panels.filter((p) => p.type !== 'row');
  assert.ok(panels.length >= 15, `${panels.length} panels`);
  for (const p of d.panels) {
    assert.ok(!ids.has(p.id), `panel id ${p.id} unique`);
    ids.add(p.id);
    assert.ok(p.gridPos.x + p.gridPos.w <= 24 && p.gridPos.w > 0 && p.gridPos.h > 0, `panel ${p.id} fits the 24-column grid`);
    assert.ok(p.title && p.title.trim(), `panel ${p.id} has a title`);
  }
  for (const p of panels) {
    assert.ok(['timeseries', 'stat', 'table', 'bargauge', 'gauge'].includes(p.type), `${p.title}: panel type ${p.type}`);
    assert.equal(p.datasource?.uid, '${datasource}', `${p.title}: uses the datasource variable`);
    assert.ok(typeof p.fieldConfig?.defaults?.unit === 'string' && p.fieldConfig.defaults.unit.length > 0, `${p.title}: fieldConfig.defaults.unit`);
    assert.ok(p.targets && p.targets.length > 0, `${p.title}: targets`);
    for (const t of p.targets) assert.ok(t.expr.trim() && t.refId && t.datasource?.uid === '${datasource}', `${p.title}: target ${t.refId}`);
  }
  // What the issue asks the dashboard to show.
  const text = d.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)).join('\n');
  for (const want of ['weft_requests_total{reporter="source"', 'weft_requests_total{reporter="destination"', 'by (source_principal', 'weft_request_duration_seconds_bucket',
    'weft_bpf_connect_balanced_total', 'weft_bpf_fail_open_total', 'weft_bpf_strict_drops_total', 'weft_policy_snapshot_version', 'weft_certificate_expiry_timestamp_seconds']) {
    assert.ok(text.includes(want), `the dashboard shows ${want}`);
  }
});

test('monitoring: every dashboard query is PromQL that Prometheus parses (promtool check rules on them as recording rules)', (t) => {
  if (!requires(t, { commands: ['promtool'] })) return;
  const queries = dashboardQueries();
  const dir = mkdtempSync(join(tmpdir(), 'wt-dashq-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'queries.yaml');
  writeFileSync(file, YAML.stringify({ groups: [{ name: 'dashboard', rules: queries.map((q, i) => ({ record: `weft_dashboard_query_${i}`, expr: substituteVariables(q.expr) })) }] }));
  const r = promtool('check', 'rules', file);
  assert.equal(r.code, 0, `a dashboard query does not parse:\n${r.out}`);
  assert.match(r.out, new RegExp(`SUCCESS: ${queries.length} rules found`));
  // And the check can fail: a broken query is refused.
  writeFileSync(file, YAML.stringify({ groups: [{ name: 'dashboard', rules: [{ record: 'weft_dashboard_broken', expr: 'sum by (node (rate(weft_agent_workers[1m]))' }] }] }));
  assert.notEqual(promtool('check', 'rules', file).code, 0, 'promtool refuses a broken query');
});
