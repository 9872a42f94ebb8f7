// `weft demo | tee demo.log` and Ctrl-C (issue 18 items 2 and 6): SIGINT reaches the
// whole pipeline's process group, tee exits at once, and the demo must still remove
// everything before the shell returns; a broken policy edit shows in the live view with
// its file:line:col; a demo killed outright is removed by one `weft demo --cleanup`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requires } from '../lib/privileges';
import { ROOT, weftArgv } from '../lib/weft';
import { cgroup2Root } from '../../agent/datapath/layout';

const quote = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Everything a demo run (of any pid) leaves: namespaces, node pins and cgroups, processes. */
function leftovers(): string[] {
  const left = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0]!).filter((l) => l.startsWith('weft-demo-'));
  for (const dir of [join('/sys/fs/bpf', 'weft'), join(cgroup2Root(), 'weft')]) {
    if (existsSync(dir)) left.push(...readdirSync(dir).filter((n) => /^node-\d+$/.test(n)).map((n) => join(dir, n)));
  }
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    let cmd = '';
    try { cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' '); } catch { continue; }
    if (/10\.249\.0\.\d+:15020|demo\/app\/main|demo\/view-main|--node node-\d /.test(cmd)) left.push(`process ${pid}: ${cmd.slice(0, 120)}`);
  }
  return left;
}

function cleanupCli(): { code: number | null; out: string } {
  const [cmd, ...rest] = weftArgv('demo', '--cleanup');
  const r = spawnSync(cmd!, rest, { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

/** Starts `weft demo … 2>&1 | tee LOG` through sh in its own process group. */
function pipedDemo(policies: string, log: string) {
  const cmd = `${weftArgv('demo', '--duration', '600', '--policies', policies).map(quote).join(' ')} 2>&1 | tee ${quote(log)} >/dev/null`;
  const sh = spawn('sh', ['-c', cmd], { cwd: ROOT, detached: true, stdio: 'ignore' });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((r) => sh.once('exit', (code, signal) => r({ code, signal, at: Date.now() })));
  const text = () => { try { return readFileSync(log, 'utf8'); } catch { return ''; } };
  const waitFor = async (re: RegExp, ms: number, from = 0) => {
    for (const deadline = Date.now() + ms; ;) {
      const m = re.exec(text().slice(from));
      if (m) return m;
      assert.ok(Date.now() < deadline && sh.exitCode === null && sh.signalCode === null, `no ${re} in the demo's output:\n${text().slice(-3000)}`);
      await sleep(200);
    }
  };
  return { sh, exited, text, waitFor };
}

test('weft demo | tee, then SIGINT to the pipeline: a broken edit shows in the view, and the shell returns only once everything is removed', { timeout: 240_000 }, async (t) => {
  if (!requires(t, { bpffs: true, netns: true, cgroup2: true, commands: ['nsenter', 'tee', 'sh'] })) return;
  assert.deepEqual(leftovers(), [], 'leftovers of an earlier demo: run weft demo --cleanup');
  const dir = mkdtempSync(join(tmpdir(), 'wt-demopipe-'));
  const policies = join(dir, 'policies');
  cpSync(join(ROOT, 'policies'), policies, { recursive: true });
  const d = pipedDemo(policies, join(dir, 'demo.log'));
  t.after(() => {
    if (d.sh.exitCode === null && d.sh.signalCode === null) { try { process.kill(-d.sh.pid!, 'SIGKILL'); } catch { /* gone */ } }
    if (leftovers().length) cleanupCli();
    rmSync(dir, { recursive: true, force: true });
  });

  await d.waitFor(/live view every second/, 120_000);
  await d.waitFor(/^t=\d+s \|.*\| policy accepted$/m, 20_000);
  const broken = join(policies, 'shop', 'broken.yaml');
  const mark = d.text().length;
  writeFileSync(broken, 'apiVersion: weft.dev/v1alpha1\nkind: Service\nmetadata: {name: broken, namespace: shop}\nspec:\n  selector: {app: broken}\n  ports:\n    - {name: http, port: 99999, protocol: HTTP}\n');
  await d.waitFor(/^policy change REJECTED, still serving [0-9a-f]+:$/m, 15_000, mark);
  const diag = await d.waitFor(/^ {2}(\S+):(\d+):(\d+): (.+)$/m, 5_000, mark);
  assert.deepEqual([diag[1], diag[2], diag[3], diag[4]], [broken, '7', '26', 'spec.ports[0].port: must be <= 65535']);
  await d.waitFor(/\| policy REJECTED\(1\)$/m, 5_000, mark);

  // Ctrl-C in a terminal: SIGINT to every process of the pipeline (sh, the demo, tee).
  const sent = Date.now();
  process.kill(-d.sh.pid!, 'SIGINT');
  const exit = await Promise.race([d.exited, sleep(90_000).then(() => null)]);
  assert.ok(exit, 'the pipeline did not end within 90 s of SIGINT');
  const left = leftovers();
  t.diagnostic(`pipeline ended ${exit.at - sent} ms after SIGINT (sh: ${exit.code ?? exit.signal})`);
  assert.deepEqual(left, [], 'the demo left these behind when the shell returned');
  const again = cleanupCli();
  assert.equal(again.code, 0, again.out);
  assert.match(again.out, /nothing to remove/);
});

test('a demo killed outright (SIGKILL) is removed by one weft demo --cleanup', { timeout: 240_000 }, async (t) => {
  if (!requires(t, { bpffs: true, netns: true, cgroup2: true, commands: ['nsenter', 'tee', 'sh'] })) return;
  assert.deepEqual(leftovers(), [], 'leftovers of an earlier demo: run weft demo --cleanup');
  const dir = mkdtempSync(join(tmpdir(), 'wt-demokill-'));
  const d = pipedDemo(join(ROOT, 'policies'), join(dir, 'demo.log'));
  t.after(() => {
    if (d.sh.exitCode === null && d.sh.signalCode === null) { try { process.kill(-d.sh.pid!, 'SIGKILL'); } catch { /* gone */ } }
    if (leftovers().length) cleanupCli();
    rmSync(dir, { recursive: true, force: true });
  });
  await d.waitFor(/^t=\d+s \|/m, 120_000);
  // Only the demo process: its agents, workloads and namespaces stay behind.
  const demoPid = Number(execFileSync('pgrep', ['-g', String(d.sh.pid), '-f', ' demo --duration 600'], { encoding: 'utf8' }).split('\n').filter(Boolean)[0]);
  assert.ok(demoPid > 0);
  process.kill(demoPid, 'SIGKILL');
  // The pipeline stays (the live view, left running in its namespace, holds the pipe).
  while (existsSync(`/proc/${demoPid}`)) await sleep(100);
  assert.ok(leftovers().length > 0, 'a SIGKILLed demo leaves things behind (the test would prove nothing otherwise)');
  const once = cleanupCli();
  assert.equal(once.code, 0, once.out);
  assert.deepEqual(leftovers(), [], `one weft demo --cleanup removed everything:\n${once.out}`);
  await Promise.race([d.exited, sleep(10_000)]);
  assert.ok(d.sh.exitCode !== null || d.sh.signalCode !== null, 'the view went with its namespace, and with it the pipeline');
  const twice = cleanupCli();
  assert.equal(twice.code, 0, twice.out);
  assert.match(twice.out, /nothing to remove/);
});
