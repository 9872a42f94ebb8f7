// W3C trace context: each hop continues the caller's trace (or starts one), forwards a
// traceparent naming its own span, and exports that span over OTLP/HTTP JSON in batches
// when a collector is configured. Without a collector nothing is rewritten: the
// caller's traceparent passes through untouched, which is the cheap path.
import { randomFillSync } from 'node:crypto';
import { request } from 'node:http';
import type { Logger } from '../../telemetry/logger';

export interface Span {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  flags: string;
  name: string;
  startNs: bigint;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const pool = Buffer.alloc(4096);
let poolPos = pool.length;

function randomHex(bytes: number): string {
  if (poolPos + bytes > pool.length) { randomFillSync(pool); poolPos = 0; }
  const s = pool.toString('hex', poolPos, poolPos + bytes);
  poolPos += bytes;
  return s;
}

export interface TracerOptions {
  /** e.g. http://127.0.0.1:4318 — spans go to <collector>/v1/traces. */
  collector: string;
  serviceName: string;
  logger: Logger;
  batchSize?: number;
  flushIntervalMs?: number;
}

export class Tracer {
  private batch: object[] = [];
  private readonly timer: NodeJS.Timeout;
  private readonly url: URL;

  constructor(private readonly o: TracerOptions) {
    this.url = new URL('/v1/traces', o.collector);
    this.timer = setInterval(() => this.flush(), o.flushIntervalMs ?? 1000);
    this.timer.unref();
  }

  /** Starts this hop's span from the incoming traceparent (or a new trace). */
  start(name: string, traceparent: string | undefined): Span {
    const m = traceparent !== undefined ? TRACEPARENT.exec(traceparent) : null;
    const valid = m !== null && !/^0+$/.test(m[1]!) && !/^0+$/.test(m[2]!);
    return {
      traceId: valid ? m[1]! : randomHex(16), parentSpanId: valid ? m[2]! : '', flags: valid ? m[3]! : '01',
      spanId: randomHex(8), name, startNs: process.hrtime.bigint(),
    };
  }

  /** The traceparent value to forward upstream. */
  static header(s: Span): string { return `00-${s.traceId}-${s.spanId}-${s.flags}`; }

  end(s: Span, attrs: Record<string, string | number>, error: boolean): void {
    const endNs = process.hrtime.bigint();
    const now = BigInt(Date.now()) * 1_000_000n;
    const startUnix = now - (endNs - s.startNs);
    this.batch.push({
      traceId: s.traceId, spanId: s.spanId, parentSpanId: s.parentSpanId || undefined, name: s.name, kind: 3,
      startTimeUnixNano: String(startUnix), endTimeUnixNano: String(now),
      attributes: Object.entries(attrs).map(([key, v]) => ({ key, value: typeof v === 'number' ? { intValue: String(v) } : { stringValue: v } })),
      status: { code: error ? 2 : 0 },
    });
    if (this.batch.length >= (this.o.batchSize ?? 512)) this.flush();
  }

  flush(): void {
    if (this.batch.length === 0) return;
    const spans = this.batch;
    this.batch = [];
    const body = JSON.stringify({ resourceSpans: [{
      resource: { attributes: [{ key: 'service.name', value: { stringValue: this.o.serviceName } }] },
      scopeSpans: [{ scope: { name: 'weft' }, spans }],
    }] });
    const req = request(this.url, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      if (res.statusCode !== 200) this.o.logger.warn({ status: res.statusCode }, 'OTLP collector refused spans');
    });
    req.on('error', (e) => this.o.logger.warn({ err: e.message }, 'OTLP export failed'));
    req.end(body);
  }

  close(): void { clearInterval(this.timer); this.flush(); }
}
