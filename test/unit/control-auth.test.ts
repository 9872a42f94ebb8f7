import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Metadata, status } from '@grpc/grpc-js';
import { TokenAuthenticator } from '../../agent/control/auth';

const SHARED = 'cluster-bootstrap-token-000000000';
const BOUND = 'node-a-token-111111111111111111';

function md(token?: string, node?: string, scheme = 'Bearer'): Metadata {
  const m = new Metadata();
  if (token !== undefined) m.set('authorization', `${scheme} ${token}`);
  if (node !== undefined) m.set('x-weft-node', node);
  return m;
}

function code(fn: () => unknown): string {
  try { fn(); } catch (e) { return status[(e as { code: number }).code] as string; }
  return 'OK';
}

test('token file: shared and node-bound tokens, comments, bad lines refused', () => {
  const auth = new TokenAuthenticator(`# bootstrap tokens\n${SHARED}\n\nnode-a ${BOUND}  # node a only\n`);
  assert.deepEqual(auth.authenticate(md(SHARED, 'node-b')), { node: 'node-b', via: 'token' });
  assert.deepEqual(auth.authenticate(md(BOUND, 'node-a')), { node: 'node-a', via: 'token' });
  assert.throws(() => new TokenAuthenticator('# nothing\n'), { code: 'WEFT_ERR_INVALID_ARG' });
  assert.throws(() => new TokenAuthenticator('short\n'), { code: 'WEFT_ERR_INVALID_ARG', message: /:1:/ });
  assert.throws(() => new TokenAuthenticator(`${SHARED}\nNode_A ${BOUND}\n`), { code: 'WEFT_ERR_INVALID_ARG', message: /:2:/ });
  assert.throws(() => new TokenAuthenticator(`a b ${SHARED}\n`), { code: 'WEFT_ERR_INVALID_ARG' });
  assert.throws(() => TokenAuthenticator.fromFile('/nonexistent/weft-token'), { code: 'WEFT_ERR_INVALID_ARG', message: /--token-file/ });
});

test('authenticate: each failure has its own status', () => {
  const auth = new TokenAuthenticator(`${SHARED}\nnode-a ${BOUND}\n`);
  assert.equal(code(() => auth.authenticate(md(undefined, 'node-a'))), 'UNAUTHENTICATED');
  assert.equal(code(() => auth.authenticate(md(SHARED, 'node-a', 'Basic'))), 'UNAUTHENTICATED');
  assert.equal(code(() => auth.authenticate(md(SHARED + 'x', 'node-a'))), 'UNAUTHENTICATED');
  assert.equal(code(() => auth.authenticate(md(SHARED.slice(0, -1), 'node-a'))), 'UNAUTHENTICATED');
  assert.equal(code(() => auth.authenticate(md(SHARED))), 'UNAUTHENTICATED');
  assert.equal(code(() => auth.authenticate(md(SHARED, 'Not A Node'))), 'INVALID_ARGUMENT');
  assert.equal(code(() => auth.authenticate(md(BOUND, 'node-b'))), 'PERMISSION_DENIED');
  assert.equal(code(() => auth.authenticate(md(BOUND, 'node-a'))), 'OK');
});
