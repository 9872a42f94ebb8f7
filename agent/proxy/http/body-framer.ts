// Finds where an HTTP/1.1 message body ends without copying or re-encoding it.
//
// The proxy forwards body bytes exactly as received; this state machine only walks them
// to learn (a) where the message ends, so the next message on a keep-alive or pooled
// connection starts at the right byte, and (b) whether the chunked encoding is valid.
// A framing error means the peers may disagree about message boundaries, so the caller
// closes both connections rather than guess.
import { Framing, MAX_HEADERS, TCHAR, VALUE_OK } from './head-parser';

const enum S { Size, SizeLws, Ext, SizeLf, Data, DataCr, DataLf, Trailer, TrailerName, TrailerValue, TrailerLf, LastLf, Done }

export const FRAMING_ERROR = -1;
/** Chunk-size digits beyond this would overflow a safe integer. */
const MAX_SIZE_DIGITS = 13;

// Chunk extension bytes: visible ASCII, SP, HTAB (quoted strings included loosely).
const EXT_OK = new Uint8Array(256);
for (let c = 0x20; c <= 0x7e; c++) EXT_OK[c] = 1;
EXT_OK[0x09] = 1;

function hex(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}

export class BodyFramer {
  private mode: Framing = Framing.None;
  private remaining = 0;
  private state: S = S.Size;
  private digits = 0;
  /** Bytes of the current trailer line, and trailer fields so far (both bounded). */
  private lineLen = 0;
  private fields = 0;
  done = true;

  start(mode: Framing, contentLength: number): void {
    this.mode = mode;
    this.remaining = contentLength;
    this.state = S.Size;
    this.digits = 0;
    this.lineLen = 0;
    this.fields = 0;
    this.done = mode === Framing.None || (mode === Framing.Length && contentLength === 0);
  }

  /**
   * Walks buf[from..end) and returns the offset where this body ends within it (== end
   * when the body goes on), or FRAMING_ERROR. Sets `done` when the body is complete.
   */
  feed(buf: Buffer, from: number, end: number): number {
    if (this.done) return from;
    switch (this.mode) {
      case Framing.Length: {
        const avail = end - from;
        if (avail < this.remaining) { this.remaining -= avail; return end; }
        const stop = from + this.remaining;
        this.remaining = 0;
        this.done = true;
        return stop;
      }
      case Framing.Close: return end;
      case Framing.Chunked: return this.chunked(buf, from, end);
      default: return from;
    }
  }

  private chunked(buf: Buffer, i: number, end: number): number {
    let state = this.state;
    while (i < end) {
      switch (state) {
        case S.Data: {
          const take = Math.min(this.remaining, end - i);
          i += take;
          this.remaining -= take;
          if (this.remaining === 0) state = S.DataCr;
          continue;
        }
        case S.Size: {
          const c = buf[i]!;
          const d = hex(c);
          if (d >= 0) {
            if (++this.digits > MAX_SIZE_DIGITS) return FRAMING_ERROR;
            this.remaining = this.remaining * 16 + d;
          } else if (this.digits === 0) return FRAMING_ERROR;
          else if (c === 0x3b) state = S.Ext;
          else if (c === 0x0d) state = S.SizeLf;
          else if (c === 0x20 || c === 0x09) state = S.SizeLws;
          else return FRAMING_ERROR;
          break;
        }
        case S.SizeLws: {
          // BWS before an extension is allowed; before CRLF it is not (strict).
          const c = buf[i]!;
          if (c === 0x3b) state = S.Ext;
          else if (c !== 0x20 && c !== 0x09) return FRAMING_ERROR;
          break;
        }
        case S.Ext: {
          const c = buf[i]!;
          if (c === 0x0d) state = S.SizeLf;
          else if (EXT_OK[c] !== 1) return FRAMING_ERROR;
          break;
        }
        case S.SizeLf:
          if (buf[i] !== 0x0a) return FRAMING_ERROR;
          this.digits = 0;
          state = this.remaining === 0 ? S.Trailer : S.Data;
          this.lineLen = 0;
          break;
        case S.DataCr:
          if (buf[i] !== 0x0d) return FRAMING_ERROR;
          state = S.DataLf;
          break;
        case S.DataLf:
          if (buf[i] !== 0x0a) return FRAMING_ERROR;
          state = S.Size;
          break;
        // The trailer section: field lines with the header rules (RFC 9112 §7.1.2,
        // head-parser.ts): a token name, a colon, a value of field-vchars, CRLF. No
        // obs-fold, no whitespace before the colon, no bare LF: whatever reaches the
        // backend is one well-formed field per line, never a line it could read as a
        // request or as a continuation of another field.
        case S.Trailer: {
          const c = buf[i]!;
          if (c === 0x0d) state = S.LastLf;
          else if (TCHAR[c] === 1) { state = S.TrailerName; this.lineLen = 1; }
          else return FRAMING_ERROR;
          break;
        }
        case S.TrailerName: {
          const c = buf[i]!;
          if (c === 0x3a) state = S.TrailerValue;
          else if (TCHAR[c] !== 1) return FRAMING_ERROR;
          if (++this.lineLen > 8192) return FRAMING_ERROR;
          break;
        }
        case S.TrailerValue: {
          const c = buf[i]!;
          if (c === 0x0d) state = S.TrailerLf;
          else if (VALUE_OK[c] !== 1 || ++this.lineLen > 8192) return FRAMING_ERROR;
          break;
        }
        case S.TrailerLf:
          if (buf[i] !== 0x0a || ++this.fields > MAX_HEADERS) return FRAMING_ERROR;
          this.lineLen = 0;
          state = S.Trailer;
          break;
        case S.LastLf:
          if (buf[i] !== 0x0a) return FRAMING_ERROR;
          this.state = S.Done;
          this.done = true;
          return i + 1;
        default:
          return FRAMING_ERROR;
      }
      i++;
    }
    this.state = state;
    return end;
  }
}
