// A short run of the parser fuzzer (test/security/fuzz.ts; `npm run fuzz` runs it for
// 60 s) as part of the suite: WEFT_FUZZ_TEST_SECONDS (default 10) over the HTTP/1.1,
// HTTP/2 and HPACK targets, in a child process so that an input that hangs a parser
// fails the test (killed at twice the budget plus a margin) instead of hanging it. The
// seed is printed; WEFT_FUZZ_SEED=<seed> npm run fuzz replays the same inputs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';

test('fuzz: HTTP/1.1 head parser and body framer, HTTP/2 frame decoder, HPACK decoder (short budget)', { timeout: 10 * 60_000 }, async () => {
  const seconds = Number(process.env.WEFT_FUZZ_TEST_SECONDS ?? 10);
  const root = join(__dirname, '..', '..');
  const child = spawn(process.execPath, ['--expose-gc', '--max-old-space-size=256', '--import', 'tsx', 'test/security/fuzz.ts'], {
    cwd: root, env: { ...process.env, WEFT_FUZZ_SECONDS: String(seconds) }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => { out += d; });
  child.stderr.on('data', (d: Buffer) => { out += d; });
  let hung = false;
  const killer = setTimeout(() => { hung = true; child.kill('SIGKILL'); }, (seconds * 2 + 60) * 1000);
  const code = await new Promise<number | null>((r) => child.on('close', r));
  clearTimeout(killer);
  process.stdout.write(out.split('\n').map((l) => `  ${l}`).join('\n') + '\n');
  assert.equal(hung, false, `the fuzzer hung (an input never returned):\n${out}`);
  assert.equal(code, 0, `fuzzer failures:\n${out}`);
  assert.match(out, /no failures/);
  for (const t of ['h1', 'h2', 'hpack']) assert.match(out, new RegExp(`fuzz: ${t}: \\d+ inputs`), `${t} ran`);
});
