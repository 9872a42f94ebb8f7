#!/usr/bin/env node
'use strict';
// Writes the generated monitoring artefacts in deploy/monitoring/ (`npm run monitoring:gen`;
// test/unit/monitoring.test.ts fails when a committed file differs from what this makes):
//   prometheusrule.yaml  a Prometheus Operator PrometheusRule with the groups of the plain
//                        rules file weft-alerts.rules.yaml, the one source of the alerts
//   weft-dashboard.json  the Grafana dashboard (schemaVersion 39), from the panel list below
const { readFileSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');
const YAML = require('yaml');

const DIR = join(__dirname, '..', 'deploy', 'monitoring');
const RULES = join(DIR, 'weft-alerts.rules.yaml');
const OUT = join(DIR, 'prometheusrule.yaml');
const DASHBOARD = join(DIR, 'weft-dashboard.json');

const DS = { type: 'prometheus', uid: '${datasource}' };
const N = 'node=~"$node"';
const R = '$__rate_interval';

// [title, unit, description, targets: [expr, legend][], options]
const ROWS = [
  ['Mesh: services (source side, every agent)', [
    ['Requests by service', 'reqps', 'L7 requests per second, as the calling side\'s agent saw them.',
      [[`sum by (destination_service) (rate(weft_requests_total{reporter="source", ${N}}[${R}]))`, '{{destination_service}}']]],
    ['Success rate by service', 'percentunit', 'Share of requests answered 2xx/3xx (and gRPC status 0).',
      [[`sum by (destination_service) (rate(weft_requests_total{reporter="source", ${N}, response_code=~"[23]..", grpc_status=~"|0"}[${R}])) / sum by (destination_service) (rate(weft_requests_total{reporter="source", ${N}}[${R}]))`, '{{destination_service}}']],
      { min: 0, max: 1 }],
    ['Latency by service (p50, p99)', 's', 'First byte in to last byte out, at the calling side.',
      [[`histogram_quantile(0.99, sum by (destination_service, le) (rate(weft_request_duration_seconds_bucket{reporter="source", ${N}}[${R}])))`, 'p99 {{destination_service}}'],
        [`histogram_quantile(0.5, sum by (destination_service, le) (rate(weft_request_duration_seconds_bucket{reporter="source", ${N}}[${R}])))`, 'p50 {{destination_service}}']]],
    ['Failed requests by service and code', 'reqps', 'HTTP responses other than 2xx/3xx, and gRPC statuses other than OK.',
      [[`sum by (destination_service, response_code) (rate(weft_requests_total{reporter="source", ${N}, response_code!~"[23].."}[${R}]))`, '{{destination_service}} HTTP {{response_code}}'],
        [`sum by (destination_service, grpc_status) (rate(weft_requests_total{reporter="source", ${N}, grpc_status!~"|0"}[${R}]))`, '{{destination_service}} gRPC {{grpc_status}}']]],
  ]],
  ['Mesh: source identities (destination side, verified mTLS peers)', [
    ['Requests by source identity', 'reqps', 'Requests each verified caller identity made, per destination service.',
      [[`sum by (source_principal, destination_service) (rate(weft_requests_total{reporter="destination", ${N}}[${R}]))`, '{{source_principal}} → {{destination_service}}']]],
    ['Success rate by source identity', 'percentunit', 'Share of each caller\'s requests answered 2xx/3xx (gRPC OK); 403 here is AuthorizationPolicy.',
      [[`sum by (source_principal) (rate(weft_requests_total{reporter="destination", ${N}, response_code=~"[23]..", grpc_status=~"|0"}[${R}])) / sum by (source_principal) (rate(weft_requests_total{reporter="destination", ${N}}[${R}]))`, '{{source_principal}}']],
      { min: 0, max: 1 }],
    ['Latency by source identity (p99)', 's', 'At the destination side.',
      [[`histogram_quantile(0.99, sum by (source_principal, le) (rate(weft_request_duration_seconds_bucket{reporter="destination", ${N}}[${R}])))`, '{{source_principal}}']]],
    ['mTLS connections by source identity', 'cps', 'Connections opened per second through the mTLS tunnel, by the verified client identity.',
      [[`sum by (source_principal, destination_workload) (rate(weft_tcp_connections_opened_total{reporter="destination", connection_security_policy="mutual_tls", ${N}}[${R}]))`, '{{source_principal}} → {{destination_workload}}']]],
    ['Refused connections', 'cps', 'Connections refused by AuthorizationPolicy or identity checks, by reason.',
      [[`sum by (source_principal, destination_workload, reason) (rate(weft_tcp_connections_denied_total{${N}}[${R}]))`, '{{source_principal}} → {{destination_workload}} ({{reason}})']]],
    ['Proxied bytes', 'Bps', 'TCP bytes the agents proxied, both directions.',
      [[`sum by (node) (rate(weft_tcp_sent_bytes_total{${N}}[${R}]))`, 'sent {{node}}'],
        [`sum by (node) (rate(weft_tcp_received_bytes_total{${N}}[${R}]))`, 'received {{node}}']]],
  ]],
  ['Kernel (weft_bpf_*)', [
    ['Connects', 'cps', 'connect() calls the kernel balanced itself (L4), redirected to the agent (L7/mTLS), or refused for want of a backend.',
      [[`sum by (node) (rate(weft_bpf_connect_balanced_total{${N}}[${R}]))`, 'balanced in kernel {{node}}'],
        [`sum by (node) (rate(weft_bpf_connect_redirected_total{${N}}[${R}]))`, 'redirected to agent {{node}}'],
        [`sum by (node) (rate(weft_bpf_no_backend_total{${N}}[${R}]))`, 'no backend {{node}}']]],
    ['Socket splicing', 'cps', 'Same-node socket pairs put into the sockmap (and skipped), and messages moved socket to socket.',
      [[`sum by (node) (rate(weft_bpf_sockmap_inserts_total{${N}}[${R}]))`, 'sockmap inserts {{node}}'],
        [`sum by (node) (rate(weft_bpf_sockmap_skipped_total{${N}}[${R}]))`, 'skipped {{node}}'],
        [`sum by (node) (rate(weft_bpf_msg_redirected_total{${N}}[${R}]))`, 'messages spliced {{node}}'],
        [`sum by (node) (rate(weft_bpf_msg_miss_total{${N}}[${R}]))`, 'splice misses {{node}}']]],
    ['Spliced bytes', 'Bps', 'Bytes moved socket to socket by sk_msg, skipping the TCP/IP stack.',
      [[`sum by (node) (rate(weft_bpf_msg_redirected_bytes_total{${N}}[${R}]))`, '{{node}}']]],
    ['Fail-open, fail-closed and STRICT drops', 'cps', 'Redirect-mode connects while no agent listened (balanced in the kernel: fail-open; refused: fail-closed), and SYNs from outside the node dropped under mTLS STRICT.',
      [[`sum by (node) (rate(weft_bpf_fail_open_total{${N}}[${R}]))`, 'fail-open {{node}}'],
        [`sum by (node) (rate(weft_bpf_fail_closed_total{${N}}[${R}]))`, 'fail-closed {{node}}'],
        [`sum by (node) (rate(weft_bpf_strict_drops_total{${N}}[${R}]))`, 'STRICT drops {{node}}']]],
  ]],
  ['Control plane, snapshots and certificates', [
    ['Snapshot per node', 'none', 'The policy snapshot version each agent serves, and the control API\'s (node empty). A node on another version than the control API has not applied the latest change.',
      [[`max by (node, version) (weft_policy_snapshot_version{${N}, node!=""} == 1)`, '{{node}} {{version}}'],
        ['max by (version) (weft_policy_snapshot_version{node=""} == 1)', 'control {{version}}']], { table: true }],
    ['Last policy reload', 'none', 'Whether the control API accepted the last policy change (1) or rejected it (0). weft status on a node lists the file:line:col of each problem.',
      [['min(weft_control_last_reload_success)', 'accepted']], { stat: true }],
    ['Policy rejections and NACKs', 'short', 'Policy changes the control API rejected, and snapshots agents refused to apply, per 5 minutes.',
      [['sum(increase(weft_control_policy_rejections_total[5m]))', 'rejected changes'],
        ['sum(increase(weft_control_nacks_total[5m]))', 'agent NACKs']]],
    ['Control API connections', 'short', 'Agents with an open Sync stream (control API\'s count) and agents that say they are connected.',
      [['sum(weft_control_connected_agents)', 'control: connected agents'],
        [`sum(weft_agent_control_connected{${N}})`, 'agents: connected']]],
    ['Certificate time left', 's', 'Until each workload and node certificate expires (renewed at half-life: less than 40 % of the TTL left means renewal is failing).',
      [[`min by (node, identity) (weft_certificate_expiry_timestamp_seconds{${N}}) - time()`, '{{node}} {{identity}}']], { table: true, thresholds: [[null, 'red'], [3600, 'orange'], [34560, 'green']] }],
    ['Control API compile time (p99)', 's', 'Load, validate and compile the policy tree.',
      [[`histogram_quantile(0.99, sum by (le) (rate(weft_control_compile_duration_seconds_bucket[${R}])))`, 'p99']]],
    ['Agent workers', 'short', 'Worker processes serving per node (the primary and the proxy workers).',
      [[`sum by (node) (weft_agent_workers{${N}})`, '{{node}}']]],
    ['Agent memory', 'bytes', 'Resident memory of every agent process, per node.',
      [[`sum by (node) (weft_process_resident_memory_bytes{${N}})`, '{{node}}']]],
  ]],
];

/** The Grafana dashboard (schemaVersion 39). */
function dashboard() {
  const panels = [];
  let id = 1, y = 0;
  for (const [rowTitle, list] of ROWS) {
    panels.push({ id: id++, type: 'row', title: rowTitle, collapsed: false, gridPos: { h: 1, w: 24, x: 0, y }, panels: [] });
    y += 1;
    list.forEach(([title, unit, description, targets, opt = {}], i) => {
      const table = opt.table === true, stat = opt.stat === true;
      const defaults = { unit, ...(opt.min !== undefined ? { min: opt.min } : {}), ...(opt.max !== undefined ? { max: opt.max } : {}) };
      defaults.thresholds = { mode: 'absolute', steps: (opt.thresholds ?? [[null, 'green']]).map(([value, color]) => ({ value, color })) };
      if (stat) {
        defaults.mappings = [{ type: 'value', options: { 0: { text: 'REJECTED', color: 'red', index: 0 }, 1: { text: 'accepted', color: 'green', index: 1 } } }];
      } else if (!table) {
        defaults.custom = { drawStyle: 'line', lineWidth: 1, fillOpacity: 10, showPoints: 'never', spanNulls: false };
      }
      defaults.color = { mode: table || stat ? 'thresholds' : 'palette-classic' };
      const panel = {
        id: id++,
        type: table ? 'table' : stat ? 'stat' : 'timeseries',
        title,
        description,
        datasource: DS,
        gridPos: { h: 8, w: 12, x: (i % 2) * 12, y: y + Math.floor(i / 2) * 8 },
        fieldConfig: { defaults, overrides: [] },
        options: table ? { showHeader: true, cellHeight: 'sm', footer: { show: false, reducer: ['sum'], fields: '' } }
          : stat ? { reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false }, colorMode: 'background', graphMode: 'none', textMode: 'value', justifyMode: 'auto', orientation: 'auto' }
          : { legend: { displayMode: 'table', placement: 'bottom', showLegend: true, calcs: ['mean', 'max'] }, tooltip: { mode: 'multi', sort: 'desc' } },
        targets: targets.map(([expr, legendFormat], t) => ({
          refId: String.fromCharCode(65 + t), datasource: DS, expr, legendFormat,
          ...(table || stat ? { instant: true, range: false, format: table ? 'table' : 'time_series' } : { instant: false, range: true }),
        })),
        ...(table ? { transformations: [{ id: 'labelsToFields', options: { mode: 'columns' } }] } : {}),
      };
      panels.push(panel);
    });
    y += Math.ceil(list.length / 2) * 8;
  }
  return {
    title: 'weft: mesh and nodes',
    uid: 'weft-mesh',
    description: 'weft service mesh: requests, success and latency per service and per source identity, kernel counters, fail-open and STRICT drops, snapshots per node, certificate expiry. Scrape jobs: weft-agent (admin :15020 of every agent), weft-control (the control API --admin port).',
    tags: ['weft', 'service-mesh', 'ebpf'],
    schemaVersion: 39,
    version: 1,
    editable: true,
    graphTooltip: 1,
    timezone: 'browser',
    time: { from: 'now-1h', to: 'now' },
    refresh: '30s',
    annotations: { list: [{ builtIn: 1, datasource: { type: 'grafana', uid: '-- Grafana --' }, enable: true, hide: true, iconColor: 'rgba(0, 211, 255, 1)', name: 'Annotations & Alerts', type: 'dashboard' }] },
    templating: {
      list: [
        { name: 'datasource', label: 'Data source', type: 'datasource', query: 'prometheus', current: {}, hide: 0, refresh: 1, regex: '', options: [], includeAll: false, multi: false },
        {
          name: 'node', label: 'Node', type: 'query', datasource: DS,
          definition: 'label_values(weft_agent_workers, node)',
          query: { query: 'label_values(weft_agent_workers, node)', refId: 'PrometheusVariableQueryEditor-VariableQuery', qryType: 1 },
          includeAll: true, multi: true, allValue: '.*', current: { selected: true, text: ['All'], value: ['$__all'] },
          refresh: 2, sort: 1, hide: 0, regex: '', options: [],
        },
      ],
    },
    links: [],
    panels,
  };
}

/** The PrometheusRule manifest text for the rules file's text. */
function prometheusRule(rulesText) {
  const { groups } = YAML.parse(rulesText);
  const doc = {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: {
      name: 'weft',
      namespace: 'weft-system',
      labels: { 'app.kubernetes.io/part-of': 'weft', 'app.kubernetes.io/name': 'weft-alerts' },
    },
    spec: { groups },
  };
  return '# GENERATED from weft-alerts.rules.yaml by `npm run monitoring:gen`: edit that file, not this one.\n'
    + '# For clusters running the Prometheus Operator: kubectl apply -f deploy/monitoring/prometheusrule.yaml\n'
    + YAML.stringify(doc, { lineWidth: 0 });
}

const dashboardText = () => `${JSON.stringify(dashboard(), null, 2)}\n`;

if (require.main === module) {
  writeFileSync(OUT, prometheusRule(readFileSync(RULES, 'utf8')));
  writeFileSync(DASHBOARD, dashboardText());
  process.stdout.write(`wrote ${OUT}\nwrote ${DASHBOARD}\n`);
}

module.exports = { prometheusRule, dashboardText, RULES, OUT, DASHBOARD };
