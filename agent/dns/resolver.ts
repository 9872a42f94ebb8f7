// What the agent answers itself: a query for a mesh name gets the service's VIPs
// (authoritative), a name under the cluster domain that does not exist NXDOMAIN, an
// existing name asked for another type NODATA (NOERROR, no answer, the zone's SOA for
// negative caching, RFC 2308); anything else is forwarded to the node's resolver.
import {
  CLASS_IN, DnsFormatError, FLAG, MAX_UDP_SIZE, RCODE, TYPE, buildResponse, parseQuery, soaRdata,
  type Edns, type Query, type ResourceRecord,
} from './wire';
import type { NameTable } from './table';

/** How long clients may cache a mesh name's VIPs. A Service's VIP rarely changes (one
 *  allocated from MeshConfig.vipRange is kept while the Service exists). */
export const DEFAULT_TTL_SECONDS = 30;
/** How long a "no such name" may be cached (the SOA minimum): short, so a Service added
 *  to the policies answers within seconds. */
export const NEGATIVE_TTL_SECONDS = 5;

export type Resolution =
  /** Answer with these bytes (before any UDP truncation). */
  | { kind: 'answer'; response: Buffer; result: 'answer' | 'nodata' | 'nxdomain' | 'error'; edns: Edns | null }
  /** Not the mesh's: forward the query as received. */
  | { kind: 'forward'; query: Query }
  /** No DNS query at all: drop it silently. */
  | { kind: 'drop'; reason: string };

export interface ResolverOptions {
  ttlSeconds?: number;
  /** SOA serial (e.g. bumped with every snapshot). */
  serial?: () => number;
}

export class MeshResolver {
  private readonly ttl: number;
  private readonly serial: () => number;

  constructor(private table: NameTable, opts: ResolverOptions = {}) {
    this.ttl = opts.ttlSeconds ?? DEFAULT_TTL_SECONDS;
    this.serial = opts.serial ?? (() => 1);
  }

  /** Swaps the name table (a new snapshot); queries in flight keep the old one. */
  setTable(table: NameTable): void { this.table = table; }
  get names(): NameTable { return this.table; }

  /** `callerNamespace`: the querying workload's namespace, when known. */
  resolve(msg: Buffer, callerNamespace?: string): Resolution {
    let q: ReturnType<typeof parseQuery>;
    try { q = parseQuery(msg); } catch (e) {
      if (e instanceof DnsFormatError) return { kind: 'drop', reason: e.message };
      throw e;
    }
    if ('error' in q) {
      // A message, but not one we can answer as asked: the rcode, id echoed, no question.
      return { kind: 'answer', result: 'error', edns: null, response: buildResponse({ id: q.id, queryFlags: q.flags, rcode: q.error, authoritative: false, question: Buffer.alloc(0), answers: [], authority: [], edns: false }) };
    }
    const { question } = q;
    if (question.class !== CLASS_IN && question.class !== TYPE.ANY) return { kind: 'forward', query: q };
    const found = this.table.lookup(question.labels, callerNamespace);
    if (found.kind === 'outside') return { kind: 'forward', query: q };
    const reply = (rcode: number, answers: ResourceRecord[], negative: boolean, result: 'answer' | 'nodata' | 'nxdomain' | 'error'): Resolution => ({
      kind: 'answer', result, edns: q.edns,
      response: buildResponse({
        id: q.id, queryFlags: q.flags, rcode, authoritative: true, question: question.raw, answers,
        authority: negative ? [this.soa()] : [], edns: q.edns !== null, ednsUdpSize: MAX_UDP_SIZE,
      }),
    });
    // EDNS versions above 0 are not spoken here (RFC 6891 §6.1.3).
    if (q.edns && q.edns.version > 0) return reply(RCODE.BADVERS, [], false, 'error');
    if (found.kind === 'nxdomain') return reply(RCODE.NXDOMAIN, [], true, 'nxdomain');
    if (found.kind === 'empty') {
      if (found.apex && (question.type === TYPE.SOA || question.type === TYPE.ANY)) {
        return reply(RCODE.NOERROR, [{ ...this.soa(), labels: undefined }], false, 'answer');
      }
      return reply(RCODE.NOERROR, [], true, 'nodata');
    }
    const answers: ResourceRecord[] = [];
    const t = question.type;
    if (t === TYPE.A || t === TYPE.ANY) for (const a of found.name.v4) answers.push({ type: TYPE.A, ttl: this.ttl, rdata: a });
    if (t === TYPE.AAAA || t === TYPE.ANY) for (const a of found.name.v6) answers.push({ type: TYPE.AAAA, ttl: this.ttl, rdata: a });
    return answers.length ? reply(RCODE.NOERROR, answers, false, 'answer') : reply(RCODE.NOERROR, [], true, 'nodata');
  }

  /** The zone's SOA (owner: the cluster domain), TTL = the negative-caching time. */
  private soa(): ResourceRecord {
    const zone = this.table.domain.split('.');
    return {
      type: TYPE.SOA, ttl: NEGATIVE_TTL_SECONDS, labels: zone,
      rdata: soaRdata(['ns', 'dns', ...zone], ['hostmaster', ...zone], this.serial(), 7200, 1800, 86400, NEGATIVE_TTL_SECONDS),
    };
  }
}

/** Whether a response has the TC bit (the client should retry over TCP). */
export function truncated(msg: Buffer): boolean { return msg.length >= 4 && (msg.readUInt16BE(2) & FLAG.TC) !== 0; }
