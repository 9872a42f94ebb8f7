import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Backoff } from '../../agent/sync/backoff';

test('backoff doubles from base to the cap, each delay jittered within [d/2, d]', () => {
  for (const r of [0, 0.5, 0.999999]) {
    const b = new Backoff({ baseMs: 100, maxMs: 10_000, random: () => r });
    const nominal = [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000];
    for (const d of nominal) {
      const got = b.next();
      assert.ok(got >= d / 2 && got <= d, `delay ${got} outside [${d / 2}, ${d}]`);
      assert.equal(got, d / 2 + r * (d / 2));
    }
  }
});

test('backoff with real randomness stays in bounds and spreads out', () => {
  const b = new Backoff({ baseMs: 100, maxMs: 1000 });
  for (let i = 0; i < 5; i++) b.next();
  const seen = new Set<number>();
  for (let i = 0; i < 200; i++) {
    const d = b.next();
    assert.ok(d >= 500 && d <= 1000, String(d));
    seen.add(Math.round(d));
  }
  assert.ok(seen.size > 50, 'jitter spreads delays');
});

test('backoff resets after success and rejects nonsense options', () => {
  const b = new Backoff({ baseMs: 50, maxMs: 400, random: () => 1 });
  b.next(); b.next(); b.next();
  assert.equal(b.nominal(), 400);
  b.reset();
  assert.equal(b.next(), 50);
  assert.throws(() => new Backoff({ baseMs: 0 }), { code: 'WEFT_ERR_INVALID_ARG' });
  assert.throws(() => new Backoff({ baseMs: 100, maxMs: 10 }), { code: 'WEFT_ERR_INVALID_ARG' });
});
