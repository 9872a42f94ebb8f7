// Regenerates the fuzzing seed corpus from real clients (curl, nghttp, node:http,
// node:http2): each client talks to a TCP server that records the bytes it sent.
// Run: node --import tsx test/security/corpus/capture.ts  (needs curl and nghttp).
// h1/ holds HTTP/1.1 requests (several are hand-written edge cases, h1/manual-*),
// h2/ whole client connections (preface + frames), hpack/ the HEADERS block fragments
// of those connections (one decoder's sequence per file, length-prefixed).
import { createServer, type AddressInfo } from 'node:net';
import { execFile } from 'node:child_process';
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import * as http from 'node:http';
import * as http2 from 'node:http2';

const dir = __dirname;
const H2_SERVER_HELLO = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0]);

async function capture(h2: boolean, client: (port: number) => Promise<unknown>): Promise<Buffer> {
  const got: Buffer[] = [];
  const srv = createServer((s) => {
    if (h2) s.write(H2_SERVER_HELLO);
    s.on('data', (d: Buffer) => {
      got.push(d);
      if (!h2 && d.includes('\r\n\r\n')) setTimeout(() => s.end('HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n'), 150);
    });
    s.on('error', () => {});
    setTimeout(() => s.destroy(), 400);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  await client(port).catch(() => {});
  await new Promise((r) => setTimeout(r, 450));
  srv.close();
  return Buffer.concat(got);
}

const run = (cmd: string, args: string[], input?: string) => new Promise<void>((res) => {
  const c = execFile(cmd, args, { timeout: 3000 }, () => res());
  if (input !== undefined) c.stdin!.end(input);
});

/** HEADERS/CONTINUATION payloads (padding and priority removed) of a client connection. */
function headerBlocks(conn: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let i = 24;
  let cur: Buffer[] = [];
  while (i + 9 <= conn.length) {
    const len = conn.readUIntBE(i, 3), type = conn[i + 3]!, flags = conn[i + 4]!;
    let p = conn.subarray(i + 9, i + 9 + len);
    i += 9 + len;
    if (type !== 1 && type !== 9) continue;
    if (type === 1) {
      if (flags & 8) p = p.subarray(1, p.length - p[0]!);
      if (flags & 0x20) p = p.subarray(5);
    }
    cur.push(p);
    if (flags & 4) { out.push(Buffer.concat(cur)); cur = []; }
  }
  return out;
}

async function main(): Promise<void> {
  for (const d of ['h1', 'h2', 'hpack']) mkdirSync(join(dir, d), { recursive: true });
  const h1: Record<string, (port: number) => Promise<unknown>> = {
    'curl-get': (p) => run('curl', ['-s', `http://127.0.0.1:${p}/api/v1/items?limit=10&sort=name`, '-H', 'Accept: application/json']),
    'curl-post-json': (p) => run('curl', ['-s', '-X', 'POST', `http://127.0.0.1:${p}/orders`, '-H', 'content-type: application/json', '-d', '{"item":"book","qty":2}']),
    'curl-chunked': (p) => run('curl', ['-s', '-X', 'PUT', `http://127.0.0.1:${p}/upload/file.bin`, '-H', 'Transfer-Encoding: chunked', '--data-binary', '@-'], 'hello chunked world\n'.repeat(20)),
    'curl-h2c-upgrade': (p) => run('curl', ['-s', '--http2', `http://127.0.0.1:${p}/public/index.html`]),
    'curl-absolute-form': (p) => run('curl', ['-s', '-x', `http://127.0.0.1:${p}`, 'http://svc.local/x/../admin?y=1']),
    'curl-http10': (p) => run('curl', ['-s', '-0', `http://127.0.0.1:${p}/legacy`]),
    'curl-expect': (p) => run('curl', ['-s', '-H', 'Expect: 100-continue', '-X', 'POST', `http://127.0.0.1:${p}/big`, '--data-binary', '@-'], 'x'.repeat(2000)),
    'node-keepalive': (p) => new Promise((res) => {
      const agent = new http.Agent({ keepAlive: true });
      const req = http.request({ host: '127.0.0.1', port: p, path: '/a/%61dmin/./x', method: 'DELETE', agent, headers: { cookie: 'session=abc; theme=dark', 'x-request-id': '42' } }, res);
      req.on('error', res); req.end();
    }),
    'node-websocket': (p) => new Promise((res) => {
      const req = http.request({ host: '127.0.0.1', port: p, path: '/ws/chat', headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' } });
      req.on('error', res); req.on('response', res); req.on('upgrade', res); req.end();
    }),
  };
  for (const [name, client] of Object.entries(h1)) writeFileSync(join(dir, 'h1', `${name}.http`), await capture(false, client));
  const h2: Record<string, (port: number) => Promise<unknown>> = {
    'curl-prior-knowledge': (p) => run('curl', ['-s', '--http2-prior-knowledge', `http://127.0.0.1:${p}/api/items?q=1`, '-H', 'x-trace: 1']),
    'curl-post': (p) => run('curl', ['-s', '--http2-prior-knowledge', '-X', 'POST', `http://127.0.0.1:${p}/orders`, '-d', 'a=1&b=2']),
    'nghttp-get': (p) => run('nghttp', ['-n', `http://127.0.0.1:${p}/index.html`, `http://127.0.0.1:${p}/style.css`]),
    'node-grpc-like': (p) => new Promise((res) => {
      const c = http2.connect(`http://127.0.0.1:${p}`);
      c.on('error', res);
      const body = Buffer.from([0, 0, 0, 0, 5, 10, 3, 102, 111, 111]);
      for (const path of ['/shop.Items/Get', '/shop.Items/List']) {
        const s = c.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '5S' }, { waitForTrailers: true });
        s.on('wantTrailers', () => s.sendTrailers({ 'x-checksum': 'abc' }));
        s.on('error', () => {});
        s.end(body);
      }
      setTimeout(() => { c.destroy(); res(undefined); }, 300);
    }),
  };
  for (const [name, client] of Object.entries(h2)) {
    const conn = await capture(true, client);
    writeFileSync(join(dir, 'h2', `${name}.bin`), conn);
    const blocks = headerBlocks(conn);
    writeFileSync(join(dir, 'hpack', `${name}.bin`), Buffer.concat(blocks.flatMap((b) => { const l = Buffer.alloc(4); l.writeUInt32BE(b.length); return [l, b]; })));
  }
  process.stdout.write('corpus written\n');
}

if (require.main === module) void main();
