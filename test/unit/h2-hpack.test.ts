// HPACK: the RFC 7541 Appendix C examples (decoder state carried across each sequence,
// eviction with a 256-byte table, Huffman and raw literals), malformed blocks, and the
// encoder round-tripping through the decoder with its own dynamic table.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HpackDecoder, HpackEncoder, HpackError } from '../../agent/proxy/h2/hpack';
import { CODES, codeLength, huffmanDecode } from '../../agent/proxy/h2/huffman';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const pairs = (h: string[]): [string, string][] => { const o: [string, string][] = []; for (let i = 0; i < h.length; i += 2) o.push([h[i]!, h[i + 1]!]); return o; };

function run(dec: HpackDecoder, steps: [string, [string, string][], number][]): void {
  for (const [block, want, size] of steps) {
    const { headers, oversized } = dec.decode(hex(block), 1 << 20);
    assert.equal(oversized, false);
    assert.deepEqual(pairs(headers), want);
    assert.equal(dec.tableSize, size);
  }
}

test('C.2: literal fields with and without indexing, never indexed, indexed', () => {
  run(new HpackDecoder(), [['400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572', [['custom-key', 'custom-header']], 55]]);
  run(new HpackDecoder(), [['040c 2f73 616d 706c 652f 7061 7468', [[':path', '/sample/path']], 0]]);
  run(new HpackDecoder(), [['1008 7061 7373 776f 7264 0673 6563 7265 74', [['password', 'secret']], 0]]);
  run(new HpackDecoder(), [['82', [[':method', 'GET']], 0]]);
});

const REQ1: [string, string][] = [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com']];
const REQ2: [string, string][] = [...REQ1, ['cache-control', 'no-cache']];
const REQ3: [string, string][] = [[':method', 'GET'], [':scheme', 'https'], [':path', '/index.html'], [':authority', 'www.example.com'], ['custom-key', 'custom-value']];

test('C.3: requests without Huffman coding', () => {
  run(new HpackDecoder(), [
    ['8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d', REQ1, 57],
    ['8286 84be 5808 6e6f 2d63 6163 6865', REQ2, 110],
    ['8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65', REQ3, 164],
  ]);
});

test('C.4: requests with Huffman coding', () => {
  run(new HpackDecoder(), [
    ['8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff', REQ1, 57],
    ['8286 84be 5886 a8eb 1064 9cbf', REQ2, 110],
    ['8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf', REQ3, 164],
  ]);
});

const LOC: [string, string] = ['location', 'https://www.example.com'];
const RES1: [string, string][] = [[':status', '302'], ['cache-control', 'private'], ['date', 'Mon, 21 Oct 2013 20:13:21 GMT'], LOC];
const RES2: [string, string][] = [[':status', '307'], ['cache-control', 'private'], ['date', 'Mon, 21 Oct 2013 20:13:21 GMT'], LOC];
const RES3: [string, string][] = [[':status', '200'], ['cache-control', 'private'], ['date', 'Mon, 21 Oct 2013 20:13:22 GMT'], LOC,
  ['content-encoding', 'gzip'], ['set-cookie', 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1']];

test('C.5: responses without Huffman coding, evicting from a 256-byte table', () => {
  run(new HpackDecoder(256), [
    ['4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d', RES1, 222],
    ['4803 3330 37c1 c0bf', RES2, 222],
    ['88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31', RES3, 215],
  ]);
});

test('C.6: responses with Huffman coding, evicting from a 256-byte table', () => {
  run(new HpackDecoder(256), [
    ['4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3', RES1, 222],
    ['4883 640e ffc1 c0bf', RES2, 222],
    ['88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07', RES3, 215],
  ]);
});

test('malformed header blocks are rejected', () => {
  const bad: [string, string][] = [
    ['80', 'index 0'],
    ['ff00', 'index beyond the tables'],
    ['be', 'dynamic index into an empty table'],
    ['1f', 'truncated integer'],
    ['1fffffffffff7f', 'integer overflow'],
    ['0005 6162', 'string longer than the block'],
    ['0081 00 0161', 'Huffman padding not all ones'],
    ['0084 ffffffff 0161', 'EOS inside a Huffman string'],
    ['3fe21f', 'table size update above the limit'],
    ['82 20', 'table size update after a field'],
  ];
  for (const [block, why] of bad) assert.throws(() => new HpackDecoder().decode(hex(block), 1 << 20), HpackError, why);
  // Huffman strings: an 8-bit-or-longer padding is invalid even if all ones.
  assert.equal(huffmanDecode(hex('1fff'), 0, 2), null);
  assert.equal(huffmanDecode(hex('1f'), 0, 1), 'a');
});

test('field syntax: upper-case or empty names and NUL/CR/LF in literals mark the block invalid', () => {
  const lit = (name: string, value: string): Buffer => Buffer.concat([Buffer.from([0x00, name.length]), Buffer.from(name, 'latin1'), Buffer.from([value.length]), Buffer.from(value, 'latin1')]);
  assert.equal(new HpackDecoder().decode(lit('x-ok', 'fine'), 4096).invalid, false);
  assert.equal(new HpackDecoder().decode(lit('X-Up', 'v'), 4096).invalid, true);
  assert.equal(new HpackDecoder().decode(lit('', 'v'), 4096).invalid, true);
  assert.equal(new HpackDecoder().decode(lit('x', 'a\r\nb: c'), 4096).invalid, true);
  assert.equal(new HpackDecoder().decode(lit('x', 'a\0'), 4096).invalid, true);
  assert.equal(new HpackDecoder().decode(hex('82 86'), 4096).invalid, false);
});

test('header list size limit: oversized lists are flagged but the table stays in sync', () => {
  const dec = new HpackDecoder();
  const r = dec.decode(hex('400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572'), 40);
  assert.equal(r.oversized, true);
  assert.deepEqual(r.headers, []);
  // The entry was still added: the next block can reference it.
  assert.deepEqual(pairs(dec.decode(hex('be'), 4096).headers), [['custom-key', 'custom-header']]);
});

test('encoder round-trips through the decoder, indexes repeats, honours a smaller peer table', () => {
  const enc = new HpackEncoder();
  const dec = new HpackDecoder();
  const h = [':method', 'POST', ':scheme', 'http', ':path', '/pkg.Svc/Method', ':authority', 'svc:50051', 'content-type', 'application/grpc',
    'te', 'trailers', 'grpc-timeout', '99m', 'x-meta', 'v'.repeat(300), 'authorization', 'Bearer secret', 'x-bin-bin', 'AAEC'];
  const first = Buffer.from(enc.encode(h));
  assert.deepEqual(dec.decode(first, 1 << 20).headers, h);
  const second = Buffer.from(enc.encode(h));
  assert.deepEqual(dec.decode(second, 1 << 20).headers, h);
  // Only the literals are left: the 300-byte value, the secret and the timeout (+ a few bytes each).
  assert.ok(second.length < 300 + 13 + 3 + 40, `${second.length} vs ${first.length}`);
  // never-indexed and per-request fields stay literal
  assert.ok(second.includes(Buffer.from('Bearer secret')) && second.includes(Buffer.from('99m')));
  // Peer shrinks its table: a size update comes first and both sides stay in sync.
  enc.setMaxTableSize(64);
  const third = enc.encode(h);
  assert.equal(third[0]! & 0xe0, 0x20);
  assert.deepEqual(dec.decode(third, 1 << 20).headers, h);
  assert.ok(dec.tableSize <= 64);
  for (let i = 0; i < 200; i++) {
    const hi = [':path', `/p/${i % 7}`, 'x-n', String(i % 13)];
    assert.deepEqual(dec.decode(enc.encode(hi), 1 << 20).headers, hi);
  }
});

test('Huffman: every byte value round-trips (strings encoded here from the code table)', () => {
  const encode = (bytes: number[]): Buffer => {
    let bits = 0n, n = 0n;
    for (const b of bytes) { bits = (bits << BigInt(codeLength(b))) | BigInt(CODES[b]!); n += BigInt(codeLength(b)); }
    const pad = (8n - (n % 8n)) % 8n;
    bits = (bits << pad) | ((1n << pad) - 1n);
    const len = Number((n + pad) / 8n);
    const out = Buffer.alloc(len);
    for (let i = len - 1; i >= 0; i--) { out[i] = Number(bits & 0xffn); bits >>= 8n; }
    return out;
  };
  assert.equal(CODES[0], 0x1ff8);
  assert.equal(CODES[256], 0x3fffffff);
  const all = Array.from({ length: 256 }, (_x, i) => i);
  for (let shift = 0; shift < 7; shift++) {
    const bytes = all.map((b) => (b * 7 + shift * 31) % 256);
    const enc = encode(bytes);
    assert.equal(huffmanDecode(enc, 0, enc.length), Buffer.from(bytes).toString('latin1'));
  }
  assert.equal(huffmanDecode(Buffer.alloc(0), 0, 0), '');
});
