// Operators' view: the agent's /metrics is valid for `promtool check metrics`, a real
// Prometheus server scrapes it (up == 1), and the kernel counters are exported.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { requires } from '../lib/privileges';
import { startOneNodeMesh } from '../lib/mesh';
import { policyFile } from '../lib/policies';

const policies = (node: string) => policyFile(node, [
  { name: 'web', vip: '10.96.0.30', port: 80, targetPort: 8080, protocol: 'TCP', workloads: { 'web-1': '10.250.0.21' } },
]);

test('promtool accepts /metrics and Prometheus scrapes the agent (up == 1)', { timeout: 120_000 }, async (t) => {
  if (!requires(t, { bpffs: true, netns: true, cgroup2: true, commands: ['promtool', 'prometheus', 'curl'] })) return;
  const mesh = await startOneNodeMesh('prom', policies);
  t.after(() => mesh.close());
  const { ns, dir } = mesh;

  const metrics = await ns.exec(['curl', '-sf', 'http://127.0.0.1:15020/metrics']);
  assert.equal(metrics.code, 0, metrics.stderr);
  for (const name of ['weft_bpf_connect_balanced_total', 'weft_policy_snapshot_version', 'weft_process_resident_memory_bytes']) {
    assert.match(metrics.stdout, new RegExp(`^${name}`, 'm'), `${name} missing from /metrics`);
  }
  const check = await ns.exec(['promtool', 'check', 'metrics'], { input: metrics.stdout });
  assert.equal(check.code, 0, `promtool check metrics:\n${check.stdout}${check.stderr}`);
  assert.equal((check.stdout + check.stderr).trim(), '', `promtool reported problems:\n${check.stdout}${check.stderr}`);

  writeFileSync(join(dir, 'prometheus.yml'), [
    'global: {scrape_interval: 1s, evaluation_interval: 1s}',
    'scrape_configs:',
    '  - job_name: weft-agent',
    '    static_configs: [{targets: ["127.0.0.1:15020"]}]',
  ].join('\n') + '\n');
  const prom = mesh.spawn(['prometheus', `--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'tsdb')}`,
    '--web.listen-address=127.0.0.1:19090']);
  t.after(() => prom.proc.kill('SIGKILL'));
  const deadline = Date.now() + 60_000;
  let last = '';
  for (;;) {
    const r = await ns.exec(['curl', '-sf', 'http://127.0.0.1:19090/api/v1/query?query=up%7Bjob%3D%22weft-agent%22%7D']);
    last = r.stdout || r.stderr;
    if (r.code === 0) {
      const body = JSON.parse(r.stdout) as { data: { result: { value: [number, string] }[] } };
      if (body.data.result[0]?.value[1] === '1') break;
    }
    assert.ok(Date.now() < deadline, `Prometheus never saw up == 1: ${last}\n${prom.logs.slice(-10).join('\n')}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  const series = await ns.exec(['curl', '-sf', 'http://127.0.0.1:19090/api/v1/query?query=weft_bpf_connect_balanced_total']);
  assert.match(series.stdout, /"weft_bpf_connect_balanced_total"/, 'the kernel counters reached Prometheus');
});
