// Unit checks of the balancing and budgeting pieces that the end-to-end tests exercise
// only statistically: P2C peak-EWMA preference and probing, token bucket, retry budget.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EndpointState } from '../../agent/proxy/balancer/endpoint';
import { pickP2C } from '../../agent/proxy/balancer/p2c';
import { TokenBucket } from '../../agent/proxy/routing/rate-limit';
import { RetryBudget } from '../../agent/proxy/routing/retry-budget';
import { parseGrpcTimeout } from '../../agent/proxy/h2/grpc-timeout';

test('P2C peak-EWMA prefers the faster endpoint, reacts to a slow peak at once, probes new endpoints', () => {
  const fast = new EndpointState({ ip: '10.0.0.1', port: 1 });
  const slow = new EndpointState({ ip: '10.0.0.2', port: 1 });
  const third = new EndpointState({ ip: '10.0.0.3', port: 1 });
  let now = 1000;
  for (let i = 0; i < 20; i++) { fast.observe(1, now); slow.observe(20, now); now += 1; }
  let f = 0;
  for (let i = 0; i < 1000; i++) if (pickP2C([fast, slow], now) === fast) f++;
  assert.equal(f, 1000, 'two endpoints: the cheaper one always wins');
  // A single slow response moves the estimate to the peak immediately.
  fast.observe(50, now);
  assert.equal(fast.ewma, 50);
  // An endpoint never measured costs only its queue: tried first.
  assert.equal(pickP2C([third, slow], now), third);
  // Queue depth counts: many in flight makes a fast endpoint expensive.
  const a = new EndpointState({ ip: '10.0.0.4', port: 1 }), b = new EndpointState({ ip: '10.0.0.5', port: 1 });
  a.observe(1, now); b.observe(2, now);
  a.inflight = 5;
  assert.equal(pickP2C([a, b], now), b);
  // Ejected endpoints are skipped.
  b.ejectedUntil = now + 1000;
  assert.equal(pickP2C([a, b], now), a);
});

test('token bucket refills per interval up to its size', () => {
  const b = new TokenBucket(3, 2, 100);
  assert.deepEqual([1, 2, 3, 4].map(() => b.take(1000)), [true, true, true, false]);
  assert.equal(b.take(1099), false);
  assert.deepEqual([b.take(1100), b.take(1100), b.take(1100)], [true, true, false]);
  assert.deepEqual([b.take(2000), b.take(2000), b.take(2000), b.take(2000)], [true, true, true, false]);
});

test('retry budget: ratio of requests plus a per-second floor over a 10 s window', () => {
  const r = new RetryBudget(0.2, 1);
  const t0 = 5000;
  for (let i = 0; i < 100; i++) r.deposit(t0);
  let granted = 0;
  for (let i = 0; i < 100; i++) if (r.withdraw(t0)) granted++;
  assert.equal(granted, 30, '0.2 x 100 + 1/s x 10 s');
  // After the window slides past, the old requests and retries no longer count.
  let later = 0;
  for (let i = 0; i < 50; i++) if (r.withdraw(t0 + 11_000)) later++;
  assert.equal(later, 10);
  assert.ok(r.refused > 0);
});

test('grpc-timeout parsing', () => {
  assert.equal(parseGrpcTimeout('100m'), 100);
  assert.equal(parseGrpcTimeout('2S'), 2000);
  assert.equal(parseGrpcTimeout('1H'), 3_600_000);
  assert.equal(parseGrpcTimeout('1500u'), 2);
  assert.equal(parseGrpcTimeout('123456789S'), -1, 'more than 8 digits');
  assert.equal(parseGrpcTimeout('10x'), -1);
  assert.equal(parseGrpcTimeout(undefined), -1);
});
