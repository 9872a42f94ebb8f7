'use strict';
// bench:dns's client: COUNT sequential queries for NAME (type A) to HOST:PORT over
// udp (a connected socket, as glibc's stub uses) or tcp (one connection, RFC 7766),
// each timed from send to answer. Prints {n, p50Us, p90Us, p99Us, maxUs, qps, answers}.
const dgram = require('node:dgram');
const net = require('node:net');
const [transport, host, port, name, count, warmup] = process.argv.slice(2);
const N = Number(count), W = Number(warmup);

function query(id) {
  const labels = name.split('.').filter(Boolean);
  const parts = [Buffer.from([id >> 8, id & 255, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0])];
  for (const l of labels) parts.push(Buffer.from([l.length]), Buffer.from(l, 'latin1'));
  parts.push(Buffer.from([0, 0, 1, 0, 1]));
  return Buffer.concat(parts);
}

async function main() {
  const times = [];
  let answers = 0;
  let ask;
  let close;
  if (transport === 'udp') {
    const s = dgram.createSocket('udp4');
    await new Promise((r) => s.connect(Number(port), host, r));
    let waiting = null;
    s.on('message', (m) => { if (waiting && m.readUInt16BE(0) === waiting.id) { const w = waiting; waiting = null; w.resolve(m); } });
    ask = (q, id) => new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no answer to query ${id}`)), 2000);
      waiting = { id, resolve: (m) => { clearTimeout(t); resolve(m); } };
      s.send(q);
    });
    close = () => s.close();
  } else {
    const s = net.connect(Number(port), host);
    s.setNoDelay(true);
    await new Promise((r, j) => { s.once('connect', r); s.once('error', j); });
    let buf = Buffer.alloc(0);
    let waiting = null;
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const m = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + buf.readUInt16BE(0));
        if (waiting) { const w = waiting; waiting = null; w(m); }
      }
    });
    ask = (q) => new Promise((resolve) => { waiting = resolve; const l = Buffer.alloc(2); l.writeUInt16BE(q.length); s.write(Buffer.concat([l, q])); });
    close = () => s.destroy();
  }
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N + W; i++) {
    const id = i & 0xffff;
    const q = query(id);
    const start = process.hrtime.bigint();
    const m = await ask(q, id);
    const us = Number(process.hrtime.bigint() - start) / 1000;
    if (i >= W) { times.push(us); if (m.readUInt16BE(6) > 0 && (m.readUInt16BE(2) & 15) === 0) answers++; }
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  close();
  times.sort((a, b) => a - b);
  const q = (p) => times[Math.min(times.length - 1, Math.floor(p * times.length))];
  process.stdout.write(JSON.stringify({ n: times.length, p50Us: q(0.5), p90Us: q(0.9), p99Us: q(0.99), maxUs: times[times.length - 1], qps: (N + W) / secs, answers }) + '\n');
}
main().catch((e) => { process.stderr.write(String(e && e.stack || e) + '\n'); process.exit(1); });
