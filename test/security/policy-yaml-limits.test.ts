// Policies come from a git repository; the control API loads every commit. A ten-line
// "billion laughs" file (nested YAML aliases) used to expand without limit in the schema
// check and in messages that quoted the data, freezing `weft validate` and the control
// API's event loop. Now: aliases are expanded at most to POLICY_LIMITS.valuesPerDocument
// values, recursive aliases, oversized files and too many documents are refused, values
// in messages are cut at 80 characters, and every refusal is a file:line:col diagnostic.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { billionLaughs, isolate } from './policy-isolate';

// Paths are given under the tree's directory (workers cannot chdir); the prefix is
// taken off the output so it reads as \`cd DIR && weft validate FILES\`.
const VALIDATE = `
  const { validateReport } = require('./agent/cli/validate');
  const r = validateReport(input.files.map((f) => input.dir + '/' + f), 'text');
  return { ...r, stdout: r.stdout.split(input.dir + '/').join('') };
`;

function tree(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'wt-sec-yaml-'));
  for (const [f, body] of Object.entries(files)) writeFileSync(join(dir, f), body);
  return dir;
}

type Report = { code: number; stdout: string; stderr: string };

/** `weft validate` in a worker (256 MB heap): it must answer within `boundMs`, module
 *  loading included. */
async function validate(files: Record<string, string>, boundMs = 5000): Promise<Report> {
  const r = await isolate<Report>(VALIDATE, { dir: tree(files), files: Object.keys(files) }, { timeoutMs: boundMs * 2, heapMb: 256 });
  assert.ok(r.ok, `weft validate did not finish: ${r.ok ? '' : `${r.reason}: ${r.message.slice(0, 300)}`}`);
  assert.ok(r.ms < boundMs, `weft validate took ${r.ms} ms`);
  return r.value;
}

const LOCATED = /^[^:\n]+:\d+:\d+: .+$/;

test('billion laughs: weft validate rejects it fast, at the first alias, with a bounded message', async () => {
  const r = await validate({ 'lol.yaml': billionLaughs() }, 2000);
  assert.equal(r.code, 1);
  assert.equal(r.stdout, 'lol.yaml:5:10: document expands to more than 100000 values through YAML aliases (every use of an alias counts as a copy); not checked\n');
});

test('a recursive alias (a collection that contains itself) is refused, not followed', async () => {
  const r = await validate({ 'loop.yaml': 'apiVersion: weft.dev/v1alpha1\nkind: Service\nmetadata: {name: loop}\nspec: &s\n  selector: *s\n  ports: [{name: http, port: 80}]\n' });
  assert.equal(r.code, 1);
  assert.equal(r.stdout, 'loop.yaml:5:13: YAML alias refers to a collection that contains it; recursive aliases are not allowed\n');
});

test('a few aliases within the limit still work', async () => {
  const r = await validate({ 'ok.yaml': 'apiVersion: weft.dev/v1alpha1\nkind: Workload\nmetadata: {name: a-0, labels: &l {app: a}}\nspec: {address: 10.250.0.9, node: n1}\n---\napiVersion: weft.dev/v1alpha1\nkind: Service\nmetadata: {name: a, labels: &sel {app: a}}\nspec:\n  selector: *sel\n  ports: [{name: http, port: 80}]\n' });
  assert.equal(r.stdout, '2 objects in 1 files OK\n');
  assert.equal(r.code, 0);
});

test('values quoted in messages are cut at 80 characters', async () => {
  const big = 'x'.repeat(200_000);
  const r = await validate({ 'big.yaml': `apiVersion: weft.dev/v1alpha1\nkind: ${big}\n---\napiVersion: weft.dev/v1alpha1\nkind: Service\nmetadata: {name: a}\nspec:\n  selector: {}\n  ports: [${Array(5000).fill('{name: http, port: 80}').join(', ')}]\n  vip: [${Array(20000).fill('"10.1.1.1"').join(',')}]\n` });
  assert.equal(r.code, 1);
  const lines = r.stdout.trimEnd().split('\n');
  for (const l of lines) {
    assert.match(l, LOCATED);
    assert.ok(l.length < 400, `a diagnostic of ${l.length} characters: ${l.slice(0, 200)}…`);
  }
  assert.match(lines[0]!, /^big\.yaml:2:7: unknown kind "x{78}…/);
  assert.ok(lines.some((l) => /^big\.yaml:\d+:\d+: spec\.vip: must be a IPv4 address \(got array \["10\.1\.1\.1",.*…\)$/.test(l)), r.stdout.slice(0, 2000));
  assert.ok(r.stdout.length < 64 * 1024, `${r.stdout.length} bytes of diagnostics`);
});

test('a file over 1 MiB is not read; one with too many documents is refused at the first one over', async () => {
  const svc = (i: number) => `apiVersion: weft.dev/v1alpha1\nkind: Service\nmetadata: {name: s${i}}\nspec: {selector: {app: s${i}}, ports: [{name: p, port: 80}]}\n`;
  const huge = `# ${'#'.repeat(1024 * 1024)}\n${svc(0)}`;
  const many = Array.from({ length: 5001 }, () => 'a: 1\n').join('---\n');
  const r = await validate({ 'huge.yaml': huge, 'many.yaml': many });
  assert.equal(r.code, 1);
  const lines = r.stdout.trimEnd().split('\n');
  assert.equal(lines[0], 'huge.yaml:1:1: file is 1 MiB, over the 1 MiB limit for one policy file; not read (split it)');
  // Document 5001 starts at its "---" marker, line 10000.
  assert.equal(lines[1], `many.yaml:${5000 * 2}:1: more than 5000 YAML documents in one file; not read (split it)`);
  assert.equal(lines.length, 2);
});

test('a 1 MB mapping of 70 000 keys (duplicate keys checked linearly) is answered in time', async () => {
  const keys = Array.from({ length: 70_000 }, (_, i) => `k${i}: ${i}`).join(', ');
  const r = await validate({ 'wide.yaml': `apiVersion: weft.dev/v1alpha1\nkind: Service\nmetadata: {name: a}\nspec: {${keys}, k5: dup}\n` });
  assert.equal(r.code, 1);
  const lines = r.stdout.trimEnd().split('\n');
  assert.match(lines[0]!, /^wide\.yaml:4:\d+: YAML syntax error: Map keys must be unique$/);
});

test('flow collections nested 500 000 deep are refused before either YAML parser recurses into them', async () => {
  const n = 500_000;
  const r = await validate({ 'deep.yaml': `apiVersion: weft.dev/v1alpha1\nkind: Service\nmetadata: {name: a}\nspec: ${'['.repeat(n)}${']'.repeat(n)}\n` }, 2000);
  assert.equal(r.code, 1);
  assert.equal(r.stdout, 'deep.yaml:4:135: more than 128 unclosed [ or { (YAML nested too deep, at most 64 levels); not parsed\n');
});
