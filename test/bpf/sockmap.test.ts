// Same-node acceleration: sockops puts both ends of a same-node mesh connection in the
// SOCKHASH and sk_msg moves the bytes socket-to-socket. Which connections are worth it
// is learned per server endpoint (bpf/sockops.bpf.c): chatty ones are inserted, tiny
// connections and bulk streams stay on plain TCP, endpoints the agent pins always go in.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';

import { requires } from '../lib/privileges';
import { createHarness, type Harness } from './fixtures/datapath/harness';

const MiB = 1 << 20;
const CLIENT = join(__dirname, 'fixtures', 'datapath', 'client.js');

/** Runs a client and returns how many sockets were inserted and skipped meanwhile. */
async function inserts(h: Harness, args: string[]): Promise<{ inserted: bigint; skipped: bigint; redirected: bigint }> {
  const c0 = h.dp.counters();
  await h.client(args);
  const c1 = h.dp.counters();
  return { inserted: c1.sockmap_inserts - c0.sockmap_inserts, skipped: c1.sockmap_skipped - c0.sockmap_skipped,
    redirected: c1.msg_redirected_bytes - c0.msg_redirected_bytes };
}

test('sockmap redirects a 64 MiB transfer byte-exact', async (t) => {
  if (!requires(t, { bpffs: true, netns: true, cgroup2: true })) return;
  const h = await createHarness('wt-skmap');
  t.after(() => h.teardown());
  // The server joins the workload cgroup too: accepted sockets inherit the listener's.
  await h.server('sink', ['127.0.0.1:7000'], h.workload.path);
  // A bulk stream is only inserted for an endpoint the agent pins (as its own listener).
  h.dp.accelerate('127.0.0.1', 7000);
  type Result = { bytes: number; sha256: string; sink: { bytes: number; sha256: string } };
  const c1 = h.dp.counters();
  const r = await h.client<Result>(['source', '127.0.0.1', '7000', String(64 * MiB)], 60_000);
  assert.deepEqual(r.sink, { bytes: 64 * MiB, sha256: r.sha256 }, 'byte-exact');
  const c2 = h.dp.counters();
  assert.equal(c2.sockmap_inserts - c1.sockmap_inserts, 2n, 'both ends inserted');
  assert.ok(c2.msg_redirected_bytes - c1.msg_redirected_bytes >= BigInt(64 * MiB), 'the payload was redirected');
  assert.ok(c2.msg_redirected - c1.msg_redirected > 0n);
});

test('chatty endpoints are learned; bulk streams and tiny connections stay on TCP', async (t) => {
  if (!requires(t, { bpffs: true, netns: true, cgroup2: true })) return;
  const h = await createHarness('wt-skmap3');
  t.after(() => h.teardown());
  await h.server('agent', ['127.0.0.1:7002', '127.0.0.1:7004'], h.workload.path); // echo
  await h.server('sink', ['127.0.0.1:7003'], h.workload.path);
  const chat = (port: number, n: number, size: number) => ['chat', '127.0.0.1', String(port), String(n), String(size)];

  // 1000 round trips of 64 B: the first connection teaches the kernel, the second is
  // inserted at both ends and redirected.
  assert.deepEqual(await inserts(h, chat(7002, 1000, 64)), { inserted: 0n, skipped: 2n, redirected: 0n });
  const second = await inserts(h, chat(7002, 1000, 64));
  assert.equal(second.inserted, 2n, 'a learned chatty endpoint is inserted');
  assert.ok(second.redirected >= 2n * 64000n, 'both directions redirected');
  // The same endpoint now carries 256 KiB writes: its inserted sockets report them at
  // close, and the next connection stays on TCP.
  assert.equal((await inserts(h, chat(7002, 40, 256 * 1024))).inserted, 2n);
  assert.equal((await inserts(h, chat(7002, 1000, 64))).inserted, 0n, 'a bulk endpoint is not inserted');

  // A bulk stream learned on a plain connection is never inserted.
  for (let i = 0; i < 2; i++) {
    const r = await inserts(h, ['source', '127.0.0.1', '7003', String(4 * MiB)]);
    assert.deepEqual([r.inserted, r.redirected], [0n, 0n], `bulk connection ${i}`);
  }

  // A chatty endpoint whose clients switch to tiny connections stops being inserted
  // within a few dozen connections (its mean bytes per connection decays).
  await inserts(h, chat(7004, 1000, 64));
  assert.equal((await inserts(h, chat(7004, 1000, 64))).inserted, 2n);
  assert.ok((await inserts(h, ['many', '127.0.0.1', '7004', '60', '1'])).inserted < 120n, 'some tiny connections were not inserted');
  assert.equal((await inserts(h, ['many', '127.0.0.1', '7004', '20', '1'])).inserted, 0n, 'no longer inserted');
});

test('small connections to an unlearned endpoint are never inserted', async (t) => {
  if (!requires(t, { bpffs: true, netns: true, cgroup2: true })) return;
  const h = await createHarness('wt-skmap2');
  t.after(() => h.teardown());
  await h.server('tcp', ['127.0.0.1:7001'], h.workload.path);
  const c0 = h.dp.counters();
  const r = await h.client<{ counts: Record<string, number> }>(['many', '127.0.0.1', '7001', '200', '10']);
  assert.equal(r.counts['127.0.0.1:7001'], 200);
  const c1 = h.dp.counters();
  assert.equal(c1.sockmap_inserts - c0.sockmap_inserts, 0n);
  assert.equal(c1.msg_redirected - c0.msg_redirected, 0n);
  // An endpoint the agent pins is accelerated from the first connection...
  h.dp.accelerate('127.0.0.1', 7001);
  await h.client(['many', '127.0.0.1', '7001', '10', '1']);
  const c2 = h.dp.counters();
  assert.equal(c2.sockmap_inserts - c1.sockmap_inserts, 20n);
  // ...but only when the client is a mesh socket too: a client outside the node's
  // cgroups has no peer entry, so the server side stays out of the map (its sends
  // would only miss).
  const outside = await h.ns.exec(['node', CLIENT, 'many', '127.0.0.1', '7001', '10', '1']);
  assert.equal(JSON.parse(outside.stdout).counts['127.0.0.1:7001'], 10);
  const c3 = h.dp.counters();
  assert.equal(c3.sockmap_inserts - c2.sockmap_inserts, 0n);
  assert.equal(c3.msg_miss - c2.msg_miss, 0n);
});

test('eager endpoints (the agent\'s own hops) are spliced from the first connection, until learned bulk', async (t) => {
  if (!requires(t, { bpffs: true, netns: true, cgroup2: true })) return;
  const h = await createHarness('wt-skmap4');
  t.after(() => h.teardown());
  await h.server('agent', ['127.0.0.1:7005'], h.workload.path); // echo
  const chat = (n: number, size: number) => ['chat', '127.0.0.1', '7005', String(n), String(size)];
  // Unmarked, a first small connection is never inserted (nothing learned yet)...
  assert.equal((await inserts(h, chat(20, 64))).inserted, 0n);
  // ...marked eager, the very next one is, at both ends, and its bytes are redirected.
  assert.deepEqual(h.dp.setEagerEndpoints([{ ip: '127.0.0.1', port: 7005 }]), { added: 1, removed: 0 });
  assert.deepEqual(h.dp.eagerEndpoints(), ['127.0.0.1:7005']);
  const eager = await inserts(h, chat(20, 64));
  assert.equal(eager.inserted, 2n, 'inserted from the first connection');
  assert.ok(eager.redirected >= 2n * 20n * 64n);
  // Applying the same set again changes nothing; a bad entry changes nothing either.
  assert.deepEqual(h.dp.setEagerEndpoints([{ ip: '127.0.0.1', port: 7005 }]), { added: 0, removed: 0 });
  assert.throws(() => h.dp.setEagerEndpoints([{ ip: '127.0.0.1', port: 7006 }, { ip: 'nope', port: 1 }]), { code: 'WEFT_ERR_INVALID_ARG' });
  assert.deepEqual(h.dp.eagerEndpoints(), ['127.0.0.1:7005']);
  // The bulk check still holds: once an eager endpoint is learned to take bulk writes,
  // its next connections stay on TCP (its receive queue keeps TCP's flow control).
  for (let i = 0; i < 3; i++) await inserts(h, chat(40, 256 * 1024));
  assert.equal((await inserts(h, chat(20, 64))).inserted, 0n, 'a bulk eager endpoint is not inserted');
  // Unmarking keeps what was learned and removes the flag.
  assert.deepEqual(h.dp.setEagerEndpoints([]), { added: 0, removed: 1 });
  assert.deepEqual(h.dp.eagerEndpoints(), []);
});
