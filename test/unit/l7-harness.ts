// Shared fixtures for the L7 tests: a compact way to describe services/routes as a
// NodeView (so every test goes through the real snapshot converter), a proxy on
// loopback whose resolveOrigin comes from a table, and small upstream servers.
import { createServer as createTcpServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { NodeView, CompiledRoute, TrafficPolicyState, ServiceState, PortProtocol } from '../../agent/policy/snapshot';
import { L7Directory, type EjectionChange } from '../../agent/proxy/routing/directory';
import { OutboundProxy, type OutboundOptions } from '../../agent/proxy/outbound';
import { createRootLogger } from '../../agent/telemetry/logger';

createRootLogger({ level: (process.env.WEFT_LOG_LEVEL as 'info') ?? 'silent' });

export interface SvcDesc {
  name: string;
  vip: string;
  port: number;
  protocol?: PortProtocol;
  /** Endpoint addresses (loopback ports of test servers). */
  endpoints: { ip?: string; port: number; labels?: Record<string, string>; weight?: number }[];
}

export function service(d: SvcDesc): ServiceState {
  return {
    key: `test/${d.name}`, name: d.name, namespace: 'test', vip: d.vip, vipAllocated: false, selector: {},
    ports: [{ name: 'p', port: d.port, targetPort: d.port, protocol: d.protocol ?? 'HTTP' }],
    endpoints: d.endpoints.map((e, i) => ({
      workload: `test/${d.name}-${i}`, node: 'n1', address: e.ip ?? '127.0.0.1', ports: { p: e.port }, namespace: 'test',
      serviceAccount: d.name, identity: `spiffe://t/ns/test/sa/${d.name}`, labels: e.labels ?? {}, weight: e.weight ?? 1,
    })),
  };
}

export function route(name: string, r: Partial<CompiledRoute> & Pick<CompiledRoute, 'backends'>, rule = 0): CompiledRoute {
  return { route: `test/${name}`, rule, match: { path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [] }, ...r };
}

export function view(services: ServiceState[], routes: { service: string; port: number; protocol?: 'http' | 'grpc'; routes: CompiledRoute[] }[] = [], policies: TrafficPolicyState[] = []): NodeView {
  return {
    version: 'v1', node: 'n1', nodes: {},
    mesh: { trustDomain: 't', mtls: 'PERMISSIVE', certTtlMs: 3600_000, failMode: 'closed', vipRange: '10.96.0.0/16' },
    datapath: [], services,
    routes: routes.map((r) => ({ service: `test/${r.service}`, port: r.port, protocol: r.protocol ?? 'http', routes: r.routes })),
    trafficPolicies: policies, authorizationPolicies: [], localWorkloads: [],
  };
}

export interface RunningProxy {
  proxy: OutboundProxy;
  directory: L7Directory;
  port: number;
  /** Sets where connections from now on "were going" (the resolveOrigin table). */
  origin: { ip: string; port: number };
  close(): Promise<void>;
}

/** Starts the outbound proxy on 127.0.0.1:0 with resolveOrigin from `origin`. */
export async function startProxy(v: NodeView, origin: { ip: string; port: number }, extra: Partial<OutboundOptions> = {}, onEjection?: EjectionChange): Promise<RunningProxy> {
  const directory = new L7Directory(onEjection);
  directory.apply(v);
  const state = { origin };
  const proxy = new OutboundProxy({
    directory,
    resolveOrigin: () => ({ dstIp: state.origin.ip, dstPort: state.origin.port, cgroupId: 1 }),
    // Plain TCP: the proxy reads through `onread` into its reused buffer (as the agent's).
    connect: (ep, _origin, read) => connect({ host: ep.ip, port: ep.port, ...(read ? { onread: read } : {}) }),
    ...extra,
  });
  const addr = await proxy.listen(0, '127.0.0.1');
  return {
    proxy, directory, port: addr.port,
    get origin() { return state.origin; }, set origin(o) { state.origin = o; },
    close: async () => { await proxy.close(); directory.close(); },
  };
}

export type Handler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void;

/** An HTTP/1.1 upstream (node:http, so not our code) answering through `handler`. */
export async function httpUpstream(handler: Handler): Promise<{ port: number; server: Server; hits: number; close(): Promise<void> }> {
  const st = { hits: 0 };
  const server = createHttpServer((req, res) => {
    st.hits++;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => handler(req, res, Buffer.concat(chunks)));
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port, server,
    get hits() { return st.hits; },
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

/** A raw TCP upstream that records every byte it receives and answers with `reply`. */
export async function rawUpstream(reply: Buffer): Promise<{ port: number; received(): Buffer; close(): Promise<void> }> {
  const got: Buffer[] = [];
  const socks = new Set<Socket>();
  const server = createTcpServer((s) => {
    socks.add(s);
    s.on('data', (d: Buffer) => {
      got.push(d);
      // One reply per request head seen in this chunk (the tests send simple requests).
      const heads = d.toString('latin1').split('\r\n\r\n').length - 1;
      for (let i = 0; i < Math.max(1, heads); i++) s.write(reply);
    });
    s.on('error', () => {});
    s.on('close', () => socks.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    received: () => Buffer.concat(got),
    close: () => new Promise<void>((r) => { for (const s of socks) s.destroy(); server.close(() => r()); }),
  };
}

/** Sends raw bytes to a port and collects everything until the peer closes or `ms` pass. */
export function rawExchange(port: number, bytes: Buffer | Buffer[], ms = 2000, gapMs = 0, done?: (data: Buffer) => boolean): Promise<{ data: Buffer; closed: boolean }> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    const got: Buffer[] = [];
    let closed = false;
    const timer = setTimeout(() => { s.destroy(); resolve({ data: Buffer.concat(got), closed }); }, ms);
    s.on('data', (d: Buffer) => {
      got.push(d);
      if (done?.(Buffer.concat(got))) { clearTimeout(timer); s.destroy(); resolve({ data: Buffer.concat(got), closed }); }
    });
    s.on('error', () => {});
    s.on('close', () => { closed = true; clearTimeout(timer); resolve({ data: Buffer.concat(got), closed }); });
    const parts = Array.isArray(bytes) ? bytes : [bytes];
    let i = 0;
    const send = (): void => { if (i < parts.length) { s.write(parts[i++]!); if (i < parts.length) setTimeout(send, gapMs); } };
    s.on('connect', send);
  });
}
