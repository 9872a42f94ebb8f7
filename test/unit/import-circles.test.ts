// No import circles anywhere in agent/: a circle means two modules each need the other,
// so neither has one job (and load order decides what a top-level use of the other sees).
// Type-only imports count too: a type that two layers share belongs in a module below
// both (agent/proxy/types.ts is one). Fails listing every circle dpdm finds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseCircular, parseDependencyTree } from 'dpdm';

const root = resolve(__dirname, '..', '..');

/** Every import circle among the TypeScript files under `dir`, as root-relative paths. */
async function circles(dir: string, cwd: string): Promise<string[][]> {
  const tree = await parseDependencyTree(`${dir}/**/*.ts`, { cwd, context: cwd, transform: false, skipDynamicImports: false, include: /\.ts$/, exclude: /node_modules/ });
  return parseCircular(tree);
}

test('agent/ has no import circles (type-only imports included)', async () => {
  const found = await circles('agent', root);
  assert.deepEqual(found.map((c) => c.join(' -> ')), [], 'import circles in agent/');
});

test('the circle check sees a circle through a type-only import', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-circles-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'src'));
  writeFileSync(join(dir, 'src', 'a.ts'), "import type { B } from './b';\nexport interface A { b: B }\n");
  writeFileSync(join(dir, 'src', 'b.ts'), "import { c } from './c';\nexport interface B { n: number }\nexport const bc = c;\n");
  writeFileSync(join(dir, 'src', 'c.ts'), "import type { A } from './a';\nexport const c = (a: A) => a;\n");
  const found = await circles('src', dir);
  assert.equal(found.length, 1);
  assert.deepEqual([...found[0]!].sort(), ['src/a.ts', 'src/b.ts', 'src/c.ts']);
});
