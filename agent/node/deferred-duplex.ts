// A Duplex that stands for a stream still being opened (an mTLS tunnel stream is
// asynchronous, the proxies' connectors are synchronous). Writes are held until the
// real stream arrives, then both directions are spliced; if opening fails, the Duplex
// is destroyed with that error, which the proxies treat as an upstream failure.
import { Duplex } from 'node:stream';

export function deferredDuplex(open: Promise<Duplex>): Duplex {
  let inner: Duplex | null = null;
  let pending: { chunk: Buffer; cb: (e?: Error | null) => void } | null = null;
  let finalPending: ((e?: Error | null) => void) | null = null;

  const outer = new Duplex({
    allowHalfOpen: true,
    read() { inner?.resume(); },
    write(chunk: Buffer, _enc, cb) {
      if (inner) { inner.write(chunk, cb); return; }
      pending = { chunk, cb };
    },
    final(cb) {
      if (inner) { inner.end(); cb(); return; }
      finalPending = cb;
    },
    destroy(err, cb) { inner?.destroy(err ?? undefined); cb(err); },
  });

  open.then((s) => {
    if (outer.destroyed) { s.destroy(); return; }
    inner = s;
    s.on('data', (d: Buffer) => { if (!outer.push(d)) s.pause(); });
    s.on('end', () => outer.push(null));
    s.on('error', (e) => outer.destroy(e));
    s.on('close', () => { if (!outer.destroyed && !outer.readableEnded) outer.destroy(); });
    if (pending) { const p = pending; pending = null; s.write(p.chunk, p.cb); }
    if (finalPending) { const f = finalPending; finalPending = null; s.end(); f(); }
  }, (e: Error) => {
    outer.destroy(e);
  });
  return outer;
}
