// The monitoring artefacts in deploy/monitoring/ as tests read them: the alert rules, the
// Grafana dashboard's queries, and the metric names both use.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { ROOT } from './weft';

export const MONITORING = join(ROOT, 'deploy', 'monitoring');
export const RULES_FILE = join(MONITORING, 'weft-alerts.rules.yaml');
export const RULES_TEST_FILE = join(MONITORING, 'weft-alerts.test.yaml');
export const PROMETHEUS_RULE_FILE = join(MONITORING, 'prometheusrule.yaml');
export const DASHBOARD_FILE = join(MONITORING, 'weft-dashboard.json');

export interface Rule { alert?: string; record?: string; expr: string; for?: string; labels?: Record<string, string>; annotations?: Record<string, string> }
export interface RuleGroup { name: string; rules: Rule[] }

export function ruleGroups(): RuleGroup[] {
  return (YAML.parse(readFileSync(RULES_FILE, 'utf8')) as { groups: RuleGroup[] }).groups;
}

export interface Panel {
  id: number; type: string; title?: string; datasource?: { type: string; uid: string };
  fieldConfig?: { defaults?: { unit?: string } };
  targets?: { refId: string; expr: string; datasource?: { uid: string } }[];
  gridPos: { h: number; w: number; x: number; y: number };
}
export interface Dashboard {
  schemaVersion: number; uid: string; title: string; panels: Panel[];
  templating: { list: { name: string; type: string; query: unknown; definition?: string }[] };
}

export function dashboard(): Dashboard {
  return JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as Dashboard;
}

/** Every PromQL expression of the dashboard's panels, with its panel. */
export function dashboardQueries(d: Dashboard = dashboard()): { panel: string; expr: string }[] {
  return d.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title ?? `#${p.id}`, expr: t.expr })));
}

/** Grafana's variables replaced by what they stand for in a query Prometheus evaluates. */
export function substituteVariables(expr: string): string {
  return expr.replace(/\$__rate_interval/g, '1m').replace(/\$__range/g, '1h').replace(/\$__interval/g, '30s').replace(/\$node/g, '.*');
}

/** weft_* metric names a PromQL text (or a label_values() query) refers to. */
export function metricNames(text: string): string[] {
  return [...new Set([...text.matchAll(/\b(weft_[a-z0-9_]+)\b/g)].map((m) => m[1]!))];
}

/** Every weft_* name used by the alert rules and the dashboard (queries and variables). */
export function usedMetricNames(): Map<string, string[]> {
  const used = new Map<string, string[]>();
  const add = (where: string, text: string) => { for (const n of metricNames(text)) used.set(n, [...(used.get(n) ?? []), where]); };
  for (const g of ruleGroups()) for (const r of g.rules) add(`rule ${r.alert ?? r.record}`, r.expr);
  const d = dashboard();
  for (const q of dashboardQueries(d)) add(`panel '${q.panel}'`, q.expr);
  for (const v of d.templating.list) add(`variable $${v.name}`, JSON.stringify(v.query ?? '') + (v.definition ?? ''));
  return used;
}

/** Sample names a /metrics exposition can produce: every # TYPE'd family, with the
 *  _bucket/_sum/_count series of histograms and summaries. */
export function exposedNames(text: string): Set<string> {
  const out = new Set<string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const [name, type] = [m[1]!, m[2]!];
    out.add(name);
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) out.add(name + s);
    if (type === 'summary') for (const s of ['_sum', '_count']) out.add(name + s);
  }
  for (const m of text.matchAll(/^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]/gm)) out.add(m[1]!);
  return out;
}
