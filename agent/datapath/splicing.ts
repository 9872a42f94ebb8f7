// Which server endpoints' connections are spliced through the SOCKHASH (weft_accel_v1,
// see bpf/sockops.bpf.c): what the kernel learned per endpoint, plus the flags the agent
// sets (pinned: always worth an insertion; eager: spliced from the first connection).
import { WeftError } from '../lib/errors';
import { parseIp } from '../lib/ip';
import { bpfError } from './bpf-error';
import { ACCEL_EAGER, ACCEL_PINNED, accelCodec, endpointCodec, type AccelEntry } from './codec';
import type { DatapathMaps } from './maps';

export class Splicing {
  constructor(private readonly accel: DatapathMaps['accel']) {}

  /** Marks a server endpoint (e.g. the agent's own listener) as always worth a sockmap
   *  insertion, without waiting for a bulk connection to teach the kernel. */
  accelerate(ip: string, port: number): void {
    this.accel.update(endpointCodec.encode({ ip, port }), accelCodec.encode({ avgBytes: 0n, flags: ACCEL_PINNED, avgMsg: 0 }));
  }

  /**
   * The server endpoints whose connections are spliced from the first one
   * (WEFT_ACCEL_EAGER in bpf/sockops.bpf.c): the agent's own hops, i.e. its outbound
   * listener and the local endpoints it pools connections to. Their bulk check stays:
   * an endpoint learned to carry bulk writes is left on TCP. Applied as a diff; what the
   * kernel learned about an endpoint (its means) is kept when the flag comes or goes.
   */
  setEager(endpoints: { ip: string; port: number }[]): { added: number; removed: number } {
    const wanted = new Map<string, Buffer>();
    for (const ep of endpoints) {
      if (!parseIp(ep.ip) || !Number.isInteger(ep.port) || ep.port < 1 || ep.port > 65535) {
        throw new WeftError('WEFT_ERR_INVALID_ARG', `eager endpoint ${JSON.stringify(ep)}: expected an IP address and a port from 1 to 65535`);
      }
      const key = endpointCodec.encode(ep);
      wanted.set(key.toString('hex'), key);
    }
    let added = 0, removed = 0;
    try {
      const current = this.entries();
      const fresh = [...wanted.keys()].filter((k) => !current.has(k)).length;
      if (current.size + fresh > this.accel.maxEntries) {
        throw new WeftError('WEFT_ERR_CAPACITY', `${wanted.size} eager endpoints do not fit the accel map (${this.accel.maxEntries} entries)`);
      }
      for (const [hex, key] of wanted) {
        const e = current.get(hex) ?? { avgBytes: 0n, flags: 0, avgMsg: 0 };
        if (e.flags & ACCEL_EAGER) continue;
        this.accel.update(key, accelCodec.encode({ ...e, flags: e.flags | ACCEL_EAGER }));
        added++;
      }
      for (const [hex, e] of current) {
        if (wanted.has(hex) || !(e.flags & ACCEL_EAGER)) continue;
        this.accel.update(Buffer.from(hex, 'hex'), accelCodec.encode({ ...e, flags: e.flags & ~ACCEL_EAGER }));
        removed++;
      }
    } catch (e) {
      if (e instanceof WeftError) throw e;
      throw bpfError('updating the eager sockmap endpoints', e);
    }
    return { added, removed };
  }

  /** Endpoints currently marked eager, as `ip:port` (IPv6 in brackets). */
  eager(): string[] {
    const out: string[] = [];
    for (const [hex, e] of this.entries()) {
      if (!(e.flags & ACCEL_EAGER)) continue;
      const ep = endpointCodec.decode(Buffer.from(hex, 'hex'));
      out.push(ep.ip.includes(':') ? `[${ep.ip}]:${ep.port}` : `${ep.ip}:${ep.port}`);
    }
    return out.sort();
  }

  /** The acceleration map by hex key, read in batches (it holds every endpoint the
   *  kernel learned, so one syscall per entry would grow with the node). */
  private entries(): Map<string, AccelEntry> {
    return new Map(this.accel.entries().map(([k, v]) => [k.toString('hex'), accelCodec.decode(v)]));
  }
}
