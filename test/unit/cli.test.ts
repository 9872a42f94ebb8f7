import { test } from 'node:test';
import assert from 'node:assert/strict';
import { main } from '../../agent/cli/main';
import { parseFlags, parseHostPort } from '../../agent/cli/command';
import { isWeftError } from '../../agent/lib/errors';
import { defaultWorkers } from '../../agent/cli/agent';
import { Registry } from 'prom-client';
import pino from 'pino';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN_TOKEN_FILE, AdminServer, isLoopbackAddress } from '../../agent/admin/server';
import { adminToken } from '../../agent/node/agent';
import { readTokenFile } from '../../agent/lib/token-file';
import { validateRegisterRequest } from '../../agent/node/workloads';

test('unknown command exits 2', async () => {
  const write = process.stderr.write;
  let out = '';
  process.stderr.write = ((s: string) => { out += s; return true; }) as typeof process.stderr.write;
  try { assert.equal(await main(['no-such-command']), 2); } finally { process.stderr.write = write; }
  assert.match(out, /unknown command 'no-such-command'/);
});

test('parseFlags rejects unknown flags with WEFT_ERR_INVALID_ARG', () => {
  assert.throws(() => parseFlags(['--nope'], { listen: { type: 'string' } }), (e: unknown) => isWeftError(e, 'WEFT_ERR_INVALID_ARG') && /nope/.test(e.message));
  const r = parseFlags<{ listen?: string }>(['--listen', 'x', '-h'], { listen: { type: 'string' } });
  assert.equal(r.values.listen, 'x');
  assert.equal(r.help, true);
});

test('parseHostPort', () => {
  assert.deepEqual(parseHostPort('127.0.0.1:15010', '--listen'), { host: '127.0.0.1', port: 15010 });
  assert.deepEqual(parseHostPort('[::1]:80', '--listen'), { host: '::1', port: 80 });
  assert.throws(() => parseHostPort('127.0.0.1:0', '--listen'), /HOST:PORT/);
  assert.throws(() => parseHostPort('nohost', '--listen'), /HOST:PORT/);
});

test('weft agent: default workers leave a core to the workloads, 1 to 8', () => {
  assert.deepEqual([1, 2, 3, 4, 8, 9, 64].map((c) => defaultWorkers(c)), [1, 1, 2, 3, 7, 8, 8]);
});

/** Runs `weft ARGV` in this process; returns the exit code and what it wrote. */
async function runMain(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = process.stdout.write, err = process.stderr.write;
  let stdout = '', stderr = '';
  process.stdout.write = ((s: string) => { stdout += s; return true; }) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => { stderr += s; return true; }) as typeof process.stderr.write;
  try { return { code: await main(argv), stdout, stderr }; } finally { process.stdout.write = out; process.stderr.write = err; }
}

test('weft run --address: validated before the agent is asked; documented in --help', async (t) => {
  // A port nothing listens on: had the CLI contacted an agent, the error would say so.
  const tokDir = mkdtempSync(join(tmpdir(), 'wt-run-token-'));
  t.after(() => rmSync(tokDir, { recursive: true, force: true }));
  writeFileSync(join(tokDir, ADMIN_TOKEN_FILE), 'x'.repeat(48));
  const admin = ['--admin', '127.0.0.1:9', '--state-dir', tokDir];
  for (const [bad, why] of [['10.0.0.256', /is not an IPv4 or IPv6 address/], ['10.0.0.0/8', /is not an IPv4 or IPv6 address/], ['0.0.0.0', /unspecified/], ['ff02::1', /multicast/]] as const) {
    const r = await runMain(['run', '--workload', 'w', '--address', bad, ...admin, '--', 'true']);
    assert.notEqual(r.code, 0, bad);
    assert.match(r.stderr, new RegExp(`^weft run: --address: "${bad.replace(/[./]/g, '\\$&')}"`), bad);
    assert.match(r.stderr, why, bad);
    assert.doesNotMatch(r.stderr, /cannot reach the weft agent/, `${bad}: rejected before contacting the agent`);
  }
  // A good address goes on to the agent (which is not there).
  const ok = await runMain(['run', '--workload', 'w', '--address', 'fd00::12', ...admin, '--', 'true']);
  assert.notEqual(ok.code, 0);
  assert.match(ok.stderr, /cannot reach the weft agent at 127\.0\.0\.1:9/);
  const help = await runMain(['run', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--address IP +the workload's own address \(IPv4 or IPv6\)/);
});

test('admin API: POST /v1/workloads with a bad address is a 400 with the reason', async (t) => {
  const registry = new Registry();
  const seen: unknown[] = [];
  const admin = new AdminServer({
    host: '127.0.0.1', port: 0, registry, health: () => ({ ready: true, reasons: [] }), debug: {}, writeToken: 't'.repeat(48),
    api: { 'POST /v1/workloads': (body) => { const r = validateRegisterRequest(body); seen.push(r); return r; } },
    logger: pino({ level: 'silent' }),
  });
  const { port } = await admin.listen();
  t.after(() => admin.close());
  const post = async (body: unknown) => {
    const r = await fetch(`http://127.0.0.1:${port}/v1/workloads`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json', authorization: `Bearer ${'t'.repeat(48)}` } });
    return { status: r.status, body: await r.json() as { error?: string; code?: string; address?: string } };
  };
  const bad = await post({ name: 'w', namespace: 'default', serviceAccount: 'w', address: '10.77.0.999' });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.code, 'WEFT_ERR_INVALID_ARG');
  assert.match(bad.body.error!, /address: "10\.77\.0\.999" is not an IPv4 or IPv6 address/);
  assert.equal((await post({ name: 'w', namespace: 'default', serviceAccount: 'w', address: ['10.0.0.1'] })).status, 400);
  assert.equal(seen.length, 0, 'nothing registered');
  const good = await post({ name: 'w', namespace: 'default', serviceAccount: 'w', address: 'FD00::12' });
  assert.equal(good.status, 200);
  assert.equal(good.body.address, 'fd00::12');
});

test('admin token: loopback callers need none but to register; the token file is created once, 0600; weft run reads it', async (t) => {
  assert.ok(isLoopbackAddress('127.0.0.1') && isLoopbackAddress('127.9.9.9') && isLoopbackAddress('::1') && isLoopbackAddress('::ffff:127.0.0.1'));
  assert.ok(!isLoopbackAddress('10.78.0.11') && !isLoopbackAddress('::ffff:10.0.0.1') && !isLoopbackAddress('fd00::1') && !isLoopbackAddress(undefined));
  const dir = mkdtempSync(join(tmpdir(), 'wt-admin-token-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const state = join(dir, 'state');
  const first = adminToken(state);
  assert.match(first, /^[0-9a-f]{48}$/);
  assert.equal(statSync(join(state, ADMIN_TOKEN_FILE)).mode & 0o777, 0o600);
  assert.equal(adminToken(state), first, 'kept across agent processes');
  // One reader for every token file (weft agent --token-file, the admin token, weft run).
  writeFileSync(join(dir, 'empty'), ' \n');
  assert.throws(() => readTokenFile(join(dir, 'empty'), '--token-file'), { code: 'WEFT_ERR_INVALID_ARG', message: /^--token-file: .*empty is empty$/ });
  writeFileSync(join(state, ADMIN_TOKEN_FILE), '');
  assert.throws(() => adminToken(state), /the admin token .*: .*admin-token is empty/);
  // A server with a token lets loopback callers (the node itself) read; registering
  // takes the token from them too (see test/security/identity-registration.test.ts).
  const admin = new AdminServer({
    host: '127.0.0.1', port: 0, registry: new Registry(), health: () => ({ ready: true, reasons: [] }), debug: {}, writeToken: first,
    api: { 'POST /v1/workloads': () => ({ ok: true }), 'GET /v1/status': () => ({ ok: true }) }, logger: pino({ level: 'silent' }),
  });
  const { port } = await admin.listen();
  t.after(() => admin.close());
  assert.equal((await fetch(`http://127.0.0.1:${port}/v1/status`)).status, 200);
  assert.equal((await fetch(`http://127.0.0.1:${port}/v1/workloads`, { method: 'POST', body: '{}', headers: { authorization: `Bearer ${first}` } })).status, 200);
  // weft run: a token file that cannot be read is a clear error before any request.
  const r = await runMain(['run', '--workload', 'w', '--admin', '127.0.0.1:9', '--admin-token-file', join(dir, 'missing'), '--', 'true']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /--admin-token-file: cannot read .*missing/);
  assert.doesNotMatch(r.stderr, /cannot reach the weft agent/);
  assert.match((await runMain(['run', '--help'])).stdout, /--admin-token-file FILE +the agent's admin token/);
});

test('weft agent --node: a name that is not a Kubernetes node name is refused before anything is touched', async () => {
  const write = process.stderr.write;
  let out = '';
  process.stderr.write = ((s: string) => { out += s; return true; }) as typeof process.stderr.write;
  try {
    assert.equal(await main(['agent', '--cleanup', '--node', 'Node_1']), 2);
    assert.equal(await main(['agent', '--cleanup', '--node', `${'a'.repeat(250)}.abc`]), 2);
  } finally { process.stderr.write = write; }
  assert.match(out, /--node: invalid node name "Node_1": must be a DNS-1123 subdomain/);
  assert.match(out, /--node: invalid node name "a{80}"…: is 254 characters long, at most 253 are allowed/);
});

test('weft agent --force belongs to --cleanup, and both are in --help', async () => {
  const write = process.stderr.write;
  let out = '';
  process.stderr.write = ((s: string) => { out += s; return true; }) as typeof process.stderr.write;
  try {
    assert.equal(await main(['agent', '--force', '--node', 'node-1', '--control', '127.0.0.1:1', '--control-insecure']), 2);
  } finally { process.stderr.write = write; }
  assert.match(out, /--force needs --cleanup/);
  const help = (await runMain(['agent', '--help'])).stdout;
  assert.match(help, /--cleanup \[--force\] --node NAME/);
  assert.match(help, /^ {2}--force +with --cleanup: stop the node's running agent first/m);
});

test('weft agent: Kubernetes flags are checked before anything is loaded', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wt-agent-k8s-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const token = join(dir, 'token');
  writeFileSync(token, 'x'.repeat(32));
  const base = ['agent', '--node', 'n1', '--control', '127.0.0.1:9', '--control-insecure', '--token-file', token];
  const cases: [string[], RegExp][] = [
    [['--pod-uid', '6f0c1a9e-3b7d-4c2e-9a51-0d8e2f4b7c10'], /--pod-uid needs --kubernetes/],
    [['--kubernetes', '--cgroup-root', join(dir, 'missing')], /--cgroup-root: .* is not a directory/],
    [['--kubernetes', '--cgroup-root', dir, '--pod-uid', 'zz'], /--pod-uid: 'zz' is not a Kubernetes UID/],
    [['--kubernetes', '--cgroup-root', dir, '--exclude-namespaces', 'A_b'], /--exclude-namespaces: 'A_b' is not a namespace name/],
    [['--kubernetes', '--cgroup-root', dir, '--dataplane-default', 'some'], /--dataplane-default: expected mesh or none/],
  ];
  for (const [flags, want] of cases) {
    const r = await runMain([...base, ...flags]);
    assert.notEqual(r.code, 0, flags.join(' '));
    assert.match(r.stderr, want, flags.join(' '));
  }
  const missing = await runMain(['agent', '--node', 'n1', '--control', '127.0.0.1:9', '--control-insecure', '--token-file', join(dir, 'none')]);
  assert.match(missing.stderr, /--token-file: cannot read/);
});
