// HPACK (RFC 7541): header block decoder and encoder, each with its own dynamic table.
// Header lists are flat arrays [name0, value0, name1, value1, ...] of latin1 strings:
// no per-header objects, and a proxy only scans a handful of names for routing.
import { huffmanDecode } from './huffman';

/** The static table (Appendix A), 1-based: STATIC[i-1]. */
const STATIC: readonly (readonly [string, string])[] = [
  [':authority', ''], [':method', 'GET'], [':method', 'POST'], [':path', '/'], [':path', '/index.html'], [':scheme', 'http'],
  [':scheme', 'https'], [':status', '200'], [':status', '204'], [':status', '206'], [':status', '304'], [':status', '400'],
  [':status', '404'], [':status', '500'], ['accept-charset', ''], ['accept-encoding', 'gzip, deflate'], ['accept-language', ''],
  ['accept-ranges', ''], ['accept', ''], ['access-control-allow-origin', ''], ['age', ''], ['allow', ''], ['authorization', ''],
  ['cache-control', ''], ['content-disposition', ''], ['content-encoding', ''], ['content-language', ''], ['content-length', ''],
  ['content-location', ''], ['content-range', ''], ['content-type', ''], ['cookie', ''], ['date', ''], ['etag', ''], ['expect', ''],
  ['expires', ''], ['from', ''], ['host', ''], ['if-match', ''], ['if-modified-since', ''], ['if-none-match', ''], ['if-range', ''],
  ['if-unmodified-since', ''], ['last-modified', ''], ['link', ''], ['location', ''], ['max-forwards', ''], ['proxy-authenticate', ''],
  ['proxy-authorization', ''], ['range', ''], ['referer', ''], ['refresh', ''], ['retry-after', ''], ['server', ''], ['set-cookie', ''],
  ['strict-transport-security', ''], ['transfer-encoding', ''], ['user-agent', ''], ['vary', ''], ['via', ''], ['www-authenticate', ''],
];
const STATIC_LEN = STATIC.length;

/** Static index of a full (name, value) pair (name -> value -> index) and of a name
 *  alone. Two levels instead of a "name\0value" key: no string is built per lookup, and
 *  names and values decoded from a peer's table keep their cached hashes. */
const STATIC_PAIR = new Map<string, Map<string, number>>();
const STATIC_NAME = new Map<string, number>();
STATIC.forEach(([n, v], i) => {
  let m = STATIC_PAIR.get(n);
  if (m === undefined) STATIC_PAIR.set(n, m = new Map());
  if (!m.has(v)) m.set(v, i + 1);
  if (!STATIC_NAME.has(n)) STATIC_NAME.set(n, i + 1);
});

/** Entry overhead counted in the table size (§4.1). */
const ENTRY_OVERHEAD = 32;

/** A decoded header block. `oversized`: over the list size limit (fields beyond it
 *  dropped). `invalid`: a field that breaks RFC 9113 §8.2.1 (see validName and
 *  validValue), which makes the message malformed; CR/LF would also split a header
 *  line on an HTTP/1.1 hop. */
export interface HeaderBlock { headers: string[]; oversized: boolean; invalid: boolean }

/**
 * A field name as RFC 9113 §8.2.1 allows it: not empty, no character in 0x00-0x20,
 * 0x41-0x5a (upper case) or 0x7f-0xff, and a colon only as the first character (a
 * pseudo-header).
 */
export function validName(n: string): boolean {
  const len = n.length;
  if (len === 0) return false;
  for (let i = 0; i < len; i++) {
    const c = n.charCodeAt(i);
    if (c <= 0x20 || (c >= 0x41 && c <= 0x5a) || c >= 0x7f || (c === 0x3a && i > 0)) return false;
  }
  return true;
}

const FORBIDDEN = /[\0\r\n]/;

/** A field value as §8.2.1 allows it: no NUL, CR or LF, and no leading or trailing
 *  space or horizontal tab. */
export function validValue(v: string): boolean {
  const len = v.length;
  if (len === 0) return true;
  const a = v.charCodeAt(0), z = v.charCodeAt(len - 1);
  if (a === 0x20 || a === 0x09 || z === 0x20 || z === 0x09) return false;
  return !FORBIDDEN.test(v);
}

const BAD_NAME = 1, BAD_VALUE = 2;

/** Why a header block was rejected (the connection answers COMPRESSION_ERROR). */
export class HpackError extends Error {}

/**
 * The dynamic table as a ring of (name, value) pairs, newest first in index order.
 * Sizes are in RFC terms (octets + 32 per entry).
 */
class DynamicTable {
  names: string[] = [];
  values: string[] = [];
  /** Per entry (decoder side): BAD_NAME / BAD_VALUE when the field, as first sent, made
   *  its block malformed. A later block that indexes it is just as malformed: the check
   *  must not be skipped because the bytes come from the table. */
  flags: number[] = [];
  /** Ring storage: entry k (0 = newest) is at (head - 1 - k) mod cap. */
  private head = 0;
  count = 0;
  size = 0;
  /** Entries ever inserted; lets the encoder turn an insertion number into an index. */
  inserted = 0;

  constructor(public maxSize: number) {
    this.names.length = this.values.length = this.flags.length = 64;
  }

  get(k: number): number { return (this.head - 1 - k + this.names.length * 2) % this.names.length; }

  add(name: string, value: string, onEvict?: (name: string, value: string, seq: number) => void, flags = 0): void {
    const sz = name.length + value.length + ENTRY_OVERHEAD;
    this.evictTo(this.maxSize - sz, onEvict);
    this.inserted++;
    if (sz > this.maxSize) return; // an entry larger than the table empties it (§4.4)
    if (this.count === this.names.length) this.grow();
    this.names[this.head] = name;
    this.values[this.head] = value;
    this.flags[this.head] = flags;
    this.head = (this.head + 1) % this.names.length;
    this.count++;
    this.size += sz;
  }

  evictTo(limit: number, onEvict?: (name: string, value: string, seq: number) => void): void {
    while (this.count > 0 && this.size > limit) {
      const at = this.get(this.count - 1);
      const n = this.names[at]!, v = this.values[at]!;
      this.size -= n.length + v.length + ENTRY_OVERHEAD;
      onEvict?.(n, v, this.inserted - this.count);
      this.count--;
    }
  }

  private grow(): void {
    const n: string[] = [], v: string[] = [], f: number[] = [];
    for (let k = this.count - 1; k >= 0; k--) { const at = this.get(k); n.push(this.names[at]!); v.push(this.values[at]!); f.push(this.flags[at]!); }
    const cap = this.names.length * 2;
    n.length = v.length = f.length = cap;
    this.names = n; this.values = v; this.flags = f;
    this.head = this.count;
  }
}

/** Decodes header blocks from one peer. */
export class HpackDecoder {
  private readonly table: DynamicTable;
  /** The largest table size we allow the peer to choose (our SETTINGS_HEADER_TABLE_SIZE). */
  constructor(private readonly maxTableSize = 4096) { this.table = new DynamicTable(maxTableSize); }

  /**
   * Decodes a whole header block. `maxListSize` bounds the decoded list (name + value +
   * 32 per field, as SETTINGS_MAX_HEADER_LIST_SIZE counts it): when it is exceeded the
   * block is still decoded to keep the table in sync, and `oversized` is set on the
   * result. Throws HpackError on malformed input.
   */
  decode(b: Buffer, maxListSize: number): HeaderBlock {
    const out: string[] = [];
    let listSize = 0, oversized = false, invalid = false, i = 0;
    const end = b.length;
    let fieldsSeen = false;
    while (i < end) {
      const c = b[i]!;
      let name: string, value: string;
      if (c & 0x80) { // indexed field
        const idx = this.int(b, i, 7); i = this.pos;
        if (idx === 0) throw new HpackError('index 0');
        name = this.name(idx); value = this.value(idx);
        if (idx > STATIC_LEN && this.entryFlags(idx) !== 0) invalid = true;
      } else if ((c & 0xe0) === 0x20) { // dynamic table size update
        if (fieldsSeen) throw new HpackError('table size update after a field');
        const sz = this.int(b, i, 5); i = this.pos;
        if (sz > this.maxTableSize) throw new HpackError('table size update above the limit');
        this.table.maxSize = sz;
        this.table.evictTo(sz);
        continue;
      } else {
        const incremental = (c & 0xc0) === 0x40;
        const idx = this.int(b, i, incremental ? 6 : 4); i = this.pos;
        let bad = 0;
        if (idx === 0) {
          name = this.str(b, i); i = this.pos;
          if (!validName(name)) bad = BAD_NAME;
        } else {
          name = this.name(idx);
          if (idx > STATIC_LEN) bad = this.entryFlags(idx) & BAD_NAME;
        }
        value = this.str(b, i); i = this.pos;
        if (!validValue(value)) bad |= BAD_VALUE;
        if (bad !== 0) invalid = true;
        if (incremental) this.table.add(name, value, undefined, bad);
      }
      fieldsSeen = true;
      listSize += name.length + value.length + ENTRY_OVERHEAD;
      if (listSize > maxListSize) oversized = true;
      else out.push(name, value);
    }
    return { headers: out, oversized, invalid };
  }

  /** Current dynamic table size in RFC 7541 terms (tests check eviction with it). */
  get tableSize(): number { return this.table.size; }

  private pos = 0;

  /** Integer with an N-bit prefix (§5.1) at b[i]; sets this.pos past it. */
  private int(b: Buffer, i: number, prefix: number): number {
    const max = (1 << prefix) - 1;
    let v = b[i]! & max;
    i++;
    if (v === max) {
      let shift = 0, byte: number;
      do {
        if (i >= b.length) throw new HpackError('truncated integer');
        byte = b[i++]!;
        v += (byte & 0x7f) * 2 ** shift;
        shift += 7;
        if (shift > 28) throw new HpackError('integer too large');
      } while (byte & 0x80);
    }
    this.pos = i;
    return v;
  }

  private str(b: Buffer, i: number): string {
    if (i >= b.length) throw new HpackError('truncated string');
    const huff = (b[i]! & 0x80) !== 0;
    const len = this.int(b, i, 7);
    const start = this.pos, stop = start + len;
    if (stop > b.length) throw new HpackError('truncated string');
    this.pos = stop;
    const s = huff ? huffmanDecode(b, start, stop) : b.toString('latin1', start, stop);
    if (s === null) throw new HpackError('invalid Huffman string');
    // Literals are checked by the caller; indexed fields carry the verdict of when they
    // were literals (DynamicTable.flags).
    return s;
  }

  /** BAD_NAME / BAD_VALUE of dynamic table entry `idx` (HPACK index, > STATIC_LEN). */
  private entryFlags(idx: number): number {
    const k = idx - STATIC_LEN - 1;
    if (k >= this.table.count) throw new HpackError('index out of range');
    return this.table.flags[this.table.get(k)]!;
  }

  private name(idx: number): string {
    if (idx <= STATIC_LEN) return STATIC[idx - 1]![0];
    const k = idx - STATIC_LEN - 1;
    if (k >= this.table.count) throw new HpackError('index out of range');
    return this.table.names[this.table.get(k)]!;
  }

  private value(idx: number): string {
    if (idx <= STATIC_LEN) return STATIC[idx - 1]![1];
    return this.table.values[this.table.get(idx - STATIC_LEN - 1)]!;
  }
}

/** Headers whose values change per request: indexing them would only churn the table. */
const NO_INDEX = new Set(['grpc-timeout', 'traceparent', 'tracestate', 'content-length', 'date', 'x-request-id', 'grpc-message', 'grpc-status-details-bin']);
/** Headers never to be indexed by any hop (§7.1.3: secrets). */
const NEVER_INDEX = new Set(['authorization', 'proxy-authorization', 'cookie', 'set-cookie']);
/** Values above this size are sent as literals without indexing. */
const MAX_INDEXED_VALUE = 256;

/**
 * Encodes header lists for one peer. Repeated fields (method, path, content-type, te,
 * user-agent, gRPC metadata) are indexed once and then cost one or two bytes. Strings
 * go out raw (no Huffman): cheaper in CPU, and the bytes saved on loopback/LAN do not pay
 * for it.
 */
export class HpackEncoder {
  private readonly table = new DynamicTable(4096);
  /** name -> value -> insertion number of the newest matching entry; name -> the same. */
  private readonly pairs = new Map<string, Map<string, number>>();
  private readonly names = new Map<string, number>();
  /** A size update to announce at the start of the next block. */
  private pendingSize = -1;
  private buf = Buffer.allocUnsafe(4096);
  private len = 0;

  /** The peer's SETTINGS_HEADER_TABLE_SIZE: our table must not exceed it. */
  setMaxTableSize(n: number): void {
    const sz = Math.min(n, 4096);
    if (sz === this.table.maxSize) return;
    this.table.maxSize = sz;
    this.table.evictTo(sz, this.forget);
    this.pendingSize = sz;
  }

  private readonly forget = (name: string, value: string, seq: number): void => {
    const m = this.pairs.get(name);
    if (m !== undefined && m.get(value) === seq) { m.delete(value); if (m.size === 0) this.pairs.delete(name); }
    if (this.names.get(name) === seq) this.names.delete(name);
  };

  /** Encodes `h` (flat name/value list; names lower-case). The result is a view of the
   *  encoder's buffer, valid until the next call: callers copy it into a frame at once. */
  encode(h: readonly string[]): Buffer {
    this.len = 0;
    if (this.pendingSize >= 0) { this.int(this.pendingSize, 5, 0x20); this.pendingSize = -1; }
    for (let i = 0; i < h.length; i += 2) this.field(h[i]!, h[i + 1]!);
    return this.buf.subarray(0, this.len);
  }

  private dynIndex(seq: number | undefined): number {
    if (seq === undefined) return 0;
    const k = this.table.inserted - 1 - seq;
    return k < this.table.count ? STATIC_LEN + 1 + k : 0;
  }

  private field(name: string, value: string): void {
    const st = STATIC_PAIR.get(name)?.get(value);
    if (st !== undefined) { this.int(st, 7, 0x80); return; }
    const dm = this.pairs.get(name);
    const dyn = dm === undefined ? 0 : this.dynIndex(dm.get(value));
    if (dyn !== 0) { this.int(dyn, 7, 0x80); return; }
    const nameIdx = STATIC_NAME.get(name) ?? this.dynIndex(this.names.get(name));
    if (NEVER_INDEX.has(name)) this.int(nameIdx, 4, 0x10);
    else if (NO_INDEX.has(name) || value.length > MAX_INDEXED_VALUE || name.length + value.length + ENTRY_OVERHEAD > this.table.maxSize) this.int(nameIdx, 4, 0x00);
    else {
      this.int(nameIdx, 6, 0x40);
      this.table.add(name, value, this.forget);
      const seq = this.table.inserted - 1;
      // Re-read: the insertion may have evicted this name's last entry and its map.
      const m = this.pairs.get(name);
      if (m === undefined) this.pairs.set(name, new Map([[value, seq]])); else m.set(value, seq);
      this.names.set(name, seq);
    }
    if (nameIdx === 0) this.str(name);
    this.str(value);
  }

  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const b = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.len + n));
    this.buf.copy(b, 0, 0, this.len);
    this.buf = b;
  }

  private int(v: number, prefix: number, flags: number): void {
    this.room(6);
    const max = (1 << prefix) - 1;
    if (v < max) { this.buf[this.len++] = flags | v; return; }
    this.buf[this.len++] = flags | max;
    v -= max;
    while (v >= 128) { this.buf[this.len++] = (v & 0x7f) | 0x80; v = Math.floor(v / 128); }
    this.buf[this.len++] = v;
  }

  private str(s: string): void {
    this.int(s.length, 7, 0);
    this.room(s.length);
    this.len += this.buf.write(s, this.len, 'latin1');
  }
}
