import { test } from 'node:test';
import assert from 'node:assert/strict';
import { main } from '../../agent/cli/main';
import { parseFlags, parseHostPort } from '../../agent/cli/command';
import { isWeftError } from '../../agent/lib/errors';
import { defaultWorkers } from '../../agent/cli/agent';

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
