// normalizePath() itself: the RFC 3986 cases, the three escaped-slash modes, and the
// property the proxies rely on: a normalized path normalizes to itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normalizePath, removeDotSegments, type PathNormalization } from '../../agent/proxy/http/path';

const D: PathNormalization = { mergeSlashes: true, escapedSlashes: 'REJECT' };

test('normalizePath: dot segments, unreserved decoding, escapes upper-cased, slashes merged', () => {
  const cases: [string, string | null][] = [
    ['/', '/'], ['/a/b', '/a/b'], ['/index.html', '/index.html'], ['/.well-known/x', '/.well-known/x'],
    ['/a/./b', '/a/b'], ['/a/../b', '/b'], ['/../../a', '/a'], ['/a/..', '/'], ['/a/.', '/a/'], ['/a/b/..', '/a/'],
    ['/%61%62c', '/abc'], ['/%7e%2D%2e%5f', '/~-._'], ['/%2e%2e/x', '/x'], ['/a%20b', '/a%20b'], ['/a%c3%a9', '/a%C3%A9'],
    ['/%25', '/%25'], ['/%2561', '/%2561'], ['//a///b//', '/a/b/'], ['/a/.../b', '/a/.../b'], ['/a/..b/c', '/a/..b/c'],
    ['*', '*'], ['', null], ['a/b', null], ['/a%2Fb', null], ['/a%5c', null], ['/a\\b', null], ['/a#x', null],
    ['/a%', null], ['/a%4', null], ['/a%g1', null], ['/a b', null], ['/a\u00e9', null],
  ];
  for (const [input, want] of cases) assert.equal(normalizePath(input, D), want, JSON.stringify(input));
  assert.equal(normalizePath('/a%2fb', { ...D, escapedSlashes: 'KEEP' }), '/a%2Fb');
  assert.equal(normalizePath('/a%5cb', { ...D, escapedSlashes: 'KEEP' }), '/a%5Cb');
  assert.equal(normalizePath('/a%2fb%5c..', { ...D, escapedSlashes: 'UNESCAPE' }), '/a/', '%5C is a separator too');
  assert.equal(normalizePath('/a%2fb%5cc', { ...D, escapedSlashes: 'UNESCAPE' }), '/a/b/c');
  assert.equal(normalizePath('//a//../b', { ...D, mergeSlashes: false }), '//a/b');
  assert.equal(removeDotSegments('/a/b/c/./../../g'), '/a/g', 'RFC 3986 §5.2.4 example');
  const same = '/api/v1/items';
  assert.equal(normalizePath(same, D), same, 'fast path returns the input itself');
});

test('normalizePath: idempotent over random paths in every mode', () => {
  let seed = 0x5eed;
  const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; };
  const alphabet = ['/', '/', '.', '..', 'a', 'B', '%2e', '%2E', '%2f', '%5C', '%41', '%7e', '%20', '%25', '~', '-', '%c3'];
  const modes: PathNormalization[] = [D, { mergeSlashes: false, escapedSlashes: 'KEEP' }, { mergeSlashes: true, escapedSlashes: 'UNESCAPE' }, { mergeSlashes: false, escapedSlashes: 'UNESCAPE' }];
  for (let i = 0; i < 20000; i++) {
    let p = '/';
    for (let k = rnd(12); k > 0; k--) p += alphabet[rnd(alphabet.length)];
    for (const m of modes) {
      const n = normalizePath(p, m);
      if (n === null) continue;
      assert.equal(normalizePath(n, m), n, `not idempotent: ${p} -> ${n} (${JSON.stringify(m)})`);
      assert.ok(!/\/\.\.?(\/|$)/.test(n), `dot segment left: ${p} -> ${n}`);
      if (m.mergeSlashes) assert.ok(!n.includes('//'), `double slash left: ${p} -> ${n}`);
    }
  }
});
