// Found by the fuzzer (test/security/fuzz.ts, hpack target): the HPACK decoder checked
// literals for NUL/CR/LF and upper-case names, but not fields taken from its dynamic
// table. A header block that inserts "x-a: 1\r\nGET /admin ..." with incremental
// indexing is refused (its stream reset); the next block on the same connection
// indexes the entry with one byte, and the field was accepted and forwarded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HpackDecoder } from '../../agent/proxy/h2/hpack';

/** A literal with incremental indexing and a new name (RFC 7541 §6.2.1), raw strings. */
function literalIndexed(name: string, value: string): Buffer {
  const n = Buffer.from(name, 'latin1'), v = Buffer.from(value, 'latin1');
  return Buffer.concat([Buffer.from([0x40, n.length]), n, Buffer.from([v.length]), v]);
}
const GET_ROOT = Buffer.from([0x82, 0x86, 0x84]); // :method GET, :scheme http, :path /

test('hpack: a field taken from the dynamic table is as invalid as when it was inserted', () => {
  for (const [name, value] of [['x-a', '1\r\nGET /admin HTTP/1.1'], ['x-b', 'a\0b'], ['X-Upper', 'v'], ['x-c', 'line\nbreak']] as const) {
    const d = new HpackDecoder(4096);
    const first = d.decode(Buffer.concat([GET_ROOT, literalIndexed(name, value)]), 16384);
    assert.equal(first.invalid, true, `${JSON.stringify(name)}: ${JSON.stringify(value)} as a literal`);
    // Indexed field 62: the newest dynamic entry.
    const second = d.decode(Buffer.concat([GET_ROOT, Buffer.from([0x80 | 62])]), 16384);
    assert.equal(second.invalid, true, `${JSON.stringify(name)}: ${JSON.stringify(value)} indexed from the table`);
    // A literal that only borrows a bad name from the table is invalid too; a good name with a new value is not.
    const third = d.decode(Buffer.concat([GET_ROOT, Buffer.from([0x0f, 62 - 15, 1, 0x76])]), 16384);
    assert.equal(third.invalid, name === 'X-Upper', 'name-indexed literal');
  }
  // Valid entries stay valid when indexed.
  const d = new HpackDecoder(4096);
  assert.equal(d.decode(Buffer.concat([GET_ROOT, literalIndexed('x-ok', 'fine')]), 16384).invalid, false);
  assert.deepEqual(d.decode(Buffer.concat([GET_ROOT, Buffer.from([0x80 | 62])]), 16384), { headers: [':method', 'GET', ':scheme', 'http', ':path', '/', 'x-ok', 'fine'], oversized: false, invalid: false });
});
