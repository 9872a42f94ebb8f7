// `weft token create|list`: per-node bootstrap tokens in the control API's token file,
// and the file it writes is one the control API accepts (each token for its node only).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Metadata, status } from '@grpc/grpc-js';
import { main } from '../../agent/cli/main';
import { TokenAuthenticator } from '../../agent/control/auth';

async function run(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = process.stdout.write, err = process.stderr.write;
  let stdout = '', stderr = '';
  // Strings only: the test runner's own messages to its parent are Buffers on stdout.
  process.stdout.write = ((s: string | Uint8Array, ...rest: unknown[]) => { if (typeof s !== 'string') return (out as (...a: unknown[]) => boolean).call(process.stdout, s, ...rest); stdout += s; return true; }) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => { stderr += s; return true; }) as typeof process.stderr.write;
  try { return { code: await main(argv), stdout, stderr }; } finally { process.stdout.write = out; process.stderr.write = err; }
}

const md = (token: string, node: string) => { const m = new Metadata(); m.set('authorization', `Bearer ${token}`); m.set('x-weft-node', node); return m; };
async function code(p: Promise<unknown>): Promise<string> {
  try { await p; } catch (e) { return status[(e as { code: number }).code] as string; }
  return 'OK';
}

test('weft token create: one line per node, the token to stdout or --out (0600), refused twice without --rotate', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wt-cli-token-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'tokens');
  writeFileSync(file, '# tokens of the test mesh\n');
  const a = await run(['token', 'create', '--node', 'node-a', '--token-file', file]);
  assert.equal(a.code, 0, a.stderr);
  const tokenA = a.stdout.trim();
  assert.match(tokenA, /^[\w-]{32}$/);
  const b = await run(['token', 'create', '--node', 'ip-10-0-1-2.ec2.internal', '--token-file', file, '--out', join(dir, 'b.token')]);
  assert.equal(b.code, 0, b.stderr);
  assert.equal(b.stdout, '', 'with --out nothing secret goes to stdout');
  const tokenB = readFileSync(join(dir, 'b.token'), 'utf8').trim();
  assert.equal(statSync(join(dir, 'b.token')).mode & 0o777, 0o600);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.match(readFileSync(file, 'utf8'), /^# tokens of the test mesh\n/, 'comments kept');

  const auth = TokenAuthenticator.fromFile(file);
  assert.equal(await code(auth.authenticate(md(tokenA, 'node-a'))), 'OK');
  assert.equal(await code(auth.authenticate(md(tokenB, 'ip-10-0-1-2.ec2.internal'))), 'OK');
  assert.equal(await code(auth.authenticate(md(tokenA, 'ip-10-0-1-2.ec2.internal'))), 'PERMISSION_DENIED');

  const again = await run(['token', 'create', '--node', 'node-a', '--token-file', file]);
  assert.equal(again.code, 2);
  assert.match(again.stderr, /already has a token for node-a \(--rotate/);
  const rotated = await run(['token', 'create', '--node', 'node-a', '--token-file', file, '--rotate']);
  assert.equal(rotated.code, 0);
  const after = TokenAuthenticator.fromFile(file);
  assert.equal(await code(after.authenticate(md(tokenA, 'node-a'))), 'UNAUTHENTICATED', 'the old token stops working');
  assert.equal(await code(after.authenticate(md(rotated.stdout.trim(), 'node-a'))), 'OK');

  const list = await run(['token', 'list', '--token-file', file]);
  assert.equal(list.code, 0);
  assert.equal(list.stdout, 'ip-10-0-1-2.ec2.internal\nnode-a\n', 'names only, never tokens');

  for (const [argv, msg] of [
    [['token', 'create', '--token-file', file], /--node is required/],
    [['token', 'create', '--node', 'Bad_Name', '--token-file', file], /not a node name/],
    [['token', 'frobnicate'], /unknown action/],
    [['token'], /an action is required/],
    [['token', 'list', '--token-file', join(dir, 'missing')], /does not exist/],
  ] as const) {
    const r = await run([...argv]);
    assert.equal(r.code, 2, argv.join(' '));
    assert.match(r.stderr, msg);
  }
  const help = await run(['token', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /weft token create --node NODE/);
});
