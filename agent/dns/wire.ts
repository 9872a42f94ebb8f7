// The DNS wire format (RFC 1035 §4, EDNS0 RFC 6891), as much of it as a stub-facing
// resolver needs: parse a query (header, one question, the OPT record), build answers
// for the mesh zone, and truncate any UDP answer to what the client can take. Names
// are handled as label lists; compression pointers are followed on input (bounded, no
// loops) and written on output only as pointers to the question name.
export const TYPE = { A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, TXT: 16, AAAA: 28, SRV: 33, OPT: 41, ANY: 255 } as const;
export const CLASS_IN = 1;
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5, BADVERS: 16 } as const;
export const OPCODE_QUERY = 0;

/** Flag bits of the header's second 16-bit word. */
export const FLAG = { QR: 0x8000, AA: 0x0400, TC: 0x0200, RD: 0x0100, RA: 0x0080, AD: 0x0020, CD: 0x0010 } as const;

export const HEADER_SIZE = 12;
/** The UDP payload a client without EDNS0 can take (RFC 1035 §4.2.1). */
export const CLASSIC_UDP_SIZE = 512;
/** What this server advertises and accepts at most over UDP (the DNS flag day 2020 value:
 *  no IP fragmentation on common paths). */
export const MAX_UDP_SIZE = 1232;
/** A message over TCP is prefixed with a 16-bit length. */
export const MAX_MESSAGE = 65535;

const MAX_NAME = 255;
const MAX_LABEL = 63;
/** Compression pointers followed for one name: more is a loop or an attack. */
const MAX_POINTERS = 32;

export interface Question {
  /** Labels as sent (case kept, no trailing root label). */
  labels: string[];
  type: number;
  class: number;
  /** The question section's bytes as received (echoed in the answer). */
  raw: Buffer;
}

export interface Edns {
  /** Requester's UDP payload size (clamped to 512..MAX_UDP_SIZE by the caller's use). */
  udpSize: number;
  version: number;
  /** DNSSEC OK. */
  do: boolean;
}

export interface Query {
  id: number;
  flags: number;
  opcode: number;
  question: Question;
  edns: Edns | null;
}

export class DnsFormatError extends Error {}

/** A name starting at `off`: its labels and where the name ends in the message (after a
 *  pointer, the byte after the pointer). */
export function readName(msg: Buffer, off: number): { labels: string[]; end: number } {
  const labels: string[] = [];
  let length = 1;
  let end = -1;
  let pointers = 0;
  for (;;) {
    if (off >= msg.length) throw new DnsFormatError('name runs past the message');
    const len = msg[off]!;
    if (len === 0) { if (end < 0) end = off + 1; break; }
    if ((len & 0xc0) === 0xc0) {
      if (off + 1 >= msg.length) throw new DnsFormatError('truncated compression pointer');
      if (++pointers > MAX_POINTERS) throw new DnsFormatError('compression pointer loop');
      if (end < 0) end = off + 2;
      const target = ((len & 0x3f) << 8) | msg[off + 1]!;
      // Pointers only go backwards (RFC 1035 §4.1.4: to a prior occurrence).
      if (target >= off) throw new DnsFormatError('compression pointer forward');
      off = target;
      continue;
    }
    if (len & 0xc0) throw new DnsFormatError('unsupported label type');
    if (off + 1 + len > msg.length) throw new DnsFormatError('label runs past the message');
    length += len + 1;
    if (length > MAX_NAME) throw new DnsFormatError('name longer than 255 bytes');
    labels.push(msg.toString('latin1', off + 1, off + 1 + len));
    off += 1 + len;
  }
  return { labels, end };
}

/** Encodes a name (labels, no root label) uncompressed. */
export function encodeName(labels: readonly string[]): Buffer {
  const parts: Buffer[] = [];
  let total = 1;
  for (const l of labels) {
    const b = Buffer.from(l, 'latin1');
    if (b.length === 0 || b.length > MAX_LABEL) throw new DnsFormatError(`label of ${b.length} bytes`);
    total += b.length + 1;
    parts.push(Buffer.from([b.length]), b);
  }
  if (total > MAX_NAME) throw new DnsFormatError('name longer than 255 bytes');
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

/** Skips a resource record at `off`; returns its fields and the offset after it. */
function readRecord(msg: Buffer, off: number): { type: number; class: number; ttl: number; rdata: Buffer; nameRoot: boolean; end: number } {
  const name = readName(msg, off);
  off = name.end;
  if (off + 10 > msg.length) throw new DnsFormatError('record header runs past the message');
  const type = msg.readUInt16BE(off);
  const cls = msg.readUInt16BE(off + 2);
  const ttl = msg.readUInt32BE(off + 4);
  const rdlen = msg.readUInt16BE(off + 8);
  off += 10;
  if (off + rdlen > msg.length) throw new DnsFormatError('record data runs past the message');
  return { type, class: cls, ttl, rdata: msg.subarray(off, off + rdlen), nameRoot: name.labels.length === 0, end: off + rdlen };
}

/**
 * Parses a query. Throws DnsFormatError for bytes that are no DNS message at all (the
 * server drops those); returns `{ error }` for a message that is one but cannot be
 * answered as asked (FORMERR with the id echoed), else the query.
 */
export function parseQuery(msg: Buffer): Query | { id: number; flags: number; error: number } {
  if (msg.length < HEADER_SIZE) throw new DnsFormatError('shorter than a header');
  const id = msg.readUInt16BE(0);
  const flags = msg.readUInt16BE(2);
  if (flags & FLAG.QR) throw new DnsFormatError('a response, not a query');
  const opcode = (flags >> 11) & 0xf;
  const qd = msg.readUInt16BE(4), an = msg.readUInt16BE(6), ns = msg.readUInt16BE(8), ar = msg.readUInt16BE(10);
  if (opcode !== OPCODE_QUERY) return { id, flags, error: RCODE.NOTIMP };
  if (qd !== 1) return { id, flags, error: RCODE.FORMERR };
  const name = readName(msg, HEADER_SIZE);
  if (name.end + 4 > msg.length) throw new DnsFormatError('question runs past the message');
  const question: Question = {
    labels: name.labels, type: msg.readUInt16BE(name.end), class: msg.readUInt16BE(name.end + 2),
    raw: Buffer.from(msg.subarray(HEADER_SIZE, name.end + 4)),
  };
  let off = name.end + 4;
  let edns: Edns | null = null;
  try {
    for (let i = 0; i < an + ns; i++) off = readRecord(msg, off).end;
    for (let i = 0; i < ar; i++) {
      const r = readRecord(msg, off);
      off = r.end;
      if (r.type !== TYPE.OPT) continue;
      // One OPT, owned by the root (RFC 6891 §6.1.1): anything else is FORMERR.
      if (edns || !r.nameRoot) return { id, flags, error: RCODE.FORMERR };
      edns = { udpSize: r.class, version: (r.ttl >>> 16) & 0xff, do: (r.ttl & 0x8000) !== 0 };
    }
  } catch (e) {
    if (e instanceof DnsFormatError) return { id, flags, error: RCODE.FORMERR };
    throw e;
  }
  return { id, flags, opcode, question, edns };
}

export interface ResourceRecord {
  type: number;
  ttl: number;
  rdata: Buffer;
  /** Owner name; absent: the question's name (written as a pointer to it). */
  labels?: string[];
}

export interface ResponseSpec {
  id: number;
  /** The query's flags: opcode, RD and CD are echoed. */
  queryFlags: number;
  rcode: number;
  authoritative: boolean;
  /** The question section as received (empty for a FORMERR without one). */
  question: Buffer;
  answers: ResourceRecord[];
  authority: ResourceRecord[];
  /** Answer with an OPT record (the query had one): EDNS0 echo. */
  edns: boolean;
  /** Our advertised UDP payload size in that OPT record. */
  ednsUdpSize?: number;
}

const QUESTION_NAME_POINTER = Buffer.from([0xc0, HEADER_SIZE]);

function encodeRecord(r: ResourceRecord): Buffer {
  const owner = r.labels ? encodeName(r.labels) : QUESTION_NAME_POINTER;
  const fixed = Buffer.alloc(10);
  fixed.writeUInt16BE(r.type, 0);
  fixed.writeUInt16BE(CLASS_IN, 2);
  fixed.writeUInt32BE(r.ttl >>> 0, 4);
  fixed.writeUInt16BE(r.rdata.length, 8);
  return Buffer.concat([owner, fixed, r.rdata]);
}

/** The OPT pseudo-record: root owner, class = our UDP size, extended rcode high bits. */
function encodeOpt(udpSize: number, rcode: number): Buffer {
  const b = Buffer.alloc(11);
  b[0] = 0;
  b.writeUInt16BE(TYPE.OPT, 1);
  b.writeUInt16BE(udpSize, 3);
  b[5] = (rcode >> 4) & 0xff; // extended RCODE (upper 8 bits)
  b[6] = 0; // version 0
  b.writeUInt16BE(0, 7); // flags (DO is not set: no DNSSEC here)
  b.writeUInt16BE(0, 9);
  return b;
}

export function buildResponse(r: ResponseSpec): Buffer {
  const h = Buffer.alloc(HEADER_SIZE);
  h.writeUInt16BE(r.id, 0);
  const flags = FLAG.QR | (r.queryFlags & (0x7800 | FLAG.RD | FLAG.CD)) | FLAG.RA | (r.authoritative ? FLAG.AA : 0) | (r.rcode & 0xf);
  h.writeUInt16BE(flags, 2);
  h.writeUInt16BE(r.question.length ? 1 : 0, 4);
  h.writeUInt16BE(r.answers.length, 6);
  h.writeUInt16BE(r.authority.length, 8);
  h.writeUInt16BE(r.edns ? 1 : 0, 10);
  return Buffer.concat([
    h, r.question, ...r.answers.map(encodeRecord), ...r.authority.map(encodeRecord),
    ...(r.edns ? [encodeOpt(r.ednsUdpSize ?? MAX_UDP_SIZE, r.rcode)] : []),
  ]);
}

/** The largest UDP answer a query's sender takes: 512 without EDNS0, else its advertised
 *  size, at least 512 and at most what this server sends (MAX_UDP_SIZE). */
export function udpLimit(edns: Edns | null): number {
  if (!edns) return CLASSIC_UDP_SIZE;
  return Math.min(MAX_UDP_SIZE, Math.max(CLASSIC_UDP_SIZE, edns.udpSize));
}

/**
 * A response that fits `limit` bytes: unchanged if it does, else its header and question
 * with TC set and no records but the OPT one (RFC 2181 §9, RFC 6891 §7: the client
 * retries over TCP). Works on any response, ours or an upstream's.
 */
export function truncateResponse(msg: Buffer, limit: number): Buffer {
  if (msg.length <= limit) return msg;
  const qd = msg.readUInt16BE(4);
  let off = HEADER_SIZE;
  let opt: Buffer | null = null;
  try {
    for (let i = 0; i < qd; i++) off = readName(msg, off).end + 4;
    const qEnd = off;
    // Keep the OPT record (the client's EDNS view of us, extended rcode).
    const counts = msg.readUInt16BE(6) + msg.readUInt16BE(8);
    for (let i = 0; i < counts; i++) off = readRecord(msg, off).end;
    const ar = msg.readUInt16BE(10);
    for (let i = 0; i < ar; i++) {
      const start = off;
      const rec = readRecord(msg, off);
      off = rec.end;
      if (rec.type === TYPE.OPT && rec.nameRoot) opt = Buffer.from(msg.subarray(start, off));
    }
    const head = Buffer.from(msg.subarray(0, qEnd));
    head.writeUInt16BE(head.readUInt16BE(2) | FLAG.TC, 2);
    head.writeUInt16BE(0, 6);
    head.writeUInt16BE(0, 8);
    head.writeUInt16BE(opt ? 1 : 0, 10);
    const out = opt ? Buffer.concat([head, opt]) : head;
    if (out.length <= limit) return out;
  } catch { /* a malformed upstream answer: fall through to the bare header */ }
  const head = Buffer.from(msg.subarray(0, HEADER_SIZE));
  head.writeUInt16BE(head.readUInt16BE(2) | FLAG.TC, 2);
  head.fill(0, 4);
  return head;
}

/** rdata of an A or AAAA record from an address's bytes. */
export function addressRdata(bytes: Buffer): Buffer { return Buffer.from(bytes); }

/** rdata of an SOA record (RFC 1035 §3.3.13), names uncompressed. */
export function soaRdata(mname: string[], rname: string[], serial: number, refresh: number, retry: number, expire: number, minimum: number): Buffer {
  const nums = Buffer.alloc(20);
  [serial, refresh, retry, expire, minimum].forEach((n, i) => nums.writeUInt32BE(n >>> 0, i * 4));
  return Buffer.concat([encodeName(mname), encodeName(rname), nums]);
}

/** rdata of an SRV record (RFC 2782). */
export function srvRdata(priority: number, weight: number, port: number, target: string[]): Buffer {
  const nums = Buffer.alloc(6);
  nums.writeUInt16BE(priority, 0); nums.writeUInt16BE(weight, 2); nums.writeUInt16BE(port, 4);
  return Buffer.concat([nums, encodeName(target)]);
}

/** Summary of a response for tests and logs: rcode, flags and the records' data. */
export interface ParsedResponse {
  id: number; flags: number; rcode: number; question: Question | null;
  answers: { labels: string[]; type: number; ttl: number; rdata: Buffer }[];
  authority: { labels: string[]; type: number; ttl: number; rdata: Buffer }[];
  opt: { udpSize: number; extendedRcode: number } | null;
}

export function parseResponse(msg: Buffer): ParsedResponse {
  if (msg.length < HEADER_SIZE) throw new DnsFormatError('shorter than a header');
  const flags = msg.readUInt16BE(2);
  const qd = msg.readUInt16BE(4), an = msg.readUInt16BE(6), ns = msg.readUInt16BE(8), ar = msg.readUInt16BE(10);
  let off = HEADER_SIZE;
  let question: Question | null = null;
  for (let i = 0; i < qd; i++) {
    const n = readName(msg, off);
    if (n.end + 4 > msg.length) throw new DnsFormatError('question runs past the message');
    if (!question) question = { labels: n.labels, type: msg.readUInt16BE(n.end), class: msg.readUInt16BE(n.end + 2), raw: msg.subarray(off, n.end + 4) };
    off = n.end + 4;
  }
  const section = (count: number) => {
    const out: ParsedResponse['answers'] = [];
    for (let i = 0; i < count; i++) {
      const labels = readName(msg, off).labels;
      const r = readRecord(msg, off);
      off = r.end;
      out.push({ labels, type: r.type, ttl: r.ttl, rdata: r.rdata });
    }
    return out;
  };
  const answers = section(an);
  const authority = section(ns);
  let opt: ParsedResponse['opt'] = null;
  for (let i = 0; i < ar; i++) {
    const r = readRecord(msg, off);
    off = r.end;
    if (r.type === TYPE.OPT) opt = { udpSize: r.class, extendedRcode: r.ttl >>> 24 };
  }
  const rcode = (flags & 0xf) | ((opt?.extendedRcode ?? 0) << 4);
  return { id: msg.readUInt16BE(0), flags, rcode, question, answers, authority, opt };
}

/** Encodes a query (tests, benchmarks, the forwarder's own health checks). */
export function buildQuery(id: number, name: string, type: number, opts: { rd?: boolean; edns?: number } = {}): Buffer {
  const h = Buffer.alloc(HEADER_SIZE);
  h.writeUInt16BE(id, 0);
  h.writeUInt16BE(opts.rd === false ? 0 : FLAG.RD, 2);
  h.writeUInt16BE(1, 4);
  h.writeUInt16BE(opts.edns ? 1 : 0, 10);
  const q = Buffer.alloc(4);
  q.writeUInt16BE(type, 0);
  q.writeUInt16BE(CLASS_IN, 2);
  const labels = name.replace(/\.$/, '').split('.').filter(Boolean);
  return Buffer.concat([h, encodeName(labels), q, ...(opts.edns ? [encodeOpt(opts.edns, 0)] : [])]);
}
