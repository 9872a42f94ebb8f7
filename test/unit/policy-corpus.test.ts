// The broken-policy corpus: every case under fixtures/policy/ (a YAML file, or a
// directory of them) runs through `weft validate` and must print exactly the lines of
// its sibling `.expected` file and exit 1. Paths are given relative to the fixtures
// directory, as a user would type them there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { validateReport } from '../../agent/cli/validate';

const dir = join(__dirname, 'fixtures', 'policy');
const cases = readdirSync(dir).filter((n) => !n.endsWith('.expected')).sort();

test('the corpus has at least 25 cases, each with expectations', () => {
  assert.ok(cases.length >= 25, `only ${cases.length} cases`);
  for (const c of cases) {
    const expected = readFileSync(join(dir, `${c.replace(/\.ya?ml$/, '')}.expected`), 'utf8');
    assert.ok(expected.trim().length > 0, `${c}: empty .expected`);
  }
});

for (const c of cases) {
  test(`corpus: ${c}`, () => {
    const expected = readFileSync(join(dir, `${c.replace(/\.ya?ml$/, '')}.expected`), 'utf8');
    const cwd = process.cwd();
    process.chdir(dir);
    try {
      const r = validateReport([c], 'text');
      assert.equal(r.stdout, expected);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^\d+ problems? \(\d+ files? checked\)\n$/);
    } finally {
      process.chdir(cwd);
    }
  });
}

test('all corpus cases at once: problems from every case in one run, sorted by file/line/col', () => {
  const cwd = process.cwd();
  process.chdir(dir);
  try {
    const r = validateReport(cases, 'text');
    assert.equal(r.code, 1);
    // Cases share names and VIPs, so some messages change when they are loaded together;
    // what must hold is that every case is reported and the order is by position.
    const rows = r.stdout.trimEnd().split('\n').map((l) => {
      const m = /^(.+?):(\d+):(\d+): /.exec(l);
      assert.ok(m, `not file:line:col: ${l}`);
      return { file: m[1] as string, line: Number(m[2]), col: Number(m[3]) };
    });
    for (let i = 1; i < rows.length; i++) {
      const a = rows[i - 1]!, b = rows[i]!;
      assert.ok(a.file < b.file || (a.file === b.file && (a.line < b.line || (a.line === b.line && a.col <= b.col))), `out of order at line ${i + 1}`);
    }
    for (const c of cases) assert.ok(rows.some((x) => x.file === c || x.file.startsWith(`${c}/`)), `${c} not reported`);
  } finally {
    process.chdir(cwd);
  }
});
