// The changed-files loader (agent/policy/tree-files.ts) and the directory source that
// drives it from per-directory watches (agent/control/sources/directory.ts):
//   - over random sequences of file operations on a real directory (create, modify,
//     delete, rename, atomic rename-over, subdirectories created and removed, symbolic
//     links, dot files, a file over the size limit), updating only the changed paths gives
//     exactly what a fresh walk-and-read (loadFiles) gives: texts, order and diagnostics;
//   - changedOnDisk() sees an edit nobody reported, and rescan() picks it up;
//   - the source, with real watches, re-reads only what changed (creates, atomic writes,
//     in-place writes, deletes, renames, new subdirectories; editors' temp files ignored);
//   - through the control API with the real compiler: a broken file is rejected whole and
//     the last good snapshot keeps serving; fixing it is accepted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { PolicyTreeFiles } from '../../agent/policy/tree-files';
import { collectFiles, readPolicyFiles, POLICY_LIMITS } from '../../agent/policy/load';
import type { Diagnostic } from '../../agent/policy';
import { DirectorySource } from '../../agent/control/sources/directory';
import type { PolicyTree } from '../../agent/control/policy-compiler';
import { policyCompiler } from '../../agent/control/policy-adapter';
import type { PolicyCompiler } from '../../agent/control/policy-compiler';
import { writeFileAtomic } from '../../agent/sync/atomic-file';
import { serviceYaml, nodeWorkloadsYaml, nodeName, type MeshShape } from '../bench/control-fixture';
import { startControl } from '../lib/control-server';
import { mulberry32 } from '../lib/rng';
import { waitFor } from '../lib/wait';

function tempDir(t: { after: (fn: () => void) => void }): string {
  const d = mkdtempSync(join(tmpdir(), 'wt-ctl-tree-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** What a fresh load reads: loadFiles([root])'s walk and read. */
function fresh(root: string): { texts: { file: string; text: string }[]; diagnostics: Diagnostic[] } {
  const diagnostics: Diagnostic[] = [];
  const texts = readPolicyFiles(collectFiles([root], diagnostics), diagnostics);
  return { texts, diagnostics };
}

const byFile = (a: Diagnostic, b: Diagnostic) => (a.file < b.file ? -1 : a.file > b.file ? 1 : a.message < b.message ? -1 : 1);
function assertSame(tree: PolicyTreeFiles, root: string, step: string): void {
  const got = tree.read();
  const want = fresh(root);
  assert.deepEqual(got.texts, want.texts, `texts after ${step}`);
  assert.deepEqual([...got.diagnostics].sort(byFile), [...want.diagnostics].sort(byFile), `diagnostics after ${step}`);
}

test('tree files: updating only the changed paths reads what a fresh load reads, over random file operations', () => {
  for (let seed = 1; seed <= 6; seed++) {
    const root = mkdtempSync(join(tmpdir(), 'wt-ctl-tree-'));
    // Links point at a directory outside the tree (which nothing writes into).
    const outside = mkdtempSync(join(tmpdir(), 'wt-ctl-tree-out-'));
    try {
      const r = mulberry32(seed);
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
      const dirs = ['', 'a', 'a/b', 'a-c', 'z'];
      const names = ['one.yaml', 'two.yml', 'three.yaml', 'notes.txt', '.hidden.yaml', 'x.yaml'];
      const existing = () => {
        const out: string[] = [];
        const walk = (d: string) => { for (const e of readdirSync(join(root, d), { withFileTypes: true })) { const p = d ? `${d}/${e.name}` : e.name; if (e.isDirectory() && !e.isSymbolicLink()) walk(p); else out.push(p); } };
        walk('');
        return out.sort();
      };
      const tree = new PolicyTreeFiles(root);
      tree.rescan();
      assertSame(tree, root, `seed ${seed} start`);
      for (let step = 0; step < 60; step++) {
        const changed: string[] = [];
        const files = existing();
        const op = pick(['write', 'write', 'atomic', 'delete', 'rename', 'mkdir', 'rmdir', 'link', 'big', 'touch']);
        const dir = pick(dirs);
        try { if (dir) mkdirSync(join(root, dir), { recursive: true }); } catch { /* a file or link has the name */ }
        if (dir) changed.push(dir.split('/')[0] as string); // a new directory is reported by its parent
        const target = dir ? `${dir}/${pick(names)}` : pick(names);
        // An operation the file system refuses (a write through a link to a directory,
        // a rename onto a directory) changes nothing; the paths are reported all the same.
        try {
        switch (op) {
          case 'write': changed.push(target); writeFileSync(join(root, target), `# ${step}\nkind: ${'x'.repeat(Math.floor(r() * 20))}\n`); break;
          case 'atomic': {
            const tmp = `${target}.tmp~`;
            changed.push(tmp, target);
            writeFileSync(join(root, tmp), `# atomic ${step}\n`);
            renameSync(join(root, tmp), join(root, target));
            break;
          }
          case 'delete': if (files.length) { const f = pick(files); changed.push(f); unlinkSync(join(root, f)); } break;
          case 'rename': if (files.length) { const f = pick(files); changed.push(f, target); renameSync(join(root, f), join(root, target)); } break;
          case 'mkdir': changed.push(dir || 'n'); mkdirSync(join(root, dir || 'n', 'new'), { recursive: true }); writeFileSync(join(root, dir || 'n', 'new', 'in.yaml'), `step: ${step}\n`); break;
          case 'rmdir': if (dir) { changed.push(dir); rmSync(join(root, dir), { recursive: true, force: true }); } break;
          case 'link': changed.push(target); symlinkSync(outside, join(root, target)); break;
          case 'big': changed.push(target); writeFileSync(join(root, target), 'a: 1\n'.repeat(Math.ceil((POLICY_LIMITS.fileBytes + 10) / 5))); break;
          case 'touch': if (files.length) { const f = pick(files); changed.push(f); utimesSync(join(root, f), new Date(), new Date(Date.now() + step * 1000)); } break;
        }
        } catch (e) {
          if (!['EISDIR', 'ENOTDIR', 'ENOENT', 'EEXIST', 'ENOTEMPTY'].includes((e as NodeJS.ErrnoException).code ?? '')) throw e;
        }
        tree.update(changed);
        assertSame(tree, root, `seed ${seed} step ${step} (${op} ${target})`);
        assert.equal(tree.changedOnDisk(), false, `nothing unreported after seed ${seed} step ${step}`);
      }
    } finally {
      rmSync(root, { recursive: true, force: true });
      rmSync(outside, { recursive: true, force: true });
    }
  }
});

test('tree files: an unreported edit is seen by changedOnDisk, and rescan reads it', (t) => {
  const root = tempDir(t);
  writeFileSync(join(root, 'a.yaml'), 'a: 1\n');
  writeFileSync(join(root, 'b.yaml'), 'b: 1\n');
  const tree = new PolicyTreeFiles(root);
  tree.rescan();
  assert.deepEqual(tree.read().texts.map((x) => x.text), ['a: 1\n', 'b: 1\n']);
  assert.equal(tree.changedOnDisk(), false);
  writeFileSync(join(root, 'b.yaml'), 'b: 22\n');
  assert.equal(tree.changedOnDisk(), true, 'a size change nobody reported');
  assert.equal(tree.read().texts[1]!.text, 'b: 1\n', 'not reported, not read again');
  tree.rescan();
  assert.equal(tree.read().texts[1]!.text, 'b: 22\n');
  writeFileSync(join(root, 'c.yaml'), 'c: 1\n');
  assert.equal(tree.changedOnDisk(), true, 'a new file nobody reported');
  tree.rescan();
  assert.equal(tree.changedOnDisk(), false);
  rmSync(root, { recursive: true });
  assert.equal(tree.changedOnDisk(), true, 'the root is gone');
  tree.rescan();
  assert.deepEqual(tree.read(), { texts: [], diagnostics: [{ file: root, line: 1, col: 1, message: 'cannot read: ENOENT' }] });
});

test('directory source: the watch names what changed, and each report re-reads only that', async (t) => {
  const root = tempDir(t);
  writeFileSync(join(root, 'a.yaml'), 'a: 1\n');
  writeFileSync(join(root, 'b.yaml'), 'b: 1\n');
  const reports: Map<string, string>[] = [];
  const wakers = new Set<() => void>();
  const src = new DirectorySource(root, pino({ level: 'silent' }), { debounceMs: 20, rescanMs: 60_000 });
  t.after(() => src.stop());
  await src.start(async (tree: PolicyTree) => {
    assert.ok(tree.files, 'a directory source hands its files over');
    reports.push(new Map(tree.files.read().texts.map((x) => [x.file.slice(root.length + 1), x.text])));
    for (const w of wakers) w();
  });
  const until = (pred: (m: Map<string, string>) => boolean, what: string) =>
    waitFor(() => { const m = reports.at(-1); return m && pred(m) ? m : undefined; }, (w) => { wakers.add(w); return () => wakers.delete(w); }, 5000, what);
  assert.deepEqual([...reports[0]!], [['a.yaml', 'a: 1\n'], ['b.yaml', 'b: 1\n']]);

  await writeFileAtomic(join(root, 'a.yaml'), 'a: 2\n', 0o644);
  await until((m) => m.get('a.yaml') === 'a: 2\n', 'the atomic write');
  writeFileSync(join(root, 'b.yaml'), 'b: 2\n');
  await until((m) => m.get('b.yaml') === 'b: 2\n', 'the in-place write');
  writeFileSync(join(root, '.a.yaml.swp'), 'editor state');
  writeFileSync(join(root, 'c.yaml'), 'c: 1\n');
  await until((m) => m.get('c.yaml') === 'c: 1\n', 'the new file');
  assert.deepEqual([...reports.at(-1)!.keys()], ['a.yaml', 'b.yaml', 'c.yaml'], 'dot files are not policy files');
  renameSync(join(root, 'c.yaml'), join(root, 'd.yaml'));
  await until((m) => !m.has('c.yaml') && m.get('d.yaml') === 'c: 1\n', 'the rename');
  unlinkSync(join(root, 'a.yaml'));
  await until((m) => !m.has('a.yaml'), 'the delete');
  mkdirSync(join(root, 'sub'));
  writeFileSync(join(root, 'sub', 'e.yaml'), 'e: 1\n');
  await until((m) => m.get('sub/e.yaml') === 'e: 1\n', 'a file in a new directory');
  writeFileSync(join(root, 'sub', 'e.yaml'), 'e: 2\n');
  await until((m) => m.get('sub/e.yaml') === 'e: 2\n', 'an edit inside the new directory (watched too)');
  rmSync(join(root, 'sub'), { recursive: true });
  await until((m) => !m.has('sub/e.yaml'), 'the removed directory');
  assert.deepEqual([...reports.at(-1)!], [['b.yaml', 'b: 2\n'], ['d.yaml', 'c: 1\n']]);
});

test('directory source: a change the watch never reported is found by the periodic rescan', async (t) => {
  const root = tempDir(t);
  writeFileSync(join(root, 'a.yaml'), 'a: 1\n');
  let last: Map<string, string> | undefined;
  const wakers = new Set<() => void>();
  const src = new DirectorySource(root, pino({ level: 'silent' }), { debounceMs: 20, rescanMs: 100 });
  t.after(() => src.stop());
  await src.start(async (tree: PolicyTree) => {
    last = new Map(tree.files!.read().texts.map((x) => [x.file.slice(root.length + 1), x.text]));
    for (const w of wakers) w();
  });
  // A directory swapped in under the root's path: the watch is on the old one.
  const other = `${root}-new`;
  mkdirSync(other);
  t.after(() => rmSync(other, { recursive: true, force: true }));
  writeFileSync(join(other, 'b.yaml'), 'b: 1\n');
  renameSync(root, `${root}-old`);
  t.after(() => rmSync(`${root}-old`, { recursive: true, force: true }));
  renameSync(other, root);
  await waitFor(() => (last?.get('b.yaml') === 'b: 1\n' && !last.has('a.yaml') ? true : undefined), (w) => { wakers.add(w); return () => wakers.delete(w); }, 5000, 'the swapped-in tree');
  // And it is watched from then on.
  writeFileSync(join(root, 'c.yaml'), 'c: 1\n');
  await waitFor(() => (last?.get('c.yaml') === 'c: 1\n' ? true : undefined), (w) => { wakers.add(w); return () => wakers.delete(w); }, 5000, 'an edit in the swapped-in tree');
});

test('control API over a watched directory: a broken file is rejected whole, the last good snapshot keeps serving, the fix is taken', async (t) => {
  const shape: MeshShape = { services: 6, endpoints: 12, nodes: 2 };
  const files: Record<string, string> = { 'services.yaml': serviceYaml(shape) };
  for (let n = 0; n < shape.nodes; n++) files[`workloads-${nodeName(n)}.yaml`] = nodeWorkloadsYaml(shape, n);
  const h = await startControl(t, { files, compiler: policyCompiler() as PolicyCompiler });
  const good = h.server.store.snapshot()!;
  const wait = (pred: () => boolean, what: string) => waitFor(() => (pred() ? true : undefined), (w) => { const i = setInterval(w, 10); return () => clearInterval(i); }, 5000, what);
  const weightOf = (v: number) => h.server.store.snapshot()!.workloads.filter((w) => w.node === nodeName(1)).some((w) => w.weight === v + 1);

  // Half an edit: valid YAML up to a broken line. Nothing of the file is taken.
  const broken = nodeWorkloadsYaml(shape, 1, 5).replace(/weight: 6/, 'weight: [6');
  await writeFileAtomic(join(h.policies, `workloads-${nodeName(1)}.yaml`), broken, 0o644);
  await wait(() => h.server.store.lastRejection() !== undefined, 'the rejection');
  assert.equal(h.server.store.snapshot(), good, 'the last good snapshot keeps serving');
  assert.match(h.server.store.lastRejection()!.diagnostics.join('\n'), new RegExp(`workloads-${nodeName(1)}\\.yaml:\\d+:\\d+: YAML syntax error`));

  await writeFileAtomic(join(h.policies, `workloads-${nodeName(1)}.yaml`), nodeWorkloadsYaml(shape, 1, 5), 0o644);
  await wait(() => h.server.store.snapshot() !== good && weightOf(5), 'the fixed file served');
  // A new file, then its removal, through the same path.
  const extra = nodeWorkloadsYaml(shape, 0, 0).replaceAll(/name: (w-\d+)/g, 'name: $1-copy').replaceAll(/address: 10\.(\d+)\.(\d+)\.(\d+)/g, 'address: 10.250.$2.$3');
  h.write('workloads-extra.yaml', extra);
  await wait(() => h.server.store.snapshot()!.workloads.some((w) => w.name.endsWith('-copy')), 'the new file served');
  unlinkSync(join(h.policies, 'workloads-extra.yaml'));
  await wait(() => !h.server.store.snapshot()!.workloads.some((w) => w.name.endsWith('-copy')), 'the removed file no longer served');
});
