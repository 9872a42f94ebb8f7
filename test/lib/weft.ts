// How tests start weft processes: the CLI from sources, with helpers to wait for an
// agent or control API to come up and to collect their logs for failure messages.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

export const ROOT = join(__dirname, '..', '..');

/** argv that runs `weft ARGS...`: from the sources by default, or the built CLI
 *  (bin/weft → dist/) when WEFT_TEST_BIN=dist — what `npm test` does after building, so
 *  the end-to-end tests exercise the artifact that ships. */
export function weftArgv(...args: string[]): string[] {
  if (process.env.WEFT_TEST_BIN === 'dist') return [process.execPath, join(ROOT, 'bin', 'weft'), ...args];
  return [process.execPath, '--import', 'tsx', join(ROOT, 'test', 'lib', 'weft-main.ts'), ...args];
}

export interface WeftProcess {
  proc: ChildProcess;
  /** stderr lines so far (pino JSON for daemons). */
  logs: string[];
  exited: Promise<number | null>;
  /** Resolves with the first log line matching `re` (rejects on exit or timeout). */
  waitForLog(re: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Wraps a spawned weft process (from `spawn` or `Netns.spawn`) for tests. */
export function watchWeft(proc: ChildProcess): WeftProcess {
  const logs: string[] = [];
  const wakers = new Set<() => void>();
  let buf = '';
  const onData = (d: string) => {
    buf += d;
    const lines = buf.split('\n');
    buf = lines.pop()!;
    logs.push(...lines);
    for (const w of wakers) w();
  };
  proc.stderr?.setEncoding('utf8').on('data', onData);
  proc.stdout?.setEncoding('utf8').on('data', onData);
  const exited = new Promise<number | null>((r) => proc.once('exit', (code, sig) => { r(code ?? (sig ? -1 : null)); for (const w of wakers) w(); }));
  return {
    proc, logs, exited,
    waitForLog(re, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        let i = 0;
        const done = (f: () => void) => { clearTimeout(timer); wakers.delete(check); f(); };
        const check = () => {
          for (; i < logs.length; i++) { const m = re.exec(logs[i]!); if (m) return done(() => resolve(m)); }
          if (proc.exitCode !== null || proc.signalCode !== null) done(() => reject(new Error(`process exited (${proc.exitCode ?? proc.signalCode}) before logging ${re}:\n${logs.slice(-30).join('\n')}`)));
        };
        const timer = setTimeout(() => done(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${re}:\n${logs.slice(-30).join('\n')}`))), timeoutMs);
        wakers.add(check);
        check();
      });
    },
    async kill(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
}

export function spawnWeft(args: string[], env: NodeJS.ProcessEnv = process.env): WeftProcess {
  const [cmd, ...rest] = weftArgv(...args);
  return watchWeft(spawn(cmd!, rest, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env }));
}
