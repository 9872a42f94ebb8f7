// The small parsers the policy checks rely on: durations, IPv4/CIDR, principals, and the
// diagnostic order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { durationMs } from '../../agent/policy/duration';
import { cidrContains, formatIPv4, hostRange, parseCidr, parseIPv4, type Cidr } from '../../agent/lib/ip';
import { authzPathError, namespacePatternError, principalError, spiffeId } from '../../agent/policy/identity';
import { sortDiagnostics } from '../../agent/policy/diagnostic';

test('durations are Go-style and become integer milliseconds', () => {
  assert.equal(durationMs('250ms'), 250);
  assert.equal(durationMs('1.5s'), 1500);
  assert.equal(durationMs('1h30m'), 5_400_000);
  assert.equal(durationMs('2m3s4ms'), 123_004);
  assert.equal(durationMs('1500us'), 2); // rounded
  assert.throws(() => durationMs('1.5'), /not a valid duration/);
  assert.throws(() => durationMs('1s x'), /not a valid duration/);
});

test('IPv4 and CIDR parsing', () => {
  assert.equal(parseIPv4('10.96.0.1'), 0x0a600001);
  assert.equal(formatIPv4(0x0a600001), '10.96.0.1');
  for (const bad of ['10.96.0', '10.96.0.256', '010.1.1.1', '1.2.3.4.5', 'a.b.c.d', '']) assert.equal(parseIPv4(bad), null, bad);
  const c = parseCidr('10.96.0.0/16') as Cidr;
  assert.deepEqual(c, { base: 0x0a600000, prefix: 16, size: 65536 });
  assert.ok(cidrContains(c, parseIPv4('10.96.255.255') as number));
  assert.ok(!cidrContains(c, parseIPv4('10.97.0.0') as number));
  assert.deepEqual(hostRange(c), { first: 0x0a600001, count: 65534 });
  assert.deepEqual(hostRange(parseCidr('10.0.0.4/31') as Cidr), { first: 0x0a000004, count: 2 });
  assert.deepEqual(parseCidr('192.168.1.7'), { base: 0xc0a80107, prefix: 32, size: 1 });
  assert.match(parseCidr('10.96.0.1/16') as string, /host bits are set \(did you mean 10\.96\.0\.0\/16\?\)/);
  assert.match(parseCidr('10.0.0.0/33') as string, /prefix length 33 > 32/);
  assert.match(parseCidr('10.0.0.0/x') as string, /bad prefix length/);
  assert.match(parseCidr('10.0.0/8') as string, /not an IPv4 address/);
});

test('principals, namespaces and paths accept the forms Istio accepts', () => {
  assert.equal(spiffeId('weft.local', 'shop', 'frontend'), 'spiffe://weft.local/ns/shop/sa/frontend');
  for (const ok of ['*', 'spiffe://weft.local/ns/shop/sa/frontend', 'weft.local/ns/shop/sa/frontend', 'weft.local/ns/shop/*', '*/sa/frontend']) assert.equal(principalError(ok), null, ok);
  for (const bad of ['spiffe://weft.local/shop/frontend', 'a/*/b', '**', 'spiffe://td/ns/Shop/sa/x', ' spiffe://td/ns/a/sa/b']) assert.notEqual(principalError(bad), null, bad);
  for (const ok of ['*', 'shop', 'shop-*', '*-prod']) assert.equal(namespacePatternError(ok), null, ok);
  for (const bad of ['Shop', 'a*b', 'a b']) assert.notEqual(namespacePatternError(bad), null, bad);
  for (const ok of ['*', '/api/*', '*/health', '/exact']) assert.equal(authzPathError(ok), null, ok);
  assert.notEqual(authzPathError('/api/*/x'), null);
});

test('diagnostics sort by file, line, column, message and drop exact repeats', () => {
  const d = (file: string, line: number, col: number, message: string) => ({ file, line, col, message });
  const input = [d('b.yaml', 1, 1, 'x'), d('a.yaml', 10, 1, 'y'), d('a.yaml', 2, 5, 'z'), d('a.yaml', 2, 5, 'a'), d('a.yaml', 2, 5, 'z')];
  assert.deepEqual(sortDiagnostics(input), [d('a.yaml', 2, 5, 'a'), d('a.yaml', 2, 5, 'z'), d('a.yaml', 10, 1, 'y'), d('b.yaml', 1, 1, 'x')]);
  assert.equal(input.length, 5, 'input is not modified');
});
