// Reads a plain TCP socket through net's `onread` option: each read lands in one reused
// buffer and goes straight to a sink function, without the Readable stream machinery
// ('data' events, the readable state) and without the 64 KiB buffer Node allocates for
// every read of a socket read as a stream. For the tunnel's upstream sockets (the
// 15008 listener's connection to the local workload), whose reads a StreamBridge turns
// into DATA frames.
//
// The buffer is reused only while nothing references an earlier read: the sink says
// whether it kept a reference (the HTTP/2 connection queued the bytes or sent them as a
// slice), and the next read then gets a fresh buffer. pause()/resume() on the socket
// stop and restart reading as usual; 'end', 'error' and 'close' are still events.
// Reads before a sink is attached are copied, and the socket paused past READ_BUFFER.
import type { OnReadOpts, Socket } from 'node:net';

/** Takes one read; returns true when it keeps a reference to `b` after returning. */
export type ReadSink = (b: Buffer) => boolean;

/** Size of the reused read buffer (what Node reads at most per read of a stream). */
export const READ_BUFFER = 64 * 1024;

export class SocketReader {
  private sink: ReadSink | null = null;
  /** Reads that came before a sink was attached (copies; the socket is paused once
   *  they pass READ_BUFFER bytes, and resumed by whoever attaches). */
  private early: Buffer[] = [];
  private earlyBytes = 0;
  private pausedEarly = false;
  /** The socket read through `onread` (set once created). */
  socket: Socket | null = null;
  private buf: Buffer | null = null;
  private lent = false;
  /** The `onread` option to create the socket with. */
  readonly onread: OnReadOpts = {
    buffer: () => {
      if (this.buf === null || this.lent) { this.buf = Buffer.allocUnsafe(READ_BUFFER); this.lent = false; }
      return this.buf;
    },
    callback: (n: number, buf: Uint8Array): boolean => {
      const b = (buf as Buffer).subarray(0, n);
      if (this.sink === null) {
        this.early.push(Buffer.from(b));
        this.earlyBytes += n;
        // (Not `return false`: on Node 20 that stops reading in a way resume() does
        // not fully undo, and the socket's 'end' is then never emitted.)
        if (this.earlyBytes >= READ_BUFFER && this.socket !== null && !this.pausedEarly) { this.pausedEarly = true; this.socket.pause(); }
        return true;
      }
      if (this.sink(b)) this.lent = true;
      return true;
    },
  };

  /** From now on reads go to `sink`, starting with those that came before. */
  attach(sink: ReadSink): void {
    this.sink = sink;
    const early = this.early;
    this.early = [];
    this.earlyBytes = 0;
    if (this.pausedEarly) { this.pausedEarly = false; this.socket?.resume(); }
    for (const b of early) sink(b);
  }
}
