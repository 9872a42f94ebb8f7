// The one connection pool (proxy/pipeline/pool.ts) on its own, with fake connections:
// exclusive (HTTP/1.1) and multiplexed (HTTP/2, tunnel) shapes under one breaker.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Acquire, ConnectionPool, EXCLUSIVE, type Breaker, type PooledConnection, type PoolWaiter } from '../../agent/proxy/pipeline/pool';

class Fake implements PooledConnection {
  served = 0; leases = 0; retired = false; usable = true; destroyed = false; retiredCalls = 0;
  constructor(readonly target: string, public capacity: number, private readonly pool: () => ConnectionPool<Fake, string>) {}
  retire(): void { this.retiredCalls++; }
  destroy(): void { if (this.destroyed) return; this.destroyed = true; this.usable = false; this.pool().closed(this); }
}

function breaker(maxConnections: number, maxPendingRequests: number, maxRequestsPerConnection = 0): Breaker {
  return { connections: 0, pending: 0, overflows: 0, limits: { maxConnections, maxPendingRequests, maxRequestsPerConnection } };
}

class Waiter implements PoolWaiter<Fake> {
  got: (Fake | null)[] = [];
  onPoolConnection(c: Fake | null): void { this.got.push(c); }
}

function pool(b: Breaker, shape = EXCLUSIVE, capacity = 1): { p: ConnectionPool<Fake, string>; made: Fake[] } {
  const made: Fake[] = [];
  const p: ConnectionPool<Fake, string> = new ConnectionPool<Fake, string>(b, 'node-b:15008', (t) => { const f = new Fake(t, capacity, () => p); made.push(f); return f; }, shape);
  return { p, made };
}

test('exclusive pool: reuse, connection limit, pending limit, overflow, waiter served on release', () => {
  const b = breaker(2, 1);
  const { p, made } = pool(b);
  const w = new Waiter();
  assert.equal(p.acquire(w), Acquire.Ready);
  const a = p.acquired!;
  assert.equal(p.acquire(w), Acquire.Ready);
  assert.equal(made.length, 2);
  assert.equal(p.acquire(w), Acquire.Queued);
  assert.equal(b.pending, 1);
  assert.equal(p.acquire(new Waiter()), Acquire.Overflow);
  assert.equal(b.overflows, 1);
  p.release(a);
  assert.deepEqual(w.got, [a], 'the waiter gets the released connection');
  assert.equal(b.pending, 0);
  p.release(a);
  assert.equal(p.acquire(w), Acquire.Ready);
  assert.equal(p.acquired, a, 'an idle connection is reused, not a new one opened');
  assert.equal(b.connections, 2);
});

test('multiplexed pool (tunnel-shaped target): streams share connections up to the soft limit, then new ones, then capacity', () => {
  const b = breaker(2, 2);
  const { p, made } = pool(b, { perConnection: 2, perEndpoint: 8 }, 3);
  const w = new Waiter();
  for (let i = 0; i < 4; i++) assert.equal(p.acquire(w), Acquire.Ready);
  assert.equal(made.length, 2, 'two per connection, then a second connection');
  assert.deepEqual(made.map((c) => c.leases), [2, 2]);
  assert.equal(made[0]!.target, 'node-b:15008');
  // maxConnections reached: past the soft limit up to each connection's capacity.
  assert.equal(p.acquire(w), Acquire.Ready);
  assert.equal(p.acquire(w), Acquire.Ready);
  assert.deepEqual(made.map((c) => c.leases), [3, 3]);
  assert.equal(p.acquire(w), Acquire.Queued);
  assert.equal(p.acquire(w), Acquire.Queued);
  assert.equal(p.acquire(w), Acquire.Overflow);
  made[1]!.destroy();
  assert.equal(b.connections, 2, 'a closed connection lets a waiter open a new one');
  assert.equal(w.got.length, 1);
  assert.equal(b.pending, 1);
});

test('maxRequestsPerConnection retires a connection; drain closes idle ones and fails waiters', () => {
  const b = breaker(1, 4, 2);
  const { p, made } = pool(b, { perConnection: 4, perEndpoint: 1 }, 4);
  const w = new Waiter();
  assert.equal(p.acquire(w), Acquire.Ready);
  assert.equal(p.acquire(w), Acquire.Ready);
  const c = made[0]!;
  assert.equal(c.retired, true);
  assert.equal(c.retiredCalls, 1, 'multiplexed: asked to stop taking streams (GOAWAY)');
  assert.equal(p.acquire(w), Acquire.Queued, 'a retired connection takes no more requests');
  p.release(c);
  p.release(c);
  assert.equal(c.destroyed, true, 'closed after its last request');
  assert.equal(w.got.length, 1, 'the waiter got a fresh connection');
  const fresh = w.got[0]!;
  assert.notEqual(fresh, c);
  assert.equal(p.acquire(w), Acquire.Ready);
  assert.equal(p.acquire(w), Acquire.Queued);
  p.drain();
  assert.equal(w.got.at(-1), null, 'drain fails waiters');
  assert.equal(b.pending, 0);
  p.release(fresh);
  p.release(fresh);
  assert.equal(fresh.destroyed, true);
  assert.equal(b.connections, 0);
});
