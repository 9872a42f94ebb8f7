// A CONNECT stream of weft's HTTP/2 engine (h2/connection.ts) joined to a byte stream,
// with the engine's flow control carried through to the sockets (RFC 9113 §8.5):
//   - toward the peer: bytes read from the socket are sent as DATA; once more than
//     QUEUE_HIGH of them wait for the peer's window or for the TLS socket, the socket is
//     paused, and resumed when the queue has gone out (onSent);
//   - from the peer: DATA is written to the socket and credited back to the peer's
//     windows only once the socket took it (write() under its high-water mark, or
//     'drain'): a slow reader stops its sender after one stream window;
//   - FIN one way is END_STREAM one way (half-close); the other direction continues;
//   - a TCP reset or error becomes RST_STREAM(CONNECT_ERROR), and a received
//     RST_STREAM resets the TCP connection (RST, not FIN).
// StreamBridge does this without stream objects in between (the data path of both the
// 15008 listener and the outbound capture), reading its socket through `onread`: a
// dialled workload socket through a SocketReader, an accepted client socket lent from
// the shared scratch buffer (readAcceptedLent; the engine copies what it keeps); TunnelStream is the same stream as a Duplex
// for callers that need one (the L7 proxy's upstream transport), and hands its stream to
// a StreamBridge when spliced with a socket before it was used.
import { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { WeftError } from '../../lib/errors';
import type { H2Stream, StreamHandler } from '../h2/connection';
import { E } from '../h2/frame';
import type { SocketReader } from '../sockets/reader';
import { readAcceptedLent } from '../sockets/onread';

/** Bytes queued on a stream (no window, or the TLS socket backed up) before the source
 *  socket is paused; it is resumed below QUEUE_LOW. */
export const QUEUE_HIGH = 256 * 1024;
export const QUEUE_LOW = 64 * 1024;
const EMPTY = Buffer.alloc(0);

/** Resets a TCP connection when it is one (RST on the wire), else destroys the stream.
 *  Once our FIN is queued a plain destroy is used: on Node 20 resetAndDestroy() with a
 *  shutdown still pending leaves the TCP handle open for good. */
function resetSocket(d: Duplex): void {
  if (d.destroyed) return;
  if (d instanceof Socket && !d.connecting && !d.writableEnded) d.resetAndDestroy();
  else d.destroy();
}

/** What a stream received before its final owner took it over: the bytes, how many of
 *  them are not credited to the peer yet, and whether END_STREAM came with them. */
export interface Received { chunks: Buffer[]; uncredited: number; end: boolean }

/**
 * Joins `s` and `d` both ways until both directions finished or either side reset.
 * `early`: data the stream received before (not yet credited). `done` is called once
 * when the stream is closed.
 */
export class StreamBridge implements StreamHandler {
  /** `d` is paused: the stream's queue toward the peer is over QUEUE_HIGH. */
  paused = false;
  /** Written to `d` while it was over its high-water mark: credited on 'drain'. */
  private uncredited = 0;
  private finished = false;

  /** `reader`: `d` reads through it (a plain TCP socket created with its `onread`)
   *  instead of 'data' events. */
  constructor(private readonly s: H2Stream, readonly d: Duplex, early: Received | null, private readonly done: (() => void) | null = null,
    reader: SocketReader | null = null) {
    s.handler = this;
    if (reader !== null) reader.attach(this.onSockRead);
    else {
      // 'data' carries what the stream already holds (bytes read before the stream
      // opened, or put back by protocol detection), and every read of a socket that
      // cannot switch; a plain TCP socket's next reads are lent straight to the stream.
      d.on('data', this.onSockData);
      readAcceptedLent(d, this.onSockLent);
    }
    d.on('end', this.onSockEnd);
    d.on('drain', this.onSockDrain);
    d.on('error', this.onSockError);
    d.on('close', this.onSockClose);
    if (early !== null) {
      let ok = true;
      for (const c of early.chunks) ok = d.write(c);
      this.uncredited = early.uncredited;
      if (ok) this.onSockDrain();
      if (early.end) d.end();
    } else if (s.remoteEnd) d.end();
    if (s.closed) { this.finish(); return; }
    // The socket may have gone (or finished reading) while the stream was being opened:
    // its events are past.
    if (d.destroyed) this.onSockClose();
    else if (d.readableEnded) this.onSockEnd();
  }

  // ------------------------------------------------------------- socket -> peer
  private readonly onSockData = (b: Buffer): void => { this.onSockRead(b); };

  /** Returns true when the connection kept a reference to `b` (see SocketReader). */
  private readonly onSockRead = (b: Buffer): boolean => this.toPeer(b, false);

  /** A read lent from the shared scratch buffer (readAcceptedLent): whatever the
   *  connection keeps of it, it copies. */
  private readonly onSockLent = (b: Buffer): void => { this.toPeer(b, true); };

  private toPeer(b: Buffer, borrowed: boolean): boolean {
    const s = this.s;
    if (s.closed) return false;
    const kept = s.conn.sendData(s, b, false, borrowed);
    if (s.queued > QUEUE_HIGH && !this.paused) { this.paused = true; this.d.pause(); }
    return kept;
  }

  private readonly onSockEnd = (): void => {
    const s = this.s;
    if (!s.closed) s.conn.sendData(s, EMPTY, true);
  };

  onSent(s: H2Stream): void {
    if (this.paused && s.queued <= QUEUE_LOW) { this.paused = false; this.d.resume(); }
  }

  // ------------------------------------------------------------- peer -> socket
  onData(_s: H2Stream, data: Buffer, end: boolean): void {
    if (data.length > 0) this.toSocket(data);
    if (end) this.d.end();
  }

  onHeaders(_s: H2Stream, _headers: string[], end: boolean): void {
    // Trailers carry nothing for a byte stream; their END_STREAM is the FIN.
    if (end) this.d.end();
  }

  private toSocket(data: Buffer): void {
    const d = this.d;
    if (d.destroyed || d.writableEnded) return;
    if (d.write(data) && this.uncredited === 0) this.s.conn.credit(this.s, data.length);
    else this.uncredited += data.length;
  }

  private readonly onSockDrain = (): void => {
    if (this.uncredited === 0) return;
    const n = this.uncredited;
    this.uncredited = 0;
    this.s.conn.credit(this.s, n);
  };

  // ------------------------------------------------------------- teardown
  onClosed(_s: H2Stream, code: number): void {
    // 0: both directions finished (FIN each way already passed on).
    if (code !== 0) resetSocket(this.d);
    this.finish();
  }

  private readonly onSockError = (): void => {
    // ECONNRESET, EPIPE, ...: the TCP connection failed; the peer's stream is reset.
    const s = this.s;
    if (!s.closed) s.conn.reset(s, E.CONNECT_ERROR);
    this.finish();
  };

  private readonly onSockClose = (): void => {
    const s = this.s;
    if (s.closed) { this.finish(); return; }
    const d = this.d;
    // Closed after both directions finished: what is queued still goes out. Closed
    // before (destroyed, reset): the peer's stream is reset too.
    if (!(d.readableEnded && d.writableFinished)) s.conn.reset(s, E.CANCEL);
    this.finish();
  };

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.done?.();
  }
}

/** A tunnel stream as a Duplex (with the same flow control as StreamBridge). */
export class TunnelStream extends Duplex implements StreamHandler {
  /** Set once the stream was handed to a StreamBridge (this Duplex is then unused). */
  private detached = false;
  private uncredited = 0;
  private remoteEnded = false;
  private writeCb: ((e?: Error | null) => void) | null = null;
  private released = false;

  constructor(readonly stream: H2Stream, private readonly release: (() => void) | null = null) {
    super({ allowHalfOpen: true });
    stream.handler = this;
  }

  /** The HTTP/2 connection the stream rides on (for /debug and tests). */
  get connection(): H2Stream['conn'] { return this.stream.conn; }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    const s = this.stream;
    if (s.closed) { cb(new WeftError('WEFT_ERR_UNAVAILABLE', 'tunnel stream closed')); return; }
    s.conn.sendData(s, chunk, false);
    if (s.queued > QUEUE_HIGH) this.writeCb = cb; else cb();
  }

  override _final(cb: (e?: Error | null) => void): void {
    const s = this.stream;
    if (!s.closed) s.conn.sendData(s, EMPTY, true);
    cb();
  }

  override _read(): void {
    if (this.uncredited === 0 || this.detached) return;
    const n = this.uncredited;
    this.uncredited = 0;
    this.stream.conn.credit(this.stream, n);
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    const s = this.stream;
    // Both directions finished (our END_STREAM may still wait for window behind queued
    // DATA): the engine completes the stream. Anything else is a reset.
    const finished = this.remoteEnded && (s.localEnd || s.queuedEnd);
    if (!this.detached && !s.closed && (err !== null || !finished)) s.conn.reset(s, err ? E.CONNECT_ERROR : E.CANCEL);
    this.releaseOnce();
    cb(err);
  }

  onData(s: H2Stream, data: Buffer, end: boolean): void {
    if (data.length > 0) {
      if (this.push(data) && this.uncredited === 0) s.conn.credit(s, data.length);
      else this.uncredited += data.length;
    }
    if (end) { this.remoteEnded = true; this.push(null); }
  }

  onHeaders(_s: H2Stream, _h: string[], end: boolean): void {
    if (end) { this.remoteEnded = true; this.push(null); }
  }

  onSent(s: H2Stream): void {
    if (this.writeCb !== null && s.queued <= QUEUE_LOW) { const cb = this.writeCb; this.writeCb = null; cb(); }
  }

  onClosed(_s: H2Stream, code: number): void {
    const cb = this.writeCb;
    this.writeCb = null;
    if (code !== 0) {
      const e = new WeftError('WEFT_ERR_UNAVAILABLE', `tunnel stream reset by the peer (HTTP/2 error ${code})`, { details: { code } });
      cb?.(e);
      this.destroy(e);
      return;
    }
    cb?.();
    this.releaseOnce();
  }

  /**
   * Hands the stream to a StreamBridge with `d`, when this Duplex has not been used yet
   * (nothing written, no reader): the bridge then moves the bytes with no Duplex in
   * between. Returns false (nothing changed) otherwise.
   */
  bridgeTo(d: Duplex): boolean {
    if (this.detached || this.destroyed || this.writableLength > 0 || this.writableEnded || this.writeCb !== null
      || this.readableFlowing === true || this.listenerCount('data') > 0 || this.listenerCount('readable') > 0) return false;
    this.detached = true;
    const chunks: Buffer[] = [];
    for (let c = this.read() as Buffer | null; c !== null; c = this.read() as Buffer | null) chunks.push(c);
    // What this Duplex took in but never credited is the bridge's to credit, once the
    // socket took it.
    const early: Received = { chunks, uncredited: this.uncredited, end: this.remoteEnded };
    this.uncredited = 0;
    const released = this.released;
    this.released = true;
    new StreamBridge(this.stream, d, early, released ? null : this.release);
    return true;
  }

  private releaseOnce(): void {
    if (this.released) return;
    this.released = true;
    this.release?.();
  }
}
