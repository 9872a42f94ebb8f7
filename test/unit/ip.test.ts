// agent/lib/ip.ts: the one IP module (16-byte datapath form, v4-mapped helpers, the
// Kubernetes API's legacy IPv4 form). IPv4/CIDR numbers are covered in policy-helpers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatIp, isV4MappedBytes, parseIp, parseIPv4, unmapV4, v4Alternate, v4OfMapped } from '../../agent/lib/ip';

test('parseIp/formatIp round-trip IPv4, IPv6 and v4-mapped text', () => {
  for (const [text, family] of [['10.0.0.7', 4], ['fd00::5', 6], ['2001:db8:0:1::', 6], ['::ffff:10.1.2.3', 6], ['::1', 6]] as const) {
    const p = parseIp(text);
    assert.ok(p, text);
    assert.equal(p.family, family, text);
    assert.equal(p.bytes.length, 16);
    assert.equal(formatIp(p.bytes, p.family), text);
  }
  assert.equal(formatIp(parseIp('fd00:0:0:0:0:0:0:5')!.bytes, 6), 'fd00::5');
  assert.equal(parseIp('10.0.0.256'), null);
  assert.equal(parseIp('fd00::5/64'), null);
  assert.equal(parseIp('example'), null);
  assert.ok(isV4MappedBytes(parseIp('::ffff:10.1.2.3')!.bytes));
  assert.ok(!isV4MappedBytes(parseIp('fd00::ffff:a01:203')!.bytes));
});

test('v4-mapped text helpers', () => {
  assert.equal(v4OfMapped('::ffff:10.1.2.3'), '10.1.2.3');
  assert.equal(v4OfMapped('::FFFF:10.1.2.3'), '10.1.2.3');
  assert.equal(v4OfMapped('10.1.2.3'), undefined);
  assert.equal(v4OfMapped('fd00::1'), undefined);
  assert.equal(unmapV4('::ffff:127.0.0.1'), '127.0.0.1');
  assert.equal(unmapV4('::1'), '::1');
  assert.equal(unmapV4('10.0.0.1'), '10.0.0.1');
  assert.equal(v4Alternate('10.0.0.1'), '::ffff:10.0.0.1');
  assert.equal(v4Alternate('::ffff:10.0.0.1'), '10.0.0.1');
  assert.equal(v4Alternate('fd00::1'), undefined);
  assert.equal(v4Alternate('not-an-ip'), undefined);
});

test('parseIPv4 refuses leading zeros unless asked for the Kubernetes legacy form', () => {
  assert.equal(parseIPv4('010.0.0.1'), null);
  assert.equal(parseIPv4('010.0.0.1', { leadingZeros: true }), 0x0a000001);
  assert.equal(parseIPv4('300.0.0.1', { leadingZeros: true }), null);
});
