// The demo's child processes: each started inside a namespace with nsenter (which execs,
// so the pid we hold is the process itself), in its own process group (a Ctrl-C in the
// terminal reaches only `weft demo`, which then stops everything in order), its output
// kept in a log file in the run's temp dir and watched line by line for readiness.
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { createWriteStream, readFileSync, type WriteStream } from 'node:fs';
import { extname, join } from 'node:path';
import { WeftError } from '../lib/errors';
import { inNetns } from './netns';

export interface Child {
  name: string;
  proc: ChildProcess;
  logFile: string;
  exited: Promise<number | null>;
  /** Resolves with the first output line matching `re`; rejects if the process exits
   *  first or `timeoutMs` passes (the message names the log file). */
  waitFor(re: RegExp, timeoutMs: number): Promise<string>;
  /** The last `n` lines of its log. */
  tail(n?: number): string;
}

/** argv that runs this same weft CLI (from dist/ or, in tests, from the sources via tsx). */
export function weftSelf(...args: string[]): string[] {
  return [process.execPath, ...process.execArgv, process.argv[1]!, ...args];
}

/** argv that runs a sibling entry module of agent/demo (main of the app or of the view). */
export function demoModule(relative: string, ...args: string[]): string[] {
  return [process.execPath, ...process.execArgv, join(__dirname, `${relative}${extname(__filename)}`), ...args];
}

export function startChild(name: string, ns: string, argv: string[], logDir: string, opts: { env?: NodeJS.ProcessEnv; stdout?: 'inherit' } = {}): Child {
  const logFile = join(logDir, `${name.replace(/[^a-zA-Z0-9_.-]/g, '_')}.log`);
  const log: WriteStream = createWriteStream(logFile, { flags: 'a' });
  const stdio: StdioOptions = ['ignore', opts.stdout ?? 'pipe', 'pipe'];
  const [cmd, ...rest] = inNetns(ns, argv);
  const proc = spawn(cmd!, rest, { stdio, detached: true, env: opts.env ?? process.env });
  const lines: string[] = [];
  const wakers = new Set<() => void>();
  for (const stream of [proc.stdout, proc.stderr]) {
    let buf = '';
    stream?.setEncoding('utf8').on('data', (d: string) => {
      log.write(d);
      buf += d;
      const parts = buf.split('\n');
      buf = parts.pop()!;
      lines.push(...parts);
      if (lines.length > 2000) lines.splice(0, lines.length - 1000);
      for (const w of wakers) w();
    });
  }
  const exited = new Promise<number | null>((resolve) => {
    proc.once('error', (e) => { log.write(`spawn failed: ${e.message}\n`); resolve(-1); });
    proc.once('exit', (code, sig) => { resolve(code ?? (sig ? -1 : null)); for (const w of wakers) w(); });
  });
  exited.then(() => log.end(), () => log.end());
  const tail = (n = 15) => {
    try { return readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-n).join('\n'); } catch { return lines.slice(-n).join('\n'); }
  };
  return {
    name, proc, logFile, exited, tail,
    waitFor(re, timeoutMs) {
      return new Promise((resolve, reject) => {
        let seen = 0;
        const done = (f: () => void) => { clearTimeout(timer); wakers.delete(check); f(); };
        const check = () => {
          for (; seen < lines.length; seen++) if (re.test(lines[seen]!)) { const l = lines[seen]!; return done(() => resolve(l)); }
          if (proc.exitCode !== null || proc.signalCode !== null) {
            done(() => reject(new WeftError('WEFT_ERR_UNAVAILABLE', `${name} exited (${proc.exitCode ?? proc.signalCode}) before it was ready; last lines of ${logFile}:\n${tail()}`)));
          }
        };
        const timer = setTimeout(() => done(() => reject(new WeftError('WEFT_ERR_TIMEOUT', `${name} not ready after ${timeoutMs / 1000}s; last lines of ${logFile}:\n${tail()}`))), timeoutMs);
        wakers.add(check);
        check();
      });
    },
  };
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when every one has exited. */
export async function stopAll(children: Child[], graceMs: number): Promise<void> {
  const running = children.filter((c) => c.proc.exitCode === null && c.proc.signalCode === null);
  for (const c of running) c.proc.kill('SIGTERM');
  const timer = setTimeout(() => { for (const c of running) c.proc.kill('SIGKILL'); }, graceMs);
  await Promise.all(running.map((c) => c.exited));
  clearTimeout(timer);
}
