// Same-node acceleration: two processes of the node's workload cgroup exchange 64 MiB
// over loopback; sockops put both sockets in the SOCKHASH (the server endpoint learned
// from an earlier bulk connection) and sk_msg moved the bytes socket-to-socket. The
// data must arrive byte-exact.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';

import { requires } from '../lib/privileges';
import { createHarness } from './fixtures/datapath/harness';

const MiB = 1 << 20;
const CLIENT = join(__dirname, 'fixtures', 'datapath', 'client.js');

test('sockmap redirects a 64 MiB transfer byte-exact', async (t) => {
  if (!requires(t, { bpffs: true, netns: true, cgroup2: true })) return;
  const h = await createHarness('wt-skmap');
  t.after(() => h.teardown());
  // The server joins the workload cgroup too: accepted sockets inherit the listener's.
  await h.server('sink', ['127.0.0.1:7000'], h.workload.path);
  type Result = { bytes: number; sha256: string; sink: { bytes: number; sha256: string } };

  // First connection: plain TCP, but big enough to mark the endpoint worth accelerating.
  const c0 = h.dp.counters();
  const warm = await h.client<Result>(['source', '127.0.0.1', '7000', String(MiB)]);
  assert.deepEqual(warm.sink, { bytes: MiB, sha256: warm.sha256 });
  const c1 = h.dp.counters();
  assert.equal(c1.sockmap_inserts - c0.sockmap_inserts, 0n, 'an unknown endpoint is not accelerated');
  assert.ok(c1.sockmap_skipped - c0.sockmap_skipped >= 2n);

  const r = await h.client<Result>(['source', '127.0.0.1', '7000', String(64 * MiB)], 60_000);
  assert.deepEqual(r.sink, { bytes: 64 * MiB, sha256: r.sha256 }, 'byte-exact');
  const c2 = h.dp.counters();
  assert.equal(c2.sockmap_inserts - c1.sockmap_inserts, 2n, 'both ends inserted');
  assert.ok(c2.msg_redirected_bytes - c1.msg_redirected_bytes >= BigInt(64 * MiB), 'the payload was redirected');
  assert.ok(c2.msg_redirected - c1.msg_redirected > 0n);

  // The endpoint's mean follows its traffic: once its clients switch to tiny
  // connections, it stops being worth an insertion within a few dozen connections.
  await h.client(['many', '127.0.0.1', '7000', '60', '1']);
  const c3 = h.dp.counters();
  assert.ok(c3.sockmap_inserts - c2.sockmap_inserts < 120n, 'some of the tiny connections were not inserted');
  await h.client(['many', '127.0.0.1', '7000', '20', '1']);
  assert.equal(h.dp.counters().sockmap_inserts - c3.sockmap_inserts, 0n, 'no longer inserted');
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
