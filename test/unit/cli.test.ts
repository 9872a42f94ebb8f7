import { test } from 'node:test';
import assert from 'node:assert/strict';
import { main } from '../../agent/cli/main';
import { parseFlags, parseHostPort } from '../../agent/cli/command';
import { isWeftError } from '../../agent/lib/errors';
import { defaultWorkers } from '../../agent/cli/agent';
import { Registry } from 'prom-client';
import pino from 'pino';
import { AdminServer } from '../../agent/admin/server';
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

test('weft run --address: validated before the agent is asked; documented in --help', async () => {
  // A port nothing listens on: had the CLI contacted an agent, the error would say so.
  const admin = ['--admin', '127.0.0.1:9'];
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
    host: '127.0.0.1', port: 0, registry, health: () => ({ ready: true, reasons: [] }), debug: {},
    api: { 'POST /v1/workloads': (body) => { const r = validateRegisterRequest(body); seen.push(r); return r; } },
    logger: pino({ level: 'silent' }),
  });
  const { port } = await admin.listen();
  t.after(() => admin.close());
  const post = async (body: unknown) => {
    const r = await fetch(`http://127.0.0.1:${port}/v1/workloads`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
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
