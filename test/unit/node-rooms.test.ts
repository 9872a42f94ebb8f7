// The node agent's small rooms: outlier ejections in the L4 maps, `weft explain`'s query,
// and the fail-mode answer without an identity.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { Ejections } from '../../agent/node/ejections';
import { parseExplainQuery } from '../../agent/node/explain-query';
import { failWithoutIdentity } from '../../agent/identity/fail-mode';
import { isWeftError } from '../../agent/lib/errors';
import type { NodeView } from '../../agent/policy/snapshot';

test('ejections: an endpoint stays out of the L4 maps while any live worker has it ejected', () => {
  const e = new Ejections();
  const view = { datapath: [{ vip: '10.96.0.1', port: 80, protocol: 'tcp', mode: 'l4', backends: [{ ip: '10.0.0.1', port: 8080, weight: 1 }, { ip: '10.0.0.2', port: 8080, weight: 1 }] }] } as unknown as NodeView;
  const backends = () => e.filter(view)[0]!.backends.map((b) => b.ip);
  assert.equal(e.record({ ip: '10.0.0.1', port: 8080 }, true, 100), '10.0.0.1:8080');
  e.record({ ip: '10.0.0.1', port: 8080 }, true, 200);
  assert.deepEqual(backends(), ['10.0.0.2']);
  assert.deepEqual(e.list(), [{ endpoint: '10.0.0.1:8080', workers: [100, 200] }]);
  e.record({ ip: '10.0.0.1', port: 8080 }, false, 100);
  assert.deepEqual(backends(), ['10.0.0.2'], 'worker 200 still has it ejected');
  assert.equal(e.keepWorkers(new Set([100, 200])), false);
  assert.equal(e.keepWorkers(new Set([100])), true, 'worker 200 exited');
  assert.deepEqual(backends(), ['10.0.0.1', '10.0.0.2']);
  assert.deepEqual(e.list(), []);
  assert.equal(view.datapath[0]!.backends.length, 2, 'the view itself is not changed');
});

test('explain query: from, to, headers (names lower-cased), path and method', () => {
  const q = new URLSearchParams([['from', 'shop/web'], ['to', 'catalog.shop:8080'], ['header', 'X-User: alice'], ['path', '/a'], ['method', 'GET']]);
  assert.deepEqual(parseExplainQuery(q), { from: 'shop/web', host: 'catalog.shop', port: 8080, path: '/a', method: 'GET', headers: { 'x-user': 'alice' } });
  assert.throws(() => parseExplainQuery(new URLSearchParams([['to', 'a:1']])), (e) => isWeftError(e, 'WEFT_ERR_INVALID_ARG') && /from: the source workload/.test(e.message));
  assert.throws(() => parseExplainQuery(new URLSearchParams([['from', 'a/b'], ['to', 'a:1'], ['header', 'nocolon']])), /header: expected name:value/);
});

test('fail mode: open warns and returns, closed throws WEFT_ERR_IDENTITY with the details', () => {
  const lines: string[] = [];
  const log = pino({ level: 'warn' }, { write: (l: string) => { lines.push(l); } });
  failWithoutIdentity('open', log, 'no certificate yet', { spiffeId: 'spiffe://td/ns/a/sa/b' });
  assert.equal(lines.length, 1);
  assert.match(lines[0]!, /failing open/);
  assert.match(lines[0]!, /no certificate yet/);
  assert.throws(() => failWithoutIdentity('closed', log, 'no certificate yet', { spiffeId: 'x' }),
    (e) => isWeftError(e, 'WEFT_ERR_IDENTITY') && e.message === 'no certificate yet' && e.details?.spiffeId === 'x');
  assert.throws(() => failWithoutIdentity('closed', log, 'tunnel not ready'), (e) => isWeftError(e, 'WEFT_ERR_IDENTITY') && e.details === undefined);
  assert.equal(lines.length, 1, 'closed does not warn');
});
