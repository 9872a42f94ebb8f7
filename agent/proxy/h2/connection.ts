// One HTTP/2 connection over a byte stream (a TCP socket or an mTLS tunnel stream),
// either side: the server end of a downstream client or the client end of a pooled
// upstream. It parses frames, keeps stream and flow-control state and batches what it
// writes; what a stream carries is reported to the stream's handler (the proxy
// exchange) without per-frame closures or events.
//
// Flow control is end to end: a stream's receive window, and the connection's, are
// credited (credit()) only when the handler has passed the bytes on, i.e. once they
// left through the other connection's socket. A slow receiver therefore stops its
// sender after one stream window, a connection never makes us hold more than its
// connection window, and a connection whose own output is not draining stops reading
// its socket.
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { HpackDecoder, HpackEncoder, HpackError, type HeaderBlock } from './hpack';
import {
  DEFAULT_MAX_FRAME, DEFAULT_WINDOW, E, F, FRAME_HEADER, MAX_WINDOW, PREFACE, S, T,
  checkFrame, checkSetting, goawayFrame, settingsFrame, u32Frame, unpad, writeHead,
} from './frame';
import { INFORMATIONAL, MALFORMED, NO_LENGTH, checkRequest, checkResponse, checkTrailers } from './validate';

/** What a stream reports to whoever owns it (the proxy exchange). */
export interface StreamHandler {
  /** Request headers are delivered through ConnectionHandler.onStream; this gets the
   *  response headers (client side) and trailers (both sides). */
  onHeaders(s: H2Stream, headers: string[], end: boolean): void;
  /** A DATA payload (a slice of the read buffer: valid as long as it is referenced). */
  onData(s: H2Stream, data: Buffer, end: boolean): void;
  /** `n` DATA bytes queued on `s` went out to the socket. */
  onSent(s: H2Stream, n: number): void;
  /** The stream is closed: 0 when both ends finished normally, else the RST_STREAM code
   *  (received, or REFUSED_STREAM/CANCEL/INTERNAL_ERROR when the connection went away). */
  onClosed(s: H2Stream, code: number): void;
}

export interface ConnectionHandler {
  /** Server side: a new stream's request headers. `oversized`: the header list was
   *  larger than allowed (the fields were dropped; answer 431). */
  onStream(c: H2Connection, s: H2Stream, headers: string[], end: boolean, oversized: boolean): void;
  onClose(c: H2Connection): void;
  /** The peer sent GOAWAY: no new streams on this connection. */
  onGoaway(c: H2Connection): void;
}

export interface ConnectionLimits {
  maxConcurrentStreams: number;
  maxHeaderListSize: number;
  /** Per-stream receive window we advertise (bounds what one stream can buffer). */
  streamWindow: number;
  /** Connection receive window. */
  connectionWindow: number;
  /** Stream resets received per second before the connection is closed (rapid reset). */
  maxResetsPerSecond: number;
  /** PING, SETTINGS and empty frames per second before the connection is closed. */
  maxControlPerSecond: number;
}

/** Header block (HEADERS + CONTINUATION) size beyond which we stop buffering (flood). */
const headerBlockLimit = (l: ConnectionLimits): number => 4 * l.maxHeaderListSize + DEFAULT_MAX_FRAME;
/** Output bytes pending beyond which the connection stops writing DATA and reading. */
const OUT_HIGH_WATER = 256 * 1024;
/** Payloads at least this large are written as their own slice instead of copied. */
const SLICE_MIN = 1024;

/**
 * How a stream that is no longer open was closed, which decides what a late frame on it
 * gets (RFC 9113 §5.1 "closed"): after the peer's END_STREAM, DATA or HEADERS is a
 * connection error STREAM_CLOSED; after the peer's RST_STREAM, any frame but PRIORITY is
 * a stream error STREAM_CLOSED; after our RST_STREAM, frames the peer had in flight are
 * processed minimally (HPACK, connection window) and dropped. A peer-initiated id that
 * was skipped (implicitly closed, §5.1.1) was never opened: any frame but PRIORITY is a
 * connection error PROTOCOL_ERROR.
 */
const enum Closed { SENT_RST = 0, RECV_RST = 1, ENDED = 2, NEVER_OPENED = 3 }
/** Closed streams remembered per connection (and ranges of skipped ids); older ones are
 *  treated as closed by our RST_STREAM. */
const CLOSED_MEMORY = 128;
const GAP_MEMORY = 16;

/** A copy of `b` that owns its bytes (empty stays empty). */
function copyOf(b: Buffer): Buffer { return b.length === 0 ? b : Buffer.from(b); }

/** A request header list whose :method is HEAD. */
function isHead(h: readonly string[]): boolean {
  for (let i = 0; i < h.length && h[i]!.charCodeAt(0) === 0x3a; i += 2) if (h[i] === ':method') return h[i + 1] === 'HEAD';
  return false;
}

export class H2Stream {
  handler: StreamHandler | null = null;
  sendWindow: number;
  recvWindow: number;
  /** DATA bytes received (padding included) and returned to the peer's windows so far;
   *  what is still outstanding when the stream closes goes back to the connection. */
  received = 0;
  credited = 0;
  /** Credited bytes not yet announced in a stream WINDOW_UPDATE. */
  unacked = 0;
  /** DATA waiting for window or for the socket; trailers / END_STREAM to follow. */
  queue: Buffer[] | null = null;
  queued = 0;
  queuedEnd = false;
  queuedTrailers: string[] | null = null;
  localEnd = false;
  remoteEnd = false;
  closed = false;
  /** A CONNECT tunnel stream (RFC 9113 §8.5): each END_STREAM half-closes one direction
   *  only, so the server ending its side does not reset the request side. */
  halfClose = false;
  /** The content-length the peer's message declared (or NO_LENGTH) and the DATA bytes
   *  received so far, padding excluded (§8.1.1). */
  expectLength = NO_LENGTH;
  dataLength = 0;
  /** Client side: the request was HEAD (its response has no content), and the final
   *  (non-1xx) response headers arrived. */
  head = false;
  final = false;
  constructor(readonly id: number, readonly conn: H2Connection, sendWindow: number, recvWindow: number) {
    this.sendWindow = sendWindow;
    this.recvWindow = recvWindow;
  }
}

export class H2Connection {
  readonly streams = new Map<number, H2Stream>();
  /** Free for the owner (server side: the connection's routing context; client: its pool entry). */
  context: unknown = null;
  private readonly decoder: HpackDecoder;
  private readonly encoder = new HpackEncoder();
  private rbuf: Buffer | null = null;
  private prefaceLeft: number;
  // Output batching: small writes are copied into `wbuf`, large payloads go as slices.
  private chunks: Buffer[] = [];
  private wbuf: Buffer | null = null;
  private wlen = 0;
  private wstart = 0;
  private outBytes = 0;
  private flushScheduled = false;
  /** Flush once per event-loop turn (after the poll phase) instead of after each
   *  callback: what many other sockets' reads queued on this connection in one turn goes
   *  out as one write (one TLS record, one syscall), or two when the peer's bytes arrive
   *  mid-turn (what was gathered before them goes out first). For a connection many
   *  streams share, such as the node-to-node tunnel's. */
  coalesce = false;
  /** Reading paused because the socket's output is backed up. */
  private readPaused = false;
  private readonly flushFn = (): void => this.flush();
  // Peer settings and windows.
  private peerInitialWindow = DEFAULT_WINDOW;
  private peerMaxFrame = DEFAULT_MAX_FRAME;
  peerMaxStreams = Infinity;
  private sendWindow = DEFAULT_WINDOW;
  private recvWindow: number;
  private connUnacked = 0;
  /** Streams with queued output, waiting for window or socket drain. */
  private blocked: H2Stream[] = [];
  // Header block being assembled.
  private hdrStream = 0;
  private hdrFlags = 0;
  private hdrParts: Buffer[] = [];
  private hdrLen = 0;
  /** The HEADERS frame's priority names its own stream (§5.3.1). */
  private hdrSelfDep = false;
  /** The first frame of the peer's preface (a SETTINGS frame, §3.4) was seen. */
  private prefaceSettings = false;
  /** The last CLOSED_MEMORY closed streams, a ring of (id, Closed) written on every
   *  close and searched only when a frame comes for a stream that is not open; skipped
   *  peer ids as [lo, hi] pairs. */
  private readonly closedIds = new Int32Array(CLOSED_MEMORY);
  private readonly closedHows = new Uint8Array(CLOSED_MEMORY);
  private closedNext = 0;
  private gaps: number[] = [];
  // Stream ids and lifecycle.
  private nextStreamId = 1;
  lastPeerStream = 0;
  /** GOAWAY sent: streams above this id are refused. */
  private goawaySent = false;
  goawayReceived = false;
  private draining = false;
  destroyed = false;
  /** Any frame received from the peer (a failure before it is a connect failure). */
  gotFrame = false;
  // Abuse accounting, per one-second window.
  private windowStart = 0;
  private resets = 0;
  private control = 0;

  constructor(
    readonly sock: Socket | Duplex,
    readonly isClient: boolean,
    private readonly limits: ConnectionLimits,
    private readonly handler: ConnectionHandler,
  ) {
    this.decoder = new HpackDecoder(4096);
    this.recvWindow = limits.connectionWindow;
    this.prefaceLeft = isClient ? 0 : PREFACE.length;
    if (sock instanceof Socket) sock.setNoDelay(true);
    sock.on('data', this.onRead);
    sock.on('drain', this.onDrain);
    sock.on('error', this.onError);
    sock.on('close', this.onSockClose);
    sock.on('end', this.onEnd);
    if (isClient) this.push(PREFACE);
    const settings = [S.INITIAL_WINDOW_SIZE, limits.streamWindow, S.MAX_HEADER_LIST_SIZE, limits.maxHeaderListSize];
    if (isClient) settings.push(S.ENABLE_PUSH, 0); else settings.push(S.MAX_CONCURRENT_STREAMS, limits.maxConcurrentStreams);
    this.push(settingsFrame(settings));
    if (limits.connectionWindow > DEFAULT_WINDOW) this.push(u32Frame(T.WINDOW_UPDATE, 0, limits.connectionWindow - DEFAULT_WINDOW));
  }

  /** Feeds bytes read before the connection took the socket over (protocol detection). */
  feed(b: Buffer): void { this.onRead(b); }

  get activeStreams(): number { return this.streams.size; }
  get canOpenStream(): boolean { return !this.destroyed && !this.goawayReceived && !this.draining && this.nextStreamId < 0x7fffffff; }

  // ------------------------------------------------------------------ sending
  /** Client side: opens a stream with request headers. */
  request(headers: readonly string[], end: boolean, handler: StreamHandler): H2Stream {
    const s = new H2Stream(this.nextStreamId, this, this.peerInitialWindow, this.limits.streamWindow);
    this.nextStreamId += 2;
    s.head = isHead(headers);
    s.handler = handler;
    this.streams.set(s.id, s);
    this.writeHeaders(s, headers, end);
    return s;
  }

  /** Response headers, or trailers (end = true) once queued DATA has gone out. */
  sendHeaders(s: H2Stream, headers: readonly string[], end: boolean): void {
    if (s.closed || s.localEnd) return;
    if (end && s.queued > 0) { s.queuedTrailers = headers as string[]; s.queuedEnd = true; return; }
    this.writeHeaders(s, headers, end);
  }

  private writeHeaders(s: H2Stream, headers: readonly string[], end: boolean): void {
    let block = this.encoder.encode(headers);
    // Large blocks are written as slices (not copied): detach from the encoder's buffer.
    if (block.length >= SLICE_MIN) block = Buffer.from(block);
    const max = this.peerMaxFrame;
    let off = 0, type: number = T.HEADERS;
    do {
      const n = Math.min(max, block.length - off);
      const last = off + n >= block.length;
      const flags = (last ? F.END_HEADERS : 0) | (type === T.HEADERS && end ? F.END_STREAM : 0);
      this.writeFrame(type, flags, s.id, block, off, n);
      off += n;
      type = T.CONTINUATION;
    } while (off < block.length);
    if (end) this.localEnded(s);
  }

  /** DATA on `s`; what the windows or the socket cannot take now is queued. Returns
   *  true when the connection still references `data` afterwards (queued, or a payload
   *  of SLICE_MIN or more written as a slice): a caller reusing its buffer must then
   *  use another one for its next read. Small payloads are copied. `borrowed`: `data`
   *  is valid only during this call (a read lent from a shared buffer): everything the
   *  connection keeps of it is copied, and the result is always false. */
  sendData(s: H2Stream, data: Buffer, end: boolean, borrowed = false): boolean {
    if (s.closed || s.localEnd || s.queuedEnd) return false;
    if (s.queued > 0 || this.congested) {
      this.enqueue(s, borrowed ? copyOf(data) : data, end);
      return !borrowed && data.length > 0;
    }
    const n = this.writeData(s, data, 0, end, borrowed);
    if (n < data.length) {
      const rest = n === 0 ? data : data.subarray(n);
      this.enqueue(s, borrowed ? copyOf(rest) : rest, end);
    }
    if (n > 0) s.handler?.onSent(s, n);
    return !borrowed && (n < data.length || data.length >= SLICE_MIN);
  }

  private enqueue(s: H2Stream, data: Buffer, end: boolean): void {
    if (data.length > 0) {
      if (s.queue === null) s.queue = [];
      s.queue.push(data);
      s.queued += data.length;
    }
    if (end) s.queuedEnd = true;
    if (s.queued === 0 && end) { this.writeEmptyEnd(s); return; }
    if (!this.blocked.includes(s)) this.blocked.push(s);
  }

  /** Writes as much of data[from..] as the windows allow; returns the bytes written.
   *  `copy`: every payload is copied into the output buffer (none kept as a slice). */
  private writeData(s: H2Stream, data: Buffer, from: number, end: boolean, copy = false): number {
    let off = from;
    const total = data.length;
    if (total === from) {
      if (end) this.writeEmptyEnd(s);
      return 0;
    }
    while (off < total) {
      const room = Math.min(s.sendWindow, this.sendWindow, this.peerMaxFrame);
      if (room <= 0) break;
      const n = Math.min(room, total - off);
      const last = off + n === total;
      this.writeFrame(T.DATA, last && end ? F.END_STREAM : 0, s.id, data, off, n, copy);
      s.sendWindow -= n;
      this.sendWindow -= n;
      off += n;
    }
    if (off === total && end) this.localEnded(s);
    return off - from;
  }

  private writeEmptyEnd(s: H2Stream): void {
    if (s.queuedTrailers !== null) { const t = s.queuedTrailers; s.queuedTrailers = null; this.writeHeaders(s, t, true); return; }
    this.writeFrame(T.DATA, F.END_STREAM, s.id, null, 0, 0);
    this.localEnded(s);
  }

  /** Sends what queued streams can now send (after WINDOW_UPDATE, SETTINGS or drain). */
  private flushBlocked(): void {
    if (this.blocked.length === 0 || this.congested) return;
    const list = this.blocked;
    this.blocked = [];
    for (let i = 0; i < list.length; i++) {
      const s = list[i]!;
      if (s.closed) continue;
      if (this.congested || this.sendWindow <= 0) { this.blocked.push(s); continue; }
      let sent = 0;
      while (s.queue !== null && s.queue.length > 0) {
        const head = s.queue[0]!;
        const n = this.writeData(s, head, 0, false);
        sent += n;
        s.queued -= n;
        if (n < head.length) { s.queue[0] = head.subarray(n); break; }
        s.queue.shift();
        if (this.congested) break;
      }
      if (s.queued === 0) {
        s.queue = null;
        if (s.queuedEnd) this.writeEmptyEnd(s);
      } else this.blocked.push(s);
      if (sent > 0) s.handler?.onSent(s, sent);
    }
  }

  /**
   * The handler passed `n` received bytes of `s` on: return them to the peer, on the
   * stream and on the connection. Never more than was received (a retry replaying a
   * body reports its bytes twice). Both windows are credited on consumption, so what
   * one connection can make us hold is bounded by its connection window.
   */
  credit(s: H2Stream, n: number): void {
    const c = Math.min(n, s.received - s.credited);
    if (c <= 0) return;
    s.credited += c;
    this.creditConnection(c);
    if (s.closed || s.remoteEnd) return;
    s.unacked += c;
    if (s.unacked >= this.limits.streamWindow >>> 1) {
      this.push(u32Frame(T.WINDOW_UPDATE, s.id, s.unacked));
      s.recvWindow += s.unacked;
      s.unacked = 0;
    }
  }

  private creditConnection(n: number): void {
    this.connUnacked += n;
    if (this.connUnacked >= this.limits.connectionWindow >>> 1) {
      this.push(u32Frame(T.WINDOW_UPDATE, 0, this.connUnacked));
      this.recvWindow += this.connUnacked;
      this.connUnacked = 0;
    }
  }

  /** Resets a stream on the owner's behalf (no onClosed: the owner knows). */
  reset(s: H2Stream, code: number): void {
    if (s.closed) return;
    this.push(u32Frame(T.RST_STREAM, s.id, code));
    this.close(s, -1);
  }

  /** A stream error found while reading: RST_STREAM, and the owner is told. Server
   *  side, resets a client provokes count like resets it sends (a client must not get
   *  around the rapid-reset limit by making us reset its streams). */
  private streamError(s: H2Stream, code: number): void {
    this.push(u32Frame(T.RST_STREAM, s.id, code));
    this.close(s, code);
    if (!this.isClient) this.flood('reset');
  }

  /** Server side: a new stream refused or malformed before anyone saw it. */
  private refuse(id: number, code: number, end: boolean): void {
    this.push(u32Frame(T.RST_STREAM, id, code));
    this.remember(id, end ? Closed.ENDED : Closed.SENT_RST);
  }

  private remember(id: number, how: Closed): void {
    const i = this.closedNext;
    this.closedIds[i] = id;
    this.closedHows[i] = how;
    this.closedNext = i + 1 === CLOSED_MEMORY ? 0 : i + 1;
  }

  /** How stream `id` was closed, if it is among the last CLOSED_MEMORY (newest first). */
  private recall(id: number): Closed | -1 {
    const ids = this.closedIds;
    for (let k = 0, i = this.closedNext; k < CLOSED_MEMORY; k++) {
      i = i === 0 ? CLOSED_MEMORY - 1 : i - 1;
      if (ids[i] === id) return this.closedHows[i] as Closed;
    }
    return -1;
  }

  /** Server side: the peer opened stream `id`; ids it skipped are closed, never opened. */
  private opened(id: number): void {
    const expected = this.lastPeerStream + 2 - (this.lastPeerStream === 0 ? 1 : 0);
    if (id > expected) {
      this.gaps.push(expected, id - 2);
      if (this.gaps.length > 2 * GAP_MEMORY) this.gaps.splice(0, 2);
    }
    this.lastPeerStream = id;
  }

  private closedHow(id: number): Closed {
    const how = this.recall(id);
    if (how !== -1) return how;
    const g = this.gaps;
    for (let i = 0; i < g.length; i += 2) if (id >= g[i]! && id <= g[i + 1]!) return Closed.NEVER_OPENED;
    return Closed.SENT_RST;
  }

  /**
   * A frame of `type` for stream `id`, which is not open: the error §5.1 names for the
   * stream's state (idle, or closed and how), or nothing when the frame is to be
   * dropped. PRIORITY is acceptable in every state.
   */
  private notOpen(id: number, type: number): void {
    if (type === T.PRIORITY) return;
    if (this.isIdle(id)) { this.fail(E.PROTOCOL_ERROR); return; }
    switch (this.closedHow(id)) {
      case Closed.NEVER_OPENED: this.fail(E.PROTOCOL_ERROR); return;
      case Closed.ENDED:
        // WINDOW_UPDATE and RST_STREAM may cross our END_STREAM; DATA and HEADERS came
        // after the peer's own.
        if (type === T.DATA || type === T.HEADERS) this.fail(E.STREAM_CLOSED);
        return;
      case Closed.RECV_RST:
        // Once: a peer that keeps sending gets no more resets from us.
        this.push(u32Frame(T.RST_STREAM, id, E.STREAM_CLOSED));
        this.remember(id, Closed.SENT_RST);
        return;
      default: return;
    }
  }

  /** Graceful shutdown: GOAWAY, finish open streams, then close. */
  drain(): void {
    if (this.destroyed || this.draining) return;
    this.draining = true;
    this.goaway(E.NO_ERROR);
    if (this.streams.size === 0) this.end();
  }

  private goaway(code: number): void {
    if (this.goawaySent) return;
    this.goawaySent = true;
    this.push(goawayFrame(this.lastPeerStream, code));
  }

  /** Connection error: GOAWAY with `code`, then close. */
  fail(code: number): void {
    if (this.destroyed) return;
    this.goaway(code);
    this.destroy(code === E.NO_ERROR ? E.CANCEL : code, true);
  }

  private end(): void { this.destroy(E.CANCEL, true); }

  /** Tears the connection down; open streams close with `code`. `graceful` lets what
   *  is already written (GOAWAY, last responses) reach the peer before the socket closes. */
  destroy(code = E.CANCEL, graceful = false): void {
    if (this.destroyed) return;
    this.destroyed = true;
    // A client connection that never heard from its server refused nothing yet: its
    // streams can be retried elsewhere.
    const c = this.isClient && !this.gotFrame ? E.REFUSED_STREAM : code;
    for (const s of [...this.streams.values()]) this.close(s, c);
    this.sock.off('data', this.onRead);
    if (graceful) {
      this.flush(true);
      const sock = this.sock;
      sock.end();
      // The timer holds the socket only, not the connection (its tables and buffers):
      // many connections closing at once must not keep them all for two seconds.
      if (!sock.destroyed) setTimeout(() => sock.destroy(), 2000).unref();
    } else this.sock.destroy();
    this.handler.onClose(this);
  }

  // ------------------------------------------------------------------ output buffer
  private get congested(): boolean { return this.outBytes + this.sock.writableLength > OUT_HIGH_WATER; }

  /** Appends an encoded frame (control frames: copied, so one turn stays one write). */
  private push(b: Buffer): void {
    if (b.length < SLICE_MIN) {
      this.room(b.length);
      b.copy(this.wbuf!, this.wlen);
      this.wlen += b.length;
    } else {
      this.seal();
      this.chunks.push(b);
    }
    this.outBytes += b.length;
    this.schedule();
  }

  /** Appends a frame: header (and small payloads, or any with `copy`) copied into wbuf,
   *  large payloads sliced. */
  private writeFrame(type: number, flags: number, stream: number, p: Buffer | null, off: number, n: number, copy = false): void {
    const inline = copy || n < SLICE_MIN;
    this.room(FRAME_HEADER + (inline ? n : 0));
    writeHead(this.wbuf!, this.wlen, n, type, flags, stream);
    this.wlen += FRAME_HEADER;
    if (n > 0) {
      if (inline) { p!.copy(this.wbuf!, this.wlen, off, off + n); this.wlen += n; }
      else { this.seal(); this.chunks.push(p!.subarray(off, off + n)); }
    }
    this.outBytes += FRAME_HEADER + n;
    this.schedule();
  }

  private room(n: number): void {
    if (this.wbuf !== null && this.wlen + n <= this.wbuf.length) return;
    this.seal();
    // A connection many streams share batches a whole turn's frames: a larger buffer
    // keeps that batch one chunk (one plain write instead of cork + writev).
    this.wbuf = Buffer.allocUnsafe(Math.max(n, this.coalesce ? 16384 : 4000));
    this.wlen = this.wstart = 0;
  }

  /** Moves bytes written into wbuf since the last seal onto the chunk list. */
  private seal(): void {
    if (this.wbuf !== null && this.wlen > this.wstart) {
      this.chunks.push(this.wbuf.subarray(this.wstart, this.wlen));
      this.wstart = this.wlen;
    }
  }

  private schedule(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    if (this.coalesce) setImmediate(this.flushFn); else process.nextTick(this.flushFn);
  }

  /** One write (or one writev) per event-loop turn. */
  flush(final = false): void {
    this.flushScheduled = false;
    this.seal();
    const c = this.chunks;
    if (c.length === 0 || (this.destroyed && !final)) { this.chunks = []; this.outBytes = 0; return; }
    this.chunks = [];
    this.outBytes = 0;
    // The rest of wbuf is still ours: keep filling it next turn.
    if (c.length === 1) this.sock.write(c[0]!);
    else {
      this.sock.cork();
      for (let i = 0; i < c.length; i++) this.sock.write(c[i]!);
      this.sock.uncork();
    }
    if (this.sock.writableLength > OUT_HIGH_WATER) {
      // Our output to this peer is not draining: stop reading from it until 'drain'.
      if (!this.readPaused) { this.readPaused = true; this.sock.pause(); }
    } else if (this.blocked.length > 0) {
      // DATA held back only because this turn's batch was large: the socket took it.
      this.flushBlocked();
    }
  }

  // ------------------------------------------------------------------ input
  private readonly onRead = (chunk: Buffer): void => {
    // A coalescing connection sends what this turn gathered so far before it handles
    // the peer's bytes: passing those on (one socket write per stream) would otherwise
    // hold it until the end of the turn. At most one more write per read from the peer.
    if (this.coalesce && (this.wlen > this.wstart || this.chunks.length > 0)) this.flush();
    let b = chunk;
    if (this.rbuf !== null) { b = Buffer.concat([this.rbuf, chunk]); this.rbuf = null; }
    let i = 0;
    if (this.prefaceLeft > 0) {
      const n = Math.min(this.prefaceLeft, b.length);
      const at = PREFACE.length - this.prefaceLeft;
      if (b.compare(PREFACE, at, at + n, 0, n) !== 0) { this.fail(E.PROTOCOL_ERROR); return; }
      this.prefaceLeft -= n;
      i = n;
    }
    const end = b.length;
    while (end - i >= FRAME_HEADER && !this.destroyed) {
      const len = (b[i]! << 16) | (b[i + 1]! << 8) | b[i + 2]!;
      const type = b[i + 3]!, flags = b[i + 4]!;
      const stream = b.readUInt32BE(i + 5) & 0x7fffffff;
      const err = checkFrame(type, flags, stream, len, DEFAULT_MAX_FRAME);
      if (err >= 0) { this.fail(err); return; }
      if (!this.prefaceSettings) {
        if (type !== T.SETTINGS || (flags & F.ACK) !== 0) { this.fail(E.PROTOCOL_ERROR); return; }
        this.prefaceSettings = true;
      }
      if (end - i - FRAME_HEADER < len) break;
      const p = b.subarray(i + FRAME_HEADER, i + FRAME_HEADER + len);
      i += FRAME_HEADER + len;
      this.gotFrame = true;
      this.onFrame(type, flags, stream, p);
    }
    if (this.destroyed) return;
    if (i < end) this.rbuf = i === 0 ? b : b.subarray(i);
  };

  private readonly onDrain = (): void => {
    this.flushBlocked();
    if (this.readPaused && !this.congested) { this.readPaused = false; this.sock.resume(); }
  };

  private readonly onError = (): void => { this.destroy(E.CANCEL); };
  private readonly onSockClose = (): void => { this.destroy(E.CANCEL); };
  private readonly onEnd = (): void => {
    // The peer finished writing; if nothing is open, we are done too.
    if (this.streams.size === 0) this.end(); else this.draining = true;
  };

  /** Counts an abuse-relevant event; true when the connection was closed for it. */
  private flood(kind: 'reset' | 'control'): boolean {
    const now = performance.now();
    if (now - this.windowStart > 1000) { this.windowStart = now; this.resets = 0; this.control = 0; }
    const over = kind === 'reset' ? ++this.resets > this.limits.maxResetsPerSecond : ++this.control > this.limits.maxControlPerSecond;
    if (over) this.fail(E.ENHANCE_YOUR_CALM);
    return over;
  }

  private onFrame(type: number, flags: number, id: number, p: Buffer): void {
    if (this.hdrStream !== 0 && (type !== T.CONTINUATION || id !== this.hdrStream)) { this.fail(E.PROTOCOL_ERROR); return; }
    switch (type) {
      case T.DATA: this.onDataFrame(flags, id, p); return;
      case T.HEADERS: {
        const body = unpad(type, flags, p);
        if (body === null) { this.fail(E.PROTOCOL_ERROR); return; }
        if (body.length === 0 && !(flags & F.END_HEADERS) && this.flood('control')) return;
        this.hdrStream = id;
        this.hdrFlags = flags;
        this.hdrSelfDep = (flags & F.PRIORITY) !== 0 && (p.readUInt32BE(flags & F.PADDED ? 1 : 0) & 0x7fffffff) === id;
        this.hdrParts.push(body);
        this.hdrLen = body.length;
        if (flags & F.END_HEADERS) this.onHeaderBlock();
        return;
      }
      case T.CONTINUATION: {
        if (this.hdrStream === 0) { this.fail(E.PROTOCOL_ERROR); return; }
        if (p.length === 0 && !(flags & F.END_HEADERS) && this.flood('control')) return;
        this.hdrLen += p.length;
        if (this.hdrLen > headerBlockLimit(this.limits)) { this.fail(E.ENHANCE_YOUR_CALM); return; }
        this.hdrParts.push(p);
        if (flags & F.END_HEADERS) this.onHeaderBlock();
        return;
      }
      case T.RST_STREAM: {
        const s = this.streams.get(id);
        if (s === undefined) { this.notOpen(id, type); return; }
        if (!this.isClient && this.flood('reset')) return;
        this.close(s, p.readUInt32BE(0), true);
        return;
      }
      case T.SETTINGS:
        if (flags & F.ACK) return;
        if (this.flood('control')) return;
        this.onSettings(p);
        return;
      case T.PING:
        if (flags & F.ACK) return;
        if (this.flood('control')) return;
        this.writeFrame(T.PING, F.ACK, 0, p, 0, 8);
        return;
      case T.GOAWAY: this.onGoawayFrame(p.readUInt32BE(0) & 0x7fffffff); return;
      case T.WINDOW_UPDATE: this.onWindowUpdate(id, p.readUInt32BE(0) & 0x7fffffff); return;
      case T.PRIORITY: {
        // Priorities are not used, but a stream cannot depend on itself (§5.3.1): a
        // stream error, or a connection error when there is no open stream to reset.
        if ((p.readUInt32BE(0) & 0x7fffffff) !== id) return;
        const s = this.streams.get(id);
        if (s !== undefined) this.streamError(s, E.PROTOCOL_ERROR); else this.fail(E.PROTOCOL_ERROR);
        return;
      }
      default: return; // unknown types are ignored (§5.5)
    }
  }

  /** A stream id the peer could open but has not (§5.1 "idle"). */
  private isIdle(id: number): boolean {
    const peerOpened = (id & 1) === (this.isClient ? 0 : 1);
    return peerOpened ? id > this.lastPeerStream : id >= this.nextStreamId;
  }

  private onDataFrame(flags: number, id: number, p: Buffer): void {
    const len = p.length;
    // Flow control counts the whole payload, padding included.
    this.recvWindow -= len;
    if (this.recvWindow < 0) { this.fail(E.FLOW_CONTROL_ERROR); return; }
    if (len === 0 && !(flags & F.END_STREAM) && this.flood('control')) return;
    const s = this.streams.get(id);
    if (s === undefined) {
      this.notOpen(id, T.DATA);
      // Otherwise a stream we already closed (the peer had not seen our RST yet): the
      // bytes are dropped and returned to the connection window.
      if (!this.destroyed) this.creditConnection(len);
      return;
    }
    s.received += len;
    if (s.remoteEnd) { this.streamError(s, E.STREAM_CLOSED); return; }
    const data = unpad(T.DATA, flags, p);
    if (data === null) { this.fail(E.PROTOCOL_ERROR); return; }
    s.recvWindow -= len;
    if (s.recvWindow < 0) { this.streamError(s, E.FLOW_CONTROL_ERROR); return; }
    // Padding is never forwarded: return its credit now.
    if (data.length < len) this.credit(s, len - data.length);
    const end = (flags & F.END_STREAM) !== 0;
    // Client: DATA before the final response headers (§8.1).
    if (this.isClient && !s.final) { this.streamError(s, E.PROTOCOL_ERROR); return; }
    if (s.expectLength >= 0) {
      // A body longer, or (at its end) shorter, than content-length: malformed (§8.1.1).
      s.dataLength += data.length;
      if (s.dataLength > s.expectLength || (end && s.dataLength !== s.expectLength)) { this.streamError(s, E.PROTOCOL_ERROR); return; }
    }
    if (end) s.remoteEnd = true;
    s.handler?.onData(s, data, end);
    if (end) this.maybeClosed(s);
  }

  private onHeaderBlock(): void {
    const id = this.hdrStream, flags = this.hdrFlags, selfDep = this.hdrSelfDep;
    const block = this.hdrParts.length === 1 ? this.hdrParts[0]! : Buffer.concat(this.hdrParts, this.hdrLen);
    this.hdrStream = 0;
    this.hdrSelfDep = false;
    this.hdrParts = [];
    this.hdrLen = 0;
    if (block.length > headerBlockLimit(this.limits)) { this.fail(E.ENHANCE_YOUR_CALM); return; }
    let decoded: HeaderBlock;
    try {
      decoded = this.decoder.decode(block, this.limits.maxHeaderListSize);
    } catch (e) {
      if (e instanceof HpackError) { this.fail(E.COMPRESSION_ERROR); return; }
      throw e;
    }
    const end = (flags & F.END_STREAM) !== 0;
    const s = this.streams.get(id);
    if (s !== undefined) {
      if (s.remoteEnd) { this.streamError(s, E.STREAM_CLOSED); return; }
      if (decoded.invalid || selfDep) { this.streamError(s, E.PROTOCOL_ERROR); return; }
      if (this.isClient && !s.final) {
        // Client: informational responses, then the final one (§8.1, §8.3.2).
        const v = checkResponse(decoded.headers, end, s.head);
        if (v === MALFORMED) { this.streamError(s, E.PROTOCOL_ERROR); return; }
        if (v !== INFORMATIONAL) { s.final = true; s.expectLength = v; }
      } else if (!end || !checkTrailers(decoded.headers) || (s.expectLength >= 0 && s.dataLength !== s.expectLength)) {
        // A HEADERS after the request or the final response is trailers, which end the
        // stream, carry no pseudo-header and complete the content-length (§8.1, §8.1.1).
        this.streamError(s, E.PROTOCOL_ERROR);
        return;
      }
      if (end) s.remoteEnd = true;
      s.handler?.onHeaders(s, decoded.headers, end);
      if (end) this.maybeClosed(s);
      return;
    }
    if (this.isClient || !this.isIdle(id)) {
      // Client: the server may not open streams. Server: headers for a stream already
      // closed: dropped when they may have crossed our RST_STREAM (HPACK state was
      // kept), an error otherwise (§5.1, §5.1.1).
      this.notOpen(id, T.HEADERS);
      return;
    }
    if ((id & 1) === 0) { this.fail(E.PROTOCOL_ERROR); return; }
    this.opened(id);
    if (this.goawaySent) { this.remember(id, end ? Closed.ENDED : Closed.SENT_RST); return; } // not processed; the client retries it elsewhere
    if (this.streams.size >= this.limits.maxConcurrentStreams) {
      // Refused streams count like resets: a client ignoring our limit is flooding.
      if (this.flood('reset')) return;
      this.refuse(id, E.REFUSED_STREAM, end);
      return;
    }
    // A malformed request (§8.1.1, §8.2, §8.3) is refused before anyone sees it. An
    // oversized one has lost fields: its handler answers 431 without forwarding it.
    let length = NO_LENGTH;
    if (!decoded.oversized) length = checkRequest(decoded.headers, end);
    if (decoded.invalid || selfDep || length === MALFORMED) {
      this.refuse(id, E.PROTOCOL_ERROR, end);
      this.flood('reset');
      return;
    }
    const s2 = new H2Stream(id, this, this.peerInitialWindow, this.limits.streamWindow);
    s2.expectLength = length;
    this.streams.set(id, s2);
    if (end) s2.remoteEnd = true;
    this.handler.onStream(this, s2, decoded.headers, end, decoded.oversized);
  }

  private onSettings(p: Buffer): void {
    for (let i = 0; i < p.length; i += 6) {
      const id = p.readUInt16BE(i), v = p.readUInt32BE(i + 2);
      const err = checkSetting(id, v);
      if (err >= 0) { this.fail(err); return; }
      switch (id) {
        case S.HEADER_TABLE_SIZE: this.encoder.setMaxTableSize(v); break;
        case S.MAX_CONCURRENT_STREAMS: this.peerMaxStreams = v; break;
        case S.MAX_FRAME_SIZE: this.peerMaxFrame = v; break;
        case S.INITIAL_WINDOW_SIZE: {
          const delta = v - this.peerInitialWindow;
          this.peerInitialWindow = v;
          for (const s of this.streams.values()) {
            s.sendWindow += delta;
            if (s.sendWindow > MAX_WINDOW) { this.fail(E.FLOW_CONTROL_ERROR); return; }
          }
          break;
        }
        default: break;
      }
    }
    this.writeFrame(T.SETTINGS, F.ACK, 0, null, 0, 0);
    this.flushBlocked();
  }

  private onWindowUpdate(id: number, inc: number): void {
    if (id === 0) {
      if (inc === 0) { this.fail(E.PROTOCOL_ERROR); return; }
      this.sendWindow += inc;
      if (this.sendWindow > MAX_WINDOW) { this.fail(E.FLOW_CONTROL_ERROR); return; }
      this.flushBlocked();
      return;
    }
    const s = this.streams.get(id);
    if (s === undefined) { this.notOpen(id, T.WINDOW_UPDATE); return; }
    if (inc === 0) { this.streamError(s, E.PROTOCOL_ERROR); return; }
    s.sendWindow += inc;
    if (s.sendWindow > MAX_WINDOW) { this.streamError(s, E.FLOW_CONTROL_ERROR); return; }
    if (s.queued > 0) this.flushBlocked();
  }

  private onGoawayFrame(last: number): void {
    this.goawayReceived = true;
    // Streams we opened above `last` were never processed: they may be retried.
    if (this.isClient) for (const s of [...this.streams.values()]) if (s.id > last) this.close(s, E.REFUSED_STREAM);
    this.handler.onGoaway(this);
    if (this.streams.size === 0) this.end();
  }

  // ------------------------------------------------------------------ stream lifecycle
  private localEnded(s: H2Stream): void {
    s.localEnd = true;
    if (s.remoteEnd) { this.close(s, 0); return; }
    // Server: the response is complete; stop the rest of the request body (§8.1).
    if (!this.isClient && !s.halfClose) { this.push(u32Frame(T.RST_STREAM, s.id, E.NO_ERROR)); this.close(s, 0); }
  }

  private maybeClosed(s: H2Stream): void {
    if (s.localEnd && s.remoteEnd && !s.closed) this.close(s, 0);
  }

  /** Closes a stream; `code` -1 is a reset we sent (the handler already knows);
   *  `peerReset`: the peer sent RST_STREAM. */
  private close(s: H2Stream, code: number, peerReset = false): void {
    if (s.closed) return;
    s.closed = true;
    if (!this.destroyed) this.remember(s.id, s.remoteEnd ? Closed.ENDED : peerReset ? Closed.RECV_RST : Closed.SENT_RST);
    s.queue = null;
    s.queued = 0;
    // Bytes nobody will consume any more: the connection gets them back.
    if (s.received > s.credited) { this.creditConnection(s.received - s.credited); s.credited = s.received; }
    this.streams.delete(s.id);
    const h = s.handler;
    s.handler = null;
    if (code >= 0) h?.onClosed(s, code);
    if (this.streams.size === 0 && (this.draining || (this.goawayReceived && !this.destroyed))) this.end();
  }
}
