// The HTTP/1.1 proxy reads its client sockets through `onread` (one shared scratch buffer,
// each read copied out) and its upstream sockets through `onread` into a per-connection
// read slab (agent/proxy/sockets/onread.ts). Bytes still referenced after a read (a
// partial head, pipelined requests held while one is in flight, a request kept for a
// retry or queued for a connection) must never be read over: every request below reaches
// the backend intact and in order, whatever the read boundaries, and every response
// comes back to the client in order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { ReadSlab, readAccepted } from '../../agent/proxy/sockets/onread';
import { httpUpstream, service, startProxy, view } from './l7-harness';

const VIP = '10.96.9.1';
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test('an accepted TCP socket switches to onread delivery on this Node, each read a buffer of its own', async () => {
  const got: Buffer[] = [];
  let switched = false;
  const server = createServer((s: Socket) => {
    switched = readAccepted(s, (d) => { got.push(d); if (Buffer.concat(got).toString() === 'pingpong') s.end('ok'); });
    s.on('data', () => got.push(Buffer.from('(data event)')));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const reply = await new Promise<string>((resolve, reject) => {
    const c = connect((server.address() as AddressInfo).port, '127.0.0.1');
    let out = '';
    c.on('data', (d: Buffer) => { out += d.toString(); });
    c.on('end', () => resolve(out));
    c.on('error', reject);
    c.write('ping');
    setTimeout(() => c.write('pong'), 20);
  });
  server.close();
  assert.equal(switched, true, 'the onread path is available (otherwise the proxy falls back to data events)');
  assert.equal(reply, 'ok');
  assert.deepEqual(got.map((b) => b.toString()), ['ping', 'pong'], 'no data event after the switch; the first read was not overwritten by the second');
});

test('ReadSlab: a kept read is never read over; an unkept one is', () => {
  const slab = new ReadSlab();
  const a = slab.next();
  a.write('first', 'latin1');
  slab.last = 5;
  slab.keep();
  const b = slab.next();
  b.write('second', 'latin1');
  slab.last = 6;
  assert.equal(a.toString('latin1', 0, 5), 'first', 'kept bytes intact after the next read');
  const c = slab.next();
  assert.equal(c.byteOffset, b.byteOffset, 'unkept bytes: the next read lands on them');
  // Keeping many reads moves to a new slab when the room runs out, never overlapping.
  const kept: Buffer[] = [];
  let v = c;
  for (let i = 0; i < 50; i++) {
    const s = `read-${i}-`.padEnd(1000, String.fromCharCode(97 + (i % 26)));
    v.write(s, 'latin1');
    slab.last = s.length;
    kept.push(v.subarray(0, s.length));
    slab.keep();
    v = slab.next();
  }
  kept.forEach((k, i) => assert.equal(k.toString('latin1'), `read-${i}-`.padEnd(1000, String.fromCharCode(97 + (i % 26)))));
});

test('pipelined requests with bodies, split at odd read boundaries, reach a slow backend intact and in order', { timeout: 30_000 }, async (t) => {
  const seen: string[] = [];
  const up = await httpUpstream((req, res, body) => {
    seen.push(`${req.url} ${sha(body)}`);
    // A slow backend: the next requests sit in the proxy while this one is in flight.
    setTimeout(() => res.end(`${req.url} ${sha(body)}`), 3);
  });
  const p = await startProxy(view([service({ name: 'echo', vip: VIP, port: 80, endpoints: [{ port: up.port }] })]), { ip: VIP, port: 80 });
  t.after(async () => { await p.close(); await up.close(); });

  const reqs: { path: string; body: Buffer; wire: Buffer }[] = [];
  for (let i = 0; i < 40; i++) {
    const body = randomBytes([0, 1, 17, 700, 5000, 20_000, 70_000][i % 7]!);
    const path = `/r${i}`;
    let wire: Buffer;
    if (i % 3 === 2 && body.length >= 2) {
      // chunked, in two chunks
      const h = body.length >> 1;
      wire = Buffer.concat([Buffer.from(`POST ${path} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n${h.toString(16)}\r\n`), body.subarray(0, h),
        Buffer.from(`\r\n${(body.length - h).toString(16)}\r\n`), body.subarray(h), Buffer.from('\r\n0\r\n\r\n')]);
    } else wire = Buffer.concat([Buffer.from(`POST ${path} HTTP/1.1\r\nHost: a\r\nContent-Length: ${body.length}\r\n\r\n`), body]);
    reqs.push({ path, body, wire });
  }
  const all = Buffer.concat(reqs.map((r) => r.wire));
  const expected = reqs.map((r) => `${r.path} ${sha(r.body)}`);

  const answers = await new Promise<string[]>((resolve, reject) => {
    const s = connect(p.port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    const out: string[] = [];
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const he = buf.indexOf('\r\n\r\n');
        if (he < 0) return;
        const n = Number(/content-length: (\d+)/i.exec(buf.subarray(0, he).toString('latin1'))![1]);
        if (buf.length < he + 4 + n) return;
        out.push(buf.subarray(he + 4, he + 4 + n).toString('latin1'));
        buf = buf.subarray(he + 4 + n);
        if (out.length === reqs.length) { s.end(); resolve(out); }
      }
    });
    s.on('error', reject);
    // Odd-sized writes with pauses: heads and bodies split anywhere, several requests per read.
    let off = 0, k = 0;
    const sizes = [1, 7, 13, 400, 3, 9000, 65, 2, 30_000, 111];
    const send = (): void => {
      if (off >= all.length) return;
      const n = sizes[k++ % sizes.length]!;
      s.write(all.subarray(off, off + n));
      off += n;
      if (k % 4 === 0) setTimeout(send, 1); else setImmediate(send);
    };
    send();
  });
  assert.deepEqual(seen, expected, 'the backend got every request intact, in order');
  assert.deepEqual(answers, expected, 'the client got every response, in order');
});
