// Reading a plain TCP socket without the Readable stream machinery, on both sides of the
// HTTP/1.1 proxy.
//
// A socket read through `onread` (net.connect's option) hands each read to a callback as
// (bytes read, buffer) and never builds a Buffer per read, pushes it through the stream's
// queue or emits 'data': on a small keep-alive exchange that machinery and Node's 64 KiB
// allocation per read cost as much CPU as the proxy's own work. net.Server has no such
// option for the sockets it accepts; `readAccepted` switches an accepted socket to the
// same delivery (pause(), resume(), 'end', 'error' and 'close' work as for a connected one).
//
// Reads land in a `ReadSlab`: one buffer per connection read into at a moving offset.
// Bytes a reader still references after its callback (a partial head, a request kept for
// a retry, a write the other socket queued) are never read over: the reader says so
// (`keep()`), and the next read lands after them; a new slab is taken when too little
// room is left, and old ones go when nothing references them. Bytes nobody kept are read
// over, so a connection whose exchanges complete within their reads allocates nothing.
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

/**
 * Switches an accepted plain TCP socket to `onread` delivery: from its next read on,
 * bytes go to `callback(n, buf)` (buf[0..n)) in buffers from `slab`, not to 'data'.
 * Bytes the stream already holds are still emitted as 'data' when it resumes (a caller
 * that peeked at the first bytes keeps its 'data' listener for them). False when this
 * Node has no such path (the socket then keeps emitting 'data').
 */
export function readAccepted(sock: Socket | Duplex, slab: ReadSlab, callback: (n: number, buf: Buffer) => boolean): boolean {
  if (!isPlainTcp(sock)) return false;
  const k = onreadKeys();
  const handle = (sock as unknown as { _handle?: { useUserBuffer?: (b: Buffer) => void } | null })._handle;
  if (k === null || handle == null || typeof handle.useUserBuffer !== 'function') return false;
  const s = sock as unknown as Record<symbol, unknown>;
  if (s[k.buffer] !== null) return false; // already reading through onread
  const first = slab.next();
  s[k.gen] = slab.next;
  s[k.callback] = callback;
  s[k.buffer] = first;
  handle.useUserBuffer(first);
  return true;
}
