// Reading a plain TCP socket without the Readable stream machinery, on both sides of the
// HTTP/1.1 proxy, and on the accepted side of the tunnel's byte relay (readAcceptedLent).
//
// A socket read through `onread` (net.connect's option) hands each read to a callback as
// (bytes read, buffer) and never pushes it through the stream's queue or emits 'data':
// on a small keep-alive exchange that machinery, and Node's 64 KiB allocation per read
// shrunk to its size, cost as much CPU as the proxy's own work. net.Server has no such
// option for the sockets it accepts; `readAccepted` switches an accepted socket to the
// same delivery (pause(), resume(), 'end', 'error' and 'close' work as for a connected one).
//
// Upstream connections (few, pooled) read into a `ReadSlab` of their own: one buffer per
// connection read into at a moving offset. Bytes the reader still references after its
// callback (a partial head, a write the client socket queued) are never read over: the
// reader says so (`keep()`), and the next read lands after them; a new slab is taken
// when too little room is left, and old ones go when nothing references them.
//
// Accepted connections can be many and mostly idle (keep-alive clients), so they hold no
// read buffer: every accepted socket reads into one shared scratch buffer, and each read
// is copied out to a buffer of its own size (small ones from Node's buffer pool) before
// the proxy sees it. Reads are handled one at a time on the event loop, so the scratch
// buffer is free again as soon as the callback returns, and what the proxy keeps of a
// request (pipelined bytes, a copy kept for a retry) is its own.
import { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';

/** Slab size, and the least room a read is offered before a new slab is taken. */
const SLAB = 16 * 1024;
const MIN_ROOM = 4 * 1024;

export class ReadSlab {
  private slab: Buffer | null = null;
  private off = 0;
  private view: Buffer | null = null;
  /** Bytes in the last read (set by the owner's read callback). */
  last = 0;
  private kept = false;

  /** The bytes of the last read are still referenced: the next read must not overwrite them. */
  keep(): void { this.kept = true; }

  /** The buffer the next read lands in (net's `onread.buffer` function). */
  readonly next = (): Buffer => {
    if (this.kept) {
      this.kept = false;
      this.off += this.last;
      this.view = null;
    }
    this.last = 0;
    if (this.view !== null) return this.view;
    if (this.slab === null || this.slab.length - this.off < MIN_ROOM) {
      this.slab = Buffer.allocUnsafe(SLAB);
      this.off = 0;
    }
    return (this.view = this.slab.subarray(this.off));
  };
}

/** The symbols net.Socket keeps its `onread` state under (they are not exported). */
interface OnreadKeys { buffer: symbol; callback: symbol; gen: symbol }
let keys: OnreadKeys | null | undefined;

function onreadKeys(): OnreadKeys | null {
  if (keys !== undefined) return keys;
  // A socket created with `onread` carries the three fields; find them by name.
  const probe = new Socket({ onread: { buffer: () => Buffer.alloc(1), callback: () => true } } as ConstructorParameters<typeof Socket>[0]);
  const by = (d: string) => Object.getOwnPropertySymbols(probe).find((s) => s.description === d);
  const buffer = by('kBuffer'), callback = by('kBufferCb'), gen = by('kBufferGen');
  const p = probe as unknown as Record<symbol, unknown>;
  keys = buffer !== undefined && callback !== undefined && gen !== undefined && typeof p[gen] === 'function' && typeof p[callback] === 'function'
    ? { buffer, callback, gen } : null;
  probe.destroy();
  return keys;
}

/** True for a plain TCP socket (not TLS, not a stream pair). */
export function isPlainTcp(sock: Socket | Duplex): sock is Socket {
  return sock instanceof Socket && !(sock instanceof TLSSocket);
}

/** Where every accepted socket's reads land before they are copied out. */
const SCRATCH = Buffer.allocUnsafe(64 * 1024);

/**
 * Switches an accepted plain TCP socket to `onread` delivery into SCRATCH: from its next
 * read on, `callback(n)` is called with the bytes in SCRATCH[0..n) instead of 'data'
 * being emitted. Bytes the stream already holds are still emitted as 'data' when it
 * resumes (a caller that peeked at the first bytes keeps its 'data' listener for them).
 * False when this Node has no such path (the socket then keeps emitting 'data').
 */
function readIntoScratch(sock: Socket | Duplex, callback: (n: number) => void): boolean {
  if (!isPlainTcp(sock)) return false;
  const k = onreadKeys();
  const handle = (sock as unknown as { _handle?: { useUserBuffer?: (b: Buffer) => void } | null })._handle;
  if (k === null || handle == null || typeof handle.useUserBuffer !== 'function') return false;
  const s = sock as unknown as Record<symbol, unknown>;
  if (s[k.buffer] !== null) return false; // already reading through onread
  s[k.gen] = null;
  s[k.callback] = (n: number): boolean => { callback(n); return true; };
  s[k.buffer] = SCRATCH;
  handle.useUserBuffer(SCRATCH);
  return true;
}

/** readIntoScratch, each read copied out to a buffer of its own before `onData` sees it
 *  (what the HTTP/1.1 proxy keeps of a request is its own). */
export function readAccepted(sock: Socket | Duplex, onData: (d: Buffer) => void): boolean {
  return readIntoScratch(sock, (n) => {
    const d = Buffer.allocUnsafe(n);
    SCRATCH.copy(d, 0, 0, n);
    onData(d);
  });
}

/**
 * readIntoScratch, each read lent rather than copied out: `onRead` gets a view of the
 * shared scratch buffer, valid only until it returns (whatever it keeps, it copies), so
 * a read costs no allocation. For a reader that passes most reads on at once (the
 * tunnel's byte relay, whose HTTP/2 connection copies small payloads into its output
 * buffer anyway).
 */
export function readAcceptedLent(sock: Socket | Duplex, onRead: (b: Buffer) => void): boolean {
  return readIntoScratch(sock, (n) => onRead(SCRATCH.subarray(0, n)));
}
