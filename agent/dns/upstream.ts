// Forwards names that are not the mesh's to the node's own resolvers (the nameservers of
// the node's /etc/resolv.conf, or --dns-upstream), over UDP for UDP queries and over TCP
// for TCP ones, so a truncated UDP answer is retried by the client over TCP and comes
// back whole. Each UDP query goes out from a fresh socket (a random source port) with a
// fresh random id, and only an answer from the server it was sent to, with that id and
// the same question, is taken. Bounded: at most `maxPending` queries in flight; more
// are answered SERVFAIL at once. No cache: the node's resolver caches.
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { connect, type Socket } from 'node:net';
import { FLAG, HEADER_SIZE, MAX_MESSAGE, RCODE, buildResponse, readName, type Query } from './wire';

export interface Upstream { host: string; port: number }

export const DEFAULT_RESOLV_CONF = '/etc/resolv.conf';
/** Per server and attempt (glibc's default `timeout` is 5 s for the whole try; a node's
 *  resolver answers in well under this or not at all). */
export const UDP_TIMEOUT_MS = 2000;
export const TCP_TIMEOUT_MS = 5000;
export const MAX_PENDING = 1024;

/** The nameservers of a resolv.conf text, in order (IPv4 and IPv6, port 53). */
export function parseResolvConf(text: string): Upstream[] {
  const out: Upstream[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (!m) continue;
    const host = m[1]!.replace(/%.*$/, ''); // a zone id (fe80::1%eth0) is not routable from here anyway
    if (isIP(host)) out.push({ host, port: 53 });
  }
  return out;
}

/** `HOST[:PORT]`, `[V6]:PORT` or a bare IPv6 address. */
export function parseUpstream(s: string): Upstream {
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
  let host: string, port = 53;
  if (v6) { host = v6[1]!; if (v6[2]) port = Number(v6[2]); } else if (isIP(s) === 6) host = s;
  else { const i = s.lastIndexOf(':'); host = i < 0 ? s : s.slice(0, i); if (i >= 0) port = Number(s.slice(i + 1)); }
  if (!isIP(host) || !Number.isInteger(port) || port < 1 || port > 65535) throw new TypeError(`upstream resolver ${JSON.stringify(s)}: expected IP[:PORT]`);
  return { host, port };
}

/** The node's resolvers from a resolv.conf file, minus `self` (the agent's own DNS
 *  listener would loop). */
export function nodeResolvers(file: string = DEFAULT_RESOLV_CONF, self?: Upstream): Upstream[] {
  let text = '';
  try { text = readFileSync(file, 'utf8'); } catch { /* no file: no upstream, names outside the mesh fail */ }
  return parseResolvConf(text).filter((u) => !(self && u.host === self.host && u.port === self.port));
}

/** A SERVFAIL for a query we could not get answered. */
export function servfail(q: Query): Buffer {
  return buildResponse({ id: q.id, queryFlags: q.flags, rcode: RCODE.SERVFAIL, authoritative: false, question: q.question.raw, answers: [], authority: [], edns: q.edns !== null });
}

/** Same question (name compared case-insensitively, type, class) as `raw`. */
function sameQuestion(msg: Buffer, raw: Buffer): boolean {
  try {
    if (msg.readUInt16BE(4) !== 1) return false;
    const a = readName(msg, HEADER_SIZE);
    const b = readName(raw, 0);
    if (a.labels.length !== b.labels.length || a.labels.some((l, i) => l.toLowerCase() !== b.labels[i]!.toLowerCase())) return false;
    return msg.readUInt32BE(a.end) === raw.readUInt32BE(b.end);
  } catch { return false; }
}

export type ForwardResult = { response: Buffer; upstream: Upstream } | { response: Buffer; upstream: null; error: string };

export class Forwarder {
  private pending = 0;

  constructor(private servers: Upstream[], private readonly opts: { udpTimeoutMs?: number; tcpTimeoutMs?: number; maxPending?: number } = {}) {}

  get upstreams(): Upstream[] { return this.servers; }
  setUpstreams(servers: Upstream[]): void { this.servers = servers; }
  get inFlight(): number { return this.pending; }

  /** Forwards `raw` (a query as the client sent it) and resolves to the answer to send
   *  back, the client's id restored; SERVFAIL when no server answers. */
  async forward(q: Query, raw: Buffer, transport: 'udp' | 'tcp'): Promise<ForwardResult> {
    if (!this.servers.length) return { response: servfail(q), upstream: null, error: 'no upstream resolver' };
    if (this.pending >= (this.opts.maxPending ?? MAX_PENDING)) return { response: servfail(q), upstream: null, error: 'too many queries in flight' };
    this.pending++;
    let lastError = '';
    try {
      for (const server of this.servers) {
        try {
          const answer = transport === 'udp' ? await this.udp(server, raw, q) : await this.tcp(server, raw, q);
          answer.writeUInt16BE(q.id, 0);
          return { response: answer, upstream: server };
        } catch (e) { lastError = `${server.host}:${server.port}: ${(e as Error).message}`; }
      }
    } finally { this.pending--; }
    return { response: servfail(q), upstream: null, error: lastError };
  }

  private udp(server: Upstream, raw: Buffer, q: Query): Promise<Buffer> {
    const id = randomInt(0, 0x10000);
    const out = Buffer.from(raw);
    out.writeUInt16BE(id, 0);
    return new Promise((resolve, reject) => {
      const sock: UdpSocket = createSocket(isIP(server.host) === 6 ? 'udp6' : 'udp4');
      const done = (err: Error | null, msg?: Buffer) => {
        clearTimeout(timer);
        sock.removeAllListeners('message');
        sock.close();
        if (err) reject(err); else resolve(msg!);
      };
      const timer = setTimeout(() => done(new Error('timed out')), this.opts.udpTimeoutMs ?? UDP_TIMEOUT_MS);
      sock.on('error', (e) => done(e));
      sock.on('message', (msg, rinfo) => {
        // Only the server asked, with our id, as a response to our question.
        if (rinfo.address !== server.host || rinfo.port !== server.port || msg.length < HEADER_SIZE) return;
        if (msg.readUInt16BE(0) !== id || !(msg.readUInt16BE(2) & FLAG.QR) || !sameQuestion(msg, q.question.raw)) return;
        done(null, msg);
      });
      sock.send(out, server.port, server.host, (e) => { if (e) done(e); });
    });
  }

  private tcp(server: Upstream, raw: Buffer, q: Query): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const sock: Socket = connect({ host: server.host, port: server.port });
      let buf = Buffer.alloc(0);
      let settled = false;
      const done = (err: Error | null, msg?: Buffer) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        sock.destroy();
        if (err) reject(err); else resolve(msg!);
      };
      const timer = setTimeout(() => done(new Error('timed out')), this.opts.tcpTimeoutMs ?? TCP_TIMEOUT_MS);
      sock.on('error', (e) => done(e));
      sock.on('close', () => done(new Error('closed before answering')));
      sock.on('connect', () => {
        const len = Buffer.alloc(2);
        len.writeUInt16BE(raw.length);
        sock.write(Buffer.concat([len, raw]));
      });
      sock.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        if (buf.length > 2 + MAX_MESSAGE) return done(new Error('oversized answer'));
        if (buf.length < 2) return;
        const n = buf.readUInt16BE(0);
        if (buf.length < 2 + n) return;
        const msg = Buffer.from(buf.subarray(2, 2 + n));
        if (msg.length < HEADER_SIZE || msg.readUInt16BE(0) !== q.id || !(msg.readUInt16BE(2) & FLAG.QR) || !sameQuestion(msg, q.question.raw)) {
          return done(new Error('answer does not match the query'));
        }
        done(null, msg);
      });
    });
  }
}
