// Two in-process Duplex streams wired to each other (what one end writes, the other
// reads; ends and errors cross over). Node 22 has stream.duplexPair; Node 20 does not.
import { Duplex } from 'node:stream';

export function duplexPair(): [Duplex, Duplex] {
  let a: Duplex, b: Duplex;
  const side = (peer: () => Duplex) => new Duplex({
    allowHalfOpen: true,
    read() { const p = peer() as Duplex & { waiting?: () => void }; const w = p.waiting; if (w) { p.waiting = undefined; w(); } },
    write(chunk: Buffer, _enc, cb) {
      const p = peer();
      if (p.push(chunk)) cb();
      else (this as Duplex & { waiting?: () => void }).waiting = () => cb();
    },
    final(cb) { peer().push(null); cb(); },
    destroy(err, cb) { const p = peer(); if (!p.destroyed) p.destroy(err ?? undefined); cb(err); },
  });
  a = side(() => b);
  b = side(() => a);
  return [a, b];
}
