// Fixtures for the security regression suite: an inbound L7 proxy (the destination
// side, which authorizes every request for the caller's principal) in front of test
// backends, a raw HTTP/2 client that sends exactly the :path it is given, and a raw
// recording backend. Everything runs on loopback, no root needed.
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import * as http2 from 'node:http2';
import type { AuthorizationPolicyState } from '../../agent/policy/snapshot';
import { Authorizer } from '../../agent/proxy/routing/authz';
import { InboundL7 } from '../../agent/proxy/http/inbound';
import { H2Proxy } from '../../agent/proxy/h2/proxy';
import { L7Directory } from '../../agent/proxy/routing/directory';
import { componentLogger } from '../../agent/telemetry/logger';
import type { PathNormalization } from '../../agent/proxy/http/path';
import '../unit/l7-harness'; // sets the root logger (silent unless WEFT_LOG_LEVEL)

export const FRONT = { principal: 'spiffe://t/ns/shop/sa/frontend', port: 8080 };
export const DEST = 'spiffe://t/ns/test/sa/backend';

/** DENY `paths` for everyone (Istio shape), applied to workload test/w. */
export function denyPaths(paths: string[]): AuthorizationPolicyState {
  return {
    key: 'test/deny-admin', action: 'DENY', workloads: ['test/w'], l7: true,
    rules: [{ from: [], to: [{ ports: [], methods: [], paths, notPaths: [] }], when: [] }],
  };
}

export interface Inbound { port: number; close(): Promise<void> }

/** An inbound L7 proxy on 127.0.0.1:0 for `FRONT`, forwarding to 127.0.0.1:`target`. */
export async function startInbound(target: number, policies: AuthorizationPolicyState[], paths?: PathNormalization): Promise<Inbound> {
  const dir = new L7Directory();
  const log = componentLogger('security-test');
  const direct = (ep: { ip: string; port: number }) => connect({ host: ep.ip, port: ep.port });
  const h2 = new H2Proxy({ connect: direct, logger: log, accessLog: null, tracer: null, ...(paths ? { paths } : {}) });
  const inbound = new InboundL7({
    connect: direct, headerTimeoutMs: 5000, idleTimeoutMs: 60_000, maxHeadBytes: 16384, accessLog: null, tracer: null, logger: log, ...(paths ? { paths } : {}),
  }, h2);
  const authz = new Authorizer(policies);
  const socks = new Set<Socket>();
  const srv = createServer((s: Socket) => {
    socks.add(s);
    s.on('close', () => socks.delete(s));
    // The 7th argument (the destination's SPIFFE ID) is ignored by code that predates it.
    (inbound.handle as (...a: unknown[]) => void).call(inbound, s, dir.lookup('127.0.0.1', target), FRONT, authz, null, undefined, DEST);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    port: (srv.address() as AddressInfo).port,
    close: async () => {
      for (const s of socks) s.destroy();
      await new Promise<void>((r) => srv.close(() => r()));
      inbound.close(); h2.close(); dir.close();
    },
  };
}

/** A backend that records every byte and answers each request head with `reply`
 *  (or runs `onData` instead). */
export async function recordingBackend(reply: string, onData?: (s: Socket, d: Buffer, all: () => string) => void): Promise<{ port: number; received(): string; close(): Promise<void> }> {
  const got: Buffer[] = [];
  const socks = new Set<Socket>();
  const all = () => Buffer.concat(got).toString('latin1');
  const server: Server = createServer((s) => {
    socks.add(s);
    s.on('data', (d: Buffer) => {
      got.push(d);
      if (onData) { onData(s, d, all); return; }
      const heads = d.toString('latin1').split('\r\n\r\n').length - 1;
      for (let i = 0; i < Math.max(1, heads); i++) s.write(reply);
    });
    s.on('error', () => {});
    s.on('close', () => socks.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    received: all,
    close: () => new Promise<void>((r) => { for (const s of socks) s.destroy(); server.close(() => r()); }),
  };
}

/** An h2c (prior knowledge) backend recording the :path of every request. */
export async function h2Backend(): Promise<{ port: number; paths: string[]; headers: http2.IncomingHttpHeaders[]; close(): Promise<void> }> {
  const paths: string[] = [];
  const headers: http2.IncomingHttpHeaders[] = [];
  const srv = http2.createServer();
  srv.on('stream', (st, h) => {
    paths.push(String(h[':path']));
    headers.push(h);
    st.respond({ ':status': 200, 'content-type': 'text/plain' });
    st.end('ok');
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const sessions = new Set<http2.ServerHttp2Session>();
  srv.on('session', (s) => { sessions.add(s); s.on('close', () => sessions.delete(s)); });
  return {
    port: (srv.address() as AddressInfo).port, paths, headers,
    close: () => new Promise<void>((r) => { for (const s of sessions) s.destroy(); srv.close(() => r()); }),
  };
}

/** One HTTP/2 request over h2c prior knowledge; the :path is sent as given. */
export async function h2Request(port: number, path: string, extra: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const c = http2.connect(`http://127.0.0.1:${port}`);
  try {
    return await new Promise((resolve, reject) => {
      c.on('error', reject);
      const req = c.request({ ':method': 'GET', ':path': path, ':authority': 'svc', ...extra });
      let status = 0, body = '';
      req.on('response', (h) => { status = Number(h[':status']); });
      req.on('data', (d: Buffer) => { body += d.toString(); });
      req.on('end', () => resolve({ status, body }));
      req.on('error', reject);
      req.end();
    });
  } finally { c.close(); }
}

/** Status code of the first response in raw HTTP/1.1 bytes (0 when none). */
export function statusOf(data: Buffer | string): number {
  const m = /^HTTP\/1\.1 (\d{3})/.exec(typeof data === 'string' ? data : data.toString('latin1'));
  return m ? Number(m[1]) : 0;
}
