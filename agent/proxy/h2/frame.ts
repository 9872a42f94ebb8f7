// HTTP/2 framing (RFC 9113 §4, §6): constants, the per-type checks that decide whether
// a frame is a connection error, and writers for the control frames. The reader lives in
// the connection (it needs its state); everything here is stateless and testable alone.

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
export const FRAME_HEADER = 9;
export const DEFAULT_MAX_FRAME = 16384;
export const DEFAULT_WINDOW = 65535;
export const MAX_WINDOW = 0x7fffffff;

export const enum T { DATA = 0, HEADERS = 1, PRIORITY = 2, RST_STREAM = 3, SETTINGS = 4, PUSH_PROMISE = 5, PING = 6, GOAWAY = 7, WINDOW_UPDATE = 8, CONTINUATION = 9 }
export const enum F { END_STREAM = 0x1, ACK = 0x1, END_HEADERS = 0x4, PADDED = 0x8, PRIORITY = 0x20 }
export const enum E {
  NO_ERROR = 0, PROTOCOL_ERROR = 1, INTERNAL_ERROR = 2, FLOW_CONTROL_ERROR = 3, SETTINGS_TIMEOUT = 4, STREAM_CLOSED = 5,
  FRAME_SIZE_ERROR = 6, REFUSED_STREAM = 7, CANCEL = 8, COMPRESSION_ERROR = 9, CONNECT_ERROR = 10, ENHANCE_YOUR_CALM = 11,
}
export const enum S { HEADER_TABLE_SIZE = 1, ENABLE_PUSH = 2, MAX_CONCURRENT_STREAMS = 3, INITIAL_WINDOW_SIZE = 4, MAX_FRAME_SIZE = 5, MAX_HEADER_LIST_SIZE = 6 }

/**
 * Connection errors decidable from the frame header alone (type, flags, stream, length);
 * -1 when the frame is acceptable so far. Stream-state checks are the connection's job.
 */
export function checkFrame(type: number, flags: number, stream: number, len: number, maxFrame: number): number {
  if (len > maxFrame) return E.FRAME_SIZE_ERROR;
  switch (type) {
    case T.DATA: case T.HEADERS: case T.CONTINUATION:
      return stream === 0 ? E.PROTOCOL_ERROR : -1;
    case T.PRIORITY:
      return stream === 0 ? E.PROTOCOL_ERROR : len !== 5 ? E.FRAME_SIZE_ERROR : -1;
    case T.RST_STREAM:
      return stream === 0 ? E.PROTOCOL_ERROR : len !== 4 ? E.FRAME_SIZE_ERROR : -1;
    case T.SETTINGS:
      if (stream !== 0) return E.PROTOCOL_ERROR;
      return (flags & F.ACK) !== 0 ? (len !== 0 ? E.FRAME_SIZE_ERROR : -1) : len % 6 !== 0 ? E.FRAME_SIZE_ERROR : -1;
    case T.PUSH_PROMISE:
      return E.PROTOCOL_ERROR; // push is disabled on both of our sides
    case T.PING:
      return stream !== 0 ? E.PROTOCOL_ERROR : len !== 8 ? E.FRAME_SIZE_ERROR : -1;
    case T.GOAWAY:
      return stream !== 0 ? E.PROTOCOL_ERROR : len < 8 ? E.FRAME_SIZE_ERROR : -1;
    case T.WINDOW_UPDATE:
      return len !== 4 ? E.FRAME_SIZE_ERROR : -1;
    default:
      return -1; // unknown types are ignored (§5.5)
  }
}

/**
 * The payload of a padded DATA/HEADERS frame without padding (and, for HEADERS, without
 * the priority fields); null when the padding is longer than the frame (PROTOCOL_ERROR).
 */
export function unpad(type: number, flags: number, p: Buffer): Buffer | null {
  let start = 0, end = p.length;
  if (flags & F.PADDED) {
    if (end < 1) return null;
    const pad = p[0]!;
    start = 1;
    end -= pad;
  }
  if (type === T.HEADERS && (flags & F.PRIORITY)) start += 5;
  if (end < start) return null;
  return start === 0 && end === p.length ? p : p.subarray(start, end);
}

/** Validates one SETTINGS entry (§6.5.2); the error code or -1. */
export function checkSetting(id: number, value: number): number {
  if (id === S.ENABLE_PUSH && value > 1) return E.PROTOCOL_ERROR;
  if (id === S.INITIAL_WINDOW_SIZE && value > MAX_WINDOW) return E.FLOW_CONTROL_ERROR;
  if (id === S.MAX_FRAME_SIZE && (value < DEFAULT_MAX_FRAME || value > 0xffffff)) return E.PROTOCOL_ERROR;
  return -1;
}

/** Writes a frame header at b[at..at+9). */
export function writeHead(b: Buffer, at: number, len: number, type: number, flags: number, stream: number): void {
  b[at] = len >>> 16; b[at + 1] = (len >>> 8) & 0xff; b[at + 2] = len & 0xff;
  b[at + 3] = type; b[at + 4] = flags;
  b.writeUInt32BE(stream & 0x7fffffff, at + 5);
}

export function frame(type: number, flags: number, stream: number, payload: Buffer | null): Buffer {
  const len = payload === null ? 0 : payload.length;
  const b = Buffer.allocUnsafe(FRAME_HEADER + len);
  writeHead(b, 0, len, type, flags, stream);
  if (payload !== null) payload.copy(b, FRAME_HEADER);
  return b;
}

export function settingsFrame(pairs: readonly number[]): Buffer {
  const p = Buffer.allocUnsafe(pairs.length * 3);
  for (let i = 0; i < pairs.length; i += 2) { p.writeUInt16BE(pairs[i]!, i * 3); p.writeUInt32BE(pairs[i + 1]!, i * 3 + 2); }
  return frame(T.SETTINGS, 0, 0, p);
}

export function u32Frame(type: T.RST_STREAM | T.WINDOW_UPDATE, stream: number, value: number): Buffer {
  const b = Buffer.allocUnsafe(FRAME_HEADER + 4);
  writeHead(b, 0, 4, type, 0, stream);
  b.writeUInt32BE(value, FRAME_HEADER);
  return b;
}

export function goawayFrame(lastStream: number, code: number): Buffer {
  const b = Buffer.allocUnsafe(FRAME_HEADER + 8);
  writeHead(b, 0, 8, T.GOAWAY, 0, 0);
  b.writeUInt32BE(lastStream, FRAME_HEADER);
  b.writeUInt32BE(code, FRAME_HEADER + 4);
  return b;
}
