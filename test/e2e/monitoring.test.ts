// deploy/monitoring against the real thing: every metric name the dashboard and the alert
// rules use is exported by a running agent or control API, and a real Prometheus (Debian's)
// scraping both, with the rules loaded, evaluates every rule without error and every
// dashboard query successfully; the snapshot-per-node query shows this node.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { requires } from '../lib/privileges';
import { startOneNodeMesh, type OneNodeMesh } from '../lib/mesh';
import { policyFile } from '../lib/policies';
import { RULES_FILE, dashboardQueries, exposedNames, ruleGroups, substituteVariables, usedMetricNames } from '../lib/monitoring';

const policies = (node: string) => policyFile(node, [
  { name: 'web', vip: '10.96.0.34', port: 80, targetPort: 8080, protocol: 'HTTP', workloads: { 'web-1': '10.250.0.34' } },
]);
const PROM = '127.0.0.1:19091';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function api<T>(mesh: OneNodeMesh, path: string): Promise<T> {
  const r = await mesh.ns.exec(['curl', '-s', `http://${PROM}${path}`]);
  assert.equal(r.code, 0, `${path}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

test('dashboard and alert rules: metric names exist on a running agent and control API; Prometheus evaluates every rule and query', { timeout: 180_000 }, async (t) => {
  if (!requires(t, { bpffs: true, netns: true, cgroup2: true, commands: ['promtool', 'prometheus', 'curl'] })) return;
  const mesh = await startOneNodeMesh('opsmon', policies);
  t.after(() => mesh.close());

  const scrape = async (port: number) => {
    const r = await mesh.ns.exec(['curl', '-sf', `http://127.0.0.1:${port}/metrics`]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  };
  const exposed = new Set([...exposedNames(await scrape(15020)), ...exposedNames(await scrape(15011))]);
  const used = usedMetricNames();
  assert.ok(used.size >= 25, `${used.size} metric names used`);
  const missing = [...used].filter(([n]) => !exposed.has(n)).map(([n, where]) => `${n} (${where.join(', ')})`);
  assert.deepEqual(missing, [], 'metric names the dashboard or the rules use that neither the agent nor the control API exports');

  writeFileSync(join(mesh.dir, 'prometheus.yml'), [
    'global: {scrape_interval: 1s, evaluation_interval: 1s}',
    `rule_files: [${JSON.stringify(RULES_FILE)}]`,
    'scrape_configs:',
    '  - job_name: weft-agent',
    '    static_configs: [{targets: ["127.0.0.1:15020"]}]',
    '  - job_name: weft-control',
    '    static_configs: [{targets: ["127.0.0.1:15011"]}]',
  ].join('\n') + '\n');
  const prom = mesh.spawn(['prometheus', `--config.file=${join(mesh.dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(mesh.dir, 'tsdb')}`, `--web.listen-address=${PROM}`]);
  t.after(() => prom.proc.kill('SIGKILL'));

  // Both targets up, and every rule evaluated at least once.
  type Rules = { data: { groups: { rules: { name: string; health: string; lastError?: string; lastEvaluation: string; state?: string }[] }[] } };
  const deadline = Date.now() + 60_000;
  for (;;) {
    let ok = false, why = '';
    try {
      const up = await api<{ data: { result: { metric: { job: string }; value: [number, string] }[] } }>(mesh, '/api/v1/query?query=up');
      const jobsUp = up.data.result.filter((r) => r.value[1] === '1').map((r) => r.metric.job).sort();
      const rules = (await api<Rules>(mesh, '/api/v1/rules')).data.groups.flatMap((g) => g.rules);
      ok = jobsUp.join() === 'weft-agent,weft-control' && rules.length === ruleGroups().flatMap((g) => g.rules).length && rules.every((r) => !r.lastEvaluation.startsWith('0001'));
      why = `up: ${jobsUp.join()}; rules: ${rules.length}`;
    } catch (e) { why = (e as Error).message; }
    if (ok) break;
    assert.ok(Date.now() < deadline, `Prometheus not scraping both targets and evaluating the rules: ${why}\n${prom.logs.slice(-10).join('\n')}`);
    await sleep(500);
  }
  await sleep(3_000); // a few scrapes, so rate() has two points
  const rules = (await api<Rules>(mesh, '/api/v1/rules')).data.groups.flatMap((g) => g.rules);
  assert.deepEqual(rules.filter((r) => r.health !== 'ok').map((r) => `${r.name}: ${r.health} ${r.lastError}`), [], 'every rule evaluates');
  // A healthy mesh raises nothing (a certificate, the reload, the snapshot, the connection
  // are all fine here).
  assert.deepEqual(rules.filter((r) => r.state === 'firing' || r.state === 'pending').map((r) => r.name), [], 'no alert on a healthy mesh');

  for (const q of dashboardQueries()) {
    const r = await api<{ status: string; error?: string; data?: { result: unknown[] } }>(mesh, `/api/v1/query?query=${encodeURIComponent(substituteVariables(q.expr))}`);
    assert.equal(r.status, 'success', `panel '${q.panel}': ${q.expr}: ${r.error}`);
  }
  const perNode = await api<{ data: { result: { metric: { node?: string; version?: string } }[] } }>(mesh,
    `/api/v1/query?query=${encodeURIComponent(substituteVariables(dashboardQueries().find((q) => q.panel === 'Snapshot per node')!.expr))}`);
  assert.deepEqual(perNode.data.result.map((r) => r.metric.node), [mesh.node], 'the snapshot table lists this node');
  assert.match(perNode.data.result[0]!.metric.version ?? '', /^[0-9a-f]{16}$/);
  const certs = await api<{ data: { result: { value: [number, string] }[] } }>(mesh,
    `/api/v1/query?query=${encodeURIComponent(substituteVariables(dashboardQueries().find((q) => q.panel === 'Certificate time left')!.expr))}`);
  assert.ok(certs.data.result.length >= 1 && certs.data.result.every((r) => Number(r.value[1]) > 3600), 'certificate time left is shown (and not about to expire)');
});
