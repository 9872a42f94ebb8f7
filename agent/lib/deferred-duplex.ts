// A Duplex that stands for a stream still being opened (an mTLS tunnel stream is
// asynchronous, the proxies' connectors are synchronous). Writes are held until the
// real stream arrives, then both directions are spliced; if opening fails, the Duplex
// is destroyed with that error, which the proxies treat as an upstream failure.
//
// A byte relay that joins its two ends itself (the opaque L4 path) can take the real
// stream over before anything was read or written: the Duplex then stays unused, so the
// relay joins the client socket to the tunnel stream directly, with no stream hop in
// between.
import { Duplex } from 'node:stream';

export interface DeferredDuplex extends Duplex {
  /** The stream being opened, for a caller that joins it itself; null once this Duplex
   *  has been read from, written to or destroyed. This Duplex is not used afterwards. */
  takeOver(): Promise<Duplex> | null;
}

export function isDeferredDuplex(d: Duplex): d is DeferredDuplex {
  return typeof (d as Partial<DeferredDuplex>).takeOver === 'function';
}

export function deferredDuplex(open: Promise<Duplex>): DeferredDuplex {
  let inner: Duplex | null = null;
  let pending: { chunk: Buffer; cb: (e?: Error | null) => void } | null = null;
  let finalPending: ((e?: Error | null) => void) | null = null;
  let used = false;
  let takenOver = false;

  const outer = new Duplex({
    allowHalfOpen: true,
    read() { used = true; inner?.resume(); },
    write(chunk: Buffer, _enc, cb) {
      used = true;
      if (inner) { inner.write(chunk, cb); return; }
      pending = { chunk, cb };
    },
    final(cb) {
      used = true;
      if (inner) { inner.end(); cb(); return; }
      finalPending = cb;
    },
    destroy(err, cb) { inner?.destroy(err ?? undefined); cb(err); },
  }) as DeferredDuplex;

  outer.takeOver = () => {
    if (used || takenOver || outer.destroyed) return null;
    takenOver = true;
    return open;
  };

  open.then((s) => {
    if (takenOver) return;
    if (outer.destroyed) { s.destroy(); return; }
    inner = s;
    s.on('data', (d: Buffer) => { if (!outer.push(d)) s.pause(); });
    s.on('end', () => outer.push(null));
    s.on('error', (e) => outer.destroy(e));
    s.on('close', () => { if (!outer.destroyed && !outer.readableEnded) outer.destroy(); });
    if (pending) { const p = pending; pending = null; s.write(p.chunk, p.cb); }
    if (finalPending) { const f = finalPending; finalPending = null; s.end(); f(); }
  }, (e: Error) => {
    if (takenOver) return;
    outer.destroy(e);
  });
  return outer;
}
