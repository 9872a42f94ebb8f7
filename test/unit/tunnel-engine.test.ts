// The tunnel on weft's HTTP/2 engine, byte-stream semantics end to end on loopback:
// application socket -> capture (splice) -> CONNECT stream over mTLS -> node B's 15008 ->
// workload socket. Flow control under a slow reader in each direction (the sender is
// stopped, what each node holds stays within its windows, and every byte arrives),
// half-close each way, RST propagation each way, and GOAWAY draining a pooled session.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createHash } from 'node:crypto';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { CertificateAuthority } from '../../agent/identity/ca';
import { nodeSpiffeId } from '../../agent/identity/spiffe';
import { startTunnel, splice, PolicyAuthorizer, type Tunnel } from '../../agent/proxy/tunnel';
import { QUEUE_HIGH, StreamBridge, TunnelStream } from '../../agent/proxy/tunnel/stream';
import { H2_LIMITS } from '../../agent/proxy/tunnel/wire';
import { READ_BUFFER, SocketReader } from '../../agent/proxy/sockets/reader';
import type { H2Stream } from '../../agent/proxy/h2/connection';
import { readAcceptedLent } from '../../agent/proxy/sockets/onread';
import { signedManager } from '../lib/identities';

const TD = 'cluster.local';
const FRONTEND = 'spiffe://cluster.local/ns/shop/sa/frontend';
const CATALOG = 'spiffe://cluster.local/ns/shop/sa/catalog';
type T = { after: (fn: () => unknown) => void };

interface Fixture {
  a: Tunnel; b: Tunnel;
  /** Starts a workload on node B (loopback) and a capture on node A dialling it. */
  workload(onConn: (c: Socket) => void): Promise<{ capture: number; port: number; conns: Socket[] }>;
  /** Tunnel streams the captures opened, newest last. */
  tunnels: TunnelStream[];
}

async function setup(t: T): Promise<Fixture> {
  const dir = await mkdtemp(join(tmpdir(), 'weft-tunengine-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const ca = await CertificateAuthority.loadOrCreate(dir, { trustDomain: TD });
  const mA = await signedManager(ca, TD, [nodeSpiffeId(TD, 'a'), FRONTEND]);
  const mB = await signedManager(ca, TD, [nodeSpiffeId(TD, 'b'), CATALOG]);
  const ports = new Set<number>();
  const a = await startTunnel({ identity: mA, nodeIdentity: nodeSpiffeId(TD, 'a'), lookup: () => undefined, authorizer: new PolicyAuthorizer(), registry: new Registry(), host: '127.0.0.1', port: 0 });
  const b = await startTunnel({
    identity: mB, nodeIdentity: nodeSpiffeId(TD, 'b'), authorizer: new PolicyAuthorizer(), registry: new Registry(), host: '127.0.0.1', port: 0,
    lookup: (ip, port) => (ip === '127.0.0.1' && ports.has(port) ? { key: 'shop/catalog-0', name: 'catalog-0', namespace: 'shop', principal: CATALOG } : undefined),
  });
  const servers: Server[] = [];
  const sockets = new Set<Socket>();
  t.after(async () => {
    for (const s of sockets) s.destroy();
    for (const s of servers) s.close();
    await Promise.all([a.close(), b.close()]);
    mA.close(); mB.close();
  });
  const track = (s: Socket) => { sockets.add(s); s.on('close', () => sockets.delete(s)); s.on('error', () => {}); };
  const tunnels: TunnelStream[] = [];
  const listen = (s: Server) => new Promise<number>((r) => s.listen(0, '127.0.0.1', () => r((s.address() as AddressInfo).port)));
  return {
    a, b, tunnels,
    async workload(onConn) {
      const conns: Socket[] = [];
      const w = createServer({ allowHalfOpen: true }, (c) => { track(c); conns.push(c); onConn(c); });
      servers.push(w);
      const port = await listen(w);
      ports.add(port);
      const cap = createServer({ allowHalfOpen: true }, (sock) => {
        track(sock);
        a.outbound.open({ sourceIdentity: FRONTEND, nodeAddress: { host: '127.0.0.1', port: b.address.port }, target: { ip: '127.0.0.1', port } })
          .then((d) => { tunnels.push(d as TunnelStream); splice(sock, d); }, () => sock.destroy());
      });
      servers.push(cap);
      return { capture: await listen(cap), port, conns };
    },
  };
}

function appConnect(port: number, t: T): Socket {
  const s = connect({ host: '127.0.0.1', port, allowHalfOpen: true, noDelay: true });
  s.on('error', () => {});
  t.after(() => s.destroy());
  return s;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until `f` holds (or fails after `ms`). */
async function until(what: string, f: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Writes `total` bytes of a pattern to `s` honouring backpressure, then ends it;
 *  gives the sha256 of what was written. Resolves once everything was handed over. */
async function pump(s: Socket, total: number, chunk = 256 * 1024): Promise<string> {
  const h = createHash('sha256');
  let sent = 0, n = 0;
  while (sent < total) {
    const b = Buffer.alloc(Math.min(chunk, total - sent), n++ & 0xff);
    h.update(b);
    sent += b.length;
    if (!s.write(b)) await once(s, 'drain');
  }
  s.end();
  return h.digest('hex');
}

/** sha256 and length of everything `s` delivers until its end. */
function drainAll(s: Socket): Promise<{ bytes: number; sha: string }> {
  const h = createHash('sha256');
  let bytes = 0;
  s.on('data', (d: Buffer) => { h.update(d); bytes += d.length; });
  return new Promise((resolve) => s.once('end', () => resolve({ bytes, sha: h.digest('hex') })));
}

/** Waits until `read()` stops changing for `quietMs`. */
async function settled(read: () => number, quietMs = 400, ms = 20_000): Promise<number> {
  const end = Date.now() + ms;
  let last = read(), since = Date.now();
  while (Date.now() - since < quietMs) {
    if (Date.now() > end) assert.fail('never settled');
    await sleep(25);
    const v = read();
    if (v !== last) { last = v; since = Date.now(); }
  }
  return last;
}

/** Node B's end of the (only) tunnel stream and its bridge. */
function inboundStream(b: Tunnel): { stream: H2Stream; bridge: StreamBridge } {
  const conns = b.inbound.connections();
  assert.equal(conns.length, 1);
  const streams = [...conns[0]!.streams.values()];
  assert.equal(streams.length, 1);
  const bridge = streams[0]!.handler;
  assert.ok(bridge instanceof StreamBridge);
  return { stream: streams[0]!, bridge };
}

const TOTAL = 64 * 1024 * 1024;

test('tunnel engine: a workload that does not read stops the sender; node B holds at most one stream window; every byte arrives', { timeout: 60_000 }, async (t) => {
  const f = await setup(t);
  const w = await f.workload((c) => c.pause());
  const app = appConnect(w.capture, t);
  const digest = pump(app, TOTAL);
  await until('the workload connection and the capture\'s tunnel', () => w.conns.length === 1 && f.tunnels.length === 1);
  // Node A stops reading the application once the stream's window is used up...
  await until('node A to pause the application socket', () => (f.tunnels[0]!.stream.handler as StreamBridge).paused);
  // ...and the sender is stopped: nothing moves any more, well short of the total.
  const written = await settled(() => app.bytesWritten);
  assert.ok(written < TOTAL, `the application could hand over only part of ${TOTAL} bytes (${written})`);
  assert.ok(app.writableLength > 0, 'the application sees backpressure');
  const { stream: inB, bridge: bridgeB } = inboundStream(f.b);
  // Node B: what waits for the workload in user space is within the stream window, and
  // the window the sender has left is what it may still send.
  assert.ok(bridgeB.d.writableLength <= H2_LIMITS.streamWindow, `node B buffers ${bridgeB.d.writableLength} bytes`);
  assert.ok(inB.received - inB.credited <= H2_LIMITS.streamWindow);
  // Node A: the stream's queue is bounded and the application socket is paused.
  const tun = f.tunnels[0]!;
  const bridgeA = tun.stream.handler;
  assert.ok(bridgeA instanceof StreamBridge, 'the capture spliced without a Duplex in between');
  assert.equal(bridgeA.paused, true);
  assert.ok(tun.stream.queued <= QUEUE_HIGH + 256 * 1024, `node A queued ${tun.stream.queued}`);
  // The workload reads: everything arrives, intact, then the FIN.
  const got = drainAll(w.conns[0]!);
  w.conns[0]!.resume();
  const [sent, received] = await Promise.all([digest, got]);
  assert.equal(received.bytes, TOTAL);
  assert.equal(received.sha, sent);
});

test('tunnel engine: an application that does not read stops the workload; node A holds at most one stream window; every byte arrives', { timeout: 60_000 }, async (t) => {
  const f = await setup(t);
  let digest: Promise<string> | undefined;
  const w = await f.workload((c) => { digest = pump(c, TOTAL); });
  const app = appConnect(w.capture, t);
  app.pause();
  await until('the workload connection', () => w.conns.length === 1 && digest !== undefined && f.b.inbound.connections().length === 1);
  const workload = w.conns[0]!;
  await until('node B to pause the workload socket', () => inboundStream(f.b).bridge.paused);
  const written = await settled(() => workload.bytesWritten);
  assert.ok(written < TOTAL, `the workload could hand over only part of ${TOTAL} bytes (${written})`);
  assert.ok(workload.writableLength > 0, 'the workload sees backpressure');
  // Node B paused its read of the workload once the stream's queue was full.
  const { stream: inB, bridge: bridgeB } = inboundStream(f.b);
  assert.equal(bridgeB.paused, true);
  assert.ok(inB.queued <= QUEUE_HIGH + 256 * 1024, `node B queued ${inB.queued}`);
  // Node A: bytes written to the (not reading) application socket but not yet credited
  // stay within one stream window.
  const tun = f.tunnels[0]!;
  const bridgeA = tun.stream.handler as StreamBridge;
  assert.ok(bridgeA.d.writableLength <= H2_LIMITS.streamWindow, `node A buffers ${bridgeA.d.writableLength} bytes`);
  assert.ok(tun.stream.received - tun.stream.credited <= H2_LIMITS.streamWindow);
  const got = drainAll(app);
  app.resume();
  const [sent, received] = await Promise.all([digest!, got]);
  assert.equal(received.bytes, TOTAL);
  assert.equal(received.sha, sent);
});

test('tunnel engine: half-close — the client\'s FIN ends one direction, the workload still answers after it', { timeout: 60_000 }, async (t) => {
  const f = await setup(t);
  const w = await f.workload((c) => {
    const got: Buffer[] = [];
    c.on('data', (d: Buffer) => got.push(d));
    c.on('end', () => { c.write('after-fin:'); setTimeout(() => c.end(Buffer.concat(got)), 50); });
  });
  const app = appConnect(w.capture, t);
  const reply = drainAll(app);
  const chunks: Buffer[] = [];
  app.on('data', (d: Buffer) => chunks.push(d));
  app.end('hello');
  await reply;
  assert.equal(Buffer.concat(chunks).toString(), 'after-fin:hello');
});

test('tunnel engine: half-close — the workload\'s FIN ends one direction, the client still sends after it', { timeout: 60_000 }, async (t) => {
  const f = await setup(t);
  let late: Promise<string> | undefined;
  const w = await f.workload((c) => {
    c.end('bye');
    const got: Buffer[] = [];
    c.on('data', (d: Buffer) => got.push(d));
    late = new Promise((r) => c.once('end', () => r(Buffer.concat(got).toString())));
  });
  const app = appConnect(w.capture, t);
  const closed = once(app, 'close');
  const chunks: Buffer[] = [];
  app.on('data', (d: Buffer) => chunks.push(d));
  await once(app, 'end');
  assert.equal(Buffer.concat(chunks).toString(), 'bye');
  await sleep(50);
  app.write('still ');
  app.end('here');
  await until('the workload connection', () => late !== undefined);
  assert.equal(await late, 'still here');
  await closed;
});

test('tunnel engine: a TCP reset by the workload reaches the application as a reset, not a FIN', { timeout: 60_000 }, async (t) => {
  const f = await setup(t);
  const w = await f.workload((c) => c.once('data', () => c.resetAndDestroy()));
  const app = appConnect(w.capture, t);
  let ended = false;
  app.on('end', () => { ended = true; });
  const err = once(app, 'error');
  app.write('x');
  const [e] = await err as [NodeJS.ErrnoException];
  assert.equal(e.code, 'ECONNRESET');
  assert.equal(ended, false, 'no FIN before the reset');
});

test('tunnel engine: a TCP reset by the application reaches the workload as a reset; the session survives', { timeout: 60_000 }, async (t) => {
  const f = await setup(t);
  const errors: string[] = [];
  const w = await f.workload((c) => { c.on('error', (e: NodeJS.ErrnoException) => errors.push(e.code ?? e.message)); c.pipe(c); });
  const app = appConnect(w.capture, t);
  app.write('ping');
  await once(app, 'data');
  app.resetAndDestroy();
  await until('the workload socket to close', () => w.conns[0]?.destroyed === true);
  assert.deepEqual(errors, ['ECONNRESET']);
  // The next connection reuses the pooled session.
  const app2 = appConnect(w.capture, t);
  app2.write('pong');
  const [d] = await once(app2, 'data') as [Buffer];
  assert.equal(d.toString(), 'pong');
  assert.equal(f.a.pool.handshakes, 1);
});

test('tunnel engine: GOAWAY from node B drains the session — open streams finish, new ones get a new session', { timeout: 60_000 }, async (t) => {
  const f = await setup(t);
  const w = await f.workload((c) => c.pipe(c));
  const app = appConnect(w.capture, t);
  app.write('one');
  assert.equal((await once(app, 'data'))[0].toString(), 'one');
  const [old] = f.b.inbound.connections();
  old!.drain();
  await sleep(50);
  // The stream opened before the GOAWAY still carries bytes both ways.
  app.write('two');
  assert.equal((await once(app, 'data'))[0].toString(), 'two');
  // A new connection goes to a new session.
  const app2 = appConnect(w.capture, t);
  app2.write('three');
  assert.equal((await once(app2, 'data'))[0].toString(), 'three');
  assert.equal(f.a.pool.handshakes, 2);
  assert.equal(f.b.inbound.connections().length, 2);
  // The old session closes once its last stream finished.
  app.end();
  await once(app, 'end');
  await until('the drained session to close', () => f.b.inbound.connections().length === 1 && f.a.pool.sessionCount() === 1);
});

test('tunnel engine: the stream as a Duplex (the L7 proxy\'s upstream transport) carries a bulk echo both ways and ends cleanly', { timeout: 60_000 }, async (t) => {
  const f = await setup(t);
  const errors: string[] = [];
  const w = await f.workload((c) => { c.on('error', (e: NodeJS.ErrnoException) => errors.push(e.code ?? e.message)); c.pipe(c); });
  // Straight from the pool: no splice, so the Duplex itself moves the bytes.
  const target = { ip: '127.0.0.1', port: w.port };
  const d = await f.a.outbound.open({ sourceIdentity: FRONTEND, nodeAddress: { host: '127.0.0.1', port: f.b.address.port }, target }) as TunnelStream;
  assert.ok(d instanceof TunnelStream);
  const h = createHash('sha256');
  let got = 0;
  const total = 16 * 1024 * 1024;
  const done = new Promise<string>((resolve) => {
    // A slow consumer: reads in bursts, so the Duplex's buffer fills and credit waits.
    d.on('readable', function read() {
      let c: Buffer | null;
      while ((c = d.read() as Buffer | null) !== null) { h.update(c); got += c.length; }
    });
    d.once('end', () => resolve(h.digest('hex')));
  });
  const sent = createHash('sha256');
  for (let off = 0, n = 0; off < total; off += 128 * 1024, n++) {
    const b = Buffer.alloc(128 * 1024, n & 0xff);
    sent.update(b);
    if (!d.write(b)) await once(d, 'drain');
  }
  d.end();
  assert.equal(await done, sent.digest('hex'));
  assert.equal(got, total);
  await until('the stream to close', () => d.stream.closed);
  assert.deepEqual(errors, []);
});

test('tunnel engine: an application socket gone before its tunnel opened resets the stream (nothing left open on either node)', { timeout: 60_000 }, async (t) => {
  const f = await setup(t);
  const w = await f.workload((c) => c.pipe(c));
  // An accepted socket whose client has already closed: splice comes too late for its events.
  const srv = createServer({ allowHalfOpen: true });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  t.after(() => srv.close());
  const accepted = once(srv, 'connection');
  const client = appConnect((srv.address() as AddressInfo).port, t);
  const [sock] = await accepted as [Socket];
  sock.on('error', () => {});
  const gone = new Promise((r) => sock.once('close', r));
  client.resetAndDestroy();
  await gone;
  const d = await f.a.outbound.open({ sourceIdentity: FRONTEND, nodeAddress: { host: '127.0.0.1', port: f.b.address.port }, target: { ip: '127.0.0.1', port: w.port } });
  splice(sock, d);
  await until('node B to close the stream', () => f.b.inbound.connections().every((c) => c.streams.size === 0));
  await until('the workload connection to close', () => w.conns.length === 1 && w.conns[0]!.destroyed);
  assert.equal((d as TunnelStream).stream.closed, true);
});

test('tunnel engine: many small workload writes queued behind a slow application arrive intact (node B\'s reused read buffer is replaced while the engine holds a read)', { timeout: 60_000 }, async (t) => {
  const f = await setup(t);
  // 8 MiB in 700-byte writes (below the engine's copy threshold), each distinct: a read
  // buffer reused while a queued chunk still pointed into it would corrupt the stream.
  const total = 8 * 1024 * 1024, piece = 700;
  let digest: Promise<string> | undefined;
  const w = await f.workload((c) => {
    digest = (async () => {
      const h = createHash('sha256');
      for (let off = 0, n = 0; off < total; off += piece, n++) {
        const b = Buffer.alloc(Math.min(piece, total - off));
        for (let i = 0; i + 4 <= b.length; i += 4) b.writeUInt32BE(n * 4096 + i, i);
        h.update(b);
        if (!c.write(b)) await once(c, 'drain');
      }
      c.end();
      return h.digest('hex');
    })();
  });
  const app = appConnect(w.capture, t);
  app.pause();
  await until('node B to pause the workload socket', () => f.b.inbound.connections().length === 1 && [...f.b.inbound.connections()[0]!.streams.values()].some((s) => (s.handler as StreamBridge).paused));
  const got = drainAll(app);
  app.resume();
  const [sent, received] = await Promise.all([digest!, got]);
  assert.equal(received.bytes, total);
  assert.equal(received.sha, sent);
});

test('tunnel engine: SocketReader keeps what a socket read before its sink was attached (pausing the socket past one buffer), in order, then the FIN', { timeout: 30_000 }, async (t) => {
  const total = 512 * 1024;
  const payload = Buffer.alloc(total);
  for (let i = 0; i < total; i += 4) payload.writeUInt32BE(i, i);
  const srv = createServer({ allowHalfOpen: true }, (c) => { c.on('error', () => {}); c.end(payload); });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  t.after(() => srv.close());
  const reader = new SocketReader();
  const s = connect({ host: '127.0.0.1', port: (srv.address() as AddressInfo).port, allowHalfOpen: true, onread: reader.onread });
  reader.socket = s;
  s.on('error', () => {});
  t.after(() => s.destroy());
  let ended = false;
  s.on('end', () => { ended = true; });
  // Nobody takes the reads yet: the reader copies them and pauses the socket after one
  // buffer's worth, so what it holds is bounded.
  await until('the reader to pause the socket', () => s.isPaused());
  await sleep(200);
  assert.ok(s.bytesRead <= READ_BUFFER + 64 * 1024, `read ${s.bytesRead} bytes with no sink`);
  assert.equal(ended, false);
  const chunks: Buffer[] = [];
  // A sink that keeps every read it is given (as the engine may): each must stay intact.
  reader.attach((b) => { chunks.push(b); return true; });
  await until('the FIN', () => ended);
  assert.equal(Buffer.concat(chunks).equals(payload), true);
});

test('tunnel engine: the capture side reads its accepted sockets lent from one shared buffer (no buffer per read), bytes in order, no data event after the switch, then the FIN', { timeout: 30_000 }, async (t) => {
  const total = 256 * 1024;
  const payload = Buffer.alloc(total);
  for (let i = 0; i < total; i += 4) payload.writeUInt32BE(i, i);
  const copies: Buffer[] = [];
  const backing = new Set<ArrayBufferLike>();
  let switched = false, dataEvents = 0, ended = false;
  const srv = createServer({ allowHalfOpen: true }, (c) => {
    switched = readAcceptedLent(c, (b) => { backing.add(b.buffer); copies.push(Buffer.from(b)); });
    c.on('data', () => { dataEvents++; });
    c.on('end', () => { ended = true; c.end(); });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  t.after(() => srv.close());
  const client = connect({ host: '127.0.0.1', port: (srv.address() as AddressInfo).port, allowHalfOpen: true });
  client.on('error', () => {});
  t.after(() => client.destroy());
  await once(client, 'connect');
  for (let i = 0; i < total; i += 8192) { client.write(payload.subarray(i, i + 8192)); await sleep(1); }
  client.end();
  await until('the FIN', () => ended);
  assert.equal(switched, true, 'the onread path is available on this Node');
  assert.equal(dataEvents, 0, 'no data event after the switch');
  assert.ok(copies.length > 1, 'several reads');
  assert.equal(backing.size, 1, 'every read is a view of the same buffer');
  assert.equal(Buffer.concat(copies).equals(payload), true);
});
