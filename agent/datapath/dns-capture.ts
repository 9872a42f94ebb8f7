// Workloads' DNS capture (weft_dns_v1, weft_dnsl_v1; bpf/sock_lb.bpf.c): where connect4
// and sendmsg4 send TCP and UDP queries to port 53 of an address that is no VIP (the
// agent's DNS server, agent/dns/), and its listening sockets, from which a pod in its own
// network namespace learns that the agent answers.
import type * as native from 'weft-native';
import { WeftError } from '../lib/errors';
import { parseIp } from '../lib/ip';
import { bpfError } from './bpf-error';
import { dnsCfgCodec } from './codec';

export class DnsCapture {
  constructor(private readonly cfg: native.BpfMap, private readonly listeners: native.BpfMap) {}

  /** With a listener, capture on; null turns it off. The listener's sockets (setListeners)
   *  must exist too, or queries go where they were sent. */
  set(listener: { ip: string; port: number } | null): void {
    if (listener && (parseIp(listener.ip)?.family !== 4 || listener.ip === '0.0.0.0' || !Number.isInteger(listener.port) || listener.port < 1 || listener.port > 65535)) {
      throw new WeftError('WEFT_ERR_INVALID_ARG', `DNS listener ${JSON.stringify(listener)}: expected a specific IPv4 address and a port from 1 to 65535`);
    }
    try { this.cfg.update(Buffer.alloc(4), listener ? dnsCfgCodec.encode(listener) : Buffer.alloc(dnsCfgCodec.layout.size)); } catch (e) {
      throw bpfError('updating the DNS capture', e);
    }
  }

  /** Where the kernel sends workloads' DNS now, or null (capture off). */
  get(): { ip: string; port: number } | null {
    const v = this.cfg.lookup(Buffer.alloc(4));
    const c = v ? dnsCfgCodec.decode(v) : null;
    return c && c.port ? c : null;
  }

  /** The DNS server's UDP and TCP listening sockets (fds) into weft_dnsl_v1. */
  setListeners(fds: { udp?: number; tcp?: number }): void {
    for (const [index, fd] of [[0, fds.udp], [1, fds.tcp]] as const) {
      if (fd === undefined) continue;
      if (!Number.isInteger(fd) || fd < 0) throw new WeftError('WEFT_ERR_INVALID_ARG', `DNS listener fd ${JSON.stringify(fd)} is not a file descriptor`);
      const k = Buffer.alloc(4); k.writeUInt32LE(index);
      const v = Buffer.alloc(8); v.writeBigUInt64LE(BigInt(fd));
      try { this.listeners.update(k, v); } catch (e) { throw bpfError('registering the DNS listener for pod namespaces', e); }
    }
  }

  /** Which DNS listening sockets weft_dnsl_v1 holds (live ones only). */
  listenersRegistered(): { udp: boolean; tcp: boolean } {
    const at = (i: number) => { const k = Buffer.alloc(4); k.writeUInt32LE(i); return this.listeners.lookup(k) !== null; };
    return { udp: at(0), tcp: at(1) };
  }
}
