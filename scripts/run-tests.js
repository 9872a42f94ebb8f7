#!/usr/bin/env node
'use strict';
// Runs the test suites with node's own runner over the TypeScript sources (tsx loader).
// Usage: node scripts/run-tests.js [unit|security|bpf|e2e ...] [--grep PATTERN]
// Files run one at a time: root tests share cgroups, bpffs and namespaces.
const { readdirSync, statSync } = require('node:fs');
const { join, relative } = require('node:path');
const { spawnSync } = require('node:child_process');

const root = join(__dirname, '..');
const argv = process.argv.slice(2);
let grep;
const gi = argv.indexOf('--grep');
if (gi >= 0) { grep = argv[gi + 1]; argv.splice(gi, 2); }
const suites = argv.length ? argv : ['unit', 'security', 'bpf', 'e2e'];

function collect(dir) {
  let out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) { if (name !== 'fixtures' && name !== 'corpus') out = out.concat(collect(p)); }
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

let files = [];
for (const s of suites) {
  const dir = join(root, 'test', s);
  try { files = files.concat(collect(dir)); } catch (e) {
    process.stderr.write(`run-tests: no suite ${s} (${e.code})\n`); process.exit(2);
  }
}
if (grep) files = files.filter((f) => f.includes(grep));
if (!files.length) { process.stderr.write('run-tests: no test files\n'); process.exit(2); }
process.stdout.write(`running ${files.length} test files: ${suites.join(', ')}\n`);
const r = spawnSync(process.execPath, [
  '--import', 'tsx', '--test', '--test-concurrency=1', '--test-reporter=spec',
  ...files.map((f) => relative(root, f)),
], { cwd: root, stdio: 'inherit', env: process.env });
process.exit(r.status === null ? 1 : r.status);
