// agent/node/agent-lock.ts: an agent and a cleanup of the same node never both go ahead,
// whichever starts first; files of dead (or reused) pids do not count.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { claimCleanup, liveAgents, processStartTime, registerAgent } from '../../agent/node/agent-lock';

function setup(t: import('node:test').TestContext) {
  const run = mkdtempSync(join(tmpdir(), 'wt-lock-'));
  const other = spawn('sleep', ['60'], { stdio: 'ignore' });
  t.after(() => { other.kill('SIGKILL'); rmSync(run, { recursive: true, force: true }); });
  mkdirSync(join(run, 'node-1'));
  /** Writes a holder file as another live process would. */
  const hold = (name: string, pid = other.pid!, start = processStartTime(pid) ?? '') => writeFileSync(join(run, 'node-1', name), `${pid} ${start}\n`);
  return { run, other, hold };
}

test('agent lock: a cleanup refuses while an agent of the node is alive, naming its pid', (t) => {
  const { run, other, hold } = setup(t);
  hold(`agent-${other.pid}`);
  assert.deepEqual(liveAgents('node-1', run), [other.pid]);
  assert.throws(() => claimCleanup('node-1', {}, run), (e: Error & { code?: string; details?: { pids: number[] } }) => {
    assert.equal(e.code, 'WEFT_ERR_CONFLICT');
    assert.deepEqual(e.details?.pids, [other.pid]);
    return new RegExp(`an agent of node node-1 is running \\(pid ${other.pid}\\)`).test(e.message);
  });
  assert.ok(!existsSync(join(run, 'node-1', 'cleanup')), 'a refused cleanup leaves no claim behind');
  const forced = claimCleanup('node-1', { allowAgents: true }, run);
  assert.deepEqual(forced.agents, [other.pid]);
  forced.release();
});

test('agent lock: an agent does not start while a cleanup holds the node, and does once it is done', (t) => {
  const { run, other, hold } = setup(t);
  hold('cleanup');
  assert.throws(() => registerAgent('node-1', run), new RegExp(`\\(pid ${other.pid}\\) is removing this node`));
  assert.deepEqual(readdirSync(join(run, 'node-1')), ['cleanup'], 'the refused agent removed its own file');
  assert.throws(() => claimCleanup('node-1', {}, run), /another cleanup of node node-1 is running/);
  rmSync(join(run, 'node-1', 'cleanup'));
  const release = registerAgent('node-1', run);
  assert.ok(existsSync(join(run, 'node-1', `agent-${process.pid}`)));
  release();
  assert.ok(!existsSync(join(run, 'node-1', `agent-${process.pid}`)));
});

test('agent lock: files of dead processes, or of a pid reused by another process, are stale', (t) => {
  const { run, other, hold } = setup(t);
  let dead = 4_000_000;
  while (existsSync(`/proc/${dead}`)) dead++;
  hold(`agent-${dead}`, dead, '123');
  hold(`agent-${other.pid}`, other.pid!, 'not-its-start-time');
  hold('cleanup', dead, '1');
  assert.deepEqual(liveAgents('node-1', run), []);
  const c = claimCleanup('node-1', {}, run);
  assert.deepEqual(c.agents, []);
  c.release();
  assert.ok(!existsSync(join(run, 'node-1')), `stale files removed, and the node directory with them: ${existsSync(join(run, 'node-1')) ? readdirSync(join(run, 'node-1')).join(' ') : ''}`);
});
