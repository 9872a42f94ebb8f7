// The agent's DNS listener, UDP and TCP on one address (default: the outbound listener's
// host, port 15053), where the kernel sends workloads' queries to port 53 (bpf/
// sock_lb.bpf.c). Mesh names are answered from the name table, everything else is
// forwarded to the node's resolvers. UDP answers larger than the client takes (512
// bytes, or its EDNS0 size) are truncated with TC set; over TCP (RFC 7766: length-
// prefixed, several queries per connection, answered in order) they go whole.
// Malformed packets are dropped and counted. Memory is bounded: a connection limit, one
// message of at most 64 KiB buffered per connection, a cap on forwarded queries in
// flight, no cache.
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import { Counter, type Registry } from 'prom-client';
import * as native from 'weft-native';

import type { Logger } from '../telemetry/logger';
import { describeError } from '../lib/errors';
import { MeshResolver } from './resolver';
import { Forwarder } from './upstream';
import { MAX_MESSAGE, truncateResponse, udpLimit } from './wire';

export const DEFAULT_DNS_PORT = 15053;
export const MAX_TCP_CONNECTIONS = 256;
/** A TCP client that sends nothing for this long is closed (RFC 7766 §6.2.3). */
export const TCP_IDLE_MS = 10_000;
/** Queries answered concurrently on one TCP connection before reading pauses. */
const TCP_PIPELINE = 16;

export interface DnsServerOptions {
  host: string;
  port: number;
  resolver: MeshResolver;
  forwarder: Forwarder;
  /** The namespace of the workload at a source address (bare NAME queries), if known. */
  namespaceOf?: (ip: string) => string | undefined;
  /** Who may ask (callers.ts: this node and its workloads); others are dropped, so the
   *  listener on a node address is not a resolver for the whole network. Absent: all. */
  allowed?: (ip: string) => boolean;
  registry?: Registry;
  logger?: Logger;
}

type Result = 'answer' | 'nodata' | 'nxdomain' | 'forwarded' | 'servfail' | 'error' | 'dropped';

export class DnsServer {
  private udp: UdpSocket | null = null;
  private tcp: Server | null = null;
  private readonly conns = new Set<Socket>();
  private readonly queries: Counter<'transport' | 'result'> | null;
  private closed = false;
  /** The bound port (opts.port, or the kernel's choice for 0). */
  port: number;

  constructor(private readonly opts: DnsServerOptions) {
    this.port = opts.port;
    const name = 'weft_dns_queries_total';
    const existing = opts.registry?.getSingleMetric(name) as Counter<'transport' | 'result'> | undefined;
    this.queries = opts.registry ? existing ?? new Counter({
      name, help: 'DNS queries the agent received from workloads, by transport and outcome (answer, nodata, nxdomain: mesh names; forwarded, servfail: other names; error, dropped: malformed).',
      labelNames: ['transport', 'result'], registers: [opts.registry],
    }) : null;
  }

  /** Binds UDP and TCP. Both reuse the port (SO_REUSEADDR for UDP, SO_REUSEPORT for TCP),
   *  so a new agent process binds beside the one it replaces. */
  async listen(): Promise<void> {
    const { host, port } = this.opts;
    const udp = createSocket({ type: host.includes(':') ? 'udp6' : 'udp4', reuseAddr: true });
    await new Promise<void>((resolve, reject) => { udp.once('error', reject); udp.bind(port, host, () => { udp.off('error', reject); resolve(); }); });
    // Port 0 (tests): TCP takes the port the kernel gave UDP.
    this.port = udp.address().port;
    udp.on('error', (e) => this.opts.logger?.warn({ err: describeError(e) }, 'DNS UDP socket error'));
    udp.on('message', (msg, rinfo) => { void this.onUdp(msg, rinfo.address, rinfo.port); });
    this.udp = udp;
    const tcp = createServer({ pauseOnConnect: false }, (s) => this.onTcp(s));
    tcp.maxConnections = MAX_TCP_CONNECTIONS;
    const fd = native.listenTcp(host, this.port, 128, true);
    try {
      await new Promise<void>((resolve, reject) => { tcp.once('error', reject); tcp.listen({ fd }, () => { tcp.off('error', reject); resolve(); }); });
    } catch (e) { udp.close(); this.udp = null; throw e; }
    this.tcp = tcp;
  }

  /** The listening sockets' fds (the kernel's weft_dnsl_v1). */
  fds(): { udp?: number; tcp?: number } {
    const h = (x: unknown) => (x as { _handle?: { fd?: number } } | null)?._handle?.fd;
    const udp = h(this.udp);
    const tcp = h(this.tcp);
    return { ...(typeof udp === 'number' && udp >= 0 ? { udp } : {}), ...(typeof tcp === 'number' && tcp >= 0 ? { tcp } : {}) };
  }

  get listening(): boolean { return this.udp !== null && this.tcp !== null && !this.closed; }
  get address(): string { return `${this.opts.host.includes(':') ? `[${this.opts.host}]` : this.opts.host}:${this.port}`; }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const c of this.conns) c.destroy();
    this.udp?.close();
    await new Promise<void>((resolve) => (this.tcp ? this.tcp.close(() => resolve()) : resolve()));
  }

  /** One query from any transport: the answer to send and the largest UDP answer the
   *  client takes (512 or its EDNS0 size), or null (drop). */
  async answer(msg: Buffer, sourceIp: string, transport: 'udp' | 'tcp'): Promise<{ out: Buffer; udpLimit: number } | null> {
    if (this.opts.allowed && !this.opts.allowed(sourceIp)) { this.count(transport, 'dropped'); return null; }
    const r = this.opts.resolver.resolve(msg, this.opts.namespaceOf?.(sourceIp));
    if (r.kind === 'drop') { this.count(transport, 'dropped'); return null; }
    if (r.kind === 'answer') { this.count(transport, r.result); return { out: r.response, udpLimit: udpLimit(r.edns) }; }
    const f = await this.opts.forwarder.forward(r.query, msg, transport);
    if (f.upstream === null) {
      this.count(transport, 'servfail');
      this.opts.logger?.debug({ name: r.query.question.labels.join('.'), err: f.error }, 'DNS query not answered upstream');
    } else this.count(transport, 'forwarded');
    return { out: f.response, udpLimit: udpLimit(r.query.edns) };
  }

  private count(transport: 'udp' | 'tcp', result: Result): void { this.queries?.inc({ transport, result }); }

  private async onUdp(msg: Buffer, ip: string, port: number): Promise<void> {
    try {
      const res = await this.answer(msg, ip, 'udp');
      if (!res || this.closed || !this.udp) return;
      // Ours and forwarded ones alike (an upstream may ignore the client's size).
      this.udp.send(truncateResponse(res.out, res.udpLimit), port, ip);
    } catch (e) {
      this.opts.logger?.warn({ err: describeError(e) }, 'DNS UDP query failed');
    }
  }

  private onTcp(s: Socket): void {
    if (this.closed || (this.opts.allowed && !this.opts.allowed(s.remoteAddress ?? ''))) { s.destroy(); return; }
    this.conns.add(s);
    s.setNoDelay(true);
    s.setTimeout(TCP_IDLE_MS, () => s.destroy());
    s.on('close', () => this.conns.delete(s));
    s.on('error', () => s.destroy());
    let buf: Buffer = Buffer.alloc(0);
    let inFlight = 0;
    // Answers go out in query order (RFC 7766 allows either; in order is simplest for
    // every client), each as soon as it and all before it are ready.
    const queue: { done: boolean; out: Buffer | null }[] = [];
    const flush = () => {
      while (queue.length && queue[0]!.done) {
        const { out } = queue.shift()!;
        if (out && !s.destroyed) {
          const len = Buffer.alloc(2);
          len.writeUInt16BE(out.length);
          s.write(Buffer.concat([len, out]));
        }
      }
    };
    s.on('data', (d: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      while (buf.length >= 2) {
        const n = buf.readUInt16BE(0);
        if (buf.length < 2 + n) break;
        const msg = Buffer.from(buf.subarray(2, 2 + n));
        buf = buf.subarray(2 + n);
        const slot: { done: boolean; out: Buffer | null } = { done: false, out: null };
        queue.push(slot);
        inFlight++;
        if (inFlight >= TCP_PIPELINE) s.pause();
        void this.answer(msg, s.remoteAddress ?? '', 'tcp').catch((e) => {
          this.opts.logger?.warn({ err: describeError(e) }, 'DNS TCP query failed');
          return null;
        }).then((res) => {
          slot.done = true;
          slot.out = res?.out ?? null;
          inFlight--;
          if (inFlight < TCP_PIPELINE && s.isPaused()) s.resume();
          flush();
        });
      }
      if (buf.length > 2 + MAX_MESSAGE) s.destroy();
    });
  }
}
