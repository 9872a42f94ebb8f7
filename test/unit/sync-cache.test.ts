// The agent's snapshot cache: a one-resource change writes a small pack and a manifest,
// never the whole view again; packs nothing references are deleted; piled-up packs are
// compacted into one; what is loaded is exactly what was saved; a damaged cache is an
// error (WEFT_ERR_PROTOCOL), not a half view.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { SnapshotCache, PACK_DIR, type CachedResource } from '../../agent/sync/cache';
import { isWeftError } from '../../agent/lib/errors';

function stateDir(t: TestContext): string {
  const d = mkdtempSync(join(tmpdir(), 'wt-synccache-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

function resources(n: number, bump: Record<string, number> = {}): Map<string, CachedResource> {
  const m = new Map<string, CachedResource>();
  for (let i = 0; i < n; i++) {
    const name = `service/ns/s${i}`;
    const v = bump[name] ?? 0;
    m.set(name, { version: `v${i}.${v}`, json: JSON.stringify({ name, v, pad: 'x'.repeat(2000) }) });
  }
  return m;
}

const entry = (version: string, r: Map<string, CachedResource>) => ({ version, typeUrl: 't', trustBundle: ['pem'], savedAt: Date.now(), resources: r });
const packs = (dir: string) => readdirSync(join(dir, PACK_DIR)).filter((n) => n.endsWith('.pack'));
const packBytes = (dir: string) => packs(dir).map((p) => statSync(join(dir, PACK_DIR, p)).size);

test('a one-resource change writes one small pack; load gives back exactly what was saved', async (t) => {
  const dir = stateDir(t);
  const cache = new SnapshotCache(dir);
  await cache.save(entry('a', resources(100)));
  assert.equal(packs(dir).length, 1);
  const full = packBytes(dir)[0]!;

  const next = resources(100, { 'service/ns/s7': 1 });
  await cache.save(entry('b', next));
  assert.equal(packs(dir).length, 2);
  assert.ok(Math.min(...packBytes(dir)) < full / 50, 'the new pack holds one body');

  const loaded = await new SnapshotCache(dir).load();
  assert.equal(loaded!.version, 'b');
  assert.deepEqual(loaded!.trustBundle, ['pem']);
  const flat = (m: ReadonlyMap<string, CachedResource>) => [...m].map(([n, r]) => `${n} ${r.version} ${r.json}`).sort();
  assert.ok(JSON.stringify(flat(loaded!.resources)) === JSON.stringify(flat(next)), 'same resources, versions and bodies');
  assert.deepEqual(loaded!.resources.get('service/ns/s7')!.value, JSON.parse(next.get('service/ns/s7')!.json));
  assert.equal(statSync(join(dir, PACK_DIR, packs(dir)[0]!)).mode & 0o777, 0o600);
});

test('replaced packs are deleted, piled-up packs are compacted, leftovers of a crash are removed', async (t) => {
  const dir = stateDir(t);
  const cache = new SnapshotCache(dir);
  await cache.save(entry('0', resources(10)));
  // Every save replaces the same resource: the previous one-body pack is unreferenced.
  for (let i = 1; i <= 3; i++) {
    await cache.save(entry(String(i), resources(10, { 'service/ns/s1': i })));
    assert.equal(packs(dir).length, 2, `save ${i}`);
  }
  // A different resource each time: earlier packs stay referenced and pile up until a
  // save compacts everything into one.
  const counts: number[] = [];
  const bump: Record<string, number> = {};
  for (let i = 2; i < 24; i++) {
    bump[`service/ns/s${i}`] = 100 + i;
    await cache.save(entry(`p${i}`, resources(30, bump)));
    counts.push(packs(dir).length);
  }
  assert.ok(Math.max(...counts) > 3 && counts.includes(1), `piled up, then compacted: ${counts.join(',')}`);
  writeFileSync(join(dir, PACK_DIR, 'crash-leftover.pack'), 'x');
  await cache.save(entry('z', resources(30, { ...bump, 'service/ns/s0': 99 })));
  assert.ok(!packs(dir).includes('crash-leftover.pack'));
  const loaded = await new SnapshotCache(dir).load();
  assert.equal(loaded!.resources.get('service/ns/s0')!.version, 'v0.99');
  assert.equal(loaded!.resources.get('service/ns/s23')!.version, 'v23.123');
  assert.equal(loaded!.resources.size, 30);
});

test('a damaged cache is an error, a missing one is undefined', async (t) => {
  const dir = stateDir(t);
  assert.equal(await new SnapshotCache(dir).load(), undefined);
  const cache = new SnapshotCache(dir);
  await cache.save(entry('a', resources(5)));
  truncateSync(join(dir, PACK_DIR, packs(dir)[0]!), 100);
  await assert.rejects(new SnapshotCache(dir).load(), (e: unknown) => isWeftError(e, 'WEFT_ERR_PROTOCOL'));
  writeFileSync(join(dir, 'snapshot-cache.json'), '{"version":"a","typeUrl":"t","trustBundle":[],"view":{}}');
  await assert.rejects(new SnapshotCache(dir).load(), /unexpected shape/);
});
