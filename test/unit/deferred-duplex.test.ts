import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { deferredDuplex, isDeferredDuplex } from '../../agent/lib/deferred-duplex';
import { duplexPair } from '../../agent/lib/duplex-pair';
import { splice } from '../../agent/proxy/tunnel/forward';

const deferred = <T>() => { let resolve!: (v: T) => void, reject!: (e: Error) => void; const p = new Promise<T>((a, b) => { resolve = a; reject = b; }); return { p, resolve, reject }; };

test('writes held until the stream opens, then both ways are relayed', async () => {
  const open = deferred<Duplex>();
  const d = deferredDuplex(open.p);
  d.write('early ');
  const [inner, far] = duplexPair();
  const got = new Promise<string>((r) => { let s = ''; far.setEncoding('utf8').on('data', (c: string) => { s += c; if (s === 'early late') r(s); }); });
  open.resolve(inner);
  d.write('late');
  assert.equal(await got, 'early late');
  const back = new Promise<string>((r) => d.setEncoding('utf8').once('data', r));
  far.write('reply');
  assert.equal(await back, 'reply');
  assert.equal(d.takeOver(), null, 'a used stand-in cannot be taken over');
  d.destroy(); far.destroy();
});

test('takeOver hands out the opening stream and leaves it untouched', async () => {
  const open = deferred<Duplex>();
  const d = deferredDuplex(open.p);
  assert.ok(isDeferredDuplex(d));
  const taken = d.takeOver();
  assert.ok(taken !== null);
  assert.equal(d.takeOver(), null, 'only once');
  const [inner, far] = duplexPair();
  open.resolve(inner);
  const s = await taken!;
  assert.equal(s, inner);
  await new Promise((r) => setImmediate(r));
  // The stand-in attached nothing to the taken stream: no data listener, not flowing.
  assert.equal(inner.listenerCount('data'), 0);
  assert.notEqual(inner.readableFlowing, true);
  inner.destroy(); far.destroy();
});

test('a failed open destroys an untaken stand-in, and not a taken one', async () => {
  const a = deferred<Duplex>();
  const d1 = deferredDuplex(a.p);
  const err = new Promise<Error>((r) => d1.on('error', r));
  a.reject(new Error('no tunnel'));
  assert.equal((await err).message, 'no tunnel');

  const b = deferred<Duplex>();
  const d2 = deferredDuplex(b.p);
  const taken = d2.takeOver()!;
  b.reject(new Error('no tunnel'));
  await assert.rejects(taken, /no tunnel/);
  assert.equal(d2.destroyed, false);
});

test('a taken-over stream spliced to a socket relays bytes and the end both ways', async () => {
  // Echo "server" on the far side of a duplex pair; the client socket is the capture side.
  const [inner, far] = duplexPair();
  far.on('data', (c: Buffer) => far.write(Buffer.from(c.toString('utf8').toUpperCase())));
  far.on('end', () => far.end());
  const open = deferred<Duplex>();
  const stand = deferredDuplex(open.p);
  const server = createServer((s: Socket) => {
    const t = stand.takeOver()!;
    s.pause();
    void t.then((x) => { splice(s, x); s.resume(); });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const c = connect((server.address() as AddressInfo).port, '127.0.0.1');
  c.write('hello');
  setTimeout(() => open.resolve(inner), 20);
  const reply = await new Promise<string>((r) => c.setEncoding('utf8').once('data', r));
  assert.equal(reply, 'HELLO');
  const ended = new Promise<void>((r) => c.on('end', r));
  c.end();
  await ended;
  c.destroy();
  server.close();
});
