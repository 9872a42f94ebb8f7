// A pooled HTTP/1.1 upstream connection that was paused for a slow or vanished client
// must go back to the pool reading again. It used to be released paused when the write
// of a response's last bytes to the client returned false (a client that half-closed
// gets Node's write-after-FIN, which does): the next request written on it got its
// response into a buffer nobody read and waited forever (bench:l7 at the end of a wrk
// run: clients of the next phase whose first request never returned).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { Duplex } from 'node:stream';
import { service, view, startProxy, httpUpstream } from './l7-harness';
import { L7Directory } from '../../agent/proxy/routing/directory';
import { Downstream, TimeoutSweeper, type Http1Options } from '../../agent/proxy/http/downstream';
import { rootLogger } from '../../agent/telemetry/logger';

const BIG = 8 * 1024 * 1024;

/** One request on a fresh connection; reads nothing for `stallMs`, then the whole reply. */
function fetchRaw(port: number, path: string, bodyBytes: number, stallMs: number, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port });
    let got = 0;
    let headEnd = -1;
    let head = Buffer.alloc(0);
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`${path}: no complete response within ${timeoutMs} ms (${got} body bytes)`)); }, timeoutMs);
    s.on('error', (e) => { clearTimeout(timer); reject(e); });
    s.on('data', (d: Buffer) => {
      if (headEnd < 0) {
        head = Buffer.concat([head, d]);
        headEnd = head.indexOf('\r\n\r\n');
        if (headEnd < 0) return;
        got = head.length - headEnd - 4;
      } else got += d.length;
      if (got >= bodyBytes) { clearTimeout(timer); s.destroy(); resolve(Number(/^HTTP\/1\.1 (\d+)/.exec(head.toString('latin1'))![1])); }
    });
    s.on('connect', () => {
      s.write(`GET ${path} HTTP/1.1\r\nHost: web\r\n\r\n`);
      if (stallMs > 0) { s.pause(); setTimeout(() => s.resume(), stallMs); }
    });
  });
}

test('an upstream paused for a slow client is reading again when the next request reuses it', async (t) => {
  const big = Buffer.alloc(BIG, 0x61);
  const up = await httpUpstream((req, res) => {
    const body = req.url === '/big' ? big : Buffer.from('ok');
    res.writeHead(200, { 'content-length': body.length });
    res.end(body);
  });
  const p = await startProxy(view([service({ name: 'web', vip: '10.96.0.1', port: 80, endpoints: [{ port: up.port }] })]), { ip: '10.96.0.1', port: 80 });
  t.after(async () => { await p.close(); await up.close(); });

  // The client reads nothing for a while: the proxy's writes back up and it pauses the
  // upstream; the response then completes while the client is still behind.
  assert.equal(await fetchRaw(p.port, '/big', BIG, 300, 10_000), 200);
  // Same endpoint, no other upstream connection idle: this request reuses that one.
  for (let i = 0; i < 3; i++) assert.equal(await fetchRaw(p.port, '/small', 2, 0, 2_000), 200);
  assert.equal(up.hits, 4);
});

/** A client transport: bytes pushed in as the request; what the proxy writes is
 *  collected, or never acknowledged when `stalled` (every write then returns false). */
function client(stalled: boolean): { sock: Duplex; written: () => string } {
  const out: Buffer[] = [];
  const sock = new Duplex({
    writableHighWaterMark: 1,
    read() {},
    write(chunk: Buffer, _enc, cb) { out.push(chunk); if (!stalled) cb(); },
  });
  return { sock, written: () => Buffer.concat(out).toString('latin1') };
}

test('a response whose last write to the client returned false does not leave its upstream paused in the pool', async (t) => {
  const up = await httpUpstream((_req, res) => { res.writeHead(200, { 'content-length': 2 }); res.end('ok'); });
  const dir = new L7Directory();
  dir.apply(view([service({ name: 'web', vip: '10.96.0.1', port: 80, endpoints: [{ port: up.port }] })]));
  const sweeper = new TimeoutSweeper(100);
  t.after(async () => { sweeper.close(); dir.close(); await up.close(); });
  const opts: Http1Options = {
    connect: (ep) => connect({ host: ep.ip, port: ep.port }), headerTimeoutMs: 5000, idleTimeoutMs: 60_000,
    maxHeadBytes: 16384, accessLog: null, tracer: null, logger: rootLogger(),
  };
  const origin = { dstIp: '10.96.0.1', dstPort: 80, cgroupId: 7 };
  const conn = () => ({ routes: dir.lookup('10.96.0.1', 80), series: null, authorize: null, origin });
  const request = Buffer.from('GET / HTTP/1.1\r\nHost: web\r\n\r\n');

  // 1. A client that takes nothing: the whole response is one write, and it returns false.
  const slow = client(true);
  new Downstream(slow.sock, conn(), opts, sweeper, request);
  for (let i = 0; i < 200 && !slow.written().includes('\r\n\r\nok'); i++) await new Promise((r) => setTimeout(r, 10));
  assert.match(slow.written(), /^HTTP\/1\.1 200/, 'the first response reached the (stalled) client');
  slow.sock.destroy();

  // 2. The next request on the same endpoint and source reuses that pooled connection.
  for (let n = 0; n < 3; n++) {
    const next = client(false);
    new Downstream(next.sock, conn(), opts, sweeper, request);
    for (let i = 0; i < 200 && !next.written().includes('\r\n\r\nok'); i++) await new Promise((r) => setTimeout(r, 10));
    assert.match(next.written(), /\r\n\r\nok$/, `request ${n + 2} was answered`);
    next.sock.destroy();
  }
  assert.equal(up.hits, 4);
});
