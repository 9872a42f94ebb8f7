// Settings both ends of the tunnel agree on.
import type { Settings } from 'node:http2';
import { isIP } from 'node:net';
export { TLS13 } from '../../identity/pki';

/** Many CONNECT streams share one session, so the defaults (64 KiB windows, which cap a
 *  stream at one window per round trip) are raised; the session window covers the
 *  streams together. */
export const H2_SETTINGS: Settings = {
  maxConcurrentStreams: 1000,
  initialWindowSize: 4 * 1024 * 1024,
  enablePush: false,
};
export const SESSION_WINDOW = 32 * 1024 * 1024;

/** The source workload name rides in a W3C baggage entry, as ztunnel does; it only feeds
 *  the source_workload label (the principal comes from the certificate). */
export const BAGGAGE_WORKLOAD_KEY = 'k8s.workload.name';

export function baggageFor(workload: string | undefined): string | undefined {
  return workload ? `${BAGGAGE_WORKLOAD_KEY}=${encodeURIComponent(workload)}` : undefined;
}

export function baggageWorkload(header: string | string[] | undefined): string | undefined {
  const h = Array.isArray(header) ? header.join(',') : header;
  if (!h) return undefined;
  for (const part of h.split(',')) {
    const [k, v] = part.trim().split('=', 2);
    if (k === BAGGAGE_WORKLOAD_KEY && v) {
      try { return decodeURIComponent(v.split(';')[0]!).slice(0, 253); } catch { return undefined; }
    }
  }
  return undefined;
}

/** The source workload's own address, as RFC 7239 `Forwarded: for=`: the destination's
 *  ipBlocks match the workload that connected, not the node that tunnelled it. */
export function forwardedFor(ip: string | undefined): string | undefined {
  if (!ip) return undefined;
  return ip.includes(':') ? `for="[${ip}]"` : `for=${ip}`;
}

/** The `for=` address of a Forwarded header, if it is one IP literal (anything else,
 *  obfuscated identifiers and ports included, gives undefined). */
export function forwardedSource(header: string | string[] | undefined): string | undefined {
  const h = Array.isArray(header) ? header[0] : header;
  if (!h || h.length > 256) return undefined;
  const m = /(?:^|[;,\s])for=("?)\[?([0-9A-Fa-f:.]+)\]?\1(?:$|[;,\s])/.exec(h);
  const ip = m?.[2];
  return ip !== undefined && isIP(ip) !== 0 ? ip : undefined;
}
