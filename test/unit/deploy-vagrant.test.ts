// The Vagrant cluster without Vagrant: the Vagrantfile is evaluated by ruby against a
// recording stand-in for Vagrant's configuration API, so the node list, addresses,
// sizes and provisioners are checked; the provisioning scripts go through shellcheck.
// Neither boots a VM (no VirtualBox here); vagrant/README.md says what that leaves open.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { packageRoot } from '../../agent/lib/paths';
import { formatDiagnostic, loadPolicyDir } from '../../agent/policy';

const ROOT = packageRoot();
const VAGRANT = join(ROOT, 'vagrant');

/** Tools from scripts/install-deps.sh: skipped where missing, required under CI. */
function requireTool(t: TestContext, tool: string): boolean {
  if (!spawnSync(tool, ['--version']).error) return true;
  assert.notEqual(process.env.CI, 'true', `${tool} is required under CI (scripts/install-deps.sh installs it)`);
  t.skip(`${tool} is not installed`);
  return false;
}

// Records every call and assignment on `config` as [path, args, keywords]. Blocks are run
// with a recorder whose path includes the first string argument (the node or provider).
const RECORDER = String.raw`
require 'json'
class Rec
  def initialize(path, log) @path = path; @log = log end
  def method_missing(name, *args, **kw, &blk)
    n = name.to_s
    if n.end_with?('=') then @log << [(@path + [n.chomp('=')]).join('.'), args[0]]; return args[0] end
    @log << [(@path + [n]).join('.'), args, kw]
    sub = @path + [n] + (args.first.is_a?(String) ? [args.first] : [])
    blk.call(Rec.new(sub, @log)) if blk
    Rec.new(@path + [n], @log)
  end
  def respond_to_missing?(*) true end
end
module Vagrant
  def self.configure(version) $log = []; yield Rec.new(['config'], $log) end
end
Dir.chdir(File.dirname(ARGV[0])) { load ARGV[0] }
puts JSON.generate($log)
`;

type Entry = [string, unknown, Record<string, unknown>?];

test('vagrant: three 2-CPU/2 GB bookworm nodes on 192.168.56.0/24, control on node-1', (t) => {
  if (!requireTool(t, 'ruby')) return;
  // Evaluated in a copy, so the token it writes next to itself lands in a temp dir.
  const dir = mkdtempSync(join(tmpdir(), `wt-vagrant-${process.pid}-`));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  copyFileSync(join(VAGRANT, 'Vagrantfile'), join(dir, 'Vagrantfile'));
  symlinkSync(join(VAGRANT, 'provision'), join(dir, 'provision'));
  const evaluate = (): Entry[] => {
    const r = spawnSync('ruby', ['-e', RECORDER, join(dir, 'Vagrantfile')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as Entry[];
  };
  const log = evaluate();
  // One bootstrap token per VM, made on the host; the control API's list names each.
  const tokenOf = (n: string) => readFileSync(join(dir, '.weft-tokens', n), 'utf8');
  const tokens = ['node-1', 'node-2', 'node-3'].map(tokenOf);
  for (const tk of tokens) assert.match(tk, /^[0-9a-f]{64}$/, 'a bootstrap token per node is made on the host');
  assert.equal(new Set(tokens).size, 3, 'no two nodes share a token');
  for (const f of ['node-1', 'control']) assert.equal(statSync(join(dir, '.weft-tokens', f)).mode & 0o777, 0o600);
  assert.equal(readFileSync(join(dir, '.weft-tokens', 'control'), 'utf8'), tokens.map((tk, i) => `node-${i + 1} ${tk}\n`).join(''));
  evaluate();
  assert.deepEqual(['node-1', 'node-2', 'node-3'].map(tokenOf), tokens, 'and kept across vagrant commands');
  const value = (path: string): unknown => log.find(([p]) => p === path)?.[1];
  const calls = (path: string): Entry[] => log.filter(([p]) => p === path);
  assert.equal(value('config.vm.box'), 'debian/bookworm64');
  const nodes = calls('config.vm.define').map(([, args]) => (args as string[])[0]);
  assert.deepEqual(nodes, ['node-1', 'node-2', 'node-3']);
  for (const [i, node] of nodes.entries()) {
    const p = `config.vm.define.${node}`;
    const address = `192.168.56.1${i + 1}`;
    assert.equal(value(`${p}.vm.hostname`), node);
    assert.deepEqual(calls(`${p}.vm.network`).map(([, a, kw]) => [a, kw]), [[['private_network'], { ip: address }]]);
    assert.equal(value(`${p}.vm.provider.virtualbox.cpus`), 2);
    assert.equal(value(`${p}.vm.provider.virtualbox.memory`), 2048);
    const all = calls(`${p}.vm.provision`).map(([, a, kw]) => ({ type: (a as string[])[0], ...(kw as { path: string; args?: string[]; source?: string; destination?: string }) }));
    // Each VM is sent its own token only (file provisioner), node-1 also the control list.
    const files = all.filter((pr) => pr.type === 'file').map((pr) => [basename(pr.source!), pr.destination]);
    assert.deepEqual(files, i === 0
      ? [['control', '/home/vagrant/.weft-control-tokens'], [node, '/home/vagrant/.weft-token']]
      : [[node, '/home/vagrant/.weft-token']], `${node}: token files`);
    const provisioners = all.filter((pr) => pr.type === 'shell');
    for (const pr of provisioners) assert.ok(existsSync(join(dir, pr.path)), `${node}: ${pr.path} exists`);
    const scripts = provisioners.map((pr) => pr.path);
    assert.deepEqual(scripts, i === 0
      ? ['provision/install.sh', 'provision/control.sh', 'provision/agent.sh']
      : ['provision/install.sh', 'provision/agent.sh'], `${node}: provisioning order`);
    assert.deepEqual(provisioners.at(-1)?.args, [node, address, '192.168.56.11:15010'], `${node}: agent --node and --node-address`);
  }
  const [, syncArgs] = calls('config.vm.synced_folder')[0] ?? [];
  assert.deepEqual(syncArgs, ['..', '/vagrant'], 'the repository is synced to /vagrant');
  const syncOpts = calls('config.vm.synced_folder')[0]?.[2] as { rsync__exclude: string[] };
  assert.ok(syncOpts.rsync__exclude.includes('vagrant/.weft-tokens/'), 'the tokens are not synced to every VM');
});

test('vagrant: provisioning scripts pass shellcheck and reuse the shared package list', (t) => {
  if (!requireTool(t, 'shellcheck')) return;
  const dir = join(VAGRANT, 'provision');
  const scripts = readdirSync(dir).filter((f) => f.endsWith('.sh')).map((f) => join(dir, f));
  assert.ok(scripts.length >= 3);
  const r = spawnSync('shellcheck', ['--severity=style', ...scripts], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(readFileSync(join(dir, 'install.sh'), 'utf8'), /^bash \/vagrant\/scripts\/install-deps\.sh$/m, 'install.sh runs scripts/install-deps.sh instead of its own list');
  for (const unit of ['weft-control.service', 'weft-agent.service']) {
    assert.ok(existsSync(join(ROOT, 'deploy', 'systemd', unit)), `${unit} (installed by the provisioning scripts)`);
  }
});

test('vagrant: the policies node-1 serves (policies/shop without static Workloads) are valid', () => {
  // provision/control.sh installs every policies/shop/*.yaml except workloads.yaml.
  const script = readFileSync(join(VAGRANT, 'provision', 'control.sh'), 'utf8');
  assert.match(script, /for f in \/opt\/weft\/policies\/shop\/\*\.yaml/);
  assert.match(script, /= workloads\.yaml \]/);
  const dir = join(ROOT, 'policies', 'shop');
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml') && f !== 'workloads.yaml').map((f) => join(dir, f));
  const set = loadPolicyDir(files);
  assert.deepEqual(set.diagnostics.map(formatDiagnostic), []);
  assert.ok(set.objects.some((o) => o.kind === 'Service'));
  assert.ok(!set.objects.some((o) => o.kind === 'Workload'), 'workloads come from weft run on the VMs');
});
