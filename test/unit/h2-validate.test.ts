// HTTP/2 message validity (RFC 9113 §8.1.1, §8.2, §8.3, §8.5): the request and trailer
// checks of agent/proxy/h2/validate.ts and the field syntax checks of the HPACK decoder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MALFORMED, NO_LENGTH, checkRequest, checkTrailers, parseLength } from '../../agent/proxy/h2/validate';
import { HpackDecoder, validName, validValue } from '../../agent/proxy/h2/hpack';

const GET = [':method', 'GET', ':scheme', 'https', ':path', '/a?b', ':authority', 'svc.ns:8080'];

test('requests: well-formed ones and their content-length', () => {
  const ok: [string, string[], boolean, number][] = [
    ['GET', GET, true, NO_LENGTH],
    ['without :authority', [':method', 'GET', ':scheme', 'http', ':path', '/'], true, NO_LENGTH],
    ['POST with content-length', [':method', 'POST', ':scheme', 'http', ':path', '/', 'content-length', '12'], false, 12],
    ['content-length 0 with END_STREAM', [':method', 'POST', ':scheme', 'http', ':path', '/', 'content-length', '0'], true, 0],
    ['the same content-length twice', [':method', 'POST', ':scheme', 'http', ':path', '/', 'content-length', '3', 'content-length', '3'], false, 3],
    ['OPTIONS *', [':method', 'OPTIONS', ':scheme', 'http', ':path', '*'], true, NO_LENGTH],
    ['te: trailers (any case)', [...GET, 'te', 'Trailers'], true, NO_LENGTH],
    ['Host equal to :authority (any case)', [...GET, 'host', 'SVC.ns:8080'], true, NO_LENGTH],
    ['CONNECT host:port (the tunnel)', [':method', 'CONNECT', ':authority', '10.0.0.7:8080'], false, NO_LENGTH],
    ['CONNECT [v6]:port', [':method', 'CONNECT', ':authority', '[fd00::1]:443'], false, NO_LENGTH],
    ['a scheme other than http(s) with another path form', [':method', 'GET', ':scheme', 'urn', ':path', 'x:y'], true, NO_LENGTH],
  ];
  for (const [name, h, end, want] of ok) assert.equal(checkRequest(h, end), want, name);
});

test('requests: malformed ones', () => {
  const bad: [string, string[], boolean][] = [
    ['no :method', [':scheme', 'http', ':path', '/'], true],
    ['empty :method', [':method', '', ':scheme', 'http', ':path', '/'], true],
    ['no :scheme', [':method', 'GET', ':path', '/'], true],
    ['no :path', [':method', 'GET', ':scheme', 'http'], true],
    ['empty :path', [':method', 'GET', ':scheme', 'http', ':path', ''], true],
    ['http path not starting with /', [':method', 'GET', ':scheme', 'http', ':path', 'a/b'], true],
    ['* for another method than OPTIONS', [':method', 'GET', ':scheme', 'http', ':path', '*'], true],
    ['userinfo in :authority', [...GET.slice(0, 6), ':authority', 'u:p@svc'], true],
    ['two :method', [...GET, ':method', 'GET'], true],
    ['two :authority', [':authority', 'a', ...GET], true],
    [':status in a request', [...GET, ':status', '200'], true],
    [':protocol (extended CONNECT not offered)', [':method', 'CONNECT', ':protocol', 'websocket', ':scheme', 'https', ':path', '/', ':authority', 'a:1'], true],
    ['pseudo-header after a field', ['accept', '*/*', ...GET], true],
    ['connection', [...GET, 'connection', 'close'], true],
    ['keep-alive', [...GET, 'keep-alive', '1'], true],
    ['proxy-connection', [...GET, 'proxy-connection', 'x'], true],
    ['transfer-encoding', [...GET, 'transfer-encoding', 'chunked'], true],
    ['upgrade', [...GET, 'upgrade', 'h2c'], true],
    ['te: gzip', [...GET, 'te', 'gzip'], true],
    ['te: trailers, gzip', [...GET, 'te', 'trailers, gzip'], true],
    ['Host other than :authority', [...GET, 'host', 'evil'], true],
    ['two Host fields', [':method', 'GET', ':scheme', 'http', ':path', '/', 'host', 'a', 'host', 'a'], true],
    ['content-length with END_STREAM on HEADERS', [':method', 'POST', ':scheme', 'http', ':path', '/', 'content-length', '1'], true],
    ['two different content-lengths', [':method', 'POST', ':scheme', 'http', ':path', '/', 'content-length', '1', 'content-length', '2'], false],
    ['content-length not a number', [':method', 'POST', ':scheme', 'http', ':path', '/', 'content-length', '1e3'], false],
    ['content-length list', [':method', 'POST', ':scheme', 'http', ':path', '/', 'content-length', '3, 3'], false],
    ['CONNECT with :path', [':method', 'CONNECT', ':path', '/', ':authority', 'a:1'], false],
    ['CONNECT with :scheme', [':method', 'CONNECT', ':scheme', 'http', ':authority', 'a:1'], false],
    ['CONNECT without :authority', [':method', 'CONNECT'], false],
    ['CONNECT without a port', [':method', 'CONNECT', ':authority', 'example.com'], false],
    ['CONNECT with a path in the authority', [':method', 'CONNECT', ':authority', 'a/b:1'], false],
  ];
  for (const [name, h, end] of bad) assert.equal(checkRequest(h, end), MALFORMED, name);
});

test('content-length values', () => {
  assert.equal(parseLength('0'), 0);
  assert.equal(parseLength('007'), 7);
  assert.equal(parseLength('999999999999999'), 999999999999999);
  for (const v of ['', '-1', '+1', ' 1', '1 ', '0x10', '1.0', '1000000000000000']) assert.equal(parseLength(v), -1, JSON.stringify(v));
});

test('trailers carry no pseudo-header and no connection-specific field', () => {
  assert.equal(checkTrailers(['grpc-status', '0', 'grpc-message', '']), true);
  assert.equal(checkTrailers([]), true);
  assert.equal(checkTrailers([':status', '200']), false);
  assert.equal(checkTrailers(['x', '1', ':path', '/']), false);
  assert.equal(checkTrailers(['transfer-encoding', 'chunked']), false);
  assert.equal(checkTrailers(['te', 'gzip']), false);
});

test('field names and values (§8.2.1), every octet', () => {
  for (let c = 0; c < 256; c++) {
    const ch = String.fromCharCode(c);
    const nameOk = c >= 0x21 && c <= 0x7e && !(c >= 0x41 && c <= 0x5a);
    assert.equal(validName(`x${ch}`), nameOk && c !== 0x3a, `name octet ${c.toString(16)} after the first`);
    assert.equal(validName(`${ch}x`), nameOk, `first name octet ${c.toString(16)}`);
    const valueOk = c !== 0 && c !== 0x0a && c !== 0x0d;
    assert.equal(validValue(`a${ch}b`), valueOk, `value octet ${c.toString(16)}`);
  }
  assert.equal(validName(''), false);
  assert.equal(validName(':path'), true);
  assert.equal(validName('::path'), false);
  assert.equal(validValue(''), true);
  for (const v of [' a', 'a ', '\ta', 'a\t', ' ']) assert.equal(validValue(v), false, JSON.stringify(v));
});

test('HPACK: a field with a bad value stays malformed when a later block indexes it', () => {
  const d = new HpackDecoder();
  const lit = (name: string, value: string): number[] => [0x40, name.length, ...Buffer.from(name, 'latin1'), value.length, ...Buffer.from(value, 'latin1')];
  const first = d.decode(Buffer.from([...lit('x-a', ' padded'), ...lit('x-b', 'fine')]), 1 << 16);
  assert.equal(first.invalid, true);
  // 0xbf = dynamic index 63 (x-a, the older entry); 0xbe = 62 (x-b).
  assert.equal(d.decode(Buffer.from([0xbe]), 1 << 16).invalid, false);
  assert.equal(d.decode(Buffer.from([0xbf]), 1 << 16).invalid, true);
  // The name of x-a (index 63) with a good value: its bad value is not inherited.
  assert.equal(d.decode(Buffer.from([0x0f, 63 - 15, 1, 0x76]), 1 << 16).invalid, false);
  // A name taken from an entry whose name was bad is bad too.
  const d2 = new HpackDecoder();
  assert.equal(d2.decode(Buffer.from(lit('Bad', 'v')), 1 << 16).invalid, true);
  assert.equal(d2.decode(Buffer.from([0x0f, 62 - 15, 1, 0x76]), 1 << 16).invalid, true);
});
