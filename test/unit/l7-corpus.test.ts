// Request-smuggling and malformed-input corpus (test/unit/fixtures/http/corpus.json),
// driven against a real proxy instance and a raw upstream that records every byte it
// receives: each case checks the statuses the client gets and how many requests the
// upstream saw (none for rejected input, exactly the valid ones otherwise).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { service, view, startProxy, rawUpstream, rawExchange } from './l7-harness';

interface Case { name: string; request: string; expectStatuses: number[]; upstreamRequests: number }

/** Expands {{text*N}} into N copies of text. */
function expand(s: string): Buffer {
  return Buffer.from(s.replace(/\{\{([\s\S]*?)\*(\d+)\}\}/g, (_m, t: string, n: string) => t.repeat(Number(n))), 'latin1');
}

const cases: Case[] = JSON.parse(readFileSync(join(__dirname, 'fixtures/http/corpus.json'), 'utf8'));
const REQUEST_LINE = /(?:^|\r\n\r\n|ok)([A-Z]+) (\S+) HTTP\/1\.[01]\r\n/g;

test('HTTP/1.1 smuggling corpus: right status, no desync, upstream sees only valid requests', async (t) => {
  assert.ok(cases.length >= 30, 'corpus has at least 30 cases');
  const up = await rawUpstream(Buffer.from('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok'));
  const proxy = await startProxy(view([service({ name: 'svc', vip: '10.96.0.10', port: 80, endpoints: [{ port: up.port }] })]), { ip: '10.96.0.10', port: 80 });
  t.after(async () => { await proxy.close(); await up.close(); });
  let seen = 0;
  for (const c of cases) {
    const before = up.received().length;
    // Successful exchanges keep the connection open: stop once every expected answer is in.
    const allOk = c.expectStatuses.every((s) => s === 200);
    const res = await rawExchange(proxy.port, expand(c.request), 1500, 0,
      allOk ? (d) => d.toString('latin1').split('\r\n\r\nok').length - 1 === c.expectStatuses.length : undefined);
    const text = res.data.toString('latin1');
    const statuses = [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
    assert.deepEqual(statuses, c.expectStatuses, `${c.name}: statuses (got ${JSON.stringify(text.slice(0, 120))})`);
    const got = up.received().subarray(before).toString('latin1');
    const n = [...got.matchAll(REQUEST_LINE)].length;
    assert.equal(n, c.upstreamRequests, `${c.name}: upstream saw ${n} requests: ${JSON.stringify(got.slice(0, 200))}`);
    if (!allOk) assert.ok(res.closed, `${c.name}: connection closed after an error`);
    seen++;
  }
  // The proxy survived all of it and still serves.
  const ok = await rawExchange(proxy.port, Buffer.from('GET /after HTTP/1.1\r\nHost: svc\r\nConnection: close\r\n\r\n'));
  assert.match(ok.data.toString('latin1'), /^HTTP\/1\.1 200 /);
  assert.equal(seen, cases.length);
});
