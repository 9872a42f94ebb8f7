import { test } from 'node:test';
import assert from 'node:assert/strict';
import { duplexPair } from '../../agent/lib/duplex-pair';

test('duplexPair carries bytes both ways with back-pressure and half-close', async () => {
  const [a, b] = duplexPair();
  const big = Buffer.alloc(4 << 20, 7);
  const got: Buffer[] = [];
  const done = new Promise<void>((r) => b.on('end', r));
  b.on('data', (d: Buffer) => got.push(d));
  a.end(big);
  await done;
  assert.equal(Buffer.concat(got).equals(big), true);
  const back = new Promise<string>((r) => { let s = ''; a.setEncoding('utf8').on('data', (d: string) => { s += d; }).on('end', () => r(s)); });
  b.end('reply');
  assert.equal(await back, 'reply');
});

test('destroying one end destroys the other', async () => {
  const [a, b] = duplexPair();
  const closed = new Promise<void>((r) => b.on('close', r));
  a.on('error', () => {});
  b.on('error', () => {});
  a.destroy(new Error('boom'));
  await closed;
  assert.equal(b.destroyed, true);
});
