// The policy loader's fuzzer (test/security/fuzz-policy.ts, `npm run fuzz:policy`) with
// a short budget: every committed seed (policies/, the broken-policy corpus and the
// attack shapes in test/security/corpus/policy/) plus mutants, each answered within the
// per-input bound with located diagnostics and no exception. FUZZ_SECONDS overrides the
// budget (default 10 s under CI=true, 5 s otherwise); the seed is fixed for
// reproducibility unless FUZZ_SEED is set.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const ROOT = join(__dirname, '..', '..');

test('fuzz:policy: seeds and mutants load without exceptions, hangs or unlocated diagnostics', () => {
  const seconds = process.env.FUZZ_SECONDS ?? (process.env.CI === 'true' ? '10' : '5');
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'test/security/fuzz-policy.ts'], {
    cwd: ROOT, encoding: 'utf8', timeout: (Number(seconds) + 120) * 1000,
    env: { ...process.env, FUZZ_SECONDS: seconds, FUZZ_SEED: process.env.FUZZ_SEED ?? '20261203' },
  });
  const out = `${r.stdout}${r.stderr}`;
  assert.equal(r.status, 0, out.slice(-4000));
  assert.match(out, /, 0 failures \(seed \d+\)\n$/);
});
