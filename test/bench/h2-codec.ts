// Micro-benchmark of the HTTP/2 engine's server side (agent/proxy/h2/connection.ts) in
// one process, no sockets: gRPC-like unary requests (HEADERS + 100-byte DATA with
// END_STREAM) fed to a server connection whose handler answers each with HEADERS, DATA
// and trailers. Reports CPU ns per request (median over alternating processes).
// `node --import tsx test/bench/h2-codec.ts DIR...` runs the codec in each DIR (e.g. a
// `git archive main agent/proxy/h2` copy and agent/proxy/h2), for A/B figures.
import { resolve } from 'node:path';
import { execFileSync } from 'node:child_process';

class Sink {
  destroyed = false; writableLength = 0; written = 0;
  on(): this { return this; } off(): this { return this; }
  write(b: Buffer): boolean { this.written += b.length; return true; }
  cork(): void {} uncork(): void {}
  pause(): this { return this; } resume(): this { return this; }
  end(): this { return this; } destroy(): this { this.destroyed = true; return this; }
}

const REQ = [':method', 'POST', ':scheme', 'http', ':path', '/bench.Echo/Echo', ':authority', '10.96.0.2:50051',
  'content-type', 'application/grpc', 'te', 'trailers', 'user-agent', 'grpc-node-js/1.10.0', 'grpc-accept-encoding', 'identity,deflate,gzip', 'grpc-timeout', '9999m'];

async function load(dir: string) {
  const conn = await import(resolve(dir, 'connection.ts'));
  const frame = await import(resolve(dir, 'frame.ts'));
  const hpack = await import(resolve(dir, 'hpack.ts'));
  return { H2Connection: conn.H2Connection, frame, HpackEncoder: hpack.HpackEncoder };
}

async function run(dir: string, n: number): Promise<number> {
  const { H2Connection, frame, HpackEncoder } = await load(dir);
  const limits = { maxConcurrentStreams: 256, maxHeaderListSize: 16384, streamWindow: 1 << 30, connectionWindow: 1 << 30, maxResetsPerSecond: 1e9, maxControlPerSecond: 1e9 };
  const body = Buffer.alloc(100, 1);
  let answered = 0;
  // Answers once the request has ended, as the proxy's exchange would once the
  // upstream's response came back.
  const sh = {
    onHeaders() {},
    onData(s: any, d: Buffer, end: boolean) {
      const c = s.conn;
      c.credit(s, d.length);
      if (!end) return;
      c.sendHeaders(s, [':status', '200', 'content-type', 'application/grpc'], false);
      c.sendData(s, body, false);
      c.sendHeaders(s, ['grpc-status', '0', 'grpc-message', ''], true);
      answered++;
    },
    onSent() {}, onClosed() {},
  };
  const handler = {
    onStream(_c: any, s: any) { s.handler = sh; },
    onClose() {}, onGoaway() {},
  };
  const c = new H2Connection(new Sink() as never, false, limits, handler);
  const enc = new HpackEncoder();
  const chunks: Buffer[] = [frame.PREFACE, frame.settingsFrame([4, 1 << 30]), frame.u32Frame(8, 0, (1 << 30))];
  c.feed(Buffer.concat(chunks));
  const BATCH = 100;
  let id = 1;
  const t0 = process.cpuUsage();
  for (let done = 0; done < n; done += BATCH) {
    const parts: Buffer[] = [];
    for (let k = 0; k < BATCH; k++) {
      parts.push(frame.frame(1, 4, id, Buffer.from(enc.encode(REQ))));
      parts.push(frame.frame(0, 1, id, body));
      id += 2;
    }
    c.feed(Buffer.concat(parts));
    c.flush();
  }
  const t = process.cpuUsage(t0);
  if (answered !== n || c.streams.size !== 0) throw new Error(`${dir}: answered ${answered} of ${n}, ${c.streams.size} open`);
  return ((t.user + t.system) * 1000) / n;
}

/** One process per (directory, round), alternating: each codec copy gets a fresh heap
 *  and JIT, and the machine's drift hits both alike. */
async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const N = 200_000;
  if (argv[0] === '--child') {
    await run(argv[1]!, N / 4); // warm-up
    process.stdout.write(`${(await run(argv[1]!, N)).toFixed(1)}\n`);
    return;
  }
  const rounds = Number(process.env.H2_CODEC_ROUNDS ?? 8);
  const res = new Map<string, number[]>(argv.map((d) => [d, []]));
  for (let r = 0; r < rounds; r++) {
    for (const d of r % 2 === 0 ? argv : [...argv].reverse()) {
      const out = execFileSync(process.execPath, ['--import', 'tsx', __filename, '--child', d], { encoding: 'utf8' });
      res.get(d)!.push(Number(out.trim()));
    }
  }
  const med = (a: number[]): number => { const b = [...a].sort((x, y) => x - y); return (b[(b.length - 1) >> 1]! + b[b.length >> 1]!) / 2; };
  const base = med(res.get(argv[0]!)!);
  for (const [d, a] of res) {
    const m = med(a);
    process.stdout.write(`${d}: CPU ns/request median ${m.toFixed(0)} (min ${Math.min(...a).toFixed(0)}, max ${Math.max(...a).toFixed(0)}; ${a.length} processes x ${N} requests)${d === argv[0] ? '' : `, ${(m / base).toFixed(3)}x the first`}\n`);
  }
}
void main();
