import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Metadata, status } from '@grpc/grpc-js';
import { TokenAuthenticator } from '../../agent/control/auth';
import { FileTokenBindings } from '../../agent/control/token-bindings';
import { setTimeout as sleep } from 'node:timers/promises';

const SHARED = 'cluster-bootstrap-token-000000000';
const BOUND = 'node-a-token-111111111111111111';

function md(token?: string, node?: string, scheme = 'Bearer'): Metadata {
  const m = new Metadata();
  if (token !== undefined) m.set('authorization', `${scheme} ${token}`);
  if (node !== undefined) m.set('x-weft-node', node);
  return m;
}

async function code(fn: () => Promise<unknown>): Promise<string> {
  try { await fn(); } catch (e) { return status[(e as { code: number }).code] as string; }
  return 'OK';
}

function tmp(t: { after(fn: () => void): void }): string {
  const d = mkdtempSync(join(tmpdir(), 'wt-auth-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

test('token file: node-bound and bare tokens, comments, bad lines refused', async () => {
  const auth = new TokenAuthenticator(`# bootstrap tokens\n${SHARED}\n\nnode-a ${BOUND}  # node a only\n`);
  assert.deepEqual(await auth.authenticate(md(SHARED, 'node-b')), { node: 'node-b', via: 'token' });
  assert.deepEqual(await auth.authenticate(md(BOUND, 'node-a')), { node: 'node-a', via: 'token' });
  assert.throws(() => new TokenAuthenticator('# nothing\n'), { code: 'WEFT_ERR_INVALID_ARG' });
  assert.throws(() => new TokenAuthenticator('short\n'), { code: 'WEFT_ERR_INVALID_ARG', message: /:1:/ });
  assert.throws(() => new TokenAuthenticator(`${SHARED}\nNode_A ${BOUND}\n`), { code: 'WEFT_ERR_INVALID_ARG', message: /:2:/ });
  assert.throws(() => new TokenAuthenticator(`a b ${SHARED}\n`), { code: 'WEFT_ERR_INVALID_ARG' });
  // A JWT-shaped line would be routed to the ServiceAccount check, never matched.
  assert.throws(() => new TokenAuthenticator('eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln\n'), { code: 'WEFT_ERR_INVALID_ARG', message: /JWT/ });
  assert.throws(() => TokenAuthenticator.fromFile('/nonexistent/weft-token'), { code: 'WEFT_ERR_INVALID_ARG', message: /--token-file/ });
  assert.throws(() => new TokenAuthenticator(undefined), { code: 'WEFT_ERR_INVALID_ARG', message: /no node could ever join/ });
});

test('authenticate: each failure has its own status', async () => {
  const auth = new TokenAuthenticator(`${SHARED}\nnode-a ${BOUND}\n`);
  assert.equal(await code(() => auth.authenticate(md(undefined, 'node-a'))), 'UNAUTHENTICATED');
  assert.equal(await code(() => auth.authenticate(md(SHARED, 'node-a', 'Basic'))), 'UNAUTHENTICATED');
  assert.equal(await code(() => auth.authenticate(md(SHARED + 'x', 'node-a'))), 'UNAUTHENTICATED');
  assert.equal(await code(() => auth.authenticate(md(SHARED.slice(0, -1), 'node-a'))), 'UNAUTHENTICATED');
  assert.equal(await code(() => auth.authenticate(md(SHARED))), 'UNAUTHENTICATED');
  assert.equal(await code(() => auth.authenticate(md(SHARED, 'Not A Node'))), 'INVALID_ARGUMENT');
  assert.equal(await code(() => auth.authenticate(md(BOUND, 'node-b'))), 'PERMISSION_DENIED');
  assert.equal(await code(() => auth.authenticate(md(BOUND, 'node-a'))), 'OK');
  // A ServiceAccount token needs --kubernetes (a reviewer); it is never compared to the file.
  assert.equal(await code(() => auth.authenticate(md('eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln', 'node-a'))), 'UNAUTHENTICATED');
});

test('a bare token binds to the first node that presents it, and the binding survives a restart', async (t) => {
  const dir = tmp(t);
  const file = join(dir, 'token-bindings.json');
  const auth = new TokenAuthenticator(`${SHARED}\n`, 'tokens', { bindings: new FileTokenBindings(file) });
  assert.equal(await code(() => auth.authenticate(md(SHARED, 'node-a'))), 'OK');
  assert.equal(await code(() => auth.authenticate(md(SHARED, 'node-b'))), 'PERMISSION_DENIED', 'node B cannot bootstrap with node A\'s token');
  assert.equal(await code(() => auth.authenticate(md(SHARED, 'node-a'))), 'OK', 'node A keeps its token (restarts, renewals)');
  const onDisk = readFileSync(file, 'utf8');
  assert.doesNotMatch(onDisk, new RegExp(SHARED), 'the store holds digests, never tokens');
  // A new control API process reads the binding back.
  const again = new TokenAuthenticator(`${SHARED}\n`, 'tokens', { bindings: new FileTokenBindings(file) });
  assert.equal(await code(() => again.authenticate(md(SHARED, 'node-b'))), 'PERMISSION_DENIED');
  assert.equal(await code(() => again.authenticate(md(SHARED, 'node-a'))), 'OK');
  // Two nodes racing for a fresh token: exactly one wins.
  const RACE = 'race-bootstrap-token-22222222222';
  const racing = new TokenAuthenticator(`${RACE}\n`, 'tokens', { bindings: new FileTokenBindings(join(dir, 'race.json')) });
  const results = await Promise.all(['node-x', 'node-y', 'node-z'].map((n) => code(() => racing.authenticate(md(RACE, n)))));
  assert.deepEqual(results.filter((r) => r === 'OK').length, 1, `one winner: ${results.join(',')}`);
  assert.ok(results.every((r) => r === 'OK' || r === 'PERMISSION_DENIED'));
  // A damaged store is an error at start, not a silent unbinding.
  writeFileSync(join(dir, 'bad.json'), '{"version":1,"bindings":');
  assert.throws(() => new FileTokenBindings(join(dir, 'bad.json')), { code: 'WEFT_ERR_INVALID_ARG', message: /not valid JSON/ });
});

test('the token file is re-read when it changes; a broken edit keeps the previous tokens', async (t) => {
  const dir = tmp(t);
  const path = join(dir, 'tokens');
  writeFileSync(path, `node-a ${BOUND}\n`);
  const errors: string[] = [];
  const auth = TokenAuthenticator.fromFile(path, { onReloadError: (e) => errors.push(e.message) });
  const NEW = 'node-b-token-3333333333333333333';
  assert.equal(await code(() => auth.authenticate(md(NEW, 'node-b'))), 'UNAUTHENTICATED');
  writeFileSync(path, `node-a ${BOUND}\nnode-b ${NEW}\n`);
  await sleep(1100);
  assert.equal(await code(() => auth.authenticate(md(NEW, 'node-b'))), 'OK', 'a token added for a new node works without a restart');
  writeFileSync(path, `node-a ${BOUND}\nNot_A_Node ${NEW}\n`);
  await sleep(1100);
  assert.equal(await code(() => auth.authenticate(md(NEW, 'node-b'))), 'OK', 'a broken edit keeps the last good tokens');
  assert.equal(errors.length, 1);
  assert.match(errors[0]!, /:2:/);
  writeFileSync(path, `node-b ${NEW}\n`);
  await sleep(1100);
  assert.equal(await code(() => auth.authenticate(md(BOUND, 'node-a'))), 'UNAUTHENTICATED', 'a removed token stops working');
});
