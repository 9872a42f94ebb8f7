// Settings both ends of the tunnel agree on.
import { isIP } from 'node:net';
import type { ConnectionLimits } from '../h2/connection';
export { TLS13 } from '../../identity/pki';

/** Many CONNECT streams share one connection, so the defaults (64 KiB windows, which cap
 *  a stream at one window per round trip) are raised; the connection window covers the
 *  streams together. A window is also what one stream (or one connection) can make the
 *  receiving node hold: bytes are credited back only once the other socket took them. */
export const H2_LIMITS: ConnectionLimits = {
  maxConcurrentStreams: 1000,
  maxHeaderListSize: 16 * 1024,
  streamWindow: 4 * 1024 * 1024,
  connectionWindow: 32 * 1024 * 1024,
  // Each application connection reset is one RST_STREAM: a busy node legitimately sends
  // many; a rapid-reset flood is orders of magnitude more.
  maxResetsPerSecond: 5000,
  maxControlPerSecond: 1000,
};

/** ALPN of the tunnel's TLS sessions. */
export const ALPN = ['h2'];

/** The ":name", "value" pairs of a header block (flat, as the engine gives them). */
export function header(h: readonly string[], name: string): string | undefined {
  for (let i = 0; i < h.length; i += 2) if (h[i] === name) return h[i + 1];
  return undefined;
}

/** Every value of a header that may repeat, joined with ", " (RFC 9110 §5.3). */
export function headerList(h: readonly string[], name: string): string | undefined {
  let out: string | undefined;
  for (let i = 0; i < h.length; i += 2) if (h[i] === name) out = out === undefined ? h[i + 1] : `${out}, ${h[i + 1]!}`;
  return out;
}

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
