// The HTTP/1.1 upstream reads through `onread` into one reused buffer. Bytes handed to a
// client whose socket could not take them at once must never be overwritten by the next
// read: a slow client gets exactly what the backend sent (content-length and chunked,
// many responses over one pooled connection, with backpressure pausing the upstream).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { httpUpstream, service, startProxy, view } from './l7-harness';

const VIP = '10.96.8.1';
const BODY = randomBytes(3 * 1024 * 1024 + 17);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** GET over one keep-alive connection, reading slowly (pauses between reads). */
function slowGets(port: number, paths: string[]): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1' });
    const bodies: Buffer[] = [];
    let buf = Buffer.alloc(0);
    let i = 0;
    const next = () => { if (i < paths.length) s.write(`GET ${paths[i++]} HTTP/1.1\r\nHost: a\r\n\r\n`); else { s.end(); resolve(bodies); } };
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      s.pause();
      setTimeout(() => s.resume(), 1);
      for (;;) {
        const he = buf.indexOf('\r\n\r\n');
        if (he < 0) return;
        const head = buf.subarray(0, he).toString('latin1');
        const cl = /content-length: (\d+)/i.exec(head);
        let body: Buffer, rest: Buffer;
        if (cl) {
          const n = Number(cl[1]);
          if (buf.length < he + 4 + n) return;
          body = buf.subarray(he + 4, he + 4 + n);
          rest = buf.subarray(he + 4 + n);
        } else {
          // chunked
          const parts: Buffer[] = [];
          let p = he + 4;
          for (;;) {
            const le = buf.indexOf('\r\n', p);
            if (le < 0) return;
            const size = parseInt(buf.subarray(p, le).toString('latin1'), 16);
            if (buf.length < le + 2 + size + 2) return;
            if (size === 0) { p = le + 4; break; }
            parts.push(buf.subarray(le + 2, le + 2 + size));
            p = le + 2 + size + 2;
          }
          body = Buffer.concat(parts);
          rest = buf.subarray(p);
        }
        bodies.push(Buffer.from(body));
        buf = Buffer.from(rest);
        next();
      }
    });
    s.on('error', reject);
    next();
  });
}

test('HTTP/1.1 upstream read buffer: a slow client receives every byte intact (length and chunked, reused connection)', async (t) => {
  const up = await httpUpstream((req, res) => {
    if (req.url === '/chunked') {
      // Many writes of odd sizes: chunked framing spread over reads.
      let off = 0;
      const step = () => {
        while (off < BODY.length) {
          const n = Math.min(BODY.length - off, 7919 + (off % 5000));
          const more = res.write(BODY.subarray(off, off + n));
          off += n;
          if (!more) { res.once('drain', step); return; }
        }
        res.end();
      };
      step();
    } else { res.setHeader('content-length', BODY.length); res.end(BODY); }
  });
  const p = await startProxy(view([service({ name: 'big', vip: VIP, port: 80, endpoints: [{ port: up.port }] })]), { ip: VIP, port: 80 });
  t.after(async () => { await p.close(); await up.close(); });
  const bodies = await slowGets(p.port, ['/length', '/chunked', '/length', '/chunked']);
  assert.equal(bodies.length, 4);
  for (const b of bodies) {
    assert.equal(b.length, BODY.length);
    assert.equal(sha(b), sha(BODY));
  }
  assert.equal(p.directory.cluster('test/big:80')!.connections, 1, 'one pooled upstream connection served them all');
});
