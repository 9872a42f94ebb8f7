// Maglev consistent hashing: the table the kernel and the L7 balancer share.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAGLEV_TABLE_SIZE, maglevEntry, maglevTable } from '../../agent/lib/maglev';
import { apportion } from '../../agent/lib/apportion';
import { Cluster } from '../../agent/proxy/balancer/cluster';
import { MAX_SLOTS_PER_SERVICE, slotsFor } from '../../agent/datapath/services';

const keys = (n: number) => Array.from({ length: n }, (_, i) => `10.0.${i >> 8}.${i & 255}:8080`);
const counts = (t: Uint16Array, n: number) => { const c = new Array<number>(n).fill(0); for (const x of t) c[x]!++; return c; };

test('entries are shared in proportion to the weights; zero weight gets none', () => {
  const t = maglevTable(keys(3), [50, 30, 20]);
  assert.equal(t.length, MAGLEV_TABLE_SIZE);
  assert.deepEqual(counts(t, 3), [511, 306, 204]);
  assert.deepEqual(counts(maglevTable(keys(3), [90, 10, 0]), 3), [919, 102, 0]);
  assert.deepEqual(apportion([1, 1000000], 1021), [1, 1020], 'a tiny weight keeps one entry');
  assert.equal(maglevTable(keys(2), [0, 0]).length, 0, 'no weight: no table');
  assert.throws(() => apportion(new Array(1022).fill(1), 1021), /do not fit/);
});

test('the kernel\'s random-choice slots use the same apportionment once weights outgrow the map', () => {
  assert.deepEqual(slotsFor([50, 30, 20]), [50, 30, 20], 'small weights are the slots themselves');
  const big = slotsFor([3000, 1, 0, 997]);
  assert.equal(big.reduce((a, b) => a + b, 0), MAX_SLOTS_PER_SERVICE);
  assert.deepEqual(big, [768, 1, 0, 255], 'proportional, a tiny weight keeps a slot, zero gets none');
});

test('removing one of N backends moves few entries of the others', () => {
  for (const n of [3, 10, 100]) {
    const ks = keys(n);
    const full = maglevTable(ks, new Array(n).fill(1));
    const w = new Array(n).fill(1); w[n - 1] = 0;
    const less = maglevTable(ks, w);
    let kept = 0, moved = 0;
    for (let i = 0; i < full.length; i++) {
      if (full[i] === n - 1) { assert.notEqual(less[i], n - 1); continue; }
      kept++;
      if (less[i] !== full[i]) moved++;
    }
    // The paper's bound is "a small fraction"; with equal weights it stays under 5 %.
    assert.ok(moved / kept < 0.05, `n=${n}: ${moved} of ${kept} entries of remaining backends moved`);
  }
});

test('the table depends on backend names, not their order', () => {
  const ks = keys(5);
  const a = maglevTable(ks, [1, 2, 3, 4, 5]);
  const order = [4, 2, 0, 3, 1];
  const b = maglevTable(order.map((i) => ks[i]!), order.map((i) => i + 1));
  for (let i = 0; i < a.length; i++) assert.equal(ks[a[i]!], ks[order[b[i]!]!]);
});

test('the workload hash is MurmurHash3 fmix64 (the same the BPF program computes)', () => {
  // fmix64(1) = 0xb456bcfc34c2cb2c; its low 32 bits mod 1021.
  assert.equal(maglevEntry(1n), 0x34c2cb2c % 1021);
  assert.equal(maglevEntry(0xffffffffffffffffn), maglevEntry(-1n & 0xffffffffffffffffn));
  assert.equal(maglevEntry(12345), maglevEntry(12345n));
});

test('an L7 MAGLEV cluster sends each caller to one endpoint and steps over an ejected one', () => {
  const c = new Cluster('web', () => {});
  const eps = [1, 2, 3].map((i) => ({ endpoint: { ip: `10.0.0.${i}`, port: 80 }, weight: 1 }));
  c.update(eps, { loadBalancer: 'MAGLEV' });
  const seen = new Map<number, Set<string>>();
  for (let caller = 1; caller <= 60; caller++) {
    for (let i = 0; i < 20; i++) {
      const e = c.pick(1000, BigInt(caller))!;
      if (!seen.has(caller)) seen.set(caller, new Set());
      seen.get(caller)!.add(e.key);
    }
  }
  for (const s of seen.values()) assert.equal(s.size, 1, 'one endpoint per caller');
  const used = new Set([...seen.values()].map((s) => [...s][0]));
  assert.equal(used.size, 3, 'callers spread over every endpoint');
  // Eject the endpoint caller 1 uses: it moves, everyone else stays.
  const mine = [...seen.get(1)!][0]!;
  c.endpoints.find((e) => e.key === mine)!.ejectedUntil = 5000;
  assert.notEqual(c.pick(1000, 1n)!.key, mine);
  for (const [caller, s] of seen) if ([...s][0] !== mine) assert.equal(c.pick(1000, BigInt(caller))!.key, [...s][0]);
  assert.equal(c.pick(6000, 1n)!.key, mine, 'back once the ejection is over');
  c.close();
});
