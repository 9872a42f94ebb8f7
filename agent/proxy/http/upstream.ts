// One pooled HTTP/1.1 connection to an upstream endpoint. It parses response heads
// (status + framing only), walks the body to find where the response ends, and hands
// every byte to its current owner (the downstream exchange) for forwarding. A response
// it cannot frame, or bytes after the end of a response, destroy the connection: a
// pooled connection is never reused in an unknown state.
import type { Duplex } from 'node:stream';
import { Socket, type OnReadOpts } from 'node:net';
import { Framing, HeadError, ResponseHead, findHeadEnd, parseResponseHead } from './head-parser';
import { BodyFramer, FRAMING_ERROR } from './body-framer';
import type { ConnectionPool, PooledConnection } from '../pipeline/pool';
import type { EndpointState } from '../balancer/endpoint';
import { ReadSlab, isPlainTcp } from '../sockets/onread';
export type { Connector } from '../types';

const MAX_RESPONSE_HEAD = 64 * 1024;

/** Why an upstream exchange failed before a complete response. */
export const enum UpstreamFailure { ConnectFailure, Reset, Protocol, Timeout }

/** What the upstream connection reports to the exchange that owns it. */
export interface UpstreamOwner {
  /** A final (non-1xx) response head is parsed: bytes[0..headEnd) is the head and
   *  bytes[0..stop) is what belongs to this response (head plus the body seen so far). */
  onResponseHead(up: Upstream, bytes: Buffer, headEnd: number, stop: number): void;
  /** Response bytes to forward (1xx heads, body). */
  onResponseData(up: Upstream, bytes: Buffer): void;
  /** The response ended (framing complete, or close-delimited EOF). */
  onResponseEnd(up: Upstream): void;
  onUpstreamFailure(up: Upstream, why: UpstreamFailure, detail: string): void;
  /** The upstream socket can take more (resume the downstream). */
  onUpstreamDrain(): void;
  /** 101 Switching Protocols: from now on bytes are opaque. */
  onUpgrade(up: Upstream, bytes: Buffer): void;
}

const enum Phase { Idle, Head, Body, Tunnel, Dead }

export class Upstream implements PooledConnection {
  served = 0;
  leases = 0;
  retired = false;
  readonly capacity = 1;
  owner: UpstreamOwner | null = null;
  /** True once the transport is established (connect failure vs reset). */
  connected = false;
  /** True when at least one response was completed on this connection before. */
  reused = false;
  /** Response must not be followed by another on this connection. */
  reusable = true;
  readonly res = new ResponseHead();
  private readonly framer = new BodyFramer();
  private phase = Phase.Idle;
  private partial: Buffer | null = null;
  private headRequest = false;
  /** Any response byte seen for the current request (a retry is no longer safe). */
  gotBytes = false;
  /** Where reads land when the transport reads through `onread` (sockets/onread.ts). */
  private readonly slab = new ReadSlab();
  readonly sock: Socket | Duplex;
  private readonly plainTcp: boolean;

  /** `open` creates the transport; given `read` (a plain TCP socket's `onread`), reads
   *  land in the connection's read slab without the Readable stream machinery. */
  constructor(readonly endpoint: EndpointState, open: (read: OnReadOpts) => Socket | Duplex, private readonly pool: ConnectionPool<Upstream>) {
    const sock = this.sock = open({ buffer: this.slab.next, callback: this.onRead });
    this.plainTcp = isPlainTcp(sock);
    if (sock instanceof Socket) {
      sock.setNoDelay(true);
      if (sock.connecting) sock.once('connect', () => { this.connected = true; });
      else this.connected = true;
    } else this.connected = true;
    sock.on('data', (d: Buffer) => this.onData(d));
    sock.on('end', () => this.onEnd());
    sock.on('error', (e: NodeJS.ErrnoException) => this.fail(this.connected ? UpstreamFailure.Reset : UpstreamFailure.ConnectFailure, e.code ?? e.message));
    sock.on('close', () => this.onClose());
    sock.on('drain', () => { if (this.owner !== null) this.owner.onUpstreamDrain(); });
  }

  /** Starts a request on this connection; the caller writes the request bytes. */
  begin(owner: UpstreamOwner, headRequest: boolean): void {
    this.owner = owner;
    this.headRequest = headRequest;
    this.phase = Phase.Head;
    this.gotBytes = false;
    this.reusable = true;
  }

  write(b: Buffer): boolean { return this.sock.write(b); }

  /** Whether bytes written to this connection may still be referenced by its transport
   *  (a plain TCP socket has copied them to the kernel once nothing is pending). */
  holdsWrites(): boolean { return !this.plainTcp || this.sock.writableLength > 0; }

  /** Called by the owner, within a read's callback, when bytes it was handed are still
   *  referenced after the call (a write the client socket could not finish at once): the
   *  next read must not land on them. */
  keepRead(): void { this.slab.keep(); }

  private readonly onRead = (n: number, buf: Uint8Array): boolean => {
    this.slab.last = n;
    this.onData((buf as Buffer).subarray(0, n));
    // A partial head references this read: the next one lands after it.
    if (this.partial !== null) this.slab.keep();
    return true;
  };

  get usable(): boolean { return this.phase !== Phase.Dead; }

  /** The pool closes a retired connection when its request is done. */
  retire(): void { /* one request at a time: nothing else to stop */ }

  private onData(d: Buffer): void {
    if (this.phase === Phase.Tunnel) { this.owner!.onResponseData(this, d); return; }
    if (this.owner === null || this.phase === Phase.Idle) {
      // Bytes nobody asked for: the connection is out of step with us.
      this.destroy();
      return;
    }
    this.gotBytes = true;
    if (this.phase === Phase.Body) { this.body(d); return; }
    this.head(this.partial === null ? d : Buffer.concat([this.partial, d]));
  }

  private head(data: Buffer): void {
    for (;;) {
      const end = findHeadEnd(data, 0);
      if (end < 0) {
        if (data.length > MAX_RESPONSE_HEAD) { this.fail(UpstreamFailure.Protocol, 'response head too large'); return; }
        this.partial = data;
        return;
      }
      this.partial = null;
      const r = this.res;
      try { parseResponseHead(r, data, end); } catch (e) {
        this.fail(UpstreamFailure.Protocol, e instanceof HeadError ? e.reason : String(e));
        return;
      }
      if (r.status < 200) {
        if (r.status === 101) {
          this.phase = Phase.Tunnel;
          this.reusable = false;
          this.owner!.onUpgrade(this, data);
          return;
        }
        // Interim response (100 Continue, 103): forward and keep reading.
        this.owner!.onResponseData(this, data.subarray(0, end));
        if (end === data.length) return;
        data = data.subarray(end);
        continue;
      }
      let framing = r.framing;
      if (this.headRequest || r.status === 204 || r.status === 304) framing = Framing.None;
      if (framing === Framing.Close || r.close || r.minor === 0) this.reusable = false;
      this.framer.start(framing, r.contentLength);
      this.phase = Phase.Body;
      const stop = this.walk(data, end);
      if (stop < 0) return;
      this.owner!.onResponseHead(this, data, end, stop);
      if (this.framer.done && this.owner !== null) this.complete();
      return;
    }
  }

  /** Finds where the response ends in data[from..]; -1 after failing the exchange. */
  private walk(data: Buffer, from: number): number {
    const stop = this.framer.feed(data, from, data.length);
    if (stop === FRAMING_ERROR) { this.fail(UpstreamFailure.Protocol, 'invalid chunked response body'); return -1; }
    // More than one response's worth: never reuse this connection.
    if (stop !== data.length) this.reusable = false;
    return stop;
  }

  private body(data: Buffer): void {
    const stop = this.walk(data, 0);
    if (stop < 0) return;
    if (stop > 0) this.owner!.onResponseData(this, stop === data.length ? data : data.subarray(0, stop));
    if (this.framer.done && this.owner !== null) this.complete();
  }

  private complete(): void {
    const owner = this.owner!;
    this.phase = Phase.Idle;
    this.owner = null;
    this.reused = true;
    owner.onResponseEnd(this);
  }

  /** Returns the connection to its pool, or closes it if it cannot be reused. An
   *  exchange may have paused the socket for a slow client (even on the response's
   *  last write): a pooled connection must read, to see the next response and a close. */
  finish(): void {
    if (this.phase === Phase.Dead) return;
    if (this.reusable && this.phase === Phase.Idle) {
      if (this.sock.isPaused()) this.sock.resume();
      this.pool.release(this);
    } else this.destroy();
  }

  private onEnd(): void {
    if (this.phase === Phase.Body && this.framer.done === false && this.res.framing === Framing.Close && !this.headRequest) {
      this.complete();
      return;
    }
    if (this.phase === Phase.Tunnel) { this.owner?.onResponseEnd(this); return; }
    this.fail(UpstreamFailure.Reset, 'upstream closed the connection');
  }

  private fail(why: UpstreamFailure, detail: string): void {
    const owner = this.owner;
    this.owner = null;
    this.destroy();
    if (owner !== null) owner.onUpstreamFailure(this, why, detail);
  }

  private onClose(): void {
    const wasDead = this.phase === Phase.Dead;
    this.phase = Phase.Dead;
    if (!wasDead) this.pool.closed(this);
    const owner = this.owner;
    this.owner = null;
    if (owner !== null) owner.onUpstreamFailure(this, this.connected ? UpstreamFailure.Reset : UpstreamFailure.ConnectFailure, 'upstream connection closed');
  }

  /** Detaches the current owner (client went away) and closes: mid-request bytes make it unusable. */
  abandon(): void { this.owner = null; this.destroy(); }

  destroy(): void {
    if (this.phase === Phase.Dead) return;
    this.phase = Phase.Dead;
    this.pool.closed(this);
    this.sock.destroy();
  }
}
