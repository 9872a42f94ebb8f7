// `weft tap`: live requests as the L7 proxy completes them. The tap is an access log
// sink: while nobody is tapping it costs one Set size check per request; each subscriber
// has its own filter and a bounded queue, so a slow `weft tap` drops lines instead of
// holding memory or slowing the proxy. With several agent workers, subscribers connect to
// the primary (the admin port); proxy workers forward their records (ForwardingTap) only
// while someone is tapping.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { AccessLog, type AccessRecord, type AccessSink } from '../proxy/routing/access-log';
import { componentLogger } from '../telemetry/logger';
import { invalidArg } from '../lib/errors';

export interface TapFilter {
  /** Substring of the :authority / Host (e.g. a service VIP or name). */
  authority?: string;
  /** Path prefix. */
  path?: string;
  method?: string;
  /** Only responses with status >= this. */
  minStatus?: number;
}

interface Subscriber { filter: TapFilter; send(r: AccessRecord): void }

export function matchesTap(f: TapFilter, r: AccessRecord): boolean {
  return (f.authority === undefined || r.authority.includes(f.authority))
    && (f.path === undefined || r.path.startsWith(f.path))
    && (f.method === undefined || r.method === f.method)
    && (f.minStatus === undefined || r.status >= f.minStatus);
}

export function parseTapFilter(q: URLSearchParams): TapFilter {
  const f: TapFilter = {};
  const authority = q.get('authority'), path = q.get('path'), method = q.get('method'), minStatus = q.get('minStatus');
  if (authority) f.authority = authority;
  if (path) { if (!path.startsWith('/')) throw invalidArg('path must start with /'); f.path = path; }
  if (method) f.method = method.toUpperCase();
  if (minStatus) {
    const n = Number(minStatus);
    if (!Number.isInteger(n) || n < 100 || n > 599) throw invalidArg('minStatus must be an HTTP status');
    f.minStatus = n;
  }
  return f;
}

/** Queue bound per subscriber (records); beyond it lines are dropped and counted. */
const MAX_QUEUED_BYTES = 1 << 20;

/** Concurrent `weft tap` subscribers; more get 429 (each one costs a JSON encoding per
 *  matching request and up to MAX_QUEUED_BYTES of memory). */
export const MAX_TAP_SUBSCRIBERS = 16;

export class RequestTap implements AccessSink {
  private readonly subs = new Set<Subscriber>();

  /** `base`: the configured access log (sampled), or null when access logging is off.
   *  `onTapping` hears when the first subscriber arrives and the last one leaves; a
   *  subscriber is told the tap started once its promise settles (every worker taps). */
  constructor(
    private readonly base: AccessSink | null,
    private readonly onTapping: (tapping: boolean) => Promise<void> | void = () => {},
    private readonly maxSubscribers = MAX_TAP_SUBSCRIBERS,
  ) {}

  private tappingOn: Promise<void> = Promise.resolve();

  wants(status: number): boolean {
    return this.subs.size > 0 || (this.base?.wants(status) ?? false);
  }

  write(r: AccessRecord): void {
    if (this.base?.wants(r.status)) this.base.write(r);
    this.deliver(r);
  }

  /** A record to the subscribers only (another worker served it and wrote its own
   *  access log). */
  deliver(r: AccessRecord): void {
    for (const s of this.subs) if (matchesTap(s.filter, r)) s.send(r);
  }

  get subscribers(): number { return this.subs.size; }

  /** Streams matching records to an HTTP response as NDJSON until the client leaves. */
  serve(req: IncomingMessage, res: ServerResponse, url: URL): void {
    const filter = parseTapFilter(url.searchParams);
    if (this.subs.size >= this.maxSubscribers) {
      const body = JSON.stringify({ error: `too many tap subscribers (at most ${this.maxSubscribers})`, code: 'WEFT_ERR_CAPACITY' }) + '\n';
      res.writeHead(429, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'retry-after': '1' });
      res.end(body);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
    let dropped = 0;
    const sub: Subscriber = {
      filter,
      send: (r) => {
        if (res.writableLength > MAX_QUEUED_BYTES) { dropped++; return; }
        if (dropped) { res.write(JSON.stringify({ dropped }) + '\n'); dropped = 0; }
        res.write(JSON.stringify(r) + '\n');
      },
    };
    this.subs.add(sub);
    if (this.subs.size === 1) this.tappingOn = Promise.resolve(this.onTapping(true));
    void this.tappingOn.then(() => { if (!res.writableEnded) res.write(JSON.stringify({ tap: 'started', filter }) + '\n'); });
    const bye = () => { if (this.subs.delete(sub) && this.subs.size === 0) this.onTapping(false); };
    req.on('close', bye);
    res.on('close', bye);
  }
}

/** The sampled JSON access log of `--access-log-sample` (null when off). */
export function accessLogFor(node: string, sample: number): AccessSink | null {
  return sample > 0 ? new AccessLog({ logger: componentLogger('access', { node }), sampleRate: sample, logErrors: true }) : null;
}

/** A proxy worker's sink: its own access log, plus every record to `forward` (to the
 *  primary's RequestTap) while the primary says someone is tapping. */
export class ForwardingTap implements AccessSink {
  tapping = false;

  constructor(private readonly base: AccessSink | null, private readonly forward: (r: AccessRecord) => void) {}

  wants(status: number): boolean {
    return this.tapping || (this.base?.wants(status) ?? false);
  }

  write(r: AccessRecord): void {
    if (this.base?.wants(r.status)) this.base.write(r);
    if (this.tapping) this.forward(r);
  }
}
